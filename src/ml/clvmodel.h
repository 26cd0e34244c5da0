/* A lifetime-value model ready to score: the registry container (src/ml/model.h) of kind bgnbd
 * (BG/NBD + Gamma-Gamma parameters, scored from a customer's summary x, t_x, T, zbar) or clv_gbdt
 * (gradient-boosted trees of next-horizon spend, scored from the fixed transaction features), both
 * answering the same thing: the customer's spend over the next `horizon` days, discounted monthly.
 * Used by the training and scoring jobs, /api/v1/predict and pulse bench clv. */
#ifndef PULSE_ML_CLVMODEL_H
#define PULSE_ML_CLVMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "analytics/txstore.h"
#include "ml/clv.h"
#include "ml/gbdt.h"
#include "ml/model.h"

/* The value's terms, fixed at training and kept in the container. */
typedef struct pulse_ml_clv_terms_t {
    int32_t horizon; /* days */
    double discount; /* per 30-day month, in [0, 1) */
} pulse_ml_clv_terms_t;

/* BG/NBD + Gamma-Gamma as scored: spend_new is the spend per purchase of a customer without repeat
 * purchases when Gamma-Gamma's population mean does not exist (q <= 1): the mean repeat spend seen. */
typedef struct pulse_ml_clv_bgnbd_t {
    pulse_bgnbd_t bg;
    pulse_gamma_gamma_t gg;
    double spend_new;
} pulse_ml_clv_bgnbd_t;

typedef struct pulse_ml_clv_t {
    pulse_ml_model_t *model; /* the container: kind, features, report */
    pulse_ml_clv_terms_t terms;
    pulse_gbdt_t *gbdt;      /* clv_gbdt */
    pulse_ml_clv_bgnbd_t bg; /* bgnbd */
} pulse_ml_clv_t;

/* Containers (owned by the caller, pulse_ml_model_free). The bgnbd one lists the features x, t_x,
 * T, zbar; the clv_gbdt one the n names given (as "analytics.<feature>"), the trees' columns. */
pulse_ml_model_t *pulse_ml_clv_pack_bgnbd(const pulse_ml_clv_bgnbd_t *m, pulse_ml_clv_terms_t terms);
pulse_ml_model_t *pulse_ml_clv_pack_gbdt(const pulse_gbdt_t *g, char *const *names, size_t n, pulse_ml_clv_terms_t terms);

/* Opens a stored CLV model (container bytes). 0, or -1 with why in err (c left closed): a damaged
 * container, a kind that is not a CLV model, bad terms or parameters, a feature count that disagrees. */
int pulse_ml_clv_open(pulse_ml_clv_t *c, const unsigned char *bytes, size_t len, char *err, size_t errlen);
void pulse_ml_clv_close(pulse_ml_clv_t *c);

/* Expected spend per purchase of a summary (Gamma-Gamma; spend_new where its mean does not exist).
 * A repeat customer whose repeat spend is 0 is taken as one without repeats. */
double pulse_ml_clv_bgnbd_spend(const pulse_ml_clv_bgnbd_t *m, double x, double zbar);
/* Expected spend in the next terms.horizon days of a customer with summary (x, t_x, T, zbar), each
 * 30-day step discounted by (1 + discount)^(t / 30) at its end (lifetimes' formula; the last step
 * may be shorter). discount 0 gives the plain expected spend the holdout is compared with. */
double pulse_ml_clv_bgnbd_value(const pulse_ml_clv_bgnbd_t *m, pulse_ml_clv_terms_t terms, double x, double t_x, double T,
                                double zbar);
/* The discount factor of a spend spread evenly over the horizon, on the same steps. */
double pulse_ml_clv_discount_factor(pulse_ml_clv_terms_t terms);

/* The discounted value of one customer: bgnbd reads row[0..3] = x, t_x, T, zbar; clv_gbdt reads
 * the model's features (NaN = missing) and never answers below 0. NaN when it cannot be computed. */
double pulse_ml_clv_value_row(const pulse_ml_clv_t *c, const float *row);

/* Every customer with a purchase in a finished store valued as of the end of its data (the day
 * after the last transaction): *customer (store indexes) and *value (malloc'd, the caller frees
 * both), *n of them. Returns 0 or -1 with err (the features could not be computed). */
int pulse_ml_clv_value_store(const pulse_ml_clv_t *c, const pulse_txstore_t *st, uint32_t **customer, double **value, size_t *n,
                             char *err, size_t errlen);

#endif
