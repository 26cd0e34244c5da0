/* Benchmark of the lifetime-value fits (pulse bench clv SUMMARY.csv): reads a per-customer summary
 * (ID,frequency,recency,T or ID,x,t_x,T[,zbar]), fits BG/NBD and, when zbar is there, Gamma-Gamma,
 * and prints the parameters and the best fit time of several runs. Prints figures; never fails on a time. */
#ifndef PULSE_ML_CLV_BENCH_H
#define PULSE_ML_CLV_BENCH_H

#include <stdio.h>

/* argv[0] is "clv", argv[1] the CSV file. Returns the process exit code (0 ok, 1 failure, 2 usage). */
int pulse_clv_bench(int argc, char **argv, FILE *out);

#endif
