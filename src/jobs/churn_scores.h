/* An uploaded churn-score file (the segment route's optional `customer_id,churn_score` CSV, as in
 * Pulse): read in the segment job, never whole in memory. The route names the two columns (it
 * matched them from the preview, lua/routes/analytics.lua); a score is a probability 0..1, or a
 * percentage written with '%' ("85%"). */
#ifndef PULSE_JOBS_CHURN_SCORES_H
#define PULSE_JOBS_CHURN_SCORES_H

#include <stddef.h>
#include <stdint.h>

/* Called per data row with the customer's external id (not NUL-terminated) and its probability.
 * Returns 0 to go on. */
typedef int (*pulse_churn_score_cb)(void *ud, const char *ref, size_t len, float p);

/* Reads the file at path; the header must name id_column and score_column. Returns the number of
 * scores delivered, or -1 with err naming the line and what to fix (missing column, empty id,
 * score not a number or outside 0..1) — a bad row fails the whole file, nothing is applied. */
int64_t pulse_churn_scores_read(const char *path, const char *id_column, const char *score_column, pulse_churn_score_cb cb,
                                void *ud, char *err, size_t errlen);

#endif
