/* One run of a background job as its job row sees it, shared by every job kind (imports, segment,
 * cluster, train, score): progress written at most every 250 ms (or at once on a new phase), the
 * user's cancellation (cancel_requested) and the stopping server noticed at each report, and the
 * end recorded: done, failed, cancelled, or handed back to the queue when the server stops. */
#ifndef PULSE_JOBS_JOBRUN_H
#define PULSE_JOBS_JOBRUN_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "jobs/jobs.h"

#define PULSE_JOBRUN_CANCELLED_MSG "cancelled by a user; nothing was stored"
#define PULSE_JOBRUN_HANDED_BACK_MSG "handed back to the queue: the server is stopping"

typedef struct pulse_jobrun_t {
    PGconn *ctl; /* the job row's connection (pulse_app); NULL: nothing is written */
    const char *job_id, *tenant;
    volatile int *stop; /* non-zero: the server is stopping (NULL: never) */
    pulse_job_observer observer;
    void *ud;
    int counts_bytes; /* the kind reports bytes, accepted and rejected rows, rows/s and ETA (imports) */
    double started, last_write;
    char last_phase[64];
    pulse_job_progress_t last; /* the last report (its phase in last_phase) */
    int cancelled, stopping;
} pulse_jobrun_t;

/* Starts the bookkeeping of a claimed job; the strings are borrowed for the run. */
void pulse_jobrun_init(pulse_jobrun_t *r, PGconn *ctl, const char *job_id, const char *tenant, volatile int *stop,
                       pulse_job_observer observer, void *ud);
double pulse_jobrun_now(void);

/* Reports p to the observer and the job row (a new phase, or force, writes at once; the same
 * phase at most every 250 ms) and reads cancel_requested. Returns non-zero when the job must end
 * now: a user cancelled it (r->cancelled) or the server is stopping (r->stopping). */
int pulse_jobrun_progress(pulse_jobrun_t *r, const pulse_job_progress_t *p, int force);
/* The same with a phase, a percent and rows read (the jobs that count no bytes). */
int pulse_jobrun_step(pulse_jobrun_t *r, const char *phase, double percent, uint64_t rows, int force);
/* Asks again at a natural step with nothing new to report (before a commit): the last report
 * written at once. Same return as pulse_jobrun_progress. */
int pulse_jobrun_check(pulse_jobrun_t *r);
/* 1 when the server is stopping (a statement that failed just now was probably interrupted). */
int pulse_jobrun_stopping(pulse_jobrun_t *r);

/* A kind's own record of the end (the import's imports row), written in the same transaction as
 * the job row. */
typedef struct pulse_jobrun_extra_t {
    const char *sql;
    int n;
    const char *const *params;
} pulse_jobrun_extra_t;

/* Records the end in out and the job row: state done/failed/cancelled with an error code and
 * message (NULL: none) and the result JSON (NULL: none); "queued" hands the job back to the queue,
 * this attempt not counted. counts_bytes: the rows of out are written too. extra may be NULL. */
void pulse_jobrun_finish(pulse_jobrun_t *r, pulse_job_outcome_t *out, const char *state, const char *code, const char *msg,
                         const char *result_json, const pulse_jobrun_extra_t *extra);
/* Ends a job that a report told to stop: cancelled (nothing stored) or handed back. Returns -1. */
int pulse_jobrun_interrupted(pulse_jobrun_t *r, pulse_job_outcome_t *out);
/* Ends a job that failed with code and msg, or hands it back when the server is stopping (its
 * statement was interrupted, not wrong). Returns -1. */
int pulse_jobrun_fail(pulse_jobrun_t *r, pulse_job_outcome_t *out, const char *code, const char *msg);

#endif
