/* Histogram gradient-boosted trees: binning, leaf-wise tree growth on gradient/hessian histograms
 * (two threads split the columns), early stopping, the binned batch scorer (complete depth-padded
 * trees, 32 rows per AVX2 register, AVX-512 binning and leaf sums when the CPU has them, a scalar
 * fallback), Saabas contributions and the validated "PGBT" byte format. */
#include "ml/gbdt.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define GBDT_HAVE_AVX2 1
#else
#define GBDT_HAVE_AVX2 0
#endif

#include "core/buf.h"
#include "core/clock.h"

#define GBDT_MAGIC "PGBT"
#define GBDT_VERSION 1u
#define GBDT_NODE_BYTES 30u
/* The complete-tree scorer keeps node and leaf indices in bytes. */
#define GBDT_FAST_MAX_DEPTH 8
/* Rows binned and scored together: the bins of a block stay in L1 while every tree visits it. */
#define GBDT_BLOCK 256
#define GBDT_MAX_CATEGORIES 255

typedef struct {
    int32_t left, right; /* -1 on leaves; children always have larger indices than their parent */
    uint32_t feature;
    uint8_t bin;          /* numeric: left iff bin <= this; categorical: left iff bin == this (0 = missing) */
    uint8_t default_left; /* numeric: where bin 0 (missing) goes */
    double value;         /* the node's expectation (learning-rate scaled); the output on leaves */
    double gain;
} node_t;

typedef struct {
    node_t *nodes;
    uint32_t n_nodes, n_leaves;
} tree_t;

typedef struct {
    uint8_t categorical;
    uint16_t n;    /* numeric: upper bounds (value bins - 1); categorical: categories k */
    float *bounds; /* numeric: ascending; x <= bounds[t-1] means bin <= t */
} feat_t;

struct pulse_gbdt_t {
    pulse_gbdt_objective_t objective;
    uint32_t n_features;
    double base;
    feat_t *feats;
    tree_t *trees;
    uint32_t n_trees;
    /* Compiled scorer (derived, never serialized): complete trees of depth `depth`, node n has
     * children 2n+1 / 2n+2 and a row goes right iff (uint8)(bin - c_m[n]) > c_thr[n]. */
    int depth, fast;
    uint32_t n_used;
    uint32_t *used; /* model feature of each used slot */
    uint16_t *c_feat;
    /* per used slot: its numeric bounds padded with +inf to a power of two (c_pad_n), for a
     * fixed-step search the compiler turns into conditional moves and AVX2 into gathers */
    float *c_pad;
    uint32_t *c_pad_off, *c_pad_n;
    float *c_top; /* per used slot, 32 pivots: the first five levels of that search (AVX-512) */
    uint8_t *c_m, *c_thr;
    /* AVX2 form of c_m / c_thr: the byte ^ 0x80 repeated 4 times (a broadcast is then a plain
     * load; (b - m) ^ 0x80 == b - (m ^ 0x80), so one subtraction gives the signed compare) */
    uint32_t *c_m4, *c_t4;
    double *c_leaf;
};

static atomic_int force_scalar;

void pulse_gbdt_force_scalar(int on)
{
    atomic_store(&force_scalar, on);
}

void pulse_gbdt_params_init(pulse_gbdt_params_t *p)
{
    memset(p, 0, sizeof(*p));
    p->objective = PULSE_GBDT_LOGLOSS;
    p->n_trees = 500;
    p->max_depth = 4;
    p->max_leaves = 15;
    p->max_bins = 255;
    p->early_stopping_rounds = 30;
    p->threads = 2;
    p->learning_rate = 0.1;
    p->min_child_weight = 1.0;
    p->lambda_l2 = 1.0;
    p->row_subsample = 0.8;
    p->col_subsample = 0.8;
    p->scale_pos_weight = 1.0;
    p->seed = 42;
}

/* ---- objectives ---- */

static double sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

static double softplus(double x)
{
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

/* Loss of one row (unweighted): log-loss or half squared error. */
static double gbdt_loss(pulse_gbdt_objective_t obj, double y, double f)
{
    if (obj == PULSE_GBDT_LOGLOSS)
        return y > 0.5 ? softplus(-f) : softplus(f);
    return 0.5 * (f - y) * (f - y);
}

static void gbdt_grad(pulse_gbdt_objective_t obj, double y, double f, double *g, double *h)
{
    if (obj == PULSE_GBDT_LOGLOSS) {
        double p = sigmoid(f);
        *g = p - y;
        *h = p * (1.0 - p);
        /* A saturated margin would give a zero hessian and an infinite leaf. */
        if (*h < 1e-16)
            *h = 1e-16;
    } else {
        *g = f - y;
        *h = 1.0;
    }
}

/* ---- PRNG: splitmix64, so a seed fixes every draw ---- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_double(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- binning ---- */

static inline uint8_t bin_value(const feat_t *f, float x)
{
    if (f->categorical) {
        if (!(x >= 0.0f) || x >= (float)f->n)
            return 0;
        int c = (int)x;
        return (float)c == x ? (uint8_t)(c + 1) : 0;
    }
    if (x != x)
        return 0;
    /* Branch-free lower bound: the loop count depends on n only, so it predicts perfectly. */
    const float *b = f->bounds, *base = b;
    size_t n = f->n;
    if (n == 0)
        return 1;
    while (n > 1) {
        size_t half = n / 2;
        base += half & -(size_t)(base[half - 1] < x);
        n -= half;
    }
    return (uint8_t)((size_t)(base - b) + (*base < x) + 1);
}

/* Ascending sort of NaN-free floats: radix sort on order-preserving keys (qsort's callback was a
 * tenth of a Telco-sized training run). */
static void sort_floats(float *v, size_t n)
{
    uint32_t *a = pulse_xmalloc((n ? n : 1) * sizeof(uint32_t)), *b = pulse_xmalloc((n ? n : 1) * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        a[i] = u & 0x80000000u ? ~u : u | 0x80000000u;
    }
    for (int shift = 0; shift < 32; shift += 8) {
        size_t cnt[257] = {0};
        for (size_t i = 0; i < n; i++)
            cnt[((a[i] >> shift) & 255) + 1]++;
        for (int k = 0; k < 256; k++)
            cnt[k + 1] += cnt[k];
        for (size_t i = 0; i < n; i++)
            b[cnt[(a[i] >> shift) & 255]++] = a[i];
        uint32_t *tmp = a;
        a = b;
        b = tmp;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t u = a[i] & 0x80000000u ? a[i] & 0x7fffffffu : ~a[i];
        memcpy(&v[i], &u, 4);
    }
    free(a);
    free(b);
}

/* Quantile bounds of one numeric column: distinct values are walked in order and a cut is placed
 * once a bin holds its share of rows, so a heavy value (zero spend) gets a bin of its own. */
static void bin_numeric(const float *col, size_t n, int max_bins, feat_t *f)
{
    float *v = pulse_xmalloc((n ? n : 1) * sizeof(float));
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (col[i] == col[i])
            v[m++] = col[i];
    sort_floats(v, m);
    f->categorical = 0;
    f->n = 0;
    f->bounds = pulse_xmalloc((size_t)max_bins * sizeof(float));
    double per_bin = (double)m / max_bins;
    size_t in_bin = 0;
    for (size_t i = 0; i < m;) {
        size_t j = i;
        while (j < m && v[j] == v[i])
            j++;
        in_bin += j - i;
        if (j < m && (double)in_bin >= per_bin && (size_t)f->n + 1 < (size_t)max_bins) {
            /* Cut halfway to the next value so unseen values in between split evenly. */
            float mid = (float)(((double)v[i] + (double)v[j]) / 2.0);
            if (!(mid >= v[i] && mid < v[j]) || isinf(mid))
                mid = v[i];
            f->bounds[f->n++] = mid;
            in_bin = 0;
        }
        i = j;
    }
    free(v);
}

/* ---- thread pool: spin briefly, then sleep, so per-node dispatch stays cheap ---- */

typedef void (*job_fn)(void *arg, int tid, int nth);

typedef struct {
    int n;
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    atomic_uint gen;
    atomic_int pending;
    int stop;
    job_fn fn;
    void *arg;
} pool_t;

typedef struct {
    pool_t *pool;
    int tid;
} worker_arg_t;

static void *pool_worker(void *a)
{
    worker_arg_t *wa = a;
    pool_t *p = wa->pool;
    int tid = wa->tid;
    free(wa);
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load(&p->gen) == seen && spins < 20000) {
            spins++;
#if GBDT_HAVE_AVX2
            _mm_pause();
#endif
        }
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->gen) == seen && !p->stop)
            pthread_cond_wait(&p->start, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = atomic_load(&p->gen);
        job_fn fn = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->mu);
        fn(arg, tid, p->n);
        pthread_mutex_lock(&p->mu);
        if (atomic_fetch_sub(&p->pending, 1) == 1)
            pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

static void pool_init(pool_t *p, int n)
{
    memset(p, 0, sizeof(*p));
    p->n = n < 1 ? 1 : n;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    if (p->n > 1) {
        p->th = pulse_xmalloc((size_t)(p->n - 1) * sizeof(pthread_t));
        for (int i = 1; i < p->n; i++) {
            worker_arg_t *wa = pulse_xmalloc(sizeof(*wa));
            wa->pool = p;
            wa->tid = i;
            if (pthread_create(&p->th[i - 1], NULL, pool_worker, wa) != 0) {
                /* Fewer threads only costs time: the results do not depend on the count. */
                free(wa);
                p->n = i;
                break;
            }
        }
    }
}

static void pool_run(pool_t *p, job_fn fn, void *arg)
{
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->pending, p->n - 1);
    atomic_fetch_add(&p->gen, 1);
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    int spins = 0;
    while (atomic_load(&p->pending) > 0 && spins < 20000) {
        spins++;
#if GBDT_HAVE_AVX2
        _mm_pause();
#endif
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->pending) > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

static void pool_destroy(pool_t *p)
{
    if (p->n > 1) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_cond_broadcast(&p->start);
        pthread_mutex_unlock(&p->mu);
        for (int i = 1; i < p->n; i++)
            pthread_join(p->th[i - 1], NULL);
    }
    free(p->th);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->start);
    pthread_cond_destroy(&p->done);
}

/* ---- training ---- */

typedef struct {
    double g, h;
} gh_t;

typedef struct {
    double gain;
    int feature; /* -1: no split */
    int bin, default_left;
} split_t;

typedef struct {
    uint32_t begin, end; /* range in rows[] */
    int node, depth;
    gh_t sum;
    gh_t *hist; /* NULL once the leaf can no longer split */
    split_t best;
} leaf_t;

