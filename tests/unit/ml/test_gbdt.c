/* Unit tests for src/ml/gbdt.c (included, h2o style, to reach the trees and the objectives):
 * gradients against finite differences, exact trees on hand-made sets, missing and categorical
 * routing, determinism, early stopping, contributions, the byte format and the batch scorer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../../src/ml/gbdt.c"

typedef struct {
    pulse_ml_data_t d;
    unsigned char cat[8];
    int ncat[8];
} table_t;

static void table_init(table_t *t, size_t n, size_t nc)
{
    memset(t, 0, sizeof(*t));
    t->d.n_rows = n;
    t->d.n_cols = nc;
    t->d.x = calloc(n * nc, sizeof(float));
    t->d.y = calloc(n, sizeof(float));
    t->d.categorical = t->cat;
    t->d.n_categories = t->ncat;
}

static void table_free(table_t *t)
{
    free(t->d.x);
    free(t->d.y);
    free(t->d.w);
}

static void small_params(pulse_gbdt_params_t *p, int trees, int depth)
{
    pulse_gbdt_params_init(p);
    p->n_trees = trees;
    p->max_depth = depth;
    p->max_leaves = 1 << depth;
    p->learning_rate = 1.0;
    p->lambda_l2 = 0;
    p->min_child_weight = 0;
    p->row_subsample = 1;
    p->col_subsample = 1;
    p->threads = 1;
}

/* Planted signal: f0 up, f1 down (10% missing), category 3 of f2 up, f3..: noise. */
static void synth(table_t *t, size_t n, size_t nc, uint64_t seed, pulse_gbdt_objective_t obj)
{
    table_init(t, n, nc);
    t->cat[2] = 1;
    t->ncat[2] = 5;
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < nc; j++) {
            float v = (float)rng_double(&s) * 4 - 2;
            if (j == 2)
                v = (float)(rng_next(&s) % 5);
            if (j == 1 && rng_double(&s) < 0.1)
                v = NAN;
            t->d.x[j * n + i] = v;
        }
        double f0 = t->d.x[i], f1 = t->d.x[n + i], c = t->d.x[2 * n + i];
        double z = 1.5 * f0 - (f1 == f1 ? f1 : 1.0) + (c == 3 ? 1.5 : 0);
        if (obj == PULSE_GBDT_LOGLOSS)
            t->d.y[i] = rng_double(&s) < sigmoid(z) ? 1.0f : 0.0f;
        else
            t->d.y[i] = (float)(z + rng_double(&s) - 0.5);
    }
}

static void test_gradients_match_finite_differences(void **state)
{
    const double e = 1e-5;
    for (int o = 0; o < 2; o++) {
        pulse_gbdt_objective_t obj = o ? PULSE_GBDT_SQUARED : PULSE_GBDT_LOGLOSS;
        double ys[] = {0, 1, 0.3};
        for (int yi = 0; yi < (o ? 3 : 2); yi++) {
            for (double f = -4; f <= 4; f += 0.7) {
                double g, h, g1, h1, g2, h2;
                gbdt_grad(obj, ys[yi], f, &g, &h);
                double fd_g = (gbdt_loss(obj, ys[yi], f + e) - gbdt_loss(obj, ys[yi], f - e)) / (2 * e);
                gbdt_grad(obj, ys[yi], f + e, &g1, &h1);
                gbdt_grad(obj, ys[yi], f - e, &g2, &h2);
                double fd_h = (g1 - g2) / (2 * e);
                assert_true(fabs(g - fd_g) < 1e-6);
                assert_true(fabs(h - fd_h) < 1e-6);
            }
        }
    }
}

static void test_separable_one_split(void **state)
{
    table_t t;
    table_init(&t, 10, 1);
    for (int i = 0; i < 10; i++) {
        t.d.x[i] = (float)i;
        t.d.y[i] = i >= 5;
    }
    pulse_gbdt_params_t p;
    small_params(&p, 1, 3);
    pulse_gbdt_t *m = NULL;
    char err[256];
    assert_int_equal(pulse_gbdt_train(&t.d, NULL, &p, &m, NULL, err, sizeof(err)), 0);
    const tree_t *tr = &m->trees[0];
    /* one split, then both sides are pure: no further gain */
    assert_int_equal(tr->n_nodes, 3);
    const node_t *root = &tr->nodes[0];
    assert_int_equal(root->feature, 0);
    assert_true(m->feats[0].bounds[root->bin - 1] == 4.5f);
    assert_true(tr->nodes[root->left].value < 0 && tr->nodes[root->right].value > 0);
    float lo = 4.4f, hi = 4.6f;
    assert_true(pulse_gbdt_predict_row(m, &lo, 1) < 0.5);
    assert_true(pulse_gbdt_predict_row(m, &hi, 1) > 0.5);
    pulse_gbdt_free(m);
    table_free(&t);
}

