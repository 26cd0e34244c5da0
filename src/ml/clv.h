/* Customer lifetime value: the BG/NBD purchase model (Fader, Hardie & Lee 2005) and the Gamma-Gamma
 * spend model (Fader & Hardie 2013), both fitted by maximum likelihood (BFGS over log-parameters,
 * analytic gradients, no external library), and the discounted CLV that combines them. Inputs are
 * per-customer summaries: x repeat purchases, t_x time of the last one, T age, zbar mean repeat spend,
 * all in one time unit chosen by the caller. Fits refuse bad input with the customer index. */
#ifndef PULSE_ML_CLV_H
#define PULSE_ML_CLV_H

#include <stddef.h>

typedef struct pulse_bgnbd_t {
    double r, alpha;       /* purchase rate ~ Gamma(shape r, rate alpha); alpha is in the data's time unit */
    double a, b;           /* drop-out probability after each purchase ~ Beta(a, b) */
    double log_likelihood; /* of the data the model was fitted on (sum over customers) */
    int iterations;        /* BFGS iterations the fit took */
} pulse_bgnbd_t;

typedef struct pulse_gamma_gamma_t {
    double p, q, gamma; /* spend per transaction ~ Gamma(p, nu), nu ~ Gamma(q, gamma) */
    double log_likelihood;
    int iterations;
} pulse_gamma_gamma_t;

/* Fits BG/NBD on n customers. x: repeat purchases (whole numbers >= 0); t_x: recency (0 when x = 0,
 * > 0 otherwise); T: age (> 0, >= t_x). Needs n >= 4 and at least one customer with x > 0. Returns 0,
 * or -1 with a message in err (bad input: which customer and what; or no convergence). */
int pulse_clv_bgnbd_fit(const double *x, const double *t_x, const double *T, size_t n, pulse_bgnbd_t *out, char *err,
                        size_t errlen);

/* Log-likelihood of the data under m (sum over customers; the input is not checked: validate with a
 * fit first). When grad_log_params is not NULL it receives d loglik / d log(r, alpha, a, b). */
double pulse_clv_bgnbd_loglik(const pulse_bgnbd_t *m, const double *x, const double *t_x, const double *T, size_t n,
                              double grad_log_params[4]);

/* P(still alive at T | x, t_x, T); 1 when x = 0 (the model lets customers drop out only after a purchase). */
double pulse_clv_bgnbd_p_alive(const pulse_bgnbd_t *m, double x, double t_x, double T);

/* Expected purchases in (T, T + t] of a customer with history (x, t_x, T). NaN if the hypergeometric
 * series does not converge (t enormous against alpha + T). */
double pulse_clv_bgnbd_expected(const pulse_bgnbd_t *m, double t, double x, double t_x, double T);

/* Expected purchases in (0, t] of a new customer (no history). */
double pulse_clv_bgnbd_expected_new(const pulse_bgnbd_t *m, double t);

/* Fits Gamma-Gamma on the customers with x > 0 (rows with x = 0 are skipped: they have no repeat
 * spend); zbar must be > 0 where x > 0. Needs at least 3 such customers. Returns 0 or -1 with err. */
int pulse_clv_gamma_gamma_fit(const double *x, const double *zbar, size_t n, pulse_gamma_gamma_t *out, char *err, size_t errlen);

/* Log-likelihood over the customers with x > 0; gradient (may be NULL) with respect to log(p, q, gamma). */
double pulse_clv_gamma_gamma_loglik(const pulse_gamma_gamma_t *m, const double *x, const double *zbar, size_t n,
                                    double grad_log_params[3]);

/* E[mean spend per transaction | x, zbar] = (gamma + x zbar) p / (p x + q - 1); for x = 0 the
 * population mean p gamma / (q - 1). NaN when q <= 1 and x = 0 (the mean does not exist). */
double pulse_clv_gamma_gamma_spend(const pulse_gamma_gamma_t *m, double x, double zbar);

/* Discounted lifetime value over `months` monthly steps, as lifetimes' customer_lifetime_value:
 *   CLV = sum_{k=1..months} spend * (E[Y(k u)] - E[Y((k-1) u)]) / (1 + discount)^k
 * where E[Y(t)] is pulse_clv_bgnbd_expected, spend is pulse_clv_gamma_gamma_spend, u is the number of
 * the data's time units in a month (4.345 for weeks, 30 for days, 1 for months) and discount the rate
 * per month. NaN if a term is. */
double pulse_clv_value(const pulse_bgnbd_t *bg, const pulse_gamma_gamma_t *gg, double x, double t_x, double T, double zbar,
                       int months, double discount, double units_per_month);

#endif
