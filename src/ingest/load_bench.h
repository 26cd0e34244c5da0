/* Benchmark of the import loader (pulse bench import FILE [--plan PLAN.json] [--kind K]): in-memory
 * parse + clean + map throughput (no database), then, when a database is reachable, the end-to-end
 * import into the real tables against a plain COPY of the same rows, and peak resident memory.
 * Prints figures; never fails on a time. */
#ifndef PULSE_INGEST_LOAD_BENCH_H
#define PULSE_INGEST_LOAD_BENCH_H

#include <stdio.h>

/* argv[0] is "import". conninfo: where the database is (the owner role; NULL: no database part).
 * Returns the process exit code (0 ok, 1 failure, 2 usage). */
int pulse_import_bench(int argc, char **argv, const char *conninfo, FILE *out);

#endif