/* XOR with one cell lighter (a balanced XOR gives the root split no gain at all). */
static void xor_table(table_t *t)
{
    int counts[4] = {10, 10, 10, 6};
    table_init(t, 36, 2);
    size_t i = 0;
    for (int c = 0; c < 4; c++)
        for (int k = 0; k < counts[c]; k++, i++) {
            t->d.x[i] = (float)(c >> 1);
            t->d.x[36 + i] = (float)(c & 1);
            t->d.y[i] = (float)((c >> 1) ^ (c & 1));
        }
}

static int xor_correct(const pulse_gbdt_t *m)
{
    int ok = 0;
    for (int c = 0; c < 4; c++) {
        float row[2] = {(float)(c >> 1), (float)(c & 1)};
        double pr = pulse_gbdt_predict_row(m, row, 1);
        ok += (pr > 0.5) == (((c >> 1) ^ (c & 1)) == 1);
    }
    return ok;
}

static void test_xor_needs_depth_two(void **state)
{
    table_t t;
    xor_table(&t);
    pulse_gbdt_params_t p;
    char err[256];
    pulse_gbdt_t *m = NULL;
    small_params(&p, 1, 2);
    assert_int_equal(pulse_gbdt_train(&t.d, NULL, &p, &m, NULL, err, sizeof(err)), 0);
    assert_int_equal(m->trees[0].n_leaves, 4);
    assert_int_equal(xor_correct(m), 4);
    pulse_gbdt_free(m);
    small_params(&p, 30, 1);
    p.learning_rate = 0.3;
    assert_int_equal(pulse_gbdt_train(&t.d, NULL, &p, &m, NULL, err, sizeof(err)), 0);
    assert_true(xor_correct(m) < 4); /* stumps add up, they cannot express XOR */
    pulse_gbdt_free(m);
    table_free(&t);
}

static void test_missing_direction_learned(void **state)
{
    for (int side = 0; side < 2; side++) {
        /* positives: missing, or far on one side of the negatives (0..9) */
        table_t t;
        table_init(&t, 30, 1);
        for (int i = 0; i < 30; i++) {
            if (i < 10) {
                t.d.x[i] = (float)i;
                t.d.y[i] = 0;
            } else {
                t.d.x[i] = i < 20 ? NAN : side ? 50.0f : -50.0f;
                t.d.y[i] = 1;
            }
        }
        pulse_gbdt_params_t p;
        small_params(&p, 1, 1);
        pulse_gbdt_t *m = NULL;
        char err[256];
        assert_int_equal(pulse_gbdt_train(&t.d, NULL, &p, &m, NULL, err, sizeof(err)), 0);
        assert_int_equal(m->trees[0].n_nodes, 3);
        assert_int_equal(m->trees[0].nodes[0].default_left, side ? 0 : 1);
        float miss = NAN, neg = 3;
        assert_true(pulse_gbdt_predict_row(m, &miss, 1) > 0.5);
        assert_true(pulse_gbdt_predict_row(m, &neg, 1) < 0.5);
        pulse_gbdt_free(m);
        table_free(&t);
    }
}

static void test_categorical_one_hot(void **state)
{
    table_t t;
    table_init(&t, 40, 1);
    t.cat[0] = 1;
    t.ncat[0] = 4;
    for (int i = 0; i < 40; i++) {
        t.d.x[i] = (float)(i % 4);
        t.d.y[i] = i % 4 == 2;
    }
    pulse_gbdt_params_t p;
    small_params(&p, 1, 2);
    pulse_gbdt_t *m = NULL;
    char err[256];
    assert_int_equal(pulse_gbdt_train(&t.d, NULL, &p, &m, NULL, err, sizeof(err)), 0);
    assert_int_equal(m->trees[0].n_nodes, 3);
    assert_int_equal(m->trees[0].nodes[0].bin, 3); /* code 2 is bin 3 */
    for (int c = 0; c < 4; c++) {
        float v = (float)c;
        assert_true((pulse_gbdt_predict_row(m, &v, 1) > 0.5) == (c == 2));
    }
    float unseen = 7, frac = 2.5f, miss = NAN;
    assert_true(pulse_gbdt_predict_row(m, &unseen, 1) < 0.5);
    assert_true(pulse_gbdt_predict_row(m, &frac, 1) < 0.5);
    assert_true(pulse_gbdt_predict_row(m, &miss, 1) < 0.5);
    pulse_gbdt_free(m);
    table_free(&t);
}

