/* Benchmark of batch churn scoring through the registry container (pulse bench score [--rows N]
 * [--trees 200] [--depth 4]): a calibrated GBDT packed into a PMDL container as training stores
 * it, then per run the container is loaded and validated, the trees parsed, N synthetic rows scored
 * and calibrated, on 1 and 2 threads. Prints rows/s wall and per core; never fails on a time. */
#ifndef PULSE_ML_SCORE_BENCH_H
#define PULSE_ML_SCORE_BENCH_H

#include <stdio.h>

/* argv[0] is "score". Returns the process exit code (0 ok, 1 failure, 2 usage). */
int pulse_score_bench(int argc, char **argv, FILE *out);

#endif
