/* Micro-benchmark for column type inference: values per second observed by
 * pulse_column_observe for integer, decimal, date and text columns, and the single-format
 * parsers. Prints figures; never fails on a time. */
#ifndef PULSE_INGEST_TYPES_BENCH_H
#define PULSE_INGEST_TYPES_BENCH_H

#include <stdio.h>

/* Generates ~2M values per case in memory and prints one line per figure to out. Returns 0, or
 * -1 (with a line on out) if a generated value was not inferred as expected. */
int pulse_types_bench(FILE *out);

#endif