typedef struct {
    const pulse_gbdt_params_t *p;
    size_t n, nf;
    uint8_t *bins; /* column-major: bins[f * n + i] */
    feat_t *feats;
    uint32_t *nbins; /* per feature, bin 0 included */
    size_t *hoff, hsize;
    gh_t *gh;
    uint32_t *rows, *tmp;
    uint32_t *fsel;
    size_t n_fsel;
    pool_t pool;
    gh_t **free_hist;
    size_t n_free;
    /* current histogram job */
    const uint32_t *job_rows;
    size_t job_n;
    gh_t *job_small, *job_large; /* job_large: NULL when only the small one is wanted */
    gh_t job_sum_small, job_sum_large;
    split_t *job_best_small, *job_best_large;
} trainer_t;

static gh_t *hist_get(trainer_t *t)
{
    if (t->n_free)
        return t->free_hist[--t->n_free];
    return pulse_xmalloc(t->hsize * sizeof(gh_t));
}

static void hist_put(trainer_t *t, gh_t *h)
{
    if (h)
        t->free_hist[t->n_free++] = h;
}

static double leaf_score(double g, double h, double lambda)
{
    return g * g / (h + lambda);
}

/* Best split of one feature from its histogram (bins 0..nb-1, bin 0 = missing). */
static void best_split_feature(const trainer_t *t, uint32_t f, const gh_t *H, gh_t S, split_t *best)
{
    const pulse_gbdt_params_t *p = t->p;
    double lambda = p->lambda_l2;
    /* Subtracted histograms leave rounding dust where a side is really empty. */
    double min_h = p->min_child_weight > 1e-12 * S.h ? p->min_child_weight : 1e-12 * S.h;
    if (min_h <= 0)
        min_h = 1e-300;
    double parent = leaf_score(S.g, S.h, lambda);
    uint32_t nb = t->nbins[f];
    best->gain = 0;
    best->feature = -1;
    if (t->feats[f].categorical) {
        for (uint32_t c = 0; c < nb; c++) {
            double gl = H[c].g, hl = H[c].h, gr = S.g - gl, hr = S.h - hl;
            if (hl < min_h || hr < min_h)
                continue;
            double gain = 0.5 * (leaf_score(gl, hl, lambda) + leaf_score(gr, hr, lambda) - parent);
            if (gain > best->gain) {
                best->gain = gain;
                best->feature = (int)f;
                best->bin = (int)c;
                best->default_left = c == 0;
            }
        }
        return;
    }
    gh_t miss = H[0];
    int has_miss = miss.h > 0;
    double GL = 0, HL = 0;
    for (uint32_t b = 1; b + 1 < nb; b++) {
        GL += H[b].g;
        HL += H[b].h;
        if (H[b].h == 0 && H[b].g == 0)
            continue; /* same partition as the previous threshold */
        for (int ml = 0; ml <= has_miss; ml++) {
            double gl = GL + (ml ? miss.g : 0), hl = HL + (ml ? miss.h : 0);
            double gr = S.g - gl, hr = S.h - hl;
            if (hl < min_h || hr < min_h)
                continue;
            double gain = 0.5 * (leaf_score(gl, hl, lambda) + leaf_score(gr, hr, lambda) - parent);
            if (gain > best->gain) {
                best->gain = gain;
                best->feature = (int)f;
                best->bin = (int)b;
                /* Without missing rows here, unseen missing values follow the heavier side. */
                best->default_left = has_miss ? ml : hl >= hr;
            }
        }
    }
}

static void build_hist_feature(const trainer_t *t, uint32_t f, const uint32_t *rows, size_t n, gh_t *H)
{
    const uint8_t *col = t->bins + (size_t)f * t->n;
    const gh_t *gh = t->gh;
    memset(H, 0, t->nbins[f] * sizeof(gh_t));
    for (size_t k = 0; k < n; k++) {
        uint32_t i = rows[k];
        gh_t *c = &H[col[i]];
        c->g += gh[i].g;
        c->h += gh[i].h;
    }
}

/* Builds the small child's histogram from its rows and, when asked, the large child's as
 * parent - small in place; finds the best split of each per feature. Features are dealt out in
 * contiguous chunks, each built by one thread in row order, so the thread count changes nothing. */
static void hist_job(void *arg, int tid, int nth)
{
    trainer_t *t = arg;
    size_t lo = t->n_fsel * (size_t)tid / (size_t)nth, hi = t->n_fsel * (size_t)(tid + 1) / (size_t)nth;
    for (size_t k = lo; k < hi; k++) {
        uint32_t f = t->fsel[k];
        gh_t *Hs = t->job_small + t->hoff[f];
        build_hist_feature(t, f, t->job_rows, t->job_n, Hs);
        if (t->job_best_small)
            best_split_feature(t, f, Hs, t->job_sum_small, &t->job_best_small[k]);
        if (t->job_large) {
            gh_t *Hl = t->job_large + t->hoff[f];
            for (uint32_t b = 0; b < t->nbins[f]; b++) {
                Hl[b].g -= Hs[b].g;
                Hl[b].h -= Hs[b].h;
            }
            if (t->job_best_large)
                best_split_feature(t, f, Hl, t->job_sum_large, &t->job_best_large[k]);
        }
    }
}

static split_t reduce_best(const split_t *per, size_t n)
{
    split_t best = {0, -1, 0, 0};
    for (size_t k = 0; k < n; k++)
        if (per[k].feature >= 0 && per[k].gain > best.gain)
            best = per[k];
    return best;
}

static void run_hist(trainer_t *t, const uint32_t *rows, size_t n, gh_t *small, gh_t S_small, split_t *bs, gh_t *large,
                     gh_t S_large, split_t *bl)
{
    t->job_rows = rows;
    t->job_n = n;
    t->job_small = small;
    t->job_large = large;
    t->job_sum_small = S_small;
    t->job_sum_large = S_large;
    t->job_best_small = bs;
    t->job_best_large = bl;
    /* Waking the other thread costs more than a small node's histogram. */
    if ((n + 64) * t->n_fsel < 16384)
        hist_job(t, 0, 1);
    else
        pool_run(&t->pool, hist_job, t);
}

static inline int goes_left(const node_t *nd, int categorical, uint8_t b)
{
    if (categorical)
        return b == nd->bin;
    if (b == 0)
        return nd->default_left;
    return b <= nd->bin;
}

typedef struct {
    node_t *v;
    size_t n, cap;
} nodes_t;

static int nodes_push(nodes_t *ns, double value)
{
    if (ns->n == ns->cap) {
        ns->cap = ns->cap ? ns->cap * 2 : 32;
        ns->v = pulse_xrealloc(ns->v, ns->cap * sizeof(node_t));
    }
    node_t *nd = &ns->v[ns->n];
    memset(nd, 0, sizeof(*nd));
    nd->left = nd->right = -1;
    nd->value = value;
    return (int)ns->n++;
}

/* Grows one tree leaf-wise (best gain first) over rows[0..n_in) and returns it. */
static tree_t grow_tree(trainer_t *t, size_t n_in, leaf_t *leaves, split_t *bs, split_t *bl)
{
    const pulse_gbdt_params_t *p = t->p;
    double lambda = p->lambda_l2, lr = p->learning_rate;
    int max_leaves = p->max_leaves;
    if (p->max_depth < 30 && (1 << p->max_depth) < max_leaves)
        max_leaves = 1 << p->max_depth;
    nodes_t ns = {0};
    gh_t S = {0, 0};
    for (size_t k = 0; k < n_in; k++) {
        S.g += t->gh[t->rows[k]].g;
        S.h += t->gh[t->rows[k]].h;
    }
    int n_leaves = 1;
    leaves[0] = (leaf_t){0, (uint32_t)n_in, nodes_push(&ns, -S.g / (S.h + lambda) * lr), 0, S, NULL, {0, -1, 0, 0}};
    if (p->max_depth > 0 && n_in >= 2) {
        leaves[0].hist = hist_get(t);
        run_hist(t, t->rows, n_in, leaves[0].hist, S, bs, NULL, S, NULL);
        leaves[0].best = reduce_best(bs, t->n_fsel);
    }
    while (n_leaves < max_leaves) {
        int pick = -1;
        for (int k = 0; k < n_leaves; k++)
            if (leaves[k].best.feature >= 0 && (pick < 0 || leaves[k].best.gain > leaves[pick].best.gain))
                pick = k;
        if (pick < 0)
            break;
        leaf_t *L = &leaves[pick];
        split_t sp = L->best;
        uint32_t f = (uint32_t)sp.feature;
        int cat = t->feats[f].categorical;
        node_t *pn = &ns.v[L->node];
        pn->feature = f;
        pn->bin = (uint8_t)sp.bin;
        pn->default_left = (uint8_t)sp.default_left;
        pn->gain = sp.gain;
        /* Stable partition keeps each child's rows in ascending order (deterministic sums). */
        const uint8_t *col = t->bins + (size_t)f * t->n;
        uint32_t nl = 0, nr = 0;
        gh_t SL = {0, 0}, SR = {0, 0};
        for (uint32_t k = L->begin; k < L->end; k++) {
            uint32_t i = t->rows[k];
            if (goes_left(pn, cat, col[i])) {
                t->rows[L->begin + nl++] = i;
                SL.g += t->gh[i].g;
                SL.h += t->gh[i].h;
            } else {
                t->tmp[nr++] = i;
                SR.g += t->gh[i].g;
                SR.h += t->gh[i].h;
            }
        }
        memcpy(t->rows + L->begin + nl, t->tmp, nr * sizeof(uint32_t));
        int depth = L->depth + 1;
        int ln = nodes_push(&ns, -SL.g / (SL.h + lambda) * lr);
        int rn = nodes_push(&ns, -SR.g / (SR.h + lambda) * lr);
        pn = &ns.v[L->node];
        pn->left = ln;
        pn->right = rn;
        leaf_t left = {L->begin, L->begin + nl, ln, depth, SL, NULL, {0, -1, 0, 0}};
        leaf_t right = {L->begin + nl, L->end, rn, depth, SR, NULL, {0, -1, 0, 0}};
        gh_t *parent_hist = L->hist;
        int can_split = depth < p->max_depth && n_leaves + 1 < max_leaves;
        if (can_split) {
            leaf_t *sm = nl <= nr ? &left : &right, *lg = nl <= nr ? &right : &left;
            sm->hist = hist_get(t);
            lg->hist = parent_hist;
            run_hist(t, t->rows + sm->begin, sm->end - sm->begin, sm->hist, sm->sum, bs, lg->hist, lg->sum, bl);
            sm->best = reduce_best(bs, t->n_fsel);
            lg->best = reduce_best(bl, t->n_fsel);
            if (sm->end - sm->begin < 2)
                sm->best.feature = -1;
            if (lg->end - lg->begin < 2)
                lg->best.feature = -1;
        } else {
            hist_put(t, parent_hist);
        }
        leaves[pick] = left;
        leaves[n_leaves++] = right;
    }
    for (int k = 0; k < n_leaves; k++)
        hist_put(t, leaves[k].hist);
    tree_t tr = {ns.v, (uint32_t)ns.n, (uint32_t)n_leaves};
    return tr;
}

