/* Behavioural churn labels for transaction data: a customer churned when they made no purchase in
 * the H days after a cutoff (cutoff = last transaction day + 1 - H, so the label window is the end
 * of the data). Features are computed as of the cutoff, from rows strictly before it, so nothing a
 * customer does in the label window can reach their features. Refuses data spanning < H + 90 days. */
#ifndef PULSE_ML_CHURNLABEL_H
#define PULSE_ML_CHURNLABEL_H

#include <stddef.h>
#include <stdint.h>

#include "analytics/txstore.h"
#include "ml/table.h"

#define PULSE_CHURNLABEL_MIN_HISTORY 90 /* days of history needed before the cutoff */

typedef struct pulse_churnlabel_info_t {
    int32_t horizon;            /* H, days */
    int32_t cutoff;             /* first day of the label window (day number) */
    int32_t first_day, end_day; /* the data's first transaction day and last day + 1 */
    size_t n_customers;         /* table rows: customers with a purchase before the cutoff */
    size_t n_churned;
    uint32_t *customer; /* store index of each table row; owned (free) */
} pulse_churnlabel_info_t;

/* Builds the training table of a finished store: one row per customer with a purchase before the
 * cutoff, the fixed features (named "analytics.<feature>", as the scorer reads the stored ones) and
 * the label "churned" (1: no purchase in [cutoff, cutoff + horizon)). Returns 0 with *out (free with
 * pulse_ml_table_free) and info (free info->customer), or -1 with a message: no transactions, too
 * little history ("... spans 120 days, 180 are needed ..."), a horizon out of 1..3650. */
int pulse_churnlabel_table(const pulse_txstore_t *st, int32_t horizon, pulse_ml_table_t **out, pulse_churnlabel_info_t *info,
                           char *err, size_t errlen);

#endif
