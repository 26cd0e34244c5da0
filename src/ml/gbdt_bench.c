/* Benchmark of the gradient-boosted trees (see gbdt_bench.h). */
#include "ml/gbdt_bench.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/clock.h"
#include "ml/gbdt.h"

#define BENCH_COLS 40

#ifndef PULSE_SOURCE_DIR
#define PULSE_SOURCE_DIR "."
#endif

static uint64_t bench_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double bench_unif(uint64_t *s)
{
    return (double)(bench_rng(s) >> 11) * (1.0 / 9007199254740992.0);
}

typedef struct {
    pulse_ml_data_t d;
    unsigned char cat[BENCH_COLS];
    int ncat[BENCH_COLS];
} bench_table_t;

/* Churn-like columns: 0-4 carry the signal (4 with 20% missing), 5-6 are categorical (contract,
 * payment method), 7 is a heavy-zero spend, the rest is noise. */
static void bench_synth(bench_table_t *t, size_t n, uint64_t seed)
{
    memset(t, 0, sizeof(*t));
    t->d.n_rows = n;
    t->d.n_cols = BENCH_COLS;
    t->d.x = pulse_xmalloc(n * BENCH_COLS * sizeof(float));
    t->d.y = pulse_xmalloc(n * sizeof(float));
    t->d.categorical = t->cat;
    t->d.n_categories = t->ncat;
    t->cat[5] = t->cat[6] = 1;
    t->ncat[5] = 3;
    t->ncat[6] = 4;
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        float *x = t->d.x;
        for (size_t j = 0; j < BENCH_COLS; j++) {
            double v = bench_unif(&s) * 2 - 1;
            if (j == 5 || j == 6)
                v = (double)(bench_rng(&s) % (uint64_t)t->ncat[j]);
            else if (j == 7)
                v = bench_unif(&s) < 0.4 ? 0 : bench_unif(&s) * 500;
            else if (j == 4 && bench_unif(&s) < 0.2)
                v = NAN;
            x[j * n + i] = (float)v;
        }
        double a = x[i], b = x[n + i], c = x[2 * n + i], d = x[3 * n + i], e = x[4 * n + i];
        double z = -1.0 + 1.5 * a - b + (c > 0.3 ? 0.8 : 0) + a * d + (e == e ? 0.7 * e : 0.9) + (x[5 * n + i] == 0 ? 1.0 : -0.5) +
                   (x[7 * n + i] > 200 ? 0.4 : 0);
        t->d.y[i] = bench_unif(&s) < 1 / (1 + exp(-z)) ? 1.0f : 0.0f;
    }
}

static void bench_free(bench_table_t *t)
{
    free(t->d.x);
    free(t->d.y);
}

/* Rows a..b of t as a table of its own (column-major copy). */
static void bench_slice(const bench_table_t *t, size_t a, size_t b, bench_table_t *o)
{
    *o = *t;
    o->d.categorical = o->cat;
    o->d.n_categories = o->ncat;
    size_t n = b - a;
    o->d.n_rows = n;
    o->d.x = pulse_xmalloc(n * BENCH_COLS * sizeof(float));
    o->d.y = pulse_xmalloc(n * sizeof(float));
    for (size_t j = 0; j < BENCH_COLS; j++)
        memcpy(o->d.x + j * n, t->d.x + j * t->d.n_rows + a, n * sizeof(float));
    memcpy(o->d.y, t->d.y + a, n * sizeof(float));
}

static double bench_logloss(const pulse_ml_data_t *d, const double *p)
{
    double s = 0;
    for (size_t i = 0; i < d->n_rows; i++) {
        double q = p[i] < 1e-15 ? 1e-15 : p[i] > 1 - 1e-15 ? 1 - 1e-15 : p[i];
        s -= d->y[i] > 0.5f ? log(q) : log(1 - q);
    }
    return s / (double)d->n_rows;
}

#define TELCO_COLS 19