/* Adds tree tr's output to margin[] for the rows of a binned column-major table. */
static void apply_tree(const tree_t *tr, const feat_t *feats, const uint8_t *bins, size_t n, double *margin)
{
    for (size_t i = 0; i < n; i++) {
        const node_t *nd = tr->nodes;
        while (nd->left >= 0) {
            uint8_t b = bins[(size_t)nd->feature * n + i];
            nd = &tr->nodes[goes_left(nd, feats[nd->feature].categorical, b) ? nd->left : nd->right];
        }
        margin[i] += nd->value;
    }
}

static double mean_loss(pulse_gbdt_objective_t obj, const pulse_ml_data_t *d, const double *margin)
{
    double s = 0, sw = 0;
    for (size_t i = 0; i < d->n_rows; i++) {
        double w = d->w ? d->w[i] : 1.0;
        s += w * gbdt_loss(obj, d->y[i], margin[i]);
        sw += w;
    }
    return sw > 0 ? s / sw : 0;
}

static uint8_t *bin_table(const pulse_ml_data_t *d, const feat_t *feats)
{
    uint8_t *bins = pulse_xmalloc(d->n_rows * d->n_cols + 1);
    for (size_t j = 0; j < d->n_cols; j++)
        for (size_t i = 0; i < d->n_rows; i++)
            bins[j * d->n_rows + i] = bin_value(&feats[j], d->x[j * d->n_rows + i]);
    return bins;
}

static int check_data(const pulse_ml_data_t *d, const char *what, pulse_gbdt_objective_t obj, char *err, size_t errlen)
{
    if (!d->x || d->n_rows == 0 || d->n_cols == 0)
        return pulse_fail(err, errlen, "gbdt: %s table is empty", what);
    if (d->n_rows > UINT32_MAX - 1 || d->n_cols > 65535)
        return pulse_fail(err, errlen, "gbdt: %s table is too large (%zu rows, %zu columns)", what, d->n_rows, d->n_cols);
    if (!d->y)
        return pulse_fail(err, errlen, "gbdt: %s table has no label", what);
    for (size_t i = 0; i < d->n_rows; i++) {
        float y = d->y[i];
        if (!isfinite(y))
            return pulse_fail(err, errlen, "gbdt: %s row %zu: label is not a number", what, i);
        if (obj == PULSE_GBDT_LOGLOSS && y != 0.0f && y != 1.0f)
            return pulse_fail(err, errlen, "gbdt: %s row %zu: label %g is not 0 or 1", what, i, (double)y);
        if (d->w && (!isfinite(d->w[i]) || d->w[i] < 0))
            return pulse_fail(err, errlen, "gbdt: %s row %zu: weight %g is negative or not a number", what, i, (double)d->w[i]);
    }
    return 0;
}

static int check_params(const pulse_gbdt_params_t *p, char *err, size_t errlen)
{
    if (p->objective != PULSE_GBDT_LOGLOSS && p->objective != PULSE_GBDT_SQUARED)
        return pulse_fail(err, errlen, "gbdt: unknown objective %d", (int)p->objective);
    if (p->n_trees < 1 || p->n_trees > 1000000)
        return pulse_fail(err, errlen, "gbdt: n_trees %d is not in 1..1000000", p->n_trees);
    if (p->max_depth < 1 || p->max_depth > 16)
        return pulse_fail(err, errlen, "gbdt: max_depth %d is not in 1..16", p->max_depth);
    if (p->max_leaves < 2 || p->max_leaves > 65536)
        return pulse_fail(err, errlen, "gbdt: max_leaves %d is not in 2..65536", p->max_leaves);
    if (p->max_bins < 2 || p->max_bins > 255)
        return pulse_fail(err, errlen, "gbdt: max_bins %d is not in 2..255", p->max_bins);
    if (p->threads < 1 || p->threads > 256)
        return pulse_fail(err, errlen, "gbdt: threads %d is not in 1..256", p->threads);
    if (!(p->learning_rate > 0 && p->learning_rate <= 10))
        return pulse_fail(err, errlen, "gbdt: learning_rate %g is not in (0, 10]", p->learning_rate);
    if (!(p->min_child_weight >= 0 && isfinite(p->min_child_weight)))
        return pulse_fail(err, errlen, "gbdt: min_child_weight %g is negative", p->min_child_weight);
    if (!(p->lambda_l2 >= 0 && isfinite(p->lambda_l2)))
        return pulse_fail(err, errlen, "gbdt: lambda_l2 %g is negative", p->lambda_l2);
    if (!(p->row_subsample > 0 && p->row_subsample <= 1))
        return pulse_fail(err, errlen, "gbdt: row_subsample %g is not in (0, 1]", p->row_subsample);
    if (!(p->col_subsample > 0 && p->col_subsample <= 1))
        return pulse_fail(err, errlen, "gbdt: col_subsample %g is not in (0, 1]", p->col_subsample);
    if (!(p->scale_pos_weight > 0 && isfinite(p->scale_pos_weight)))
        return pulse_fail(err, errlen, "gbdt: scale_pos_weight %g is not positive", p->scale_pos_weight);
    return 0;
}

static void compile_model(pulse_gbdt_t *m);

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int pulse_gbdt_train(const pulse_ml_data_t *train, const pulse_ml_data_t *valid, const pulse_gbdt_params_t *p, pulse_gbdt_t **out,
                     pulse_gbdt_report_t *rep, char *err, size_t errlen)
{
    double t0 = pulse_now_s();
    *out = NULL;
    if (check_params(p, err, errlen) < 0 || check_data(train, "train", p->objective, err, errlen) < 0)
        return -1;
    if (valid) {
        if (check_data(valid, "valid", p->objective, err, errlen) < 0)
            return -1;
        if (valid->n_cols != train->n_cols)
            return pulse_fail(err, errlen, "gbdt: valid has %zu columns, train %zu", valid->n_cols, train->n_cols);
    }
    size_t n = train->n_rows, nf = train->n_cols;
    pulse_gbdt_objective_t obj = p->objective;

    pulse_gbdt_t *m = pulse_xmalloc(sizeof(*m));
    memset(m, 0, sizeof(*m));
    m->objective = obj;
    m->n_features = (uint32_t)nf;
    m->feats = pulse_xmalloc(nf * sizeof(feat_t));
    for (size_t j = 0; j < nf; j++) {
        feat_t *f = &m->feats[j];
        memset(f, 0, sizeof(*f));
        if (train->categorical && train->categorical[j]) {
            int k = train->n_categories ? train->n_categories[j] : 0;
            f->categorical = 1;
            /* Codes past 254 do not fit a byte bin: they are scored as missing. */
            f->n = (uint16_t)(k < 0 ? 0 : k > GBDT_MAX_CATEGORIES - 1 ? GBDT_MAX_CATEGORIES - 1 : k);
        } else {
            bin_numeric(train->x + j * n, n, p->max_bins, f);
        }
    }

    trainer_t t;
    memset(&t, 0, sizeof(t));
    t.p = p;
    t.n = n;
    t.nf = nf;
    t.feats = m->feats;
    t.bins = bin_table(train, m->feats);
    t.nbins = pulse_xmalloc(nf * sizeof(uint32_t));
    t.hoff = pulse_xmalloc(nf * sizeof(size_t));
    for (size_t j = 0; j < nf; j++) {
        t.nbins[j] = m->feats[j].categorical ? m->feats[j].n + 1u : m->feats[j].n + 2u;
        t.hoff[j] = t.hsize;
        t.hsize += t.nbins[j];
    }
    t.gh = pulse_xmalloc(n * sizeof(gh_t));
    t.rows = pulse_xmalloc(n * sizeof(uint32_t));
    t.tmp = pulse_xmalloc(n * sizeof(uint32_t));
    t.fsel = pulse_xmalloc(nf * sizeof(uint32_t));
    int max_leaves = p->max_leaves;
    if (p->max_depth < 30 && (1 << p->max_depth) < max_leaves)
        max_leaves = 1 << p->max_depth;
    t.free_hist = pulse_xmalloc(((size_t)max_leaves + 2) * sizeof(gh_t *));
    leaf_t *leaves = pulse_xmalloc(((size_t)max_leaves + 1) * sizeof(leaf_t));
    split_t *bs = pulse_xmalloc(nf * sizeof(split_t)), *bl = pulse_xmalloc(nf * sizeof(split_t));
    pool_init(&t.pool, p->threads);

    /* Base margin: the weighted label mean (class weight included), as a log-odds for log-loss. */
    double spw = obj == PULSE_GBDT_LOGLOSS ? p->scale_pos_weight : 1.0;
    double *rw = pulse_xmalloc(n * sizeof(double));
    double sy = 0, sw = 0;
    for (size_t i = 0; i < n; i++) {
        rw[i] = (train->w ? train->w[i] : 1.0) * (train->y[i] > 0.5f && obj == PULSE_GBDT_LOGLOSS ? spw : 1.0);
        sy += rw[i] * train->y[i];
        sw += rw[i];
    }
    double mean = sw > 0 ? sy / sw : 0;
    if (obj == PULSE_GBDT_LOGLOSS) {
        double pm = mean < 1e-6 ? 1e-6 : mean > 1 - 1e-6 ? 1 - 1e-6 : mean;
        m->base = log(pm / (1 - pm));
    } else {
        m->base = mean;
    }
    double *margin = pulse_xmalloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++)
        margin[i] = m->base;
    uint8_t *vbins = NULL;
    double *vmargin = NULL;
    if (valid) {
        vbins = bin_table(valid, m->feats);
        vmargin = pulse_xmalloc(valid->n_rows * sizeof(double));
        for (size_t i = 0; i < valid->n_rows; i++)
            vmargin[i] = m->base;
    }
    size_t cap_trees = (size_t)p->n_trees;
    m->trees = pulse_xmalloc(cap_trees * sizeof(tree_t));
    uint64_t rng = p->seed;
    uint32_t *fperm = pulse_xmalloc(nf * sizeof(uint32_t));
    size_t n_col = (size_t)(p->col_subsample * (double)nf + 0.5);
    if (n_col < 1)
        n_col = 1;
    if (n_col > nf)
        n_col = nf;
    double best_loss = INFINITY;
    int best_iter = 0, since_best = 0, built = 0;

    for (int it = 0; it < p->n_trees; it++) {
        for (size_t i = 0; i < n; i++) {
            double g, h;
            gbdt_grad(obj, train->y[i], margin[i], &g, &h);
            t.gh[i].g = g * rw[i];
            t.gh[i].h = h * rw[i];
        }
        size_t n_in = 0;
        if (p->row_subsample < 1) {
            for (size_t i = 0; i < n; i++)
                if (rng_double(&rng) < p->row_subsample)
                    t.rows[n_in++] = (uint32_t)i;
        }
        if (n_in == 0) {
            for (size_t i = 0; i < n; i++)
                t.rows[i] = (uint32_t)i;
            n_in = n;
        }
        for (size_t j = 0; j < nf; j++)
            fperm[j] = (uint32_t)j;
        if (n_col < nf) {
            for (size_t j = 0; j < n_col; j++) {
                size_t k = j + (size_t)(rng_next(&rng) % (uint64_t)(nf - j));
                uint32_t tmp = fperm[j];
                fperm[j] = fperm[k];
                fperm[k] = tmp;
            }
            qsort(fperm, n_col, sizeof(uint32_t), cmp_u32);
        }
        memcpy(t.fsel, fperm, n_col * sizeof(uint32_t));
        t.n_fsel = n_col;

        tree_t tr = grow_tree(&t, n_in, leaves, bs, bl);
        m->trees[m->n_trees++] = tr;
        built++;
        apply_tree(&tr, m->feats, t.bins, n, margin);
        if (valid) {
            apply_tree(&tr, m->feats, vbins, valid->n_rows, vmargin);
            double vl = mean_loss(obj, valid, vmargin);
            if (vl < best_loss) {
                best_loss = vl;
                best_iter = it + 1;
                since_best = 0;
            } else if (p->early_stopping_rounds > 0 && ++since_best >= p->early_stopping_rounds) {
                break;
            }
        }
    }
    if (valid && p->early_stopping_rounds > 0 && best_iter > 0) {
        while (m->n_trees > (uint32_t)best_iter)
            free(m->trees[--m->n_trees].nodes);
    }
    if (rep) {
        rep->trees_built = built;
        rep->best_iteration = (int)m->n_trees;
        rep->best_valid_loss = valid ? best_loss : NAN;
        /* the margins of the kept trees, rebuilt rather than tracked every round */
        for (size_t i = 0; i < n; i++)
            margin[i] = m->base;
        for (uint32_t k = 0; k < m->n_trees; k++)
            apply_tree(&m->trees[k], m->feats, t.bins, n, margin);
        rep->train_loss = mean_loss(obj, train, margin);
    }

    pool_destroy(&t.pool);
    for (size_t k = 0; k < t.n_free; k++)
        free(t.free_hist[k]);
    free(t.free_hist);
    free(leaves);
    free(bs);
    free(bl);
    free(t.bins);
    free(t.nbins);
    free(t.hoff);
    free(t.gh);
    free(t.rows);
    free(t.tmp);
    free(t.fsel);
    free(fperm);
    free(rw);
    free(margin);
    free(vbins);
    free(vmargin);
    if (!(sw > 0)) {
        pulse_gbdt_free(m);
        return pulse_fail(err, errlen, "gbdt: every train row has weight 0");
    }
    compile_model(m);
    *out = m;
    if (rep)
        rep->train_seconds = pulse_now_s() - t0;
    return 0;
}

