/* Benchmark of the per-customer feature path (pulse bench features FILE [--threads N]): reads a
 * transactions file into the store (plan guessed: CDNOW or the e-commerce CSV), groups it, computes
 * every feature in blocks and the RFM scores; prints time per stage, MB/s, rows, customers and
 * resident memory. Figures only; never fails on a time. */
#ifndef PULSE_ANALYTICS_FEATURES_BENCH_H
#define PULSE_ANALYTICS_FEATURES_BENCH_H

#include <stdio.h>

/* argv[0] is "features". Returns the process exit code (0 ok, 1 failure, 2 usage). */
int pulse_features_bench(int argc, char **argv, FILE *out);

#endif
