/* Throughput benchmark for the CSV parser (see csv_bench.h). */
#include "ingest/csv_bench.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/clock.h"
#include "ingest/csv.h"

#define BENCH_BYTES (100u << 20)
#define BENCH_CHUNK (64u << 10)

#ifndef PULSE_SOURCE_DIR
#define PULSE_SOURCE_DIR "."
#endif

typedef struct {
    size_t rows, fields, bytes;
} bench_sink_t;

static int bench_row(void *ud, size_t row, const pulse_csv_field_t *f, size_t n)
{
    bench_sink_t *s = ud;
    s->rows++;
    s->fields += n;
    s->bytes += f[0].len; /* touch the data so nothing is optimised away */
    return 0;
}

/* Parses data in 64 KiB chunks as an upload would arrive; -> seconds, or -1. */
static double bench_parse(FILE *out, const pulse_csv_dialect_t *d, const char *data, size_t len, bench_sink_t *sink)
{
    memset(sink, 0, sizeof(*sink));
    pulse_csv_parser_t *p = pulse_csv_parser_new(d, bench_row, sink);
    double t0 = pulse_now_s();
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0; off += BENCH_CHUNK)
        rc = pulse_csv_feed(p, data + off, len - off < BENCH_CHUNK ? len - off : BENCH_CHUNK);
    if (rc == 0)
        rc = pulse_csv_finish(p);
    double t = pulse_now_s() - t0;
    if (rc != 0)
        fprintf(out, "csv bench: parse failed: %s\n", pulse_csv_error(p));
    pulse_csv_free(p);
    return rc != 0 ? -1 : t;
}

/* The best of `runs` parses, in seconds, or -1 when a parse failed (already reported). */
static double best_parse(FILE *out, const pulse_csv_dialect_t *d, const char *data, size_t len, bench_sink_t *sink, int runs)
{
    double best = -1;
    for (int i = 0; i < runs; i++) {
        double t = bench_parse(out, d, data, len, sink);
        if (t < 0)
            return -1;
        if (best < 0 || t < best)
            best = t;
    }
    return best;
}

static int bench_generated(FILE *out, int quoted)
{
    pulse_buf_t b = PULSE_BUF_INIT;
    pulse_buf_reserve(&b, BENCH_BYTES + 256);
    pulse_buf_puts(&b, "CustomerID,TransactionDate,TransactionAmount,ProductCategory,Quantity\n");
    unsigned x = 12345;
    while (b.len < BENCH_BYTES) {
        x = x * 1103515245u + 12345u;
        if (quoted)
            pulse_buf_printf(&b, "C%06u,2024-%02u-%02u,%u.%02u,\"Home, \"\"Garden\"\" & Tools\",%u\n", x % 1000000, x % 12 + 1,
                             x % 28 + 1, x % 5000, x % 100, x % 9 + 1);
        else
            pulse_buf_printf(&b, "C%06u,2024-%02u-%02u,%u.%02u,Electronics,%u\n", x % 1000000, x % 12 + 1, x % 28 + 1, x % 5000,
                             x % 100, x % 9 + 1);
    }
    pulse_csv_dialect_t d;
    char err[256];
    if (pulse_csv_sniff(b.data, 65536, &d, err, sizeof(err)) != 0) {
        fprintf(out, "csv bench: sniff failed: %s\n", err);
        pulse_buf_free(&b);
        return -1;
    }
    bench_sink_t sink;
    double best = best_parse(out, &d, b.data, b.len, &sink, 3);
    if (best < 0) {
        pulse_buf_free(&b);
        return -1;
    }
    fprintf(out, "csv parse %-8s %6.1f MB in %.3f s: %7.1f MB/s, %.2f M rows/s (%zu rows, %zu fields)\n",
            quoted ? "quoted" : "unquoted", (double)b.len / 1e6, best, (double)b.len / 1e6 / best, (double)sink.rows / 1e6 / best,
            sink.rows, sink.fields);
    pulse_buf_free(&b);
    return 0;
}

static int bench_file(FILE *out, const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/../shared/data/%s", PULSE_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(out, "csv parse %s: not found, skipped\n", name);
        return 0;
    }
    pulse_buf_t b = PULSE_BUF_INIT;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        pulse_buf_append(&b, tmp, n);
    fclose(f);
    pulse_csv_dialect_t d;
    char err[256];
    double t0 = pulse_now_s();
    if (pulse_csv_sniff(b.data, b.len < 65536 ? b.len : 65536, &d, err, sizeof(err)) != 0) {
        fprintf(out, "csv bench %s: sniff failed: %s\n", name, err);
        pulse_buf_free(&b);
        return -1;
    }
    double ts = pulse_now_s() - t0;
    bench_sink_t sink;
    double best = best_parse(out, &d, b.data, b.len, &sink, 5);
    if (best < 0) {
        pulse_buf_free(&b);
        return -1;
    }
    fprintf(out, "csv parse %s: sep=%s header=%d %zu rows x %zu fields, sniff %.2f ms, parse %.2f ms: %.2f M rows/s, %.1f MB/s\n",
            name,
            d.sep == PULSE_CSV_SEP_WHITESPACE ? "whitespace"
            : d.sep == '\t'                   ? "tab"
                                              : (char[]){d.sep, 0},
            d.has_header, sink.rows, d.nfields, ts * 1e3, best * 1e3, (double)sink.rows / 1e6 / best, (double)b.len / 1e6 / best);
    pulse_buf_free(&b);
    return 0;
}

int pulse_csv_bench(FILE *out)
{
    if (bench_generated(out, 0) != 0 || bench_generated(out, 1) != 0)
        return -1;
    if (bench_file(out, "cdnow_master.txt") != 0 || bench_file(out, "telco_churn.csv") != 0)
        return -1;
    return 0;
}