/* ../shared/data/telco_churn.csv (IBM Telco, 7,043 customers) as a table: tenure, charges and
 * SeniorCitizen numeric (blank TotalCharges missing), the other 15 columns category codes in order
 * of appearance, Churn the label; every 5th row goes to valid. Returns -1 when the file is absent. */
static int bench_telco(bench_table_t *tr, bench_table_t *va)
{
    FILE *f = fopen(PULSE_SOURCE_DIR "/../shared/data/telco_churn.csv", "r");
    if (!f)
        f = fopen("../shared/data/telco_churn.csv", "r");
    if (!f)
        return -1;
    static const int numeric[TELCO_COLS] = {0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1};
    char line[4096], dict[TELCO_COLS][8][40];
    int ndict[TELCO_COLS] = {0};
    size_t cap = 8192, n = 0;
    float *x = pulse_xmalloc(cap * TELCO_COLS * sizeof(float)), *y = pulse_xmalloc(cap * sizeof(float));
    if (!fgets(line, sizeof(line), f)) {
        fclose(f);
        free(x);
        free(y);
        return -1;
    }
    while (n < cap && fgets(line, sizeof(line), f)) {
        char *fields[TELCO_COLS + 2], *p = line;
        int nf = 0;
        for (char *c = p;; c++) {
            if (*c == ',' || *c == '\n' || *c == '\r' || *c == 0) {
                int end = *c != ',';
                *c = 0;
                if (nf < TELCO_COLS + 2)
                    fields[nf++] = p;
                p = c + 1;
                if (end)
                    break;
            }
        }
        if (nf != TELCO_COLS + 2)
            continue;
        for (int j = 0; j < TELCO_COLS; j++) {
            const char *v = fields[j + 1];
            float val = NAN;
            if (numeric[j]) {
                char *end;
                double d = strtod(v, &end);
                val = end != v && *v != ' ' ? (float)d : NAN;
            } else {
                int k = 0;
                while (k < ndict[j] && strcmp(dict[j][k], v) != 0)
                    k++;
                if (k == ndict[j] && k < 8)
                    snprintf(dict[j][ndict[j]++], sizeof(dict[j][0]), "%.39s", v);
                val = (float)k;
            }
            x[n * TELCO_COLS + j] = val;
        }
        y[n++] = strcmp(fields[TELCO_COLS + 1], "Yes") == 0 ? 1.0f : 0.0f;
    }
    fclose(f);
    bench_table_t *out[2] = {tr, va};
    for (int s = 0; s < 2; s++) {
        bench_table_t *t = out[s];
        memset(t, 0, sizeof(*t));
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            m += (i % 5 == 0) == (s == 1);
        t->d.n_rows = m;
        t->d.n_cols = TELCO_COLS;
        t->d.x = pulse_xmalloc(m * TELCO_COLS * sizeof(float));
        t->d.y = pulse_xmalloc(m * sizeof(float));
        t->d.categorical = t->cat;
        t->d.n_categories = t->ncat;
        for (int j = 0; j < TELCO_COLS; j++) {
            t->cat[j] = !numeric[j];
            t->ncat[j] = ndict[j];
        }
        size_t r = 0;
        for (size_t i = 0; i < n; i++) {
            if ((i % 5 == 0) != (s == 1))
                continue;
            for (int j = 0; j < TELCO_COLS; j++)
                t->d.x[(size_t)j * m + r] = x[i * TELCO_COLS + j];
            t->d.y[r++] = y[i];
        }
    }
    free(x);
    free(y);
    return 0;
}

