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
/* The level a categorical feature's value x names, or -1 (NaN, out of range, no levels). */
int pulse_ml_level_index(const pulse_ml_feature_t *f, double x);
void pulse_ml_reason_text(const pulse_ml_model_t *m, const float *row, size_t j, double effect, char *out, size_t outlen);

/* The other features of the row the sentence for feature j reads (their indexes into out, room
 * for PULSE_ML_REASON_CONTEXT_MAX): what a stored reason must keep besides its own value to be
 * worded again later. Returns how many. */
#define PULSE_ML_REASON_CONTEXT_MAX 1
size_t pulse_ml_reason_context(const pulse_ml_model_t *m, size_t j, size_t *out);

#endif
