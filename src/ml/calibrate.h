/* Probability calibration fitted on held-out rows: Platt scaling (p' = sigmoid(a logit(p) + b),
 * a and b by Newton's method) or isotonic regression (pool adjacent violators, read back by
 * piecewise-linear interpolation between block centres). pulse_ml_calibration_fit picks the one
 * with the lower out-of-fold log-loss (5-fold cross-fitting on the held-out rows, since isotonic
 * regression always wins in-sample) and refits it on all of them, or keeps the probabilities as
 * they are when neither beats the uncalibrated log-loss. Byte format for the model container. */
#ifndef PULSE_ML_CALIBRATE_H
#define PULSE_ML_CALIBRATE_H

#include <stddef.h>

#include "core/buf.h"

typedef enum pulse_ml_cal_kind_t {
    PULSE_ML_CAL_NONE = 0, /* identity */
    PULSE_ML_CAL_PLATT = 1,
    PULSE_ML_CAL_ISOTONIC = 2
} pulse_ml_cal_kind_t;

typedef struct pulse_ml_calibration_t {
    pulse_ml_cal_kind_t kind;
    double a, b;           /* Platt */
    size_t n_points;       /* isotonic knots: x strictly ascending, y non-decreasing in [0, 1] */
    double *x, *y;         /* owned */
    double cv_log_loss[3]; /* out-of-fold log-loss per kind as chosen by pulse_ml_calibration_fit
                              ([NONE] is the uncalibrated one); not saved */
} pulse_ml_calibration_t;

void pulse_ml_calibration_init(pulse_ml_calibration_t *c);       /* identity */
void pulse_ml_calibration_free(pulse_ml_calibration_t *c);       /* back to identity */
const char *pulse_ml_calibration_name(pulse_ml_cal_kind_t kind); /* "none", "platt", "isotonic" */

/* Platt scaling on probabilities p (turned into log-odds): fills a, b. Returns 0, or -1 when the
 * rows hold a single class. */
int pulse_ml_platt_fit(const double *p, const float *y, size_t n, double *a, double *b);
/* Isotonic regression of y on p into c (kind ISOTONIC). Returns 0, or -1 when n is 0. */
int pulse_ml_isotonic_fit(const double *p, const float *y, size_t n, pulse_ml_calibration_t *c);
/* Fits both, keeps the one with the lower out-of-fold log-loss, or the identity when the raw
 * probabilities score lower than both. Returns 0, or -1 with a message (fewer than 10 rows, a
 * single class). */
int pulse_ml_calibration_fit(const double *p, const float *y, size_t n, pulse_ml_calibration_t *c, char *err, size_t errlen);

double pulse_ml_calibration_apply(const pulse_ml_calibration_t *c, double p);

void pulse_ml_calibration_save(const pulse_ml_calibration_t *c, pulse_buf_t *out);
/* Reads what pulse_ml_calibration_save wrote, exactly len bytes. Returns 0, or -1 with a message
 * and c left as identity. */
int pulse_ml_calibration_load(const unsigned char *bytes, size_t len, pulse_ml_calibration_t *c, char *err, size_t errlen);

#endif