static unsigned char *save(const pulse_gbdt_t *m, size_t *len)
{
    unsigned char *b = NULL;
    assert_int_equal(pulse_gbdt_save(m, &b, len), 0);
    return b;
}

static void test_determinism_seed_and_threads(void **state)
{
    table_t t;
    synth(&t, 3000, 8, 7, PULSE_GBDT_LOGLOSS);
    pulse_gbdt_params_t p;
    pulse_gbdt_params_init(&p);
    p.n_trees = 40;
    char err[256];
    unsigned char *b[3];
    size_t len[3];
    for (int k = 0; k < 3; k++) {
        p.threads = k == 1 ? 1 : 2;
        pulse_gbdt_t *m = NULL;
        assert_int_equal(pulse_gbdt_train(&t.d, NULL, &p, &m, NULL, err, sizeof(err)), 0);
        b[k] = save(m, &len[k]);
        pulse_gbdt_free(m);
    }
    assert_int_equal(len[0], len[1]);
    assert_int_equal(len[0], len[2]);
    assert_memory_equal(b[0], b[1], len[0]);
    assert_memory_equal(b[0], b[2], len[0]);
    p.seed = 43;
    pulse_gbdt_t *m = NULL;
    assert_int_equal(pulse_gbdt_train(&t.d, NULL, &p, &m, NULL, err, sizeof(err)), 0);
    size_t l3;
    unsigned char *b3 = save(m, &l3);
    assert_true(l3 != len[0] || memcmp(b3, b[0], l3) != 0);
    free(b3);
    pulse_gbdt_free(m);
    for (int k = 0; k < 3; k++)
        free(b[k]);
    table_free(&t);
}

static void test_early_stopping_keeps_best(void **state)
{
    table_t tr, va;
    synth(&tr, 400, 6, 1, PULSE_GBDT_LOGLOSS);
    synth(&va, 400, 6, 2, PULSE_GBDT_LOGLOSS);
    pulse_gbdt_params_t p;
    pulse_gbdt_params_init(&p);
    p.n_trees = 300;
    p.learning_rate = 0.5; /* overfits fast on 400 rows */
    p.max_depth = 6;
    p.max_leaves = 63;
    p.early_stopping_rounds = 10;
    pulse_gbdt_t *m = NULL;
    pulse_gbdt_report_t rep;
    char err[256];
    assert_int_equal(pulse_gbdt_train(&tr.d, &va.d, &p, &m, &rep, err, sizeof(err)), 0);
    assert_true(rep.trees_built < 300);
    assert_int_equal(rep.trees_built, rep.best_iteration + 10);
    assert_int_equal((int)pulse_gbdt_n_trees(m), rep.best_iteration);
    double *out = malloc(va.d.n_rows * sizeof(double));
    pulse_gbdt_predict(m, &va.d, out, 0);
    assert_true(fabs(mean_loss(PULSE_GBDT_LOGLOSS, &va.d, out) - rep.best_valid_loss) < 1e-12);
    free(out);
    pulse_gbdt_free(m);
    table_free(&tr);
    table_free(&va);
}

static pulse_gbdt_t *train_synth(table_t *t, pulse_gbdt_objective_t obj, int trees, int depth)
{
    synth(t, 2000, 8, 11, obj);
    pulse_gbdt_params_t p;
    pulse_gbdt_params_init(&p);
    p.objective = obj;
    p.n_trees = trees;
    p.max_depth = depth;
    p.max_leaves = depth > 12 ? 4096 : 1 << depth;
    p.min_child_weight = obj == PULSE_GBDT_LOGLOSS ? 0.01 : 1;
    p.max_bins = 32;
    pulse_gbdt_t *m = NULL;
    char err[256];
    assert_int_equal(pulse_gbdt_train(&t->d, NULL, &p, &m, NULL, err, sizeof(err)), 0);
    return m;
}

