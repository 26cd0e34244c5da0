/* A prediction's reasons kept as data, worded when they are read. The scoring job stores per
 * customer the top reasons (the feature's index in the model, the value the model saw, its push on
 * the log-odds) and the few other values their sentences compare with, ~70 bytes instead of ~850
 * bytes of rendered JSON; the API renders them with the model the row names, so a reason reads
 * exactly as the JSON the job used to store.
 *
 * Layout (little-endian, as the model formats of src/ml/bytes.h):
 *   u8 version (1), u8 R (reasons), u8 C (context values)
 *   R x { u16 feature index, f32 value (NaN: missing), f64 effect (> 0 raises the risk) }
 *   C x { u16 feature index, f32 value }
 * The effect keeps its double: the API prints it with four decimals, and a float would round a
 * few of them differently from what the job printed before. */
#ifndef PULSE_ML_REASON_CODES_H
#define PULSE_ML_REASON_CODES_H

#include <stddef.h>

#include "core/buf.h"
#include "ml/churn.h"
#include "ml/model.h"

/* Appends the codes of the nr reasons rk (from pulse_ml_reasons) of row (the model's features,
 * NaN = missing) to b. */
void pulse_ml_reason_codes_pack(pulse_buf_t *b, const pulse_ml_model_t *m, const float *row, const pulse_ml_push_t *rk, size_t nr);

/* The JSON array of the reasons in codes[0..n) as {feature, value, effect, direction, text}, worded
 * with m. Without m (the model is gone or does not load) each reason still has its effect and
 * direction, with feature, value and text null. 0, or -1 when the codes are malformed or name a
 * feature the model lacks (nothing appended). */
int pulse_ml_reason_codes_json(pulse_buf_t *b, const pulse_ml_model_t *m, const unsigned char *codes, size_t n);

/* One reason as JSON {feature, value, effect, direction, text}: feature j of row pushing by
 * effect. What the stored codes render to, and what the scoring job wrote before them. */
void pulse_ml_reason_json(pulse_buf_t *b, const pulse_ml_model_t *m, const float *row, size_t j, double effect);

#endif
