/* The per-customer summaries the lifetime-value models fit on, from a finished txstore, in days:
 * x repeat purchase days (distinct purchase days - 1), t_x days from the first to the last purchase
 * day, T days from the first purchase day to the end of the data (last transaction day + 1), zbar
 * the mean spend of the repeat purchase days (0 when x = 0). Customers without a purchase are left out. */
#ifndef PULSE_ML_CLVSUM_H
#define PULSE_ML_CLVSUM_H

#include <stddef.h>
#include <stdint.h>

#include "analytics/txstore.h"

typedef struct pulse_clvsum_t {
    size_t n;
    uint32_t *customer; /* store index per row */
    double *x, *t_x, *T, *zbar;
    int32_t end_day; /* T is measured to this day */
} pulse_clvsum_t;

/* Fills out (free with pulse_clvsum_free); out->n is 0 when nobody bought anything. A purchase is a
 * row that is not a return (as in analytics/features.h); a day's spend is the sum of its purchases. */
void pulse_clvsum_build(const pulse_txstore_t *st, pulse_clvsum_t *out);
/* The same from the rows strictly before end_day only (T measured to end_day): the calibration
 * summaries of a time split. Customers whose first purchase is on or after end_day are left out. */
void pulse_clvsum_build_before(const pulse_txstore_t *st, int32_t end_day, pulse_clvsum_t *out);

/* Customer c's purchases in [from, to): distinct purchase days and their spend. */
void pulse_clvsum_window(const pulse_txstore_t *st, uint32_t c, int32_t from, int32_t to, double *purchase_days, double *spend);
void pulse_clvsum_free(pulse_clvsum_t *s);

#endif
