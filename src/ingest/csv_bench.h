/* Throughput benchmark for the CSV parser: MB/s on a generated ~100 MB file (unquoted, then quoted
 * with embedded separators), and rows/s on the shared sample files when present. Prints figures;
 * never fails on a time. */
#ifndef PULSE_INGEST_CSV_BENCH_H
#define PULSE_INGEST_CSV_BENCH_H

#include <stdio.h>

/* Prints one line per figure to out. Returns 0, or -1 if a parse failed (with a line on out). */
int pulse_csv_bench(FILE *out);

#endif
