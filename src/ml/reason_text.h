/* Reason codes in words a marketer reads: "no purchase for 140 days, 3.1× longer than usual —
 * raises the risk" rather than "recency_days 140 raises risk". The customer's other features
 * (same row) give the comparisons ("than usual"). Features Pulse computes (analytics.*) have
 * their own phrasing; any other column (an uploaded attribute, an industry aggregate) reads as
 * "Monthly charges: 95.5" or "Contract: Month-to-month". Used by the scoring job and by
 * POST /api/v1/predict, so a reason reads the same wherever it is shown. */
#ifndef PULSE_ML_REASON_TEXT_H
#define PULSE_ML_REASON_TEXT_H

#include <stddef.h>

#include "ml/model.h"

/* The sentence for feature j of row (m->n_features values, NaN = missing) pushing the log-odds
 * by effect (> 0 raises the risk), into out (always NUL-terminated, cut to fit). */
void pulse_ml_reason_text(const pulse_ml_model_t *m, const float *row, size_t j, double effect, char *out, size_t outlen);

#endif
