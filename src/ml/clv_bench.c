/* Benchmark of the lifetime-value fits (see clv_bench.h). */
#include "ml/clv_bench.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/buf.h"
#include "ingest/csv.h"
#include "ml/clv.h"

#define RUNS 20

enum { COL_X, COL_TX, COL_T, COL_ZBAR, NCOLS };

typedef struct summary_t {
    int col[NCOLS]; /* field index of each column, -1 when absent */
    double *v[NCOLS];
    size_t n, cap;
    char err[256];
} summary_t;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int name_is(const pulse_csv_field_t *f, const char *a, const char *b)
{
    return (f->len == strlen(a) && strncasecmp(f->ptr, a, f->len) == 0) ||
           (b && f->len == strlen(b) && strncasecmp(f->ptr, b, f->len) == 0);
}

static int on_row(void *ud, size_t row, const pulse_csv_field_t *f, size_t nf)
{
    summary_t *s = ud;
    if (row == 1) {
        for (int c = 0; c < NCOLS; c++)
            s->col[c] = -1;
        for (size_t i = 0; i < nf; i++) {
            /* T exactly: compared without case it would also claim a lower-case t column. */
            int c = name_is(&f[i], "frequency", "x")           ? COL_X
                    : name_is(&f[i], "recency", "t_x")         ? COL_TX
                    : (f[i].len == 1 && f[i].ptr[0] == 'T')    ? COL_T
                    : name_is(&f[i], "zbar", "monetary_value") ? COL_ZBAR
                                                               : -1;
            if (c >= 0)
                s->col[c] = (int)i;
        }
        for (int c = 0; c < COL_ZBAR; c++)
            if (s->col[c] < 0) {
                snprintf(s->err, sizeof(s->err), "the header needs frequency (or x), recency (or t_x) and T columns");
                return 1;
            }
        return 0;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 4096;
        for (int c = 0; c < NCOLS; c++)
            s->v[c] = pulse_xrealloc(s->v[c], sizeof(double) * s->cap);
    }
    for (int c = 0; c < NCOLS; c++) {
        if (s->col[c] < 0)
            continue;
        if ((size_t)s->col[c] >= nf) {
            snprintf(s->err, sizeof(s->err), "record %zu: %zu fields, column %d missing", row, nf, s->col[c] + 1);
            return 1;
        }
        char tmp[64], *end;
        const pulse_csv_field_t *x = &f[s->col[c]];
        snprintf(tmp, sizeof(tmp), "%.*s", (int)(x->len < 63 ? x->len : 63), x->ptr);
        errno = 0;
        s->v[c][s->n] = strtod(tmp, &end);
        if (end == tmp || *end != '\0' || errno != 0) {
            snprintf(s->err, sizeof(s->err), "record %zu: '%s' is not a number", row, tmp);
            return 1;
        }
    }
    s->n++;
    return 0;
}

static int read_summary(const char *path, summary_t *s)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(s->err, sizeof(s->err), "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    pulse_csv_dialect_t d;
    pulse_csv_dialect_init(&d);
    pulse_csv_parser_t *p = pulse_csv_parser_new(&d, on_row, s);
    char buf[65536];
    size_t got;
    int rc = 0;
    while (rc == 0 && (got = fread(buf, 1, sizeof(buf), f)) > 0)
        rc = pulse_csv_feed(p, buf, got);
    if (rc == 0)
        rc = pulse_csv_finish(p);
    if (rc < 0)
        snprintf(s->err, sizeof(s->err), "%s", pulse_csv_error(p));
    pulse_csv_free(p);
    fclose(f);
    if (rc == 0 && s->n == 0)
        snprintf(s->err, sizeof(s->err), "no data rows");
    return rc == 0 && s->n > 0 ? 0 : -1;
}

int pulse_clv_bench(int argc, char **argv, FILE *out)
{
    if (argc < 2) {
        fprintf(stderr, "Usage: pulse bench clv SUMMARY.csv (columns ID,frequency,recency,T or ID,x,t_x,T[,zbar])\n");
        return 2;
    }
    summary_t s = {0};
    int rc = 1;
    char err[256];
    if (read_summary(argv[1], &s) != 0) {
        fprintf(stderr, "pulse bench clv: %s: %s\n", argv[1], s.err);
        goto done;
    }
    pulse_bgnbd_t bg;
    double best = INFINITY;
    for (int i = 0; i < RUNS; i++) {
        double t0 = now_ms();
        if (pulse_clv_bgnbd_fit(s.v[COL_X], s.v[COL_TX], s.v[COL_T], s.n, &bg, err, sizeof(err)) != 0) {
            fprintf(stderr, "pulse bench clv: %s\n", err);
            goto done;
        }
        best = fmin(best, now_ms() - t0);
    }
    fprintf(out, "r=%.4f alpha=%.4f a=%.4f b=%.4f loglik=%.2f iterations=%d customers=%zu fit_ms=%.3f (best of %d)\n", bg.r,
            bg.alpha, bg.a, bg.b, bg.log_likelihood, bg.iterations, s.n, best, RUNS);
    if (s.col[COL_ZBAR] >= 0) {
        pulse_gamma_gamma_t gg;
        best = INFINITY;
        for (int i = 0; i < RUNS; i++) {
            double t0 = now_ms();
            if (pulse_clv_gamma_gamma_fit(s.v[COL_X], s.v[COL_ZBAR], s.n, &gg, err, sizeof(err)) != 0) {
                fprintf(stderr, "pulse bench clv: %s\n", err);
                goto done;
            }
            best = fmin(best, now_ms() - t0);
        }
        fprintf(out, "p=%.4f q=%.4f gamma=%.4f loglik=%.2f iterations=%d fit_ms=%.3f (best of %d)\n", gg.p, gg.q, gg.gamma,
                gg.log_likelihood, gg.iterations, best, RUNS);
    }
    rc = 0;
done:
    for (int c = 0; c < NCOLS; c++)
        free(s.v[c]);
    return rc;
}
