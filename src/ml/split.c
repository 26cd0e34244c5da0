/* Stratified splits (see split.h). */
#include "ml/split.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "gen/rng.h"

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

static size_t round_frac(size_t n, double f)
{
    return (size_t)((double)n * f + 0.5);
}

int pulse_ml_split_stratified(const float *y, size_t n, double test_fraction, double valid_fraction, uint64_t seed,
                              pulse_ml_split_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!(test_fraction >= 0 && test_fraction < 1) || !(valid_fraction >= 0 && valid_fraction < 1))
        return pulse_fail(err, errlen, "split fractions must be in [0, 1): test %g, validation %g", test_fraction, valid_fraction);
    if (n > UINT32_MAX)
        return pulse_fail(err, errlen, "too many rows to split (%zu)", n);
    size_t alloc = n ? n : 1;
    size_t *cls[2];
    size_t nc[2] = {0, 0};
    cls[0] = pulse_xmalloc(alloc * sizeof(size_t));
    cls[1] = pulse_xmalloc(alloc * sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
        if (y[i] != 0.0f && y[i] != 1.0f) {
            free(cls[0]);
            free(cls[1]);
            return pulse_fail(err, errlen, "row %zu: label %g is not 0 or 1", i + 1, (double)y[i]);
        }
        int c = y[i] == 1.0f;
        cls[c][nc[c]++] = i;
    }
    out->train = pulse_xmalloc(alloc * sizeof(size_t));
    out->valid = pulse_xmalloc(alloc * sizeof(size_t));
    out->test = pulse_xmalloc(alloc * sizeof(size_t));
    for (int c = 0; c < 2; c++) {
        pulse_rng_t r;
        pulse_rng_seed(&r, seed, 0x5b117, (uint64_t)c);
        size_t *v = cls[c], m = nc[c];
        for (size_t i = m; i > 1; i--) { /* Fisher-Yates */
            size_t k = pulse_rng_below(&r, (uint32_t)i);
            size_t t = v[i - 1];
            v[i - 1] = v[k];
            v[k] = t;
        }
        size_t nt = round_frac(m, test_fraction);
        size_t nv = round_frac(m - nt, valid_fraction);
        memcpy(out->test + out->n_test, v, nt * sizeof(size_t));
        out->n_test += nt;
        memcpy(out->valid + out->n_valid, v + nt, nv * sizeof(size_t));
        out->n_valid += nv;
        memcpy(out->train + out->n_train, v + nt + nv, (m - nt - nv) * sizeof(size_t));
        out->n_train += m - nt - nv;
    }
    qsort(out->train, out->n_train, sizeof(size_t), cmp_size);
    qsort(out->valid, out->n_valid, sizeof(size_t), cmp_size);
    qsort(out->test, out->n_test, sizeof(size_t), cmp_size);
    free(cls[0]);
    free(cls[1]);
    return 0;
}

void pulse_ml_split_free(pulse_ml_split_t *s)
{
    free(s->train);
    free(s->valid);
    free(s->test);
    memset(s, 0, sizeof(*s));
}

void pulse_ml_subset(const pulse_ml_data_t *d, const size_t *rows, size_t n, pulse_ml_data_t *out)
{
    *out = *d;
    out->n_rows = n;
    size_t alloc = n ? n : 1;
    out->x = pulse_xmalloc(alloc * (d->n_cols ? d->n_cols : 1) * sizeof(float));
    for (size_t j = 0; j < d->n_cols; j++) {
        const float *src = d->x + j * d->n_rows;
        float *dst = out->x + j * n;
        for (size_t i = 0; i < n; i++)
            dst[i] = src[rows[i]];
    }
    out->y = NULL;
    out->w = NULL;
    if (d->y != NULL) {
        out->y = pulse_xmalloc(alloc * sizeof(float));
        for (size_t i = 0; i < n; i++)
            out->y[i] = d->y[rows[i]];
    }
    if (d->w != NULL) {
        out->w = pulse_xmalloc(alloc * sizeof(float));
        for (size_t i = 0; i < n; i++)
            out->w[i] = d->w[rows[i]];
    }
}

void pulse_ml_subset_free(pulse_ml_data_t *sub)
{
    free(sub->x);
    free(sub->y);
    free(sub->w);
    sub->x = sub->y = sub->w = NULL;
}
