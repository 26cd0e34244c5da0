/* libFuzzer target for src/ml/model.c (the model container loader) and the loaders it leads to
 * (calibration, logistic regression payload, the churn scorer's opening of trees,
 * logistic regression and blends, and the lifetime-value models' opening: BG/NBD parameters or
 * spend trees). Each input is tried as it is, then with its last
 * four bytes replaced by the right CRC-32 so the fuzzer gets past the checksum into the parser.
 * A container that loads must save back to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ml/bytes.h"
#include "ml/churn.h"
#include "ml/clvmodel.h"
#include "ml/logreg.h"
#include "ml/model.h"

/* The scorer's own opening (trees, logistic regression or a blend of both) and one row scored
 * and explained, when the container holds a churn model that opens. */
static void try_churn(const uint8_t *data, size_t len)
{
    char err[256];
    pulse_ml_churn_t c;
    if (pulse_ml_churn_open(&c, data, len, err, sizeof(err)) != 0)
        return;
    size_t nf = c.model->n_features;
    float *row = calloc(nf ? nf : 1, sizeof(float));
    double *contrib = calloc(nf + 1, sizeof(double));
    (void)pulse_ml_churn_predict_row(&c, row);
    pulse_ml_churn_contributions(&c, row, contrib);
    free(row);
    free(contrib);
    pulse_ml_churn_close(&c);
}

/* The lifetime-value opening and one row valued, when the container holds a CLV model that opens. */
static void try_clv(const uint8_t *data, size_t len)
{
    char err[256];
    pulse_ml_clv_t c;
    if (pulse_ml_clv_open(&c, data, len, err, sizeof(err)) != 0)
        return;
    size_t nf = c.model->n_features;
    float *row = calloc(nf + 4, sizeof(float));
    row[0] = 2, row[1] = 30, row[2] = 100, row[3] = 25;
    (void)pulse_ml_clv_value_row(&c, row);
    free(row);
    pulse_ml_clv_close(&c);
}

static void try_load(const uint8_t *data, size_t len)
{
    char err[256];
    pulse_ml_model_t *m = pulse_ml_model_load(data, len, err, sizeof(err));
    if (m == NULL)
        return;
    unsigned char *bytes;
    size_t n;
    pulse_ml_model_save(m, &bytes, &n);
    if (n != len || memcmp(bytes, data, len) != 0)
        abort(); /* the loader accepted something the writer would not have written */
    free(bytes);
    (void)pulse_ml_calibration_apply(&m->calibration, 0.3);
    if (m->kind == PULSE_ML_CHURN_LOGREG) {
        pulse_ml_logreg_t *lr = pulse_ml_logreg_load(m->payload, m->payload_len, err, sizeof(err));
        if (lr != NULL) {
            size_t nf = pulse_ml_logreg_n_features(lr);
            float *row = calloc(nf ? nf : 1, sizeof(float));
            double *contrib = calloc(nf ? nf : 1, sizeof(double));
            (void)pulse_ml_logreg_predict_row(lr, row);
            (void)pulse_ml_logreg_contributions(lr, row, contrib);
            free(row);
            free(contrib);
            pulse_ml_logreg_free(lr);
        }
    }
    pulse_ml_model_free(m);
    try_churn(data, len);
    try_clv(data, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    try_load(data, len);
    if (len >= 8) {
        uint8_t *fixed = malloc(len);
        memcpy(fixed, data, len);
        uint32_t crc = pulse_ml_crc32(0, fixed, len - 4);
        for (int i = 0; i < 4; i++)
            fixed[len - 4 + i] = (uint8_t)(crc >> (8 * i));
        try_load(fixed, len);
        free(fixed);
    }
    return 0;
}
