/* Benchmark of the gradient-boosted trees (pulse bench gbdt [--rows N] [--trees T] [--depth D]):
 * training time on a Telco-sized synthetic table with a planted signal (early stopping), then batch
 * scoring rows/s of a T-tree depth-D model on 1 and 2 threads, AVX2 and scalar. Prints figures;
 * never fails on a time. */
#ifndef PULSE_ML_GBDT_BENCH_H
#define PULSE_ML_GBDT_BENCH_H

#include <stdio.h>

/* argv[0] is "gbdt". Returns the process exit code (0 ok, 1 failure, 2 usage). */
int pulse_gbdt_bench(int argc, char **argv, FILE *out);

#endif