static void row_of(const pulse_ml_data_t *d, size_t i, float *row)
{
    for (size_t j = 0; j < d->n_cols; j++)
        row[j] = d->x[j * d->n_rows + i];
}

static void test_contributions_sum_to_margin(void **state)
{
    for (int o = 0; o < 2; o++) {
        table_t t;
        pulse_gbdt_t *m = train_synth(&t, o ? PULSE_GBDT_SQUARED : PULSE_GBDT_LOGLOSS, 50, 4);
        double c[9];
        float row[8];
        for (size_t i = 0; i < 200; i++) {
            row_of(&t.d, i, row);
            pulse_gbdt_contributions(m, row, c);
            double s = 0;
            for (int j = 0; j < 9; j++)
                s += c[j];
            assert_true(fabs(s - pulse_gbdt_predict_row(m, row, 0)) < 1e-9);
        }
        /* noise columns earn less importance than the planted ones */
        double gain[8];
        pulse_gbdt_importance(m, gain);
        assert_true(gain[0] > gain[5] && gain[1] > gain[5] && gain[2] > gain[5]);
        pulse_gbdt_free(m);
        table_free(&t);
    }
}

static void test_save_load_round_trip(void **state)
{
    table_t t;
    pulse_gbdt_t *m = train_synth(&t, PULSE_GBDT_LOGLOSS, 30, 4);
    size_t len, len2;
    unsigned char *b = save(m, &len);
    char err[256];
    pulse_gbdt_t *m2 = pulse_gbdt_load(b, len, err, sizeof(err));
    assert_non_null(m2);
    unsigned char *b2 = save(m2, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(b, b2, len);
    double *o1 = malloc(t.d.n_rows * sizeof(double)), *o2 = malloc(t.d.n_rows * sizeof(double));
    pulse_gbdt_predict(m, &t.d, o1, 1);
    pulse_gbdt_predict(m2, &t.d, o2, 1);
    assert_memory_equal(o1, o2, t.d.n_rows * sizeof(double));
    free(o1);
    free(o2);
    free(b);
    free(b2);
    pulse_gbdt_free(m);
    pulse_gbdt_free(m2);
    table_free(&t);
}

static void test_corrupt_bytes_refused(void **state)
{
    table_t t;
    pulse_gbdt_t *m = train_synth(&t, PULSE_GBDT_LOGLOSS, 3, 2);
    size_t len;
    unsigned char *b = save(m, &len);
    char err[256];
    for (size_t n = 0; n < len; n++) {
        err[0] = 0;
        assert_null(pulse_gbdt_load(b, n, err, sizeof(err)));
        assert_true(strlen(err) > 0);
    }
    float row[8];
    row_of(&t.d, 0, row);
    unsigned char flips[] = {0xff, 0x01, 0x80};
    for (size_t i = 0; i < len; i++) {
        for (size_t f = 0; f < sizeof(flips); f++) {
            b[i] ^= flips[f];
            err[0] = 0;
            pulse_gbdt_t *x = pulse_gbdt_load(b, len, err, sizeof(err));
            if (x) {
                /* a flip inside a value can still be a valid model: it must score safely */
                pulse_ml_data_t d = t.d;
                d.n_rows = 1; /* one row: column-major is the row itself */
                d.x = row;
                double one;
                pulse_gbdt_predict(x, &d, &one, 1);
                assert_true(one == pulse_gbdt_predict_row(x, row, 1) || one != one);
                pulse_gbdt_free(x);
            } else {
                assert_true(strlen(err) > 0);
            }
            b[i] ^= flips[f];
        }
    }
    /* named failures */
    unsigned char *c = malloc(len);
    memcpy(c, b, len);
    c[0] = 'X';
    assert_null(pulse_gbdt_load(c, len, err, sizeof(err)));
    assert_non_null(strstr(err, "magic"));
    memcpy(c, b, len);
    c[4] = 9;
    assert_null(pulse_gbdt_load(c, len, err, sizeof(err)));
    assert_non_null(strstr(err, "version"));
    assert_null(pulse_gbdt_load(b, len - 1, err, sizeof(err)));
    free(c);
    free(b);
    pulse_gbdt_free(m);
    table_free(&t);
}

static void check_batch_equals_row(pulse_gbdt_t *m, const table_t *t)
{
    /* rows that are not a multiple of the block, with extra missing and out-of-range values */
    table_t s;
    size_t n = 1000 + 7, nc = t->d.n_cols;
    table_init(&s, n, nc);
    memcpy(s.cat, t->cat, sizeof(s.cat));
    memcpy(s.ncat, t->ncat, sizeof(s.ncat));
    uint64_t r = 99;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < nc; j++) {
            float v = (float)rng_double(&r) * 6 - 3;
            if (j == 2)
                v = (float)(rng_next(&r) % 8) - 1;
            if (rng_double(&r) < 0.1)
                v = NAN;
            s.d.x[j * n + i] = v;
        }
    double *o = malloc(n * sizeof(double)), *o2 = malloc(n * sizeof(double));
    float row[8];
    for (int scalar = 0; scalar < 3; scalar++) {
        pulse_gbdt_force_scalar(scalar);
        for (int prob = 0; prob < 2; prob++) {
            pulse_gbdt_predict(m, &s.d, o, prob);
            pulse_gbdt_predict_threads(m, &s.d, o2, prob, 2);
            assert_memory_equal(o, o2, n * sizeof(double));
            for (size_t i = 0; i < n; i++) {
                row_of(&s.d, i, row);
                double want = pulse_gbdt_predict_row(m, row, prob);
                assert_memory_equal(&o[i], &want, sizeof(double));
            }
        }
    }
    pulse_gbdt_force_scalar(0);
    free(o);
    free(o2);
    table_free(&s);
}