/* ---- model access ---- */

void pulse_gbdt_free(pulse_gbdt_t *m)
{
    if (!m)
        return;
    for (uint32_t j = 0; j < m->n_features && m->feats; j++)
        free(m->feats[j].bounds);
    free(m->feats);
    for (uint32_t k = 0; k < m->n_trees && m->trees; k++)
        free(m->trees[k].nodes);
    free(m->trees);
    free(m->used);
    free(m->c_feat);
    free(m->c_m);
    free(m->c_thr);
    free(m->c_m4);
    free(m->c_t4);
    free(m->c_leaf);
    free(m->c_pad);
    free(m->c_pad_off);
    free(m->c_pad_n);
    free(m->c_top);
    free(m);
}

size_t pulse_gbdt_n_features(const pulse_gbdt_t *m)
{
    return m->n_features;
}

size_t pulse_gbdt_n_trees(const pulse_gbdt_t *m)
{
    return m->n_trees;
}

pulse_gbdt_objective_t pulse_gbdt_objective(const pulse_gbdt_t *m)
{
    return m->objective;
}

static inline int node_left_raw(const pulse_gbdt_t *m, const node_t *nd, const float *row)
{
    const feat_t *f = &m->feats[nd->feature];
    return goes_left(nd, f->categorical, bin_value(f, row[nd->feature]));
}

double pulse_gbdt_predict_row(const pulse_gbdt_t *m, const float *row, int probability)
{
    double acc = m->base;
    for (uint32_t k = 0; k < m->n_trees; k++) {
        const tree_t *tr = &m->trees[k];
        const node_t *nd = tr->nodes;
        while (nd->left >= 0)
            nd = &tr->nodes[node_left_raw(m, nd, row) ? nd->left : nd->right];
        acc += nd->value;
    }
    return probability && m->objective == PULSE_GBDT_LOGLOSS ? sigmoid(acc) : acc;
}

void pulse_gbdt_contributions(const pulse_gbdt_t *m, const float *row, double *contrib)
{
    memset(contrib, 0, ((size_t)m->n_features + 1) * sizeof(double));
    double bias = m->base;
    for (uint32_t k = 0; k < m->n_trees; k++) {
        const tree_t *tr = &m->trees[k];
        const node_t *nd = tr->nodes;
        bias += nd->value;
        while (nd->left >= 0) {
            const node_t *next = &tr->nodes[node_left_raw(m, nd, row) ? nd->left : nd->right];
            contrib[nd->feature] += next->value - nd->value;
            nd = next;
        }
    }
    contrib[m->n_features] = bias;
}

void pulse_gbdt_importance(const pulse_gbdt_t *m, double *gain)
{
    memset(gain, 0, (size_t)m->n_features * sizeof(double));
    for (uint32_t k = 0; k < m->n_trees; k++)
        for (uint32_t i = 0; i < m->trees[k].n_nodes; i++)
            if (m->trees[k].nodes[i].left >= 0)
                gain[m->trees[k].nodes[i].feature] += m->trees[k].nodes[i].gain;
}

/* ---- compiled batch scorer ---- */

/* Writes the complete-tree slot `pos` (at `level`) from original node `nd`; a leaf above the
 * bottom becomes always-left nodes over copies of its value. remap[u * 256 + t]: the scorer's
 * bin threshold for model bin threshold t of used slot u. */
static void compile_node(pulse_gbdt_t *m, const tree_t *tr, const node_t *nd, const uint32_t *slot_of, const uint8_t *remap,
                         size_t t, uint32_t pos, int level)
{
    uint32_t n_int = (1u << m->depth) - 1;
    uint16_t *cf = m->c_feat + t * n_int;
    uint8_t *cm = m->c_m + t * n_int, *ct = m->c_thr + t * n_int;
    double *cl = m->c_leaf + t * (n_int + 1);
    if (level == m->depth) {
        cl[pos - n_int] = nd ? nd->value : 0;
        return;
    }
    if (!nd || nd->left < 0) {
        cf[pos] = 0;
        cm[pos] = 0;
        ct[pos] = 255; /* nothing is > 255: always left */
        compile_node(m, tr, NULL, slot_of, remap, t, 2 * pos + 1, level + 1);
        compile_node(m, tr, NULL, slot_of, remap, t, 2 * pos + 2, level + 1);
        if (nd) {
            /* every leaf below holds the value (only the leftmost is reached) */
            uint32_t lo = pos, hi = pos;
            for (int l = level; l < m->depth; l++) {
                lo = 2 * lo + 1;
                hi = 2 * hi + 2;
            }
            for (uint32_t q = lo; q <= hi; q++)
                cl[q - n_int] = nd->value;
        }
        return;
    }
    uint32_t u = slot_of[nd->feature];
    cf[pos] = (uint16_t)u;
    uint8_t thr = remap[(size_t)u * 256 + nd->bin];
    if (m->feats[nd->feature].categorical) {
        cm[pos] = nd->bin; /* (b - c) > 0 iff b != c: right */
        ct[pos] = 0;
    } else if (nd->default_left) {
        cm[pos] = 0; /* missing bin 0 <= thr: left */
        ct[pos] = thr;
    } else {
        cm[pos] = 1; /* missing wraps to 255 > thr: right */
        ct[pos] = (uint8_t)(thr - 1);
    }
    compile_node(m, tr, &tr->nodes[nd->left], slot_of, remap, t, 2 * pos + 1, level + 1);
    compile_node(m, tr, &tr->nodes[nd->right], slot_of, remap, t, 2 * pos + 2, level + 1);
}

/* Builds the batch scorer. Numeric columns are re-binned on the thresholds the trees actually
 * use (a 200-tree model touches a fraction of the 255 training bins), so scoring searches fewer
 * bounds; a split "model bin <= t" becomes "scorer bin <= rank of t among the used thresholds". */
static void compile_model(pulse_gbdt_t *m)
{
    int depth = 0;
    uint32_t *slot_of = pulse_xmalloc(((size_t)m->n_features + 1) * sizeof(uint32_t));
    for (uint32_t j = 0; j < m->n_features; j++)
        slot_of[j] = UINT32_MAX;
    m->used = pulse_xmalloc(((size_t)m->n_features + 1) * sizeof(uint32_t));
    m->n_used = 0;
    uint8_t *remap = pulse_xmalloc(((size_t)m->n_features + 1) * 256);
    memset(remap, 0, ((size_t)m->n_features + 1) * 256);
    for (uint32_t k = 0; k < m->n_trees; k++) {
        const tree_t *tr = &m->trees[k];
        int *d = pulse_xmalloc(tr->n_nodes * sizeof(int));
        d[0] = 0;
        for (uint32_t i = 0; i < tr->n_nodes; i++) {
            const node_t *nd = &tr->nodes[i];
            if (d[i] > depth)
                depth = d[i];
            if (nd->left >= 0) {
                d[nd->left] = d[nd->right] = d[i] + 1;
                if (slot_of[nd->feature] == UINT32_MAX) {
                    slot_of[nd->feature] = m->n_used;
                    m->used[m->n_used++] = nd->feature;
                }
                remap[(size_t)slot_of[nd->feature] * 256 + nd->bin] = 1;
            }
        }
        free(d);
    }
    m->depth = depth;
    m->fast = depth <= GBDT_FAST_MAX_DEPTH;
    m->c_pad_off = pulse_xmalloc(((size_t)m->n_used + 1) * sizeof(uint32_t));
    m->c_pad_n = pulse_xmalloc(((size_t)m->n_used + 1) * sizeof(uint32_t));
    size_t total = 0;
    uint32_t *n_thr = pulse_xmalloc(((size_t)m->n_used + 1) * sizeof(uint32_t));
    for (uint32_t u = 0; u < m->n_used; u++) {
        const feat_t *f = &m->feats[m->used[u]];
        uint8_t *rm = remap + (size_t)u * 256;
        uint32_t K = 0;
        if (!f->categorical)
            for (uint32_t t = 1; t < 256; t++)
                if (rm[t])
                    rm[t] = (uint8_t)++K;
        n_thr[u] = K;
        uint32_t P = 1;
        while (P < K)
            P *= 2;
        m->c_pad_off[u] = (uint32_t)total;
        m->c_pad_n[u] = P;
        total += P;
    }
    m->c_pad = pulse_xmalloc((total + 1) * sizeof(float));
    for (uint32_t u = 0; u < m->n_used; u++) {
        const feat_t *f = &m->feats[m->used[u]];
        float *pad = m->c_pad + m->c_pad_off[u];
        for (uint32_t k = 0; k < m->c_pad_n[u]; k++)
            pad[k] = INFINITY;
        if (!f->categorical)
            for (uint32_t t = 1; t < 256; t++)
                if (remap[(size_t)u * 256 + t])
                    pad[remap[(size_t)u * 256 + t] - 1] = f->bounds[t - 1];
    }
    if (m->fast) {
        size_t n_int = ((size_t)1 << depth) - 1;
        size_t nt = m->n_trees ? m->n_trees : 1;
        m->c_feat = pulse_xmalloc(nt * (n_int + 1) * sizeof(uint16_t));
        m->c_m = pulse_xmalloc(nt * (n_int + 1));
        m->c_thr = pulse_xmalloc(nt * (n_int + 1));
        m->c_leaf = pulse_xmalloc(nt * (n_int + 1) * sizeof(double));
        for (uint32_t k = 0; k < m->n_trees; k++)
            compile_node(m, &m->trees[k], m->trees[k].nodes, slot_of, remap, k, 0, 0);
        m->c_m4 = pulse_xmalloc(nt * (n_int + 1) * sizeof(uint32_t));
        m->c_t4 = pulse_xmalloc(nt * (n_int + 1) * sizeof(uint32_t));
        for (size_t i = 0; i < (size_t)m->n_trees * n_int; i++) {
            m->c_m4[i] = (uint32_t)(m->c_m[i] ^ 0x80) * 0x01010101u;
            m->c_t4[i] = (uint32_t)(m->c_thr[i] ^ 0x80) * 0x01010101u;
        }
    }
    m->c_top = pulse_xmalloc(((size_t)m->n_used + 1) * 32 * sizeof(float));
    for (uint32_t u = 0; u < m->n_used; u++) {
        uint32_t P = m->c_pad_n[u], Pe = P < 32 ? 32 : P;
        const float *pad = m->c_pad + m->c_pad_off[u];
        for (uint32_t k = 0; k < 32; k++) {
            uint32_t i = (k + 1) * (Pe / 32) - 1;
            m->c_top[(size_t)u * 32 + k] = i < P ? pad[i] : INFINITY;
        }
    }
    free(n_thr);
    free(remap);
    free(slot_of);
}