static int bench_train_on(FILE *out, const char *what, const bench_table_t *tr, const bench_table_t *va)
{
    for (int threads = 1; threads <= 2; threads++) {
        pulse_gbdt_params_t p;
        pulse_gbdt_params_init(&p);
        p.threads = threads;
        double best = 1e9;
        pulse_gbdt_report_t rep;
        pulse_gbdt_t *m = NULL;
        for (int run = 0; run < 5; run++) {
            char err[256];
            pulse_gbdt_free(m);
            if (pulse_gbdt_train(&tr->d, &va->d, &p, &m, &rep, err, sizeof(err)) != 0) {
                fprintf(out, "gbdt bench: %s\n", err);
                return -1;
            }
            if (rep.train_seconds < best)
                best = rep.train_seconds;
        }
        double *pv = pulse_xmalloc(va->d.n_rows * sizeof(double));
        pulse_gbdt_predict(m, &va->d, pv, 1);
        fprintf(out,
                "train   %s, %zu x %zu, defaults, %d thread%s: %.3f s (best of 5), %d trees built, %d kept, "
                "train log-loss %.4f, valid log-loss %.4f (%zu rows)\n",
                what, tr->d.n_rows, tr->d.n_cols, threads, threads > 1 ? "s" : "", best, rep.trees_built, rep.best_iteration,
                rep.train_loss, bench_logloss(&va->d, pv), va->d.n_rows);
        free(pv);
        pulse_gbdt_free(m);
    }
    return 0;
}

static int bench_train(FILE *out)
{
    bench_table_t all, tr, va;
    int rc = 0;
    if (bench_telco(&tr, &va) == 0) {
        rc = bench_train_on(out, "Telco churn CSV", &tr, &va);
        bench_free(&tr);
        bench_free(&va);
    } else {
        fprintf(out, "train   ../shared/data/telco_churn.csv not found: real-data line skipped\n");
    }
    /* the hard case: every column continuous, so every column gets 255 bins */
    bench_synth(&all, 7043, 1);
    bench_slice(&all, 0, 5634, &tr);
    bench_slice(&all, 5634, 7043, &va);
    if (rc == 0)
        rc = bench_train_on(out, "synthetic, 37 continuous", &tr, &va);
    bench_free(&all);
    bench_free(&tr);
    bench_free(&va);
    return rc;
}

/* Best of 3 runs: rows per wall second and rows per CPU second (per core). */
static void bench_score(const pulse_gbdt_t *m, const pulse_ml_data_t *d, double *o, int threads, double *wall_rate,
                        double *cpu_rate)
{
    double best = 1e9, best_cpu = 1e9;
    for (int run = 0; run < 3; run++) {
        double t0 = pulse_now_s(), c0 = pulse_cpu_s();
        pulse_gbdt_predict_threads(m, d, o, 1, threads);
        double t = pulse_now_s() - t0, c = pulse_cpu_s() - c0;
        if (t < best)
            best = t;
        if (c < best_cpu)
            best_cpu = c;
    }
    *wall_rate = (double)d->n_rows / best;
    *cpu_rate = (double)d->n_rows / best_cpu;
}

