/* Benchmark of the lifetime-value fits (pulse bench clv SUMMARY.csv): reads a per-customer summary
 * (ID,frequency,recency,T or ID,x,t_x,T[,zbar]), fits BG/NBD and, when zbar is there, Gamma-Gamma,
 * and prints the parameters and the best fit time of several runs. Given a transactions file instead
 * (pulse bench clv cdnow_master.txt [--horizon DAYS]) it runs the time-split training of
 * ml/clvtrain.h and prints both models' holdout errors and the frequency table. Prints figures;
 * never fails on a time. */
#ifndef PULSE_ML_CLV_BENCH_H
#define PULSE_ML_CLV_BENCH_H

#include <stdio.h>

/* argv[0] is "clv", argv[1] the file, then optionally --horizon DAYS. Returns the process exit code (0 ok, 1 failure, 2 usage). */
int pulse_clv_bench(int argc, char **argv, FILE *out);

#endif
