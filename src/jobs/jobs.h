/* Background jobs (imports today): worker threads that take jobs from the PostgreSQL queue (the
 * jobs table, claimed with FOR UPDATE SKIP LOCKED through pulse_job_claim), run them with blocking
 * libpq connections of their own, write progress to the job row and keep a heartbeat, so that a
 * job whose process died is retried by another worker (or failed after three attempts). A server
 * that stops puts its running jobs back in the queue. Runs in `pulse serve` and `pulse import`. */
#ifndef PULSE_JOBS_JOBS_H
#define PULSE_JOBS_JOBS_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"

typedef struct pulse_jobs_t pulse_jobs_t;

/* Starts cfg->job_threads workers (none: returns an empty runner) and the heartbeat thread.
 * conninfo: where the database is (connections act as cfg->db_role). NULL with a message in err
 * when a thread cannot start. The caller owns the result: pulse_jobs_stop frees it. */
pulse_jobs_t *pulse_jobs_start(const pulse_config_t *cfg, const char *conninfo, char *err, size_t errlen);
/* Asks running jobs to stop (an import rolls back and goes back to the queue), joins the threads
 * and frees everything. NULL is fine. */
void pulse_jobs_stop(pulse_jobs_t *jobs);

/* What one run of a job did, for the CLI (pulse import) and the workers' log. */
typedef struct pulse_job_outcome_t {
    char state[16]; /* done, failed, cancelled, queued (handed back: the runner was stopping) */
    char error_code[64];
    char error[512];
    uint64_t rows_read, rows_accepted, rows_rejected;
} pulse_job_outcome_t;

/* Progress as it is written to the job row; the CLI draws its bar from it. */
typedef struct pulse_job_progress_t {
    const char *phase;
    double percent, rows_per_second, eta_seconds;
    uint64_t bytes_done, bytes_total, rows_read, rows_accepted, rows_rejected;
} pulse_job_progress_t;
/* Returns non-zero to cancel the job (as a user would: it ends cancelled, nothing stored). */
typedef int (*pulse_job_observer)(void *ud, const pulse_job_progress_t *p);

/* Runs one already-claimed job (state running) to its end on ctl (progress, result) and work (the
 * import's own transaction), both blocking connections acting as pulse_app. stop: when it becomes
 * non-zero the job is handed back to the queue. observer may be NULL. The uploaded file is deleted
 * once the job has ended, unless its params say "keep_file": true (pulse import's own files). */
int pulse_job_run(const pulse_config_t *cfg, PGconn *ctl, PGconn *work, const char *job_id, const char *tenant_id, const char *kind,
                  const char *params_json, volatile int *stop, pulse_job_observer observer, void *ud, pulse_job_outcome_t *out);

/* A file to import outside the server (pulse import, pulse demo); NULL fields: the defaults. */
typedef struct pulse_import_request_t {
    const char *path, *display_name; /* the file, and the name shown in the job (default: path) */
    const char *kind, *mapping, *date_formats, *sheet, *sep, *max_error_rate; /* as the upload's options (JSON text) */
} pulse_import_request_t;

/* Decides the plan (lua/import_plan.lua), creates the job (already running) and runs it here.
 * Problems that stop it before a job exists are printed to errors as "<who>: ..." (job_id stays
 * ""). Returns 0 when the job is done, else -1 (out says why). */
int pulse_import_file(const pulse_config_t *cfg, const char *conninfo, const char *tenant, const char *industry,
                      const pulse_import_request_t *rq, pulse_job_observer observer, void *ud, pulse_job_outcome_t *out,
                      char job_id[40], const char *who, FILE *errors);
/* Prints an import's report issues, one line each. */
void pulse_import_print_report(const pulse_config_t *cfg, const char *conninfo, const char *tenant, const char *job_id, FILE *f);

/* Runs one statement with params inside BEGIN / set pulse.tenant_id / COMMIT on a blocking
 * connection acting as pulse_app. Returns its result (the caller clears it), or NULL with the
 * error in err after rolling back. */
PGresult *pulse_jobs_tenant_exec(PGconn *c, const char *tenant, const char *sql, int n, const char *const *params, char *err,
                                 size_t errlen);

/* Opens a blocking connection acting as cfg->db_role with no statement timeout (imports are long),
 * UTC and ISO dates. NULL with a message in err. */
PGconn *pulse_jobs_connect(const pulse_config_t *cfg, const char *conninfo, const char *app_name, char *err, size_t errlen);

/* Shared by the job kinds (import_job.c): a heartbeat on its own connection while a job runs
 * (NULL-safe stop; start never fails: without a connection there is just no heartbeat). */
typedef struct pulse_job_beat_t pulse_job_beat_t;
pulse_job_beat_t *pulse_job_beat_start(const pulse_config_t *cfg, PGconn *like, const char *job_id, const char *tenant);
void pulse_job_beat_stop(pulse_job_beat_t *b);

/* The analytics job kinds (segment_job.c, cluster_job.c), run by pulse_job_run: same contract. */
int pulse_segment_job_run(const pulse_config_t *cfg, PGconn *ctl, PGconn *work, const char *job_id, const char *tenant_id,
                          const char *params_json, volatile int *stop, pulse_job_observer observer, void *ud,
                          pulse_job_outcome_t *out);
int pulse_cluster_job_run(const pulse_config_t *cfg, PGconn *ctl, PGconn *work, const char *job_id, const char *tenant_id,
                          const char *params_json, volatile int *stop, pulse_job_observer observer, void *ud,
                          pulse_job_outcome_t *out);

#endif
