/* Benchmark of customer clustering (pulse bench cluster [--n N] [--d D] [--k K]): generates N
 * synthetic RFM-like customers (four planted segments, normal after log1p), then times k-means with
 * k = K on one and two threads, and the Gaussian mixture and Ward with k chosen automatically;
 * prints iterations, scores, personas, agreement with the planted segments and peak memory.
 * Prints figures; never fails on a time. */
#ifndef PULSE_ANALYTICS_CLUSTER_BENCH_H
#define PULSE_ANALYTICS_CLUSTER_BENCH_H

#include <stdio.h>

/* argv[0] is "cluster". Returns the process exit code (0 ok, 1 failure, 2 usage). */
int pulse_cluster_bench(int argc, char **argv, FILE *out);

#endif