/* bin_value for a numeric x over padded bounds: count of bounds < x, plus 1; 0 for NaN. */
static inline uint8_t bin_padded(const float *pad, uint32_t P, float x)
{
    uint32_t pos = 0;
    for (uint32_t step = P >> 1; step > 0; step >>= 1)
        pos += step & -(uint32_t)(pad[pos + step - 1] < x);
    pos += pad[pos] < x;
    return x == x ? (uint8_t)(pos + 1) : 0;
}

#if GBDT_HAVE_AVX2
/* 32 numeric values at a time: the same fixed-step search, 8 lanes per gather. */
__attribute__((target("avx2"))) static size_t bin_numeric_avx2(const float *pad, uint32_t P, const float *x, size_t nr, uint8_t *o)
{
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7), one = _mm256_set1_epi32(1);
    size_t r = 0;
    for (; r + 32 <= nr; r += 32) {
        /* four independent searches in flight: one alone waits on each gather's latency */
        __m256 xv[4];
        __m256i pos[4], v[4];
        for (int q = 0; q < 4; q++) {
            xv[q] = _mm256_loadu_ps(x + r + 8 * q);
            pos[q] = _mm256_setzero_si256();
        }
        for (uint32_t step = P >> 1; step > 0; step >>= 1) {
            __m256i st1 = _mm256_set1_epi32((int)step - 1), st = _mm256_set1_epi32((int)step);
            for (int q = 0; q < 4; q++) {
                __m256 b = _mm256_i32gather_ps(pad, _mm256_add_epi32(pos[q], st1), 4);
                __m256i lt = _mm256_castps_si256(_mm256_cmp_ps(b, xv[q], _CMP_LT_OQ));
                pos[q] = _mm256_add_epi32(pos[q], _mm256_and_si256(lt, st));
            }
        }
        for (int q = 0; q < 4; q++) {
            __m256 b = _mm256_i32gather_ps(pad, pos[q], 4);
            __m256i p = _mm256_sub_epi32(pos[q], _mm256_castps_si256(_mm256_cmp_ps(b, xv[q], _CMP_LT_OQ)));
            __m256i notnan = _mm256_castps_si256(_mm256_cmp_ps(xv[q], xv[q], _CMP_EQ_OQ));
            v[q] = _mm256_and_si256(_mm256_add_epi32(p, one), notnan);
        }
        __m256i p16a = _mm256_packus_epi32(v[0], v[1]), p16b = _mm256_packus_epi32(v[2], v[3]);
        __m256i p8 = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(p16a, p16b), perm);
        _mm256_storeu_si256((__m256i *)(o + r), p8);
    }
    return r;
}

/* 64 values at a time: the search's first five levels read 32 pivots held in two registers
 * (a permute each, no memory), the rest gathers; 2-3 gathers a value instead of 7-8. */
__attribute__((target("avx512f"))) static size_t bin_numeric_avx512(const float *pad, uint32_t P, const float *top, const float *x,
                                                                    size_t nr, uint8_t *o)
{
    uint32_t Pe = P < 32 ? 32 : P, sh = 0;
    while ((32u << sh) < Pe)
        sh++;
    const __m512 tlo = _mm512_loadu_ps(top), thi = _mm512_loadu_ps(top + 16);
    const __m512i one = _mm512_set1_epi32(1);
    size_t r = 0;
    for (; r + 64 <= nr; r += 64) {
        __m512 xv[4];
        __m512i pos[4];
        for (int q = 0; q < 4; q++) {
            xv[q] = _mm512_loadu_ps(x + r + 16 * q);
            pos[q] = _mm512_setzero_si512();
        }
        for (uint32_t step = Pe >> 1; step >= (1u << sh); step >>= 1) {
            __m512i st = _mm512_set1_epi32((int)step);
            for (int q = 0; q < 4; q++) {
                __m512i ti = _mm512_sub_epi32(_mm512_srli_epi32(_mm512_add_epi32(pos[q], st), sh), one);
                __mmask16 lt = _mm512_cmp_ps_mask(_mm512_permutex2var_ps(tlo, ti, thi), xv[q], _CMP_LT_OQ);
                pos[q] = _mm512_mask_add_epi32(pos[q], lt, pos[q], st);
            }
        }
        for (uint32_t step = (1u << sh) >> 1; step > 0; step >>= 1) {
            __m512i st = _mm512_set1_epi32((int)step), st1 = _mm512_set1_epi32((int)step - 1);
            for (int q = 0; q < 4; q++) {
                __m512 b = _mm512_i32gather_ps(_mm512_add_epi32(pos[q], st1), pad, 4);
                pos[q] = _mm512_mask_add_epi32(pos[q], _mm512_cmp_ps_mask(b, xv[q], _CMP_LT_OQ), pos[q], st);
            }
        }
        for (int q = 0; q < 4; q++) {
            __m512 b = sh == 0 ? _mm512_permutex2var_ps(tlo, pos[q], thi) : _mm512_i32gather_ps(pos[q], pad, 4);
            __m512i p = _mm512_mask_add_epi32(pos[q], _mm512_cmp_ps_mask(b, xv[q], _CMP_LT_OQ), pos[q], one);
            __m512i bin = _mm512_maskz_add_epi32(_mm512_cmp_ps_mask(xv[q], xv[q], _CMP_EQ_OQ), p, one);
            _mm_storeu_si128((__m128i *)(o + r + 16 * q), _mm512_cvtepi32_epi8(bin));
        }
    }
    return r;
}
#endif

/* bins[u * GBDT_BLOCK + r] for the used features of rows row0..row0+nr. */
static void bin_block(const pulse_gbdt_t *m, const pulse_ml_data_t *d, size_t row0, size_t nr, uint8_t *bins, int avx2, int avx512)
{
    for (uint32_t u = 0; u < m->n_used; u++) {
        const feat_t *f = &m->feats[m->used[u]];
        const float *x = d->x + (size_t)m->used[u] * d->n_rows + row0;
        uint8_t *o = bins + (size_t)u * GBDT_BLOCK;
        size_t r = 0;
        if (f->categorical) {
            for (; r < nr; r++)
                o[r] = bin_value(f, x[r]);
        } else {
            const float *pad = m->c_pad + m->c_pad_off[u];
            uint32_t P = m->c_pad_n[u];
#if GBDT_HAVE_AVX2
            if (avx512)
                r = bin_numeric_avx512(pad, P, m->c_top + (size_t)u * 32, x, nr, o);
            else if (avx2)
                r = bin_numeric_avx2(pad, P, x, nr, o);
#endif
            for (; r < nr; r++)
                o[r] = bin_padded(pad, P, x[r]);
        }
        memset(o + nr, 0, GBDT_BLOCK - nr);
    }
}

static void score_block_scalar(const pulse_gbdt_t *m, const uint8_t *bins, size_t nr, double *acc)
{
    uint32_t n_int = (1u << m->depth) - 1;
    int depth = m->depth;
    for (uint32_t t = 0; t < m->n_trees; t++) {
        const uint16_t *cf = m->c_feat + (size_t)t * n_int;
        const uint8_t *cm = m->c_m + (size_t)t * n_int, *ct = m->c_thr + (size_t)t * n_int;
        const double *cl = m->c_leaf + (size_t)t * (n_int + 1);
        for (size_t r = 0; r < nr; r++) {
            uint32_t idx = 0;
            for (int l = 0; l < depth; l++) {
                uint8_t b = bins[(size_t)cf[idx] * GBDT_BLOCK + r];
                idx = 2 * idx + 1 + ((uint8_t)(b - cm[idx]) > ct[idx]);
            }
            acc[r] += cl[idx - n_int];
        }
    }
}

#if GBDT_HAVE_AVX2
#define GBDT_TREE_CHUNK 4
/* GCC needs telling to unroll the node loops (then the node outcomes live in registers); clang
 * unrolls them by itself and warns about the pragma when a depth's loop is too long. */
#if defined(__clang__)
#define GBDT_UNROLL(n)
#else
#define GBDT_PRAGMA(x) _Pragma(#x)
#define GBDT_UNROLL(n) GBDT_PRAGMA(GCC unroll n)
#endif
/* 32 rows per register. Every node of the tree is tested for all 32 rows (a byte subtract and a
 * signed compare: no gathers, no branches); level l's outcome per row is then picked out of the
 * level's node outcomes by a mux tree of blends driven by the path bits so far, and the path bits
 * are the leaf index. Leaf values are added in tree order per row, four trees per pass over acc,
 * so the sum is bit-identical to pulse_gbdt_predict_row. */
/* Leaf indices of one tree for `groups` groups of 32 rows; depth is a constant at each call so
 * the node outcomes stay in registers. */
