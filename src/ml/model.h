/* The versioned model container kept in the model registry: magic "PMDL", format version, the
 * model kind, the features the model expects (name, numeric or categorical with its dictionary),
 * the probability calibration, an optional metadata text (the training report as JSON), the
 * payload bytes of the underlying model, and a CRC-32 over everything before it. The loader
 * checks every length and value and refuses a damaged container with a message, never a crash. */
#ifndef PULSE_ML_MODEL_H
#define PULSE_ML_MODEL_H

#include <stddef.h>

#include "ml/calibrate.h"

#define PULSE_ML_MODEL_VERSION 1

typedef enum pulse_ml_model_kind_t {
    PULSE_ML_CHURN_LOGREG = 1,
    PULSE_ML_CHURN_GBDT = 2,
    PULSE_ML_CLV_GBDT = 3,    /* next-horizon spend regressor (ml/clvmodel.h) */
    PULSE_ML_CLV_BGNBD = 4,   /* BG/NBD + Gamma-Gamma parameters (ml/clvmodel.h) */
    PULSE_ML_CHURN_BLEND = 5, /* logistic regression and trees averaged in log-odds (ml/churn.h) */
} pulse_ml_model_kind_t;

/* "churn_logreg", "churn_gbdt", "clv_gbdt", "bgnbd", "churn_blend"; "unknown" otherwise. */
const char *pulse_ml_model_kind_name(pulse_ml_model_kind_t kind);

typedef struct pulse_ml_feature_t {
    char *name;
    int categorical;
    int n_levels;  /* categorical: category code c means levels[c] */
    char **levels; /* NULL for numeric features */
} pulse_ml_feature_t;

typedef struct pulse_ml_model_t {
    pulse_ml_model_kind_t kind;
    size_t n_features;
    pulse_ml_feature_t *features;
    pulse_ml_calibration_t calibration;
    char *meta; /* NUL-terminated text or NULL */
    unsigned char *payload;
    size_t payload_len;
} pulse_ml_model_t;

/* An empty container of the given kind (no features, identity calibration). */
pulse_ml_model_t *pulse_ml_model_new(pulse_ml_model_kind_t kind);
/* Appends a feature; name and levels are copied. */
void pulse_ml_model_add_feature(pulse_ml_model_t *m, const char *name, int categorical, int n_levels, char *const *levels);
/* Takes a copy of payload; meta (may be NULL) too. */
void pulse_ml_model_set_payload(pulse_ml_model_t *m, const unsigned char *payload, size_t len);
void pulse_ml_model_set_meta(pulse_ml_model_t *m, const char *meta);

/* Serialises m into *bytes (malloc'd, the caller frees it). Returns 0. */
int pulse_ml_model_save(const pulse_ml_model_t *m, unsigned char **bytes, size_t *len);
/* Parses and validates; returns a new container (pulse_ml_model_free) or NULL with a message:
 * not a model, unsupported version, checksum mismatch, or the part that is malformed. */
pulse_ml_model_t *pulse_ml_model_load(const unsigned char *bytes, size_t len, char *err, size_t errlen);
void pulse_ml_model_free(pulse_ml_model_t *m);

#endif
