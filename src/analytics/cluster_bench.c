/* Benchmark of customer clustering (see cluster_bench.h). */
#include "analytics/cluster_bench.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analytics/cluster.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/procstat.h"
#include "gen/rng.h"

#define SEGMENTS 4

/* Medians of the planted segments: champions, loyal middle, new, lapsed. Extra columns (d > 3)
 * get medians from the same idea: tenure, basket, return rate, trend, then neutral noise. */
static const char *const names7[] = {"recency_days", "frequency", "monetary", "tenure_days", "avg_basket", "return_rate", "trend"};
static const double median[SEGMENTS][7] = {
    {6, 24, 2400, 900, 100, 0.05, 1.2},
    {45, 8, 500, 700, 60, 0.10, 1.0},
    {12, 2, 90, 40, 45, 0.08, 1.1},
    {240, 3, 150, 600, 50, 0.20, 0.6},
};
static const double share[SEGMENTS] = {0.15, 0.35, 0.20, 0.30};

static double *generate(size_t n, size_t d, int *truth)
{
    double *x = pulse_xmalloc(n * d * sizeof(double));
    pulse_rng_t r;
    pulse_rng_seed(&r, 2026, 1, 0);
    for (size_t i = 0; i < n; i++) {
        double u = pulse_rng_uniform(&r), acc = 0;
        int q = SEGMENTS - 1;
        for (int s = 0; s < SEGMENTS; s++)
            if (u < (acc += share[s])) {
                q = s;
                break;
            }
        truth[i] = q;
        for (size_t j = 0; j < d; j++) {
            double m = j < 7 ? median[q][j] : 10.0;
            /* normal after log1p, the transform the preparation picks: the planted segments are
             * then exactly the mixture the GMM looks for */
            x[i * d + j] = fmax(0.0, expm1(log1p(m) + 0.35 * pulse_rng_normal(&r))); /* counts, days, money: >= 0 */
        }
    }
    return x;
}

static int run(FILE *out, const double *x, size_t n, size_t d, const char *const *names, const int *truth, pulse_cluster_method_t m,
               int k, int threads, int *labels_out)
{
    pulse_cluster_opts_t o;
    pulse_cluster_opts_init(&o);
    o.method = m;
    o.k = k;
    o.threads = threads;
    pulse_cluster_result_t r;
    char err[256];
    if (pulse_cluster_run(x, n, d, names, &o, &r, err, sizeof(err)) != 0) {
        fprintf(out, "%s: %s\n", pulse_cluster_method_name(m), err);
        return -1;
    }
    fprintf(out,
            "%-6s k=%zu%s threads=%s: %.3f s (preparation %.3f s, clustering %.3f s), %d iterations, inertia %.1f, "
            "silhouette %.3f, ARI vs planted %.3f\n",
            pulse_cluster_method_name(m), r.k, k == 0 ? " (auto)" : "",
            threads == 1   ? "1"
            : threads == 2 ? "2"
                           : "auto",
            r.seconds, r.prep_seconds, r.seconds - r.prep_seconds, r.iterations, r.inertia, r.silhouette,
            pulse_cluster_adjusted_rand(r.labels, truth, n));
    if (labels_out != NULL && threads == 1) { /* the preparation is the same for every run: once */
        fprintf(out, "       features:");
        for (size_t j = 0; j < d; j++)
            fprintf(out, " %s (skew %.2f%s)", r.features[j].name, r.features[j].skewness,
                    r.features[j].ignored ? ", constant, ignored"
                    : r.features[j].log1p ? ", log1p"
                                          : "");
        fprintf(out, "\n");
    }
    if (r.loglik_trace)
        fprintf(out, "       log-likelihood %.1f, BIC %.1f\n", r.loglik, r.bic);
    if (r.n_scores > 0) {
        fprintf(out, "       %s by k:", r.criterion);
        for (int i = 0; i < r.n_scores; i++)
            fprintf(out, " %d:%.4g", r.k_first + i, r.scores[i]);
        fprintf(out, "\n");
    }
    for (size_t q = 0; q < r.k; q++)
        fprintf(out, "       %zu. %-55s %8zu  -> %s\n", q + 1, r.personas[q].label, r.sizes[q], r.personas[q].action);
    if (labels_out)
        memcpy(labels_out, r.labels, n * sizeof(int));
    pulse_cluster_result_free(&r);
    fprintf(out, "       peak RSS so far: %.1f MB\n", pulse_peak_rss_mb());
    return 0;
}

int pulse_cluster_bench(int argc, char **argv, FILE *out)
{
    size_t n = 3500000, d = 3;
    int k = 4;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        long long val = v ? strtoll(v, &end, 10) : 0;
        if (v == NULL || *end != '\0' || val < 1) {
            fprintf(stderr, "pulse bench cluster: %s needs a positive number\n", a);
            return 2;
        }
        if (strcmp(a, "--n") == 0)
            n = (size_t)val;
        else if (strcmp(a, "--d") == 0)
            d = (size_t)val;
        else if (strcmp(a, "--k") == 0 && val <= PULSE_CLUSTER_K_LIMIT)
            k = (int)val;
        else {
            fprintf(stderr, "pulse bench cluster: unknown or out-of-range option %s (--n N, --d D, --k K)\n", a);
            return 2;
        }
        i++;
    }
    const char **names = pulse_xmalloc(d * sizeof(char *));
    char(*extra)[32] = pulse_xmalloc(d * 32);
    for (size_t j = 0; j < d; j++) {
        snprintf(extra[j], 32, "feature_%zu", j + 1);
        names[j] = j < 7 ? names7[j] : extra[j];
    }
    int *truth = pulse_xmalloc(n * sizeof(int)), *a = pulse_xmalloc(n * sizeof(int)), *b = pulse_xmalloc(n * sizeof(int));
    double t0 = pulse_now_s();
    double *x = generate(n, d, truth);
    fprintf(out, "data: %zu customers x %zu features (%.1f MB), %d planted segments, generated in %.2f s\n", n, d,
            (double)(n * d * sizeof(double)) / 1e6, SEGMENTS, pulse_now_s() - t0);
    int rc = 0;
    rc |= run(out, x, n, d, names, truth, PULSE_CLUSTER_KMEANS, k, 1, a);
    rc |= run(out, x, n, d, names, truth, PULSE_CLUSTER_KMEANS, k, 2, b);
    if (rc == 0)
        fprintf(out, "       1 and 2 threads give %s labels\n", memcmp(a, b, n * sizeof(int)) == 0 ? "identical" : "DIFFERENT");
    rc |= run(out, x, n, d, names, truth, PULSE_CLUSTER_KMEANS, 0, 0, NULL);
    rc |= run(out, x, n, d, names, truth, PULSE_CLUSTER_GMM, 0, 0, NULL);
    rc |= run(out, x, n, d, names, truth, PULSE_CLUSTER_WARD, 0, 0, NULL);
    fprintf(out, "peak RSS: %.1f MB\n", pulse_peak_rss_mb());
    free(x);
    free(truth);
    free(a);
    free(b);
    free(names);
    free(extra);
    return rc == 0 ? 0 : 1;
}