__attribute__((target("avx2"), always_inline)) static inline void tree_leaves_avx2(const uint8_t *bins, size_t groups,
                                                                                   const uint16_t *cf, const uint32_t *cm,
                                                                                   const uint32_t *ct, uint8_t *li, const int depth)
{
    const uint32_t n_int = (1u << depth) - 1;
    __m256i c[(1 << GBDT_FAST_MAX_DEPTH)], bit[GBDT_FAST_MAX_DEPTH + 1];
    for (size_t g = 0; g < groups; g++) {
        const uint8_t *bg = bins + g * 32;
        GBDT_UNROLL(256)
        for (uint32_t nd = 0; nd < n_int; nd++) {
            __m256i b = _mm256_loadu_si256((const __m256i *)(bg + (size_t)cf[nd] * GBDT_BLOCK));
            __m256i x = _mm256_sub_epi8(b, _mm256_set1_epi32((int)cm[nd]));
            c[nd] = _mm256_cmpgt_epi8(x, _mm256_set1_epi32((int)ct[nd]));
        }
        __m256i idx = _mm256_setzero_si256();
        GBDT_UNROLL(8)
        for (int l = 0; l < depth; l++) {
            uint32_t first = (1u << l) - 1, cnt = 1u << l;
            __m256i *v = &c[first];
            /* halve the candidates with the deepest path bit first */
            GBDT_UNROLL(8)
            for (int k = l - 1; k >= 0; k--) {
                cnt /= 2;
                GBDT_UNROLL(128)
                for (uint32_t j = 0; j < cnt; j++)
                    v[j] = _mm256_blendv_epi8(v[2 * j], v[2 * j + 1], bit[k]);
            }
            bit[l] = v[0];
            idx = _mm256_or_si256(idx, _mm256_and_si256(bit[l], _mm256_set1_epi8((char)(1 << (depth - 1 - l)))));
        }
        _mm256_store_si256((__m256i *)(li + g * 32), idx);
    }
}

/* 32 rows per register. Every node of the tree is tested for all 32 rows (a byte subtract and a
 * signed compare: no gathers, no branches); level l's outcome per row is then picked out of the
 * level's node outcomes by a mux tree of blends driven by the path bits so far, and the path bits
 * are the leaf index. Leaf values are added in tree order per row, four trees per pass over acc,
 * so the sum is bit-identical to pulse_gbdt_predict_row. */
/* acc[r] += the 4 trees' leaves, 8 rows per instruction: a depth <= 4 tree's 16 leaf values sit
 * in two registers and one two-table permute looks 8 rows up (the scalar loop was 40% of the tree
 * time). Added tree after tree, so each row's sum keeps the order of pulse_gbdt_predict_row. acc
 * and li hold whole groups of 8 past nr. */
__attribute__((target("avx512f"))) static void add_leaves_avx512(const double *cl, size_t ls,
                                                                 uint8_t li[GBDT_TREE_CHUNK][GBDT_BLOCK], size_t nr, double *acc)
{
    __m512d lo[GBDT_TREE_CHUNK], hi[GBDT_TREE_CHUNK];
    __mmask8 mlo = (__mmask8)(ls >= 8 ? 0xff : (1u << ls) - 1), mhi = (__mmask8)(ls > 8 ? (1u << (ls - 8)) - 1 : 0);
    for (int tt = 0; tt < GBDT_TREE_CHUNK; tt++) {
        lo[tt] = _mm512_maskz_loadu_pd(mlo, cl + tt * ls);
        hi[tt] = _mm512_maskz_loadu_pd(mhi, cl + tt * ls + 8);
    }
    for (size_t r = 0; r < nr; r += 8) {
        __m512d a = _mm512_loadu_pd(acc + r);
        for (int tt = 0; tt < GBDT_TREE_CHUNK; tt++) {
            __m512i idx = _mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i *)(li[tt] + r)));
            a = _mm512_add_pd(a, _mm512_permutex2var_pd(lo[tt], idx, hi[tt]));
        }
        _mm512_storeu_pd(acc + r, a);
    }
}

__attribute__((target("avx2"))) static void score_block_avx2(const pulse_gbdt_t *m, const uint8_t *bins, size_t nr, double *acc,
                                                             int avx512)
{
    uint32_t n_int = (1u << m->depth) - 1;
    size_t groups = (nr + 31) / 32;
    uint8_t li[GBDT_TREE_CHUNK][GBDT_BLOCK] __attribute__((aligned(32)));
    for (uint32_t t0 = 0; t0 < m->n_trees; t0 += GBDT_TREE_CHUNK) {
        uint32_t nt = m->n_trees - t0 < GBDT_TREE_CHUNK ? m->n_trees - t0 : GBDT_TREE_CHUNK;
        for (uint32_t tt = 0; tt < nt; tt++) {
            size_t t = t0 + tt;
            const uint16_t *cf = m->c_feat + t * n_int;
            const uint32_t *cm = m->c_m4 + t * n_int, *ct = m->c_t4 + t * n_int;
            switch (m->depth) {
            case 0:
                memset(li[tt], 0, GBDT_BLOCK);
                break;
#define GBDT_DEPTH_CASE(D)                                                                                                         \
    case D:                                                                                                                        \
        tree_leaves_avx2(bins, groups, cf, cm, ct, li[tt], D);                                                                     \
        break;
                GBDT_DEPTH_CASE(1)
                GBDT_DEPTH_CASE(2)
                GBDT_DEPTH_CASE(3)
                GBDT_DEPTH_CASE(4)
                GBDT_DEPTH_CASE(5)
                GBDT_DEPTH_CASE(6)
                GBDT_DEPTH_CASE(7)
                GBDT_DEPTH_CASE(8)
#undef GBDT_DEPTH_CASE
            }
        }
        const double *cl = m->c_leaf + (size_t)t0 * (n_int + 1);
        size_t ls = n_int + 1;
        if (avx512 && nt == GBDT_TREE_CHUNK && ls <= 16) {
            add_leaves_avx512(cl, ls, li, nr, acc);
        } else if (nt == GBDT_TREE_CHUNK) {
            for (size_t r = 0; r < nr; r++) {
                double a = acc[r];
                a += cl[li[0][r]];
                a += cl[ls + li[1][r]];
                a += cl[2 * ls + li[2][r]];
                a += cl[3 * ls + li[3][r]];
                acc[r] = a;
            }
        } else {
            for (uint32_t tt = 0; tt < nt; tt++)
                for (size_t r = 0; r < nr; r++)
                    acc[r] += cl[tt * ls + li[tt][r]];
        }
    }
}
#endif

typedef struct {
    const pulse_gbdt_t *m;
    const pulse_ml_data_t *d;
    double *out;
    int probability;
    size_t lo, hi;
} score_job_t;

static void score_range(const score_job_t *j)
{
    const pulse_gbdt_t *m = j->m;
    int logistic = j->probability && m->objective == PULSE_GBDT_LOGLOSS;
    if (!m->fast) {
        float *row = pulse_xmalloc((size_t)m->n_features * sizeof(float));
        for (size_t i = j->lo; i < j->hi; i++) {
            for (uint32_t c = 0; c < m->n_features; c++)
                row[c] = j->d->x[(size_t)c * j->d->n_rows + i];
            j->out[i] = pulse_gbdt_predict_row(m, row, j->probability);
        }
        free(row);
        return;
    }
    int avx2 = 0;
#if GBDT_HAVE_AVX2
    int force = atomic_load(&force_scalar);
    avx2 = force != 1 && __builtin_cpu_supports("avx2");
    int avx512 = force == 0 && avx2 && __builtin_cpu_supports("avx512f");
#endif
    uint8_t *bins = pulse_xmalloc(((size_t)m->n_used + 1) * GBDT_BLOCK);
    double acc[GBDT_BLOCK];
    for (size_t row0 = j->lo; row0 < j->hi; row0 += GBDT_BLOCK) {
        size_t nr = j->hi - row0 < GBDT_BLOCK ? j->hi - row0 : GBDT_BLOCK;
        bin_block(m, j->d, row0, nr, bins, avx2, avx512);
        for (size_t r = 0; r < GBDT_BLOCK; r++)
            acc[r] = m->base;
#if GBDT_HAVE_AVX2
        if (avx2)
            score_block_avx2(m, bins, nr, acc, avx512);
        else
#endif
            score_block_scalar(m, bins, nr, acc);
        for (size_t r = 0; r < nr; r++)
            j->out[row0 + r] = logistic ? sigmoid(acc[r]) : acc[r];
    }
    (void)avx2;
    free(bins);
}

static void *score_thread(void *a)
{
    score_range(a);
    return NULL;
}

void pulse_gbdt_predict_threads(const pulse_gbdt_t *m, const pulse_ml_data_t *d, double *out, int probability, int threads)
{
    size_t n = d->n_rows;
    if (threads < 1)
        threads = 1;
    if ((size_t)threads > n / GBDT_BLOCK + 1)
        threads = (int)(n / GBDT_BLOCK + 1);
    score_job_t *jobs = pulse_xmalloc((size_t)threads * sizeof(score_job_t));
    pthread_t *th = pulse_xmalloc((size_t)threads * sizeof(pthread_t));
    int *started = pulse_xmalloc((size_t)threads * sizeof(int));
    for (int k = 0; k < threads; k++) {
        /* block-aligned ranges: a thread's blocks are the ones the single-threaded pass makes */
        size_t nb = (n + GBDT_BLOCK - 1) / GBDT_BLOCK;
        size_t lo = nb * (size_t)k / (size_t)threads * GBDT_BLOCK, hi = nb * (size_t)(k + 1) / (size_t)threads * GBDT_BLOCK;
        jobs[k] = (score_job_t){m, d, out, probability, lo < n ? lo : n, hi < n ? hi : n};
        started[k] = k > 0 && pthread_create(&th[k], NULL, score_thread, &jobs[k]) == 0;
    }
    score_range(&jobs[0]);
    for (int k = 1; k < threads; k++) {
        if (started[k])
            pthread_join(th[k], NULL);
        else
            score_range(&jobs[k]);
    }
    free(jobs);
    free(th);
    free(started);
}

void pulse_gbdt_predict(const pulse_gbdt_t *m, const pulse_ml_data_t *d, double *out, int probability)
{
    pulse_gbdt_predict_threads(m, d, out, probability, 1);
}

/* ---- per-feature pushes for many rows ---- */

struct pulse_gbdt_paths_t {
    const pulse_gbdt_t *m;
    size_t n_leaves;
    size_t stride; /* n_used rounded up to 8: a leaf's pushes are whole AVX-512 (or AVX2) vectors */
    double *push;  /* [tree][leaf][stride]: the pushes along the compiled tree's path to the leaf */
    double bias;   /* base plus every tree's root value */
};

#define PATHS_MAX_BYTES ((size_t)256 << 20)

/* The pushes down the complete-tree slot pos (at level) of original node nd into every leaf below
 * it; acc holds the pushes so far by used slot. Mirrors compile_node: below a leaf every slot
 * routes left and nothing more is pushed. */