static void test_batch_scorer_equals_predict_row(void **state)
{
    int depths[] = {1, 4, 6, 8, 11};
    for (size_t k = 0; k < sizeof(depths) / sizeof(depths[0]); k++) {
        for (int o = 0; o < 2; o++) {
            table_t t;
            pulse_gbdt_t *m = train_synth(&t, o ? PULSE_GBDT_SQUARED : PULSE_GBDT_LOGLOSS, 20, depths[k]);
            assert_int_equal(m->fast, depths[k] <= 8);
            check_batch_equals_row(m, &t);
            pulse_gbdt_free(m);
            table_free(&t);
        }
    }
}

/* The leaf tables give every row's Saabas pushes (up to rounding), on the AVX-512, AVX2 and
 * scalar paths, for blocks that are not a multiple of the block size; too deep a model has none. */
static void test_paths_equal_contributions(void **state)
{
    int depths[] = {1, 4, 6, 8, 11};
    for (size_t k = 0; k < sizeof(depths) / sizeof(depths[0]); k++) {
        table_t t;
        pulse_gbdt_t *m = train_synth(&t, PULSE_GBDT_LOGLOSS, 30, depths[k]);
        pulse_gbdt_paths_t *p = pulse_gbdt_paths_new(m);
        assert_int_equal(p != NULL, depths[k] <= 8);
        if (p == NULL) {
            pulse_gbdt_free(m);
            table_free(&t);
            continue;
        }
        size_t n = 600, row0 = 37;
        double *got = malloc(n * 9 * sizeof(double)), want[9];
        float row[8];
        for (int scalar = 0; scalar < 3; scalar++) {
            pulse_gbdt_force_scalar(scalar);
            pulse_gbdt_paths_contributions(p, &t.d, row0, n, got);
            for (size_t i = 0; i < n; i++) {
                row_of(&t.d, row0 + i, row);
                pulse_gbdt_contributions(m, row, want);
                for (int j = 0; j < 9; j++)
                    assert_true(fabs(got[i * 9 + j] - want[j]) < 1e-9);
            }
        }
        pulse_gbdt_force_scalar(0);
        free(got);
        pulse_gbdt_paths_free(p);
        pulse_gbdt_free(m);
        table_free(&t);
    }
}

static void test_bad_input_refused(void **state)
{
    table_t t;
    table_init(&t, 4, 1);
    t.d.y[2] = 2;
    pulse_gbdt_params_t p;
    pulse_gbdt_params_init(&p);
    pulse_gbdt_t *m = NULL;
    char err[256];
    assert_int_equal(pulse_gbdt_train(&t.d, NULL, &p, &m, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "row 2"));
    assert_null(m);
    t.d.y[2] = 0;
    p.max_bins = 300;
    assert_int_equal(pulse_gbdt_train(&t.d, NULL, &p, &m, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "max_bins"));
    table_free(&t);
}

