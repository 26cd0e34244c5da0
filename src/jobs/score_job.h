/* The churn scoring job (kind "score"): the tenant's active churn model, loaded and validated
 * (a damaged container fails the job with a clear error), applied in batch to the requested
 * customers with its calibration; risk band from the segment rule's churn bands; reasons from
 * per-feature contributions, stored as codes; predictions written through a staging table (the
 * other results are left alone: their readers take the churn from predictions). */
#ifndef PULSE_JOBS_SCORE_JOB_H
#define PULSE_JOBS_SCORE_JOB_H

#include <libpq-fe.h>

#include "core/config.h"
#include "jobs/jobs.h"

/* Runs one claimed score job (see pulse_train_job_run for the connections). Params:
 * {"customer_ids": ["all"] or [ids], "churn_bands": {"medium": m, "high": h}}. */
int pulse_score_job_run(const pulse_config_t *cfg, PGconn *ctl, PGconn *work, const char *job_id, const char *tenant_id,
                        const char *params_json, volatile int *stop, pulse_job_observer observer, void *ud,
                        pulse_job_outcome_t *out);

#endif