static void fill_paths(const pulse_gbdt_paths_t *p, const tree_t *tr, const node_t *nd, const uint32_t *slot_of, double *acc,
                       double *leaves, uint32_t pos, int level)
{
    const pulse_gbdt_t *m = p->m;
    uint32_t n_int = (1u << m->depth) - 1;
    if (level == m->depth) {
        memcpy(leaves + (size_t)(pos - n_int) * p->stride, acc, p->stride * sizeof(double));
        return;
    }
    if (!nd || nd->left < 0) {
        fill_paths(p, tr, NULL, slot_of, acc, leaves, 2 * pos + 1, level + 1);
        fill_paths(p, tr, NULL, slot_of, acc, leaves, 2 * pos + 2, level + 1);
        return;
    }
    uint32_t u = slot_of[nd->feature];
    double before = acc[u];
    const node_t *l = &tr->nodes[nd->left], *r = &tr->nodes[nd->right];
    acc[u] = before + (l->value - nd->value);
    fill_paths(p, tr, l, slot_of, acc, leaves, 2 * pos + 1, level + 1);
    acc[u] = before + (r->value - nd->value);
    fill_paths(p, tr, r, slot_of, acc, leaves, 2 * pos + 2, level + 1);
    acc[u] = before;
}

pulse_gbdt_paths_t *pulse_gbdt_paths_new(const pulse_gbdt_t *m)
{
    size_t n_leaves = (size_t)1 << m->depth, stride = ((size_t)m->n_used + 7) / 8 * 8;
    size_t per_tree = n_leaves * (stride ? stride : 8) * sizeof(double);
    if (!m->fast || m->n_trees == 0 || per_tree > PATHS_MAX_BYTES / m->n_trees)
        return NULL;
    pulse_gbdt_paths_t *p = pulse_xmalloc(sizeof(*p));
    p->m = m;
    p->n_leaves = n_leaves;
    p->stride = stride;
    p->push = pulse_xmalloc(per_tree * m->n_trees);
    p->bias = m->base;
    uint32_t *slot_of = pulse_xmalloc(((size_t)m->n_features + 1) * sizeof(uint32_t));
    for (uint32_t u = 0; u < m->n_used; u++)
        slot_of[m->used[u]] = u;
    double *acc = pulse_xmalloc((stride + 1) * sizeof(double));
    for (uint32_t k = 0; k < m->n_trees; k++) {
        for (size_t u = 0; u < stride; u++)
            acc[u] = 0;
        p->bias += m->trees[k].nodes[0].value;
        fill_paths(p, &m->trees[k], m->trees[k].nodes, slot_of, acc, p->push + (size_t)k * n_leaves * stride, 0, 0);
    }
    free(acc);
    free(slot_of);
    return p;
}

void pulse_gbdt_paths_free(pulse_gbdt_paths_t *p)
{
    if (p == NULL)
        return;
    free(p->push);
    free(p);
}

/* li[r]: the leaf (0..2^depth) tree t sends row r of the binned block to. */
static void block_leaves_scalar(const pulse_gbdt_t *m, const uint8_t *bins, size_t nr, uint32_t t, uint8_t *li)
{
    uint32_t n_int = (1u << m->depth) - 1;
    const uint16_t *cf = m->c_feat + (size_t)t * n_int;
    const uint8_t *cm = m->c_m + (size_t)t * n_int, *ct = m->c_thr + (size_t)t * n_int;
    for (size_t r = 0; r < nr; r++) {
        uint32_t idx = 0;
        for (int l = 0; l < m->depth; l++) {
            uint8_t b = bins[(size_t)cf[idx] * GBDT_BLOCK + r];
            idx = 2 * idx + 1 + ((uint8_t)(b - cm[idx]) > ct[idx]);
        }
        li[r] = (uint8_t)(idx - n_int);
    }
}

#if GBDT_HAVE_AVX2
__attribute__((target("avx2"))) static void block_leaves_avx2(const pulse_gbdt_t *m, const uint8_t *bins, size_t nr, uint32_t t,
                                                              uint8_t *li)
{
    uint32_t n_int = (1u << m->depth) - 1;
    size_t groups = (nr + 31) / 32;
    const uint16_t *cf = m->c_feat + (size_t)t * n_int;
    const uint32_t *cm = m->c_m4 + (size_t)t * n_int, *ct = m->c_t4 + (size_t)t * n_int;
    switch (m->depth) {
#define GBDT_LEAVES_CASE(D)                                                                                                        \
    case D:                                                                                                                        \
        tree_leaves_avx2(bins, groups, cf, cm, ct, li, D);                                                                         \
        break;
        GBDT_LEAVES_CASE(1)
        GBDT_LEAVES_CASE(2)
        GBDT_LEAVES_CASE(3)
        GBDT_LEAVES_CASE(4)
        GBDT_LEAVES_CASE(5)
        GBDT_LEAVES_CASE(6)
        GBDT_LEAVES_CASE(7)
        GBDT_LEAVES_CASE(8)
#undef GBDT_LEAVES_CASE
    default:
        memset(li, 0, GBDT_BLOCK);
    }
}
#endif

/* Trees whose leaves are added per row in one go: the row's sums stay in registers across them,
 * and their tables (8 KB each at depth 6 and 16 features) stay in the cache. */
#define PATHS_CHUNK 16

/* acc[r * stride ..] += the pushes of leaf li[tt][r] of trees t0..t0+nt, tree after tree, for nr
 * rows: whole vectors of 8 doubles. */
static void add_paths_scalar(const pulse_gbdt_paths_t *p, uint32_t t0, uint32_t nt, uint8_t li[][GBDT_BLOCK], size_t nr,
                             double *acc)
{
    size_t stride = p->stride, tsz = p->n_leaves * stride;
    const double *base = p->push + (size_t)t0 * tsz;
    for (size_t r = 0; r < nr; r++) {
        double *a = acc + r * stride;
        for (uint32_t tt = 0; tt < nt; tt++) {
            const double *v = base + tt * tsz + (size_t)li[tt][r] * stride;
            for (size_t u = 0; u < stride; u++)
                a[u] += v[u];
        }
    }
}

#if GBDT_HAVE_AVX2
__attribute__((target("avx2"))) static void add_paths_avx2(const pulse_gbdt_paths_t *p, uint32_t t0, uint32_t nt,
                                                           uint8_t li[][GBDT_BLOCK], size_t nr, double *acc)
{
    size_t stride = p->stride, tsz = p->n_leaves * stride;
    const double *base = p->push + (size_t)t0 * tsz;
    for (size_t r = 0; r < nr; r++) {
        double *a = acc + r * stride;
        for (size_t u = 0; u < stride; u += 4) {
            __m256d sum = _mm256_loadu_pd(a + u);
            for (uint32_t tt = 0; tt < nt; tt++)
                sum = _mm256_add_pd(sum, _mm256_loadu_pd(base + tt * tsz + (size_t)li[tt][r] * stride + u));
            _mm256_storeu_pd(a + u, sum);
        }
    }
}

__attribute__((target("avx512f"))) static void add_paths_avx512(const pulse_gbdt_paths_t *p, uint32_t t0, uint32_t nt,
                                                                uint8_t li[][GBDT_BLOCK], size_t nr, double *acc)
{
    size_t stride = p->stride, tsz = p->n_leaves * stride;
    const double *base = p->push + (size_t)t0 * tsz;
    for (size_t r = 0; r < nr; r++) {
        double *a = acc + r * stride;
        for (size_t u = 0; u < stride; u += 8) {
            __m512d sum = _mm512_loadu_pd(a + u);
            for (uint32_t tt = 0; tt < nt; tt++)
                sum = _mm512_add_pd(sum, _mm512_loadu_pd(base + tt * tsz + (size_t)li[tt][r] * stride + u));
            _mm512_storeu_pd(a + u, sum);
        }
    }
}
#endif

/* One block of at most GBDT_BLOCK rows: acc[r * stride + u] summed over the trees, in tree order
 * (so every path gives the same sums), PATHS_CHUNK trees at a time. */
static void paths_block(const pulse_gbdt_paths_t *p, const uint8_t *bins, size_t nr, double *acc, int avx2, int avx512)
{
    const pulse_gbdt_t *m = p->m;
    uint8_t li[PATHS_CHUNK][GBDT_BLOCK] __attribute__((aligned(32)));
    memset(acc, 0, nr * p->stride * sizeof(double));
    for (uint32_t t0 = 0; t0 < m->n_trees; t0 += PATHS_CHUNK) {
        uint32_t nt = m->n_trees - t0 < PATHS_CHUNK ? m->n_trees - t0 : PATHS_CHUNK;
#if GBDT_HAVE_AVX2
        if (avx2) {
            for (uint32_t tt = 0; tt < nt; tt++)
                block_leaves_avx2(m, bins, nr, t0 + tt, li[tt]);
            if (avx512)
                add_paths_avx512(p, t0, nt, li, nr, acc);
            else
                add_paths_avx2(p, t0, nt, li, nr, acc);
            continue;
        }
#endif
        for (uint32_t tt = 0; tt < nt; tt++)
            block_leaves_scalar(m, bins, nr, t0 + tt, li[tt]);
        add_paths_scalar(p, t0, nt, li, nr, acc);
    }
    (void)avx2, (void)avx512;
}

void pulse_gbdt_paths_contributions(const pulse_gbdt_paths_t *p, const pulse_ml_data_t *d, size_t row0, size_t nr, double *contrib)
{
    const pulse_gbdt_t *m = p->m;
    size_t nf = m->n_features, nu = m->n_used, stride = p->stride;
    int avx2 = 0, avx512 = 0;
#if GBDT_HAVE_AVX2
    int force = atomic_load(&force_scalar);
    avx2 = force != 1 && __builtin_cpu_supports("avx2");
    avx512 = force == 0 && avx2 && __builtin_cpu_supports("avx512f");
#endif
    uint8_t *bins = pulse_xmalloc((nu + 1) * GBDT_BLOCK);
    double *acc = pulse_xmalloc((stride + 1) * GBDT_BLOCK * sizeof(double));
    for (size_t b0 = 0; b0 < nr; b0 += GBDT_BLOCK) {
        size_t nb = nr - b0 < GBDT_BLOCK ? nr - b0 : GBDT_BLOCK;
        bin_block(m, d, row0 + b0, nb, bins, avx2, avx512);
        paths_block(p, bins, nb, acc, avx2, avx512);
        for (size_t r = 0; r < nb; r++) {
            double *out = contrib + (b0 + r) * (nf + 1);
            memset(out, 0, nf * sizeof(double));
            for (size_t u = 0; u < nu; u++)
                out[m->used[u]] = acc[r * stride + u];
            out[nf] = p->bias;
        }
    }
    free(acc);
    free(bins);
}

/* ---- serialization ---- */

static void put_u8(pulse_buf_t *b, uint8_t v)
{
    pulse_buf_append(b, &v, 1);
}

