/* Customer clustering: k-means (k-means++, restarts, Lloyd), a diagonal Gaussian mixture (EM from
 * k-means) and exact Ward hierarchical clustering (nearest-neighbour chain on a sample), over an
 * n x d matrix of customer features (RFM and friends). Skewed non-negative columns are log1p'd and
 * every column standardised first; k is given or chosen (silhouette, or BIC for the mixture).
 * Deterministic for a seed whatever the thread count. Refuses NaN/inf, n < k, d = 0. */
#ifndef PULSE_ANALYTICS_CLUSTER_H
#define PULSE_ANALYTICS_CLUSTER_H

#include <stddef.h>

#define PULSE_CLUSTER_K_LIMIT 64 /* largest k accepted (labels, personas and ARI tables stay small) */

typedef enum { PULSE_CLUSTER_KMEANS, PULSE_CLUSTER_GMM, PULSE_CLUSTER_WARD } pulse_cluster_method_t;

typedef struct pulse_cluster_opts_t {
    pulse_cluster_method_t method;
    int k;            /* 0: choose in [k_min, k_max] (silhouette; lowest BIC for GMM) */
    int k_min, k_max; /* default 2..8 */
    int restarts;     /* k-means++ restarts, best inertia kept (default 4) */
    int max_iter;     /* Lloyd and EM iterations (default 300) */
    int refine_iter;  /* k-means: Lloyd iterations of the refine on all rows after a sample fit
                         (default 2; 0: max_iter). It starts at the sample's converged centres, so
                         further ones move labels of a few hundredths of a percent of the rows;
                         the labels are those of the nearest final centre either way. */
    double tol;       /* k-means: stop when no centre moves more than this, standardised units (1e-4) */
    double gmm_tol;   /* EM: stop when the log-likelihood gains less than this, relative (1e-6) */
    double var_floor; /* EM: smallest variance, standardised units (1e-4) */
    unsigned long long seed;
    size_t fit_sample;        /* restarts and the choice of k run on this many rows; the chosen
                                 model is then refined on all rows (default 100,000; 0: all rows) */
    size_t ward_sample;       /* Ward clusters at most this many rows (default 5,000) */
    size_t silhouette_sample; /* silhouette on at most this many rows (default 2,000) */
    int threads;              /* 0: 2 when n >= 200,000, else 1; at most 8 */
} pulse_cluster_opts_t;

void pulse_cluster_opts_init(pulse_cluster_opts_t *o);

/* How one input column was prepared: z = (t - mean) / sd with t = log1p(x) when log1p is set. */
typedef struct pulse_cluster_feature_t {
    char *name;      /* owned by the result */
    double skewness; /* sample skewness of the raw column */
    int log1p;       /* all values >= 0 and skewness > 1 */
    int ignored;     /* constant column (sd 0): left out of the distances */
    double mean, sd; /* of the (transformed) column */
} pulse_cluster_feature_t;

typedef struct pulse_cluster_persona_t {
    char label[192];  /* "frequent high spenders, recently active" */
    char action[128]; /* "Reward and upsell" */
} pulse_cluster_persona_t;

/* Everything a run produced. Every pointer is owned by the result: pulse_cluster_result_free.
 * Per-cluster arrays have k entries (k*d for matrices, row-major); clusters are numbered by
 * decreasing size. Standardised units are those of the prepared columns (ignored columns 0). */
typedef struct pulse_cluster_result_t {
    pulse_cluster_method_t method;
    size_t n, d, k;
    pulse_cluster_feature_t *features; /* d */
    int *labels;                       /* n, in 0..k-1 */
    size_t *sizes;                     /* k */
    double *centroids_z;               /* k*d: mean of the members, standardised */
    double *centroids;                 /* k*d: the same point in original units (sd, mean, expm1) */
    double *means;                     /* k*d: arithmetic mean of the members' raw values */
    pulse_cluster_persona_t *personas; /* k */
    double inertia;                    /* sum of squared standardised distances to the centroids */
    double silhouette;                 /* mean silhouette on the deterministic sample */
    int iterations;                    /* Lloyd or EM iterations of the final fit (0 for Ward) */
    /* GMM only (NULL / 0 otherwise): component weights, means and variances (standardised), the
     * final log-likelihood (of the standardised data), BIC, and the log-likelihood per iteration. */
    double *weights, *gmm_means, *gmm_vars;
    double loglik, bic;
    double *loglik_trace;
    int loglik_trace_len;
    /* The choice of k: scores[i] is for k = k_first + i ("silhouette": highest wins, "bic":
     * lowest wins); n_scores 0 when k was given. */
    const char *criterion;
    int k_first;
    int n_scores;
    double *scores;
    double seconds;      /* wall time of the run */
    double prep_seconds; /* of which the preparation (checks, transform, standardisation) */
} pulse_cluster_result_t;

/* Clusters x (n rows of d doubles, row-major; not kept). names: d feature names (NULL: feature_1..)
 * used for the report and the personas. On success fills *out (caller frees with
 * pulse_cluster_result_free) and returns 0; on bad input returns -1 with the reason in err and
 * leaves *out empty (safe to free). A non-finite value is reported by row index (0-based) and
 * feature name. */
int pulse_cluster_run(const double *x, size_t n, size_t d, const char *const *names, const pulse_cluster_opts_t *o,
                      pulse_cluster_result_t *out, char *err, size_t errlen);

void pulse_cluster_result_free(pulse_cluster_result_t *r);

/* Adjusted Rand index of two labelings of n items: 1 identical up to renaming, about 0 for chance
 * agreement. Labels are small non-negative integers (the contingency table is max(a)+1 by
 * max(b)+1); NAN when a label is negative; 1 when both labelings are a single cluster. */
double pulse_cluster_adjusted_rand(const int *a, const int *b, size_t n);

const char *pulse_cluster_method_name(pulse_cluster_method_t m);

#endif
