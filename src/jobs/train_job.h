/* The churn training job (kind "train"): the tenant's labelled customers as a table, both models
 * trained and the better kept (src/ml/train.h), the PMDL container with its metrics and report
 * stored as the next version in the models registry, activated when it is the tenant's first
 * churn model or when the job's params say "activate": true. Params "kind": "clv" train the
 * lifetime-value models on a time split of the transactions instead (ml/clvtrain.h: BG/NBD +
 * Gamma-Gamma against boosted trees of holdout spend, horizon_days, discount, seed): a 'clv' model
 * whose metrics are the chosen one's holdout MAE and RMSE and whose report holds both candidates and
 * the table by frequency, and (when it is active) every customer's CLV in customer_analytics and
 * predictions (jobs/clv_values.h). */
#ifndef PULSE_JOBS_TRAIN_JOB_H
#define PULSE_JOBS_TRAIN_JOB_H

#include <libpq-fe.h>

#include "core/config.h"
#include "jobs/jobs.h"

/* Runs one claimed train job on ctl (progress, outcome) and work (reads and the registry write),
 * both acting as pulse_app, with pulse_job_run's contract for stop and observer: a cancelled job
 * ends after its current step with nothing stored, a stopping server gets it back in the queue.
 * Returns 0 when it is done, else -1 (out says why). */
int pulse_train_job_run(const pulse_config_t *cfg, PGconn *ctl, PGconn *work, const char *job_id, const char *tenant_id,
                        const char *params_json, volatile int *stop, pulse_job_observer observer, void *ud,
                        pulse_job_outcome_t *out);

#endif