static void put_u16(pulse_buf_t *b, uint16_t v)
{
    unsigned char c[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    pulse_buf_append(b, c, 2);
}

static void put_u32(pulse_buf_t *b, uint32_t v)
{
    unsigned char c[4];
    for (int i = 0; i < 4; i++)
        c[i] = (unsigned char)(v >> (8 * i));
    pulse_buf_append(b, c, 4);
}

static void put_u64(pulse_buf_t *b, uint64_t v)
{
    unsigned char c[8];
    for (int i = 0; i < 8; i++)
        c[i] = (unsigned char)(v >> (8 * i));
    pulse_buf_append(b, c, 8);
}

static void put_f32(pulse_buf_t *b, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32(b, v);
}

static void put_f64(pulse_buf_t *b, double f)
{
    uint64_t v;
    memcpy(&v, &f, 8);
    put_u64(b, v);
}

int pulse_gbdt_save(const pulse_gbdt_t *m, unsigned char **bytes, size_t *len)
{
    pulse_buf_t b = PULSE_BUF_INIT;
    pulse_buf_append(&b, GBDT_MAGIC, 4);
    put_u32(&b, GBDT_VERSION);
    put_u32(&b, (uint32_t)m->objective);
    put_u32(&b, m->n_features);
    put_u32(&b, m->n_trees);
    put_f64(&b, m->base);
    for (uint32_t j = 0; j < m->n_features; j++) {
        const feat_t *f = &m->feats[j];
        put_u8(&b, f->categorical);
        put_u16(&b, f->n);
        if (!f->categorical)
            for (uint16_t k = 0; k < f->n; k++)
                put_f32(&b, f->bounds[k]);
    }
    for (uint32_t k = 0; k < m->n_trees; k++) {
        const tree_t *tr = &m->trees[k];
        put_u32(&b, tr->n_nodes);
        put_u32(&b, tr->n_leaves);
        for (uint32_t i = 0; i < tr->n_nodes; i++) {
            const node_t *nd = &tr->nodes[i];
            put_u32(&b, (uint32_t)nd->left);
            put_u32(&b, (uint32_t)nd->right);
            put_u32(&b, nd->feature);
            put_u8(&b, nd->bin);
            put_u8(&b, nd->default_left);
            put_f64(&b, nd->value);
            put_f64(&b, nd->gain);
        }
    }
    *bytes = (unsigned char *)b.data;
    *len = b.len;
    return 0;
}

typedef struct {
    const unsigned char *p;
    size_t len, pos;
} reader_t;

static int rd(reader_t *r, void *out, size_t n)
{
    if (r->len - r->pos < n)
        return -1;
    memcpy(out, r->p + r->pos, n);
    r->pos += n;
    return 0;
}

static int rd_u8(reader_t *r, uint8_t *v)
{
    return rd(r, v, 1);
}

static int rd_u16(reader_t *r, uint16_t *v)
{
    unsigned char c[2];
    if (rd(r, c, 2) < 0)
        return -1;
    *v = (uint16_t)(c[0] | c[1] << 8);
    return 0;
}

static int rd_u32(reader_t *r, uint32_t *v)
{
    unsigned char c[4];
    if (rd(r, c, 4) < 0)
        return -1;
    *v = (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 | (uint32_t)c[3] << 24;
    return 0;
}

static int rd_f32(reader_t *r, float *f)
{
    uint32_t v;
    if (rd_u32(r, &v) < 0)
        return -1;
    memcpy(f, &v, 4);
    return 0;
}

static int rd_f64(reader_t *r, double *f)
{
    unsigned char c[8];
    if (rd(r, c, 8) < 0)
        return -1;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | c[i];
    memcpy(f, &v, 8);
    return 0;
}

#define LOAD_FAIL(...)                                                                                                             \
    do {                                                                                                                           \
        pulse_fail(err, errlen, __VA_ARGS__);                                                                                      \
        goto fail;                                                                                                                 \
    } while (0)

pulse_gbdt_t *pulse_gbdt_load(const unsigned char *bytes, size_t len, char *err, size_t errlen)
{
    reader_t r = {bytes, len, 0};
    pulse_gbdt_t *m = pulse_xmalloc(sizeof(*m));
    memset(m, 0, sizeof(*m));
    uint32_t *parents = NULL;
    unsigned char magic[4];
    uint32_t version, objective, n_features, n_trees;
    if (!bytes || rd(&r, magic, 4) < 0 || memcmp(magic, GBDT_MAGIC, 4) != 0)
        LOAD_FAIL("gbdt model: not a PGBT model (bad magic)");
    if (rd_u32(&r, &version) < 0)
        LOAD_FAIL("gbdt model: truncated header");
    if (version != GBDT_VERSION)
        LOAD_FAIL("gbdt model: format version %u, this build reads %u", version, GBDT_VERSION);
    if (rd_u32(&r, &objective) < 0 || rd_u32(&r, &n_features) < 0 || rd_u32(&r, &n_trees) < 0 || rd_f64(&r, &m->base) < 0)
        LOAD_FAIL("gbdt model: truncated header");
    if (objective != PULSE_GBDT_LOGLOSS && objective != PULSE_GBDT_SQUARED)
        LOAD_FAIL("gbdt model: unknown objective %u", objective);
    m->objective = (pulse_gbdt_objective_t)objective;
    if (!isfinite(m->base))
        LOAD_FAIL("gbdt model: base score is not finite");
    /* Counts are checked against the bytes left before anything is allocated for them. */
    if (n_features == 0 || n_features > 65535 || n_features > (len - r.pos) / 3)
        LOAD_FAIL("gbdt model: feature count %u does not fit the %zu bytes", n_features, len);
    m->feats = pulse_xmalloc((size_t)n_features * sizeof(feat_t));
    memset(m->feats, 0, (size_t)n_features * sizeof(feat_t));
    m->n_features = n_features;
    for (uint32_t j = 0; j < n_features; j++) {
        feat_t *f = &m->feats[j];
        if (rd_u8(&r, &f->categorical) < 0 || rd_u16(&r, &f->n) < 0)
            LOAD_FAIL("gbdt model: truncated at feature %u", j);
        if (f->categorical > 1)
            LOAD_FAIL("gbdt model: feature %u: kind %u is neither numeric nor categorical", j, f->categorical);
        if (f->categorical) {
            if (f->n > GBDT_MAX_CATEGORIES - 1)
                LOAD_FAIL("gbdt model: feature %u: %u categories (at most %d)", j, f->n, GBDT_MAX_CATEGORIES - 1);
            continue;
        }
        if (f->n > 254)
            LOAD_FAIL("gbdt model: feature %u: %u bin bounds (at most 254)", j, f->n);
        if ((size_t)f->n * 4 > len - r.pos)
            LOAD_FAIL("gbdt model: truncated in the bounds of feature %u", j);
        f->bounds = pulse_xmalloc(((size_t)f->n + 1) * sizeof(float));
        for (uint16_t k = 0; k < f->n; k++) {
            rd_f32(&r, &f->bounds[k]);
            if (!isfinite(f->bounds[k]))
                LOAD_FAIL("gbdt model: feature %u: bin bound %u is not finite", j, k);
            if (k > 0 && !(f->bounds[k] > f->bounds[k - 1]))
                LOAD_FAIL("gbdt model: feature %u: bin bounds are not increasing at %u", j, k);
        }
    }
    if (n_trees > (len - r.pos) / (8 + GBDT_NODE_BYTES))
        LOAD_FAIL("gbdt model: tree count %u does not fit the %zu bytes", n_trees, len);
    m->trees = pulse_xmalloc(((size_t)n_trees + 1) * sizeof(tree_t));
    memset(m->trees, 0, ((size_t)n_trees + 1) * sizeof(tree_t));
    for (uint32_t k = 0; k < n_trees; k++) {
        tree_t *tr = &m->trees[k];
        m->n_trees = k + 1;
        uint32_t n_nodes, n_leaves;
        if (rd_u32(&r, &n_nodes) < 0 || rd_u32(&r, &n_leaves) < 0)
            LOAD_FAIL("gbdt model: truncated at tree %u", k);
        if (n_nodes == 0 || n_nodes > (len - r.pos) / GBDT_NODE_BYTES)
            LOAD_FAIL("gbdt model: tree %u: node count %u does not fit the bytes left", k, n_nodes);
        if (n_nodes % 2 == 0 || n_leaves != n_nodes / 2 + 1)
            LOAD_FAIL("gbdt model: tree %u: %u leaves for %u nodes (a binary tree has %u)", k, n_leaves, n_nodes, n_nodes / 2 + 1);
        tr->nodes = pulse_xmalloc((size_t)n_nodes * sizeof(node_t));
        tr->n_nodes = n_nodes;
        tr->n_leaves = n_leaves;
        free(parents);
        parents = pulse_xmalloc((size_t)n_nodes * sizeof(uint32_t));
        memset(parents, 0, (size_t)n_nodes * sizeof(uint32_t));
        uint32_t leaves_seen = 0;
        for (uint32_t i = 0; i < n_nodes; i++) {
            node_t *nd = &tr->nodes[i];
            uint32_t left, right;
            rd_u32(&r, &left);
            rd_u32(&r, &right);
            rd_u32(&r, &nd->feature);
            rd_u8(&r, &nd->bin);
            rd_u8(&r, &nd->default_left);
            rd_f64(&r, &nd->value);
            rd_f64(&r, &nd->gain);
            nd->left = (int32_t)left;
            nd->right = (int32_t)right;
            if (!isfinite(nd->value) || !isfinite(nd->gain))
                LOAD_FAIL("gbdt model: tree %u node %u: value or gain is not finite", k, i);
            if (left == UINT32_MAX && right == UINT32_MAX) {
                leaves_seen++;
                continue;
            }
            /* Children after their parent, each claimed once: no cycles, no sharing. */
            if (left <= i || right <= i || left >= n_nodes || right >= n_nodes || left == right)
                LOAD_FAIL("gbdt model: tree %u node %u: child index out of range or not after its parent", k, i);
            if (parents[left]++ || parents[right]++)
                LOAD_FAIL("gbdt model: tree %u node %u: a child has two parents", k, i);
            if (nd->feature >= n_features)
                LOAD_FAIL("gbdt model: tree %u node %u: feature %u out of range (%u features)", k, i, nd->feature, n_features);
            if (nd->default_left > 1)
                LOAD_FAIL("gbdt model: tree %u node %u: bad missing direction %u", k, i, nd->default_left);
            const feat_t *f = &m->feats[nd->feature];
            if (f->categorical ? nd->bin > f->n : nd->bin < 1 || nd->bin > f->n)
                LOAD_FAIL("gbdt model: tree %u node %u: threshold bin %u out of range for feature %u", k, i, nd->bin, nd->feature);
        }
        if (leaves_seen != n_leaves)
            LOAD_FAIL("gbdt model: tree %u: %u leaves found, %u declared", k, leaves_seen, n_leaves);
        for (uint32_t i = 1; i < n_nodes; i++)
            if (parents[i] != 1)
                LOAD_FAIL("gbdt model: tree %u: node %u is not reachable from the root", k, i);
    }
    if (r.pos != len)
        LOAD_FAIL("gbdt model: %zu trailing bytes", len - r.pos);
    free(parents);
    compile_model(m);
    return m;
fail:
    free(parents);
    pulse_gbdt_free(m);
    return NULL;
}
