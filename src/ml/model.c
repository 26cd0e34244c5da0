/* The model container (see model.h). Layout, little-endian:
 *   "PMDL" u32 version u32 kind u32 n_features
 *   per feature: str name, u8 categorical, u32 n_levels, n_levels x str level
 *   u32 calibration length, calibration bytes (calibrate.c)
 *   u32 meta length, meta bytes
 *   u64 payload length, payload bytes
 *   u32 CRC-32 of every byte before it */
#include "ml/model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "ml/bytes.h"

#define MODEL_MAGIC "PMDL"
#define MAX_NAME 4096
#define MAX_FEATURES 100000
#define MAX_LEVELS 1000000
#define MAX_META ((size_t)64 << 20)

const char *pulse_ml_model_kind_name(pulse_ml_model_kind_t kind)
{
    switch (kind) {
    case PULSE_ML_CHURN_LOGREG:
        return "churn_logreg";
    case PULSE_ML_CHURN_GBDT:
        return "churn_gbdt";
    case PULSE_ML_CLV_GBDT:
        return "clv_gbdt";
    case PULSE_ML_CLV_BGNBD:
        return "bgnbd";
    case PULSE_ML_CHURN_BLEND:
        return "churn_blend";
    }
    return "unknown";
}

pulse_ml_model_t *pulse_ml_model_new(pulse_ml_model_kind_t kind)
{
    pulse_ml_model_t *m = pulse_xmalloc(sizeof(*m));
    memset(m, 0, sizeof(*m));
    m->kind = kind;
    pulse_ml_calibration_init(&m->calibration);
    return m;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = pulse_xmalloc(n + 1);
    if (n > 0)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void pulse_ml_model_add_feature(pulse_ml_model_t *m, const char *name, int categorical, int n_levels, char *const *levels)
{
    m->features = pulse_xrealloc(m->features, (m->n_features + 1) * sizeof(*m->features));
    pulse_ml_feature_t *f = &m->features[m->n_features++];
    f->name = pulse_xstrdup(name);
    f->categorical = categorical != 0;
    f->n_levels = categorical ? n_levels : 0;
    f->levels = NULL;
    if (f->categorical) {
        f->levels = pulse_xmalloc((n_levels > 0 ? (size_t)n_levels : 1) * sizeof(char *));
        for (int c = 0; c < n_levels; c++)
            f->levels[c] = pulse_xstrdup(levels ? levels[c] : "");
    }
}

void pulse_ml_model_set_payload(pulse_ml_model_t *m, const unsigned char *payload, size_t len)
{
    free(m->payload);
    m->payload = pulse_xmalloc(len ? len : 1);
    if (len > 0)
        memcpy(m->payload, payload, len);
    m->payload_len = len;
}

void pulse_ml_model_set_meta(pulse_ml_model_t *m, const char *meta)
{
    free(m->meta);
    m->meta = meta ? pulse_xstrdup(meta) : NULL;
}

void pulse_ml_model_free(pulse_ml_model_t *m)
{
    if (m == NULL)
        return;
    for (size_t j = 0; j < m->n_features; j++) {
        pulse_ml_feature_t *f = &m->features[j];
        for (int c = 0; f->levels && c < f->n_levels; c++)
            free(f->levels[c]);
        free(f->levels);
        free(f->name);
    }
    free(m->features);
    pulse_ml_calibration_free(&m->calibration);
    free(m->meta);
    free(m->payload);
    free(m);
}

int pulse_ml_model_save(const pulse_ml_model_t *m, unsigned char **bytes, size_t *len)
{
    pulse_buf_t b = PULSE_BUF_INIT;
    pulse_buf_append(&b, MODEL_MAGIC, 4);
    pulse_ml_put_u32(&b, PULSE_ML_MODEL_VERSION);
    pulse_ml_put_u32(&b, (uint32_t)m->kind);
    pulse_ml_put_u32(&b, (uint32_t)m->n_features);
    for (size_t j = 0; j < m->n_features; j++) {
        const pulse_ml_feature_t *f = &m->features[j];
        pulse_ml_put_str(&b, f->name, strlen(f->name));
        pulse_ml_put_u8(&b, (uint8_t)f->categorical);
        pulse_ml_put_u32(&b, (uint32_t)f->n_levels);
        for (int c = 0; c < f->n_levels; c++)
            pulse_ml_put_str(&b, f->levels[c], strlen(f->levels[c]));
    }
    pulse_buf_t cal = PULSE_BUF_INIT;
    pulse_ml_calibration_save(&m->calibration, &cal);
    pulse_ml_put_str(&b, cal.data, cal.len);
    pulse_buf_free(&cal);
    pulse_ml_put_str(&b, m->meta ? m->meta : "", m->meta ? strlen(m->meta) : 0);
    pulse_ml_put_u64(&b, (uint64_t)m->payload_len);
    if (m->payload_len > 0)
        pulse_buf_append(&b, m->payload, m->payload_len);
    pulse_ml_put_u32(&b, pulse_ml_crc32(0, b.data, b.len));
    *bytes = (unsigned char *)b.data;
    *len = b.len;
    return 0;
}

static pulse_ml_model_t *bad(pulse_ml_model_t *m, char *err, size_t errlen, const char *what)
{
    pulse_fail(err, errlen, "model container: %s", what);
    pulse_ml_model_free(m);
    return NULL;
}

pulse_ml_model_t *pulse_ml_model_load(const unsigned char *bytes, size_t len, char *err, size_t errlen)
{
    if (len < 4 || memcmp(bytes, MODEL_MAGIC, 4) != 0)
        return bad(NULL, err, errlen, "not a Pulse model (no PMDL magic)");
    if (len < 20)
        return bad(NULL, err, errlen, "truncated");
    pulse_ml_reader_t r;
    pulse_ml_reader_init(&r, bytes + 4, len - 4);
    uint32_t version, kind, nf, crc;
    pulse_ml_get_u32(&r, &version);
    if (version != PULSE_ML_MODEL_VERSION) {
        pulse_fail(err, errlen, "model container: format version %u, this build reads version %d", (unsigned)version,
                   PULSE_ML_MODEL_VERSION);
        return NULL;
    }
    /* The checksum first: a damaged container is reported as damaged, not as whichever field
     * the damage happened to hit. */
    pulse_ml_reader_t tail;
    pulse_ml_reader_init(&tail, bytes + len - 4, 4);
    pulse_ml_get_u32(&tail, &crc);
    if (pulse_ml_crc32(0, bytes, len - 4) != crc)
        return bad(NULL, err, errlen, "checksum mismatch (the model is corrupted or truncated)");
    r.left -= 4; /* the CRC is not part of the body */

    pulse_ml_get_u32(&r, &kind);
    if (strcmp(pulse_ml_model_kind_name((pulse_ml_model_kind_t)kind), "unknown") == 0)
        return bad(NULL, err, errlen, "unknown model kind");
    pulse_ml_model_t *m = pulse_ml_model_new((pulse_ml_model_kind_t)kind);
    /* Every feature takes at least 9 bytes: a larger count is corruption, not an allocation. */
    if (pulse_ml_get_u32(&r, &nf) != 0 || nf > MAX_FEATURES || (size_t)nf * 9 > r.left)
        return bad(m, err, errlen, "bad feature count");
    m->features = pulse_xmalloc((nf ? nf : 1) * sizeof(*m->features));
    for (size_t j = 0; j < nf; j++) {
        const char *s;
        size_t n;
        uint8_t cat;
        uint32_t nl;
        if (pulse_ml_get_str(&r, MAX_NAME, &s, &n) || pulse_ml_get_u8(&r, &cat) || pulse_ml_get_u32(&r, &nl))
            return bad(m, err, errlen, "truncated feature list");
        if (cat > 1 || (!cat && nl != 0) || nl > MAX_LEVELS || (size_t)nl * 4 > r.left || memchr(s, 0, n) != NULL)
            return bad(m, err, errlen, "malformed feature");
        pulse_ml_feature_t *f = &m->features[m->n_features++];
        f->name = dup_n(s, n);
        f->categorical = cat;
        f->n_levels = 0;
        f->levels = cat ? pulse_xmalloc((nl ? nl : 1) * sizeof(char *)) : NULL;
        for (uint32_t c = 0; c < nl; c++) {
            if (pulse_ml_get_str(&r, MAX_NAME, &s, &n) || memchr(s, 0, n) != NULL)
                return bad(m, err, errlen, "malformed category name");
            f->levels[f->n_levels++] = dup_n(s, n);
        }
    }
    const char *cal;
    size_t cal_len;
    if (pulse_ml_get_str(&r, r.left, &cal, &cal_len) != 0)
        return bad(m, err, errlen, "truncated calibration");
    char msg[160];
    if (pulse_ml_calibration_load((const unsigned char *)cal, cal_len, &m->calibration, msg, sizeof(msg)) != 0)
        return bad(m, err, errlen, msg);
    const char *meta;
    size_t meta_len;
    if (pulse_ml_get_str(&r, MAX_META, &meta, &meta_len) != 0 || memchr(meta, 0, meta_len) != NULL)
        return bad(m, err, errlen, "malformed metadata");
    if (meta_len > 0)
        m->meta = dup_n(meta, meta_len);
    uint64_t pl;
    const unsigned char *payload;
    if (pulse_ml_get_u64(&r, &pl) != 0 || pl != r.left || pulse_ml_get_bytes(&r, (size_t)pl, &payload) != 0)
        return bad(m, err, errlen, "payload length does not match the container");
    pulse_ml_model_set_payload(m, payload, (size_t)pl);
    return m;
}