static void test_scale_pos_weight_raises_scores(void **state)
{
    table_t t;
    synth(&t, 1000, 4, 5, PULSE_GBDT_LOGLOSS);
    pulse_gbdt_params_t p;
    pulse_gbdt_params_init(&p);
    p.n_trees = 20;
    double mean[2];
    for (int k = 0; k < 2; k++) {
        p.scale_pos_weight = k ? 4 : 1;
        pulse_gbdt_t *m = NULL;
        char err[256];
        assert_int_equal(pulse_gbdt_train(&t.d, NULL, &p, &m, NULL, err, sizeof(err)), 0);
        double *o = malloc(1000 * sizeof(double));
        pulse_gbdt_predict(m, &t.d, o, 1);
        mean[k] = 0;
        for (int i = 0; i < 1000; i++)
            mean[k] += o[i] / 1000;
        free(o);
        pulse_gbdt_free(m);
    }
    assert_true(mean[1] > mean[0] + 0.1);
    table_free(&t);
}

/* Squared error on a hand-made set: the base is the mean, one depth-1 tree at learning rate 1 and
 * lambda 0 puts each side's residual mean on its leaf, so the fit is exact; with lambda the leaf
 * is the residual sum over (count + lambda). */
static void test_squared_error_exact(void **state)
{
    (void)state;
    table_t t;
    table_init(&t, 6, 1);
    const float y[6] = {1, 2, 3, 10, 11, 12};
    for (int i = 0; i < 6; i++) {
        t.d.x[i] = (float)i;
        t.d.y[i] = y[i];
    }
    pulse_gbdt_params_t p;
    small_params(&p, 1, 1);
    p.objective = PULSE_GBDT_SQUARED;
    pulse_gbdt_t *m = NULL;
    char err[256];
    pulse_gbdt_report_t rep;
    assert_int_equal(pulse_gbdt_train(&t.d, NULL, &p, &m, &rep, err, sizeof(err)), 0);
    assert_true(fabs(m->base - 6.5) < 1e-12);
    assert_int_equal(m->trees[0].n_nodes, 3);
    assert_true(m->feats[0].bounds[m->trees[0].nodes[0].bin - 1] == 2.5f);
    float lo = 1, hi = 4;
    assert_true(fabs(pulse_gbdt_predict_row(m, &lo, 0) - 2.0) < 1e-9);
    assert_true(fabs(pulse_gbdt_predict_row(m, &hi, 1) - 11.0) < 1e-9); /* no sigmoid for regression */
    /* mean half squared error: residuals -1, 0, 1 on each side */
    assert_true(fabs(rep.train_loss - 0.5 * 4 / 6) < 1e-12);
    pulse_gbdt_free(m);

    p.lambda_l2 = 3; /* leaves: -13.5 / (3 + 3) and +13.5 / (3 + 3) */
    assert_int_equal(pulse_gbdt_train(&t.d, NULL, &p, &m, NULL, err, sizeof(err)), 0);
    assert_true(fabs(pulse_gbdt_predict_row(m, &lo, 0) - (6.5 - 2.25)) < 1e-9);
    assert_true(fabs(pulse_gbdt_predict_row(m, &hi, 0) - (6.5 + 2.25)) < 1e-9);
    pulse_gbdt_free(m);
    /* a target that is not a number is refused with its row; any real number is a valid target */
    t.d.y[4] = NAN;
    assert_int_equal(pulse_gbdt_train(&t.d, NULL, &p, &m, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "row 4"));
    t.d.y[4] = -7.25f;
    assert_int_equal(pulse_gbdt_train(&t.d, NULL, &p, &m, NULL, err, sizeof(err)), 0);
    pulse_gbdt_free(m);
    table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_match_finite_differences),
        cmocka_unit_test(test_separable_one_split),
        cmocka_unit_test(test_xor_needs_depth_two),
        cmocka_unit_test(test_missing_direction_learned),
        cmocka_unit_test(test_categorical_one_hot),
        cmocka_unit_test(test_determinism_seed_and_threads),
        cmocka_unit_test(test_early_stopping_keeps_best),
        cmocka_unit_test(test_contributions_sum_to_margin),
        cmocka_unit_test(test_save_load_round_trip),
        cmocka_unit_test(test_corrupt_bytes_refused),
        cmocka_unit_test(test_batch_scorer_equals_predict_row),
        cmocka_unit_test(test_paths_equal_contributions),
        cmocka_unit_test(test_bad_input_refused),
        cmocka_unit_test(test_scale_pos_weight_raises_scores),
        cmocka_unit_test(test_squared_error_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