static int bench_scoring(FILE *out, size_t rows, int trees, int depth)
{
    bench_table_t tr, va, sc;
    bench_synth(&tr, 20000, 2);
    bench_synth(&va, 5000, 3);
    pulse_gbdt_params_t p;
    pulse_gbdt_params_init(&p);
    p.n_trees = trees;
    p.max_depth = depth;
    p.max_leaves = depth >= 16 ? 65536 : 1 << depth;
    p.early_stopping_rounds = 0;
    p.min_child_weight = 0.1;
    pulse_gbdt_t *m = NULL;
    pulse_gbdt_report_t rep;
    char err[256];
    if (pulse_gbdt_train(&tr.d, &va.d, &p, &m, &rep, err, sizeof(err)) != 0) {
        fprintf(out, "gbdt bench: %s\n", err);
        return -1;
    }
    fprintf(out, "model   %d trees depth %d on %zu x %d: trained in %.3f s, train log-loss %.4f, valid log-loss %.4f\n",
            (int)pulse_gbdt_n_trees(m), depth, tr.d.n_rows, BENCH_COLS, rep.train_seconds, rep.train_loss, rep.best_valid_loss);
    bench_synth(&sc, rows, 4);
    double *o = pulse_xmalloc(rows * sizeof(double));
    double s1, s1c, r1, r1c, r2, r2c, a1, a1c;
    pulse_gbdt_force_scalar(1);
    bench_score(m, &sc.d, o, 1, &s1, &s1c);
    pulse_gbdt_force_scalar(2);
    bench_score(m, &sc.d, o, 1, &a1, &a1c);
    pulse_gbdt_force_scalar(0);
    bench_score(m, &sc.d, o, 1, &r1, &r1c);
    bench_score(m, &sc.d, o, 2, &r2, &r2c);
    size_t nrow = rows < 100000 ? rows : 100000;
    float row[BENCH_COLS];
    double t0 = pulse_cpu_s(), sink = 0;
    for (size_t i = 0; i < nrow; i++) {
        for (size_t j = 0; j < BENCH_COLS; j++)
            row[j] = sc.d.x[j * rows + i];
        sink += pulse_gbdt_predict_row(m, row, 1);
    }
    double rrow = (double)nrow / (pulse_cpu_s() - t0);
    const char *isa =
#if defined(__x86_64__)
        __builtin_cpu_supports("avx512f") ? "AVX-512"
        : __builtin_cpu_supports("avx2")  ? "AVX2"
                                          : "scalar, no AVX2";
#else
        "scalar";
#endif
    fprintf(out, "score   %zu rows x %d columns (binning included), best of 3; wall rows/s and rows per CPU second:\n", rows,
            BENCH_COLS);
    fprintf(out, "        batch (%s), 1 thread:  %8.2f M rows/s wall, %8.2f M rows/s per core\n", isa, r1 / 1e6, r1c / 1e6);
    fprintf(out, "        batch (%s), 2 threads: %8.2f M rows/s wall, %8.2f M rows/s per core\n", isa, r2 / 1e6, r2c / 1e6);
    fprintf(out, "        batch AVX2 only, 1 thread: %8.2f M rows/s wall, %8.2f M rows/s per core\n", a1 / 1e6, a1c / 1e6);
    fprintf(out, "        batch scalar, 1 thread:    %8.2f M rows/s wall, %8.2f M rows/s per core\n", s1 / 1e6, s1c / 1e6);
    fprintf(out, "        predict_row, 1 thread:                              %8.2f M rows/s per core (checksum %.3f)\n",
            rrow / 1e6, sink / (double)nrow);
    free(o);
    pulse_gbdt_free(m);
    bench_free(&tr);
    bench_free(&va);
    bench_free(&sc);
    return 0;
}

int pulse_gbdt_bench(int argc, char **argv, FILE *out)
{
    long rows = 1000000, trees = 200, depth = 4;
    for (int i = 1; i < argc; i++) {
        long *dst = strcmp(argv[i], "--rows") == 0    ? &rows
                    : strcmp(argv[i], "--trees") == 0 ? &trees
                    : strcmp(argv[i], "--depth") == 0 ? &depth
                                                      : NULL;
        char *end;
        if (!dst || i + 1 >= argc) {
            fprintf(stderr, "usage: pulse bench gbdt [--rows N] [--trees 200] [--depth 4]\n");
            return 2;
        }
        *dst = strtol(argv[++i], &end, 10);
        if (*end || *dst < 1) {
            fprintf(stderr, "pulse bench gbdt: %s needs a positive integer\n", argv[i - 1]);
            return 2;
        }
    }
    if (depth > 16 || trees > 100000 || rows > 100000000) {
        fprintf(stderr, "pulse bench gbdt: --depth at most 16, --trees at most 100000, --rows at most 1e8\n");
        return 2;
    }
    if (bench_train(out) != 0 || bench_scoring(out, (size_t)rows, (int)trees, (int)depth) != 0)
        return 1;
    return 0;
}
