/* Every customer's lifetime value written by the jobs: the tenant's active CLV model (registry kind
 * 'clv', ml/clvmodel.h) applied to its transactions as of their last day, the values written to
 * customer_analytics.clv and predictions.clv in one tenant transaction. The train job calls it when
 * a new CLV model becomes active, the scoring job after every churn scoring run. Also the loading
 * of a tenant's transactions into a finished store that both jobs use. */
#ifndef PULSE_JOBS_CLV_VALUES_H
#define PULSE_JOBS_CLV_VALUES_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "analytics/txstore.h"
#include "ml/clvmodel.h"

/* The tenant's transactions in a finished store, read in a tenant transaction that is rolled back
 * (nothing is written). *ntx: transactions read. 0, or -1 with err (st is freed then). */
int pulse_jobs_load_store(PGconn *work, const char *tenant, pulse_txstore_t *st, uint64_t *ntx, char *err, size_t errlen);

/* Values every customer of st with c and writes them (customers matched by external id) to
 * customer_analytics, and to the stored predictions when with_predictions (a scoring run over
 * every customer about to replace them leaves them: it copies the values from the analytics, and
 * an update of every prediction only left 3.5 M dead rows for autovacuum, whose lock then held up
 * the next swap). st may be NULL: the tenant's transactions are loaded. *written: customer_analytics
 * rows updated. */
int pulse_clv_values_write(PGconn *work, const char *tenant, const pulse_ml_clv_t *c, const pulse_txstore_t *st,
                           int with_predictions, long *written, char *err, size_t errlen);

/* pulse_clv_values_write with the tenant's active CLV model: 1 when there is none (nothing done),
 * 0 written (*version: the model's), -1 with err (a model that does not load says so). */
int pulse_clv_values_refresh(PGconn *work, const char *tenant, int with_predictions, int *version, long *written, char *err,
                             size_t errlen);

#endif
