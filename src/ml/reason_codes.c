/* Reasons as data (see reason_codes.h). */
#include "ml/reason_codes.h"

#include "ml/bytes.h"
#include "ml/reason_text.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CODES_VERSION 1

static void put_u16(pulse_buf_t *b, size_t v)
{
    pulse_ml_put_u8(b, (uint8_t)(v & 0xff));
    pulse_ml_put_u8(b, (uint8_t)(v >> 8));
}

static void put_f32(pulse_buf_t *b, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    pulse_ml_put_u32(b, u);
}

static int get_u16(pulse_ml_reader_t *r, size_t *v)
{
    uint8_t lo, hi;
    if (pulse_ml_get_u8(r, &lo) != 0 || pulse_ml_get_u8(r, &hi) != 0)
        return -1;
    *v = (size_t)lo | (size_t)hi << 8;
    return 0;
}

static int get_f32(pulse_ml_reader_t *r, float *v)
{
    uint32_t u;
    if (pulse_ml_get_u32(r, &u) != 0)
        return -1;
    memcpy(v, &u, 4);
    return 0;
}

/* Feature indexes are stored in 16 bits: a reason or context past them is left out rather than
 * stored as another feature's (models may have up to 100,000 features). */
#define MAX_CODED_FEATURE 0xffffu

void pulse_ml_reason_codes_pack(pulse_buf_t *b, const pulse_ml_model_t *m, const float *row, const pulse_ml_push_t *rk, size_t nr)
{
    pulse_ml_push_t kept[PULSE_ML_REASONS_PER_SIDE * 2];
    size_t nk = 0;
    for (size_t k = 0; k < nr && nk < PULSE_ML_REASONS_PER_SIDE * 2; k++)
        if (rk[k].j <= MAX_CODED_FEATURE)
            kept[nk++] = rk[k];
    size_t ctx[PULSE_ML_REASONS_PER_SIDE * 2 * PULSE_ML_REASON_CONTEXT_MAX], nc = 0;
    for (size_t k = 0; k < nk; k++) {
        size_t want[PULSE_ML_REASON_CONTEXT_MAX];
        size_t nw = pulse_ml_reason_context(m, kept[k].j, want);
        for (size_t w = 0; w < nw; w++) {
            size_t seen = 0;
            while (seen < nc && ctx[seen] != want[w])
                seen++;
            if (seen == nc && want[w] <= MAX_CODED_FEATURE)
                ctx[nc++] = want[w];
        }
    }
    pulse_ml_put_u8(b, CODES_VERSION);
    pulse_ml_put_u8(b, (uint8_t)nk);
    pulse_ml_put_u8(b, (uint8_t)nc);
    for (size_t k = 0; k < nk; k++) {
        put_u16(b, kept[k].j);
        put_f32(b, row[kept[k].j]);
        pulse_ml_put_f64(b, kept[k].v);
    }
    for (size_t k = 0; k < nc; k++) {
        put_u16(b, ctx[k]);
        put_f32(b, row[ctx[k]]);
    }
}

/* The feature's name as a marketer reads it: the stored features lose their "analytics." prefix. */
static const char *plain_name(const char *name)
{
    return strncmp(name, "analytics.", 10) == 0 ? name + 10 : name;
}

void pulse_ml_reason_json(pulse_buf_t *b, const pulse_ml_model_t *m, const float *row, size_t j, double effect)
{
    const pulse_ml_feature_t *f = &m->features[j];
    const char *name = plain_name(f->name);
    float x = row[j];
    char text[400];
    pulse_ml_reason_text(m, row, j, effect, text, sizeof(text));
    pulse_buf_puts(b, "{\"feature\":\"");
    pulse_buf_json_escape(b, name, strlen(name));
    pulse_buf_puts(b, "\",\"value\":");
    if (isnan(x)) {
        pulse_buf_puts(b, "null");
    } else if (f->categorical && pulse_ml_level_index(f, x) >= 0) {
        const char *level = f->levels[pulse_ml_level_index(f, x)];
        pulse_buf_putc(b, '"');
        pulse_buf_json_escape(b, level, strlen(level));
        pulse_buf_putc(b, '"');
    } else {
        pulse_buf_printf(b, "%.7g", (double)x);
    }
    pulse_buf_printf(b, ",\"effect\":%.4f,\"direction\":\"%s\",\"text\":\"", effect, effect > 0 ? "raises" : "lowers");
    pulse_buf_json_escape(b, text, strlen(text));
    pulse_buf_puts(b, "\"}");
}

/* A reason without its model: what it did, not what it was. */
static void unworded_json(pulse_buf_t *b, double effect)
{
    pulse_buf_printf(b, "{\"feature\":null,\"value\":null,\"effect\":%.4f,\"direction\":\"%s\",\"text\":null}", effect,
                     effect > 0 ? "raises" : "lowers");
}

typedef struct code_t {
    size_t j;
    float x;
    double effect;
} code_t;

/* The reasons into rc (room for 255) and the values they read into row (when m is given). */
static int unpack(pulse_ml_reader_t *r, const pulse_ml_model_t *m, float *row, code_t *rc, size_t *nr)
{
    uint8_t version, n_reasons, n_context;
    if (pulse_ml_get_u8(r, &version) != 0 || version != CODES_VERSION || pulse_ml_get_u8(r, &n_reasons) != 0 ||
        pulse_ml_get_u8(r, &n_context) != 0)
        return -1;
    for (size_t k = 0; k < n_reasons; k++)
        if (get_u16(r, &rc[k].j) != 0 || get_f32(r, &rc[k].x) != 0 || pulse_ml_get_f64(r, &rc[k].effect) != 0 ||
            (m && rc[k].j >= m->n_features))
            return -1;
    for (size_t k = 0; k < n_reasons && m; k++)
        row[rc[k].j] = rc[k].x;
    for (size_t k = 0; k < n_context; k++) {
        size_t j;
        float x;
        if (get_u16(r, &j) != 0 || get_f32(r, &x) != 0 || (m && j >= m->n_features))
            return -1;
        if (m)
            row[j] = x;
    }
    *nr = n_reasons;
    return r->left == 0 ? 0 : -1;
}

int pulse_ml_reason_codes_json(pulse_buf_t *b, const pulse_ml_model_t *m, const unsigned char *codes, size_t n)
{
    size_t nf = m ? m->n_features : 0;
    float *row = pulse_xmalloc((nf ? nf : 1) * sizeof(float));
    code_t rc[255];
    size_t nr = 0;
    for (size_t j = 0; j < nf; j++)
        row[j] = NAN;
    pulse_ml_reader_t r;
    pulse_ml_reader_init(&r, codes, n);
    int ok = unpack(&r, m, row, rc, &nr) == 0;
    if (ok) {
        pulse_buf_putc(b, '[');
        for (size_t k = 0; k < nr; k++) {
            if (k > 0)
                pulse_buf_putc(b, ',');
            if (m)
                pulse_ml_reason_json(b, m, row, rc[k].j, rc[k].effect);
            else
                unworded_json(b, rc[k].effect);
        }
        pulse_buf_putc(b, ']');
    }
    free(row);
    return ok ? 0 : -1;
}
