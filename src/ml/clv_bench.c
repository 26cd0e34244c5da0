/* Benchmark of the lifetime-value fits (see clv_bench.h). */
#include "ml/clv_bench.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "analytics/txfile.h"
#include "core/buf.h"
#include "core/clock.h"
#include "ingest/csv.h"
#include "ml/clv.h"
#include "ml/clvsum.h"
#include "ml/clvtrain.h"

#define RUNS 20

enum { COL_X, COL_TX, COL_T, COL_ZBAR, NCOLS };

typedef struct summary_t {
    int col[NCOLS]; /* field index of each column, -1 when absent */
    double *v[NCOLS];
    size_t n, cap;
    char err[256];
} summary_t;

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

/* A transactions file (as pulse bench features reads it) into a finished store. */
static int read_transactions(const char *path, pulse_txstore_t *st, char *err, size_t errlen)
{
    pulse_txfile_plan_t plan;
    if (pulse_txfile_plan_guess_file(path, &plan, err, errlen) != 0)
        return -1;
    pulse_txstore_init(st);
    if (pulse_txfile_read(path, &plan, st, NULL, err, errlen) != 0) {
        pulse_txstore_free(st);
        return -1;
    }
    pulse_txstore_finish(st);
    return 0;
}

static void print_freq_table(const pulse_ml_clv_result_t *r, FILE *out)
{
    fprintf(out, "repeat  customers  purchases: bgnbd  actual   spend: bgnbd  clv_gbdt    actual\n");
    for (size_t g = 0; g < PULSE_ML_CLV_FREQ_GROUPS; g++) {
        const pulse_ml_clv_freq_t *f = &r->freq[g];
        fprintf(out, "%4zu%-2s %10zu %16.3f %7.3f %14.2f %9.2f %9.2f\n", g, g == PULSE_ML_CLV_FREQ_GROUPS - 1 ? "+" : "", f->n,
                f->pred_purchases, f->actual_purchases, f->pred_spend_bgnbd, f->pred_spend_gbdt, f->actual_spend);
    }
}

/* The time-split comparison on a transactions file: the all-data fit's parameters (days), then
 * both candidates' holdout errors and the table by calibration frequency. */
static int bench_transactions(const char *path, int32_t horizon, FILE *out)
{
    char err[512];
    pulse_txstore_t st;
    if (read_transactions(path, &st, err, sizeof(err)) != 0) {
        fprintf(stderr, "pulse bench clv: %s: %s\n", path, err);
        return 1;
    }
    pulse_clvsum_t all;
    pulse_clvsum_build(&st, &all);
    pulse_ml_clv_bgnbd_t m;
    pulse_ml_clv_options_t o;
    pulse_ml_clv_options_init(&o);
    o.terms.horizon = horizon;
    o.threads = 1;
    pulse_ml_clv_result_t r;
    double t0 = 1e3 * pulse_now_s(), c0 = pulse_cpu_s();
    int rc = pulse_ml_clv_train(&st, &o, &r, err, sizeof(err));
    double ms = 1e3 * pulse_now_s() - t0, cpu = pulse_cpu_s() - c0;
    if (rc != 0) {
        fprintf(stderr, "pulse bench clv: %s\n", err);
    } else {
        m = r.chosen_gbdt ? r.cal : r.full;
        if (r.chosen_gbdt)
            fprintf(out, "(parameters of the calibration fit; the trees were chosen)\n");
        fprintf(out, "r=%.4f alpha=%.4f a=%.4f b=%.4f loglik=%.2f iterations=%d customers=%zu (days)\n", m.bg.r, m.bg.alpha, m.bg.a,
                m.bg.b, m.bg.log_likelihood, m.bg.iterations, r.chosen_gbdt ? r.n_customers : all.n);
        fprintf(out, "p=%.4f q=%.4f gamma=%.4f loglik=%.2f iterations=%d\n", m.gg.p, m.gg.q, m.gg.gamma, m.gg.log_likelihood,
                m.gg.iterations);
        char c0s[16], c1s[16];
        time_t a = (time_t)r.cutoff * 86400, b = (time_t)(r.end_day - 1) * 86400;
        strftime(c0s, sizeof(c0s), "%Y-%m-%d", gmtime(&a));
        strftime(c1s, sizeof(c1s), "%Y-%m-%d", gmtime(&b));
        fprintf(out, "holdout %s to %s (%d days): %zu customers before it, %zu held out (%zu bought in the holdout overall)\n", c0s,
                c1s, (int)horizon, r.n_customers, r.n_test, r.n_buyers);
        fprintf(out, "bgnbd    holdout spend MAE %.3f RMSE %.3f (mean predicted %.3f, actual %.3f)\n", r.bgnbd.mae, r.bgnbd.rmse,
                r.bgnbd.mean_pred, r.mean_actual);
        fprintf(out, "clv_gbdt holdout spend MAE %.3f RMSE %.3f (mean predicted %.3f, %d trees)\n", r.gbdt.mae, r.gbdt.rmse,
                r.gbdt.mean_pred, r.gbdt_trees);
        fprintf(out, "chosen: %s (lower MAE), refitted on %zu customers; %.1f ms (cpu %.1f ms) for split, fits, trees, refit\n",
                r.chosen_gbdt ? "clv_gbdt" : "bgnbd", r.n_full, ms, cpu * 1e3);
        print_freq_table(&r, out);
        pulse_ml_clv_result_free(&r);
    }
    pulse_clvsum_free(&all);
    pulse_txstore_free(&st);
    return rc == 0 ? 0 : 1;
}

