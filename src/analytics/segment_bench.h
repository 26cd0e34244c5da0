/* Benchmark of the segmentation path (pulse bench segment FILE): parse (plan guessed: CDNOW or the
 * e-commerce CSV) -> group -> features -> RFM -> segments of the shipped rule (its lookup table is
 * given by the caller) -> k-means k = 4 on log/standardised recency, frequency, monetary; time per
 * stage, total and peak RSS. Figures only; never fails on a time. */
#ifndef PULSE_ANALYTICS_SEGMENT_BENCH_H
#define PULSE_ANALYTICS_SEGMENT_BENCH_H

#include <stdio.h>

#include "analytics/segment.h"

/* argv[0] is "segment"; table: the segments lookup table; behaviour may be NULL. Returns the
 * process exit code (0 ok, 1 failure, 2 usage). */
int pulse_segment_bench(int argc, char **argv, const pulse_segment_table_t *table, const pulse_behaviour_t *behaviour, FILE *out);

#endif