/* A summary has a frequency (or x) column; anything else is read as transactions. */
static int is_summary(const char *path)
{
    char head[4096];
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(head, 1, sizeof(head) - 1, f) : 0;
    if (f)
        fclose(f);
    head[n] = '\0';
    char *nl = strchr(head, '\n');
    if (nl)
        *nl = '\0';
    for (char *p = head; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return strstr(head, "frequency") != NULL || strstr(head, "t_x") != NULL || f == NULL;
}

int pulse_clv_bench(int argc, char **argv, FILE *out)
{
    if (argc < 2 || (argc != 2 && !(argc == 4 && strcmp(argv[2], "--horizon") == 0))) {
        fprintf(stderr, "Usage: pulse bench clv SUMMARY.csv (columns ID,frequency,recency,T or ID,x,t_x,T[,zbar])\n"
                        "       pulse bench clv TRANSACTIONS [--horizon DAYS]  (time-split holdout of both CLV models)\n");
        return 2;
    }
    if (!is_summary(argv[1])) {
        char *end;
        long h = argc == 4 ? strtol(argv[3], &end, 10) : 90;
        if (argc == 4 && (*end != '\0' || h < 1 || h > 3650)) {
            fprintf(stderr, "pulse bench clv: --horizon takes a number of days, 1 to 3650\n");
            return 2;
        }
        return bench_transactions(argv[1], (int32_t)h, out);
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
        double t0 = 1e3 * pulse_now_s();
        if (pulse_clv_bgnbd_fit(s.v[COL_X], s.v[COL_TX], s.v[COL_T], s.n, &bg, err, sizeof(err)) != 0) {
            fprintf(stderr, "pulse bench clv: %s\n", err);
            goto done;
        }
        best = fmin(best, 1e3 * pulse_now_s() - t0);
    }
    fprintf(out, "r=%.4f alpha=%.4f a=%.4f b=%.4f loglik=%.2f iterations=%d customers=%zu fit_ms=%.3f (best of %d)\n", bg.r,
            bg.alpha, bg.a, bg.b, bg.log_likelihood, bg.iterations, s.n, best, RUNS);
    if (s.col[COL_ZBAR] >= 0) {
        pulse_gamma_gamma_t gg;
        best = INFINITY;
        for (int i = 0; i < RUNS; i++) {
            double t0 = 1e3 * pulse_now_s();
            if (pulse_clv_gamma_gamma_fit(s.v[COL_X], s.v[COL_ZBAR], s.n, &gg, err, sizeof(err)) != 0) {
                fprintf(stderr, "pulse bench clv: %s\n", err);
                goto done;
            }
            best = fmin(best, 1e3 * pulse_now_s() - t0);
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
