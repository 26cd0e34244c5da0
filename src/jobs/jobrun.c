/* The job row bookkeeping of every job kind (see jobrun.h). */
#include "jobs/jobrun.h"

#include "core/clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"
#include "jobs/analytics_job.h"

#define PROGRESS_EVERY_S 0.25

double pulse_jobrun_now(void)
{
    return pulse_now_s();
}

void pulse_jobrun_init(pulse_jobrun_t *r, PGconn *ctl, const char *job_id, const char *tenant, volatile int *stop,
                       pulse_job_observer observer, void *ud)
{
    memset(r, 0, sizeof(*r));
    r->ctl = ctl;
    r->job_id = job_id;
    r->tenant = tenant;
    r->stop = stop;
    r->observer = observer;
    r->ud = ud;
    r->started = pulse_jobrun_now();
}

int pulse_jobrun_stopping(pulse_jobrun_t *r)
{
    if (r->stop != NULL && *r->stop)
        r->stopping = 1;
    return r->stopping;
}

/* The UPDATE of the job row for p; its result says whether cancel_requested is set. */
static PGresult *write_progress(pulse_jobrun_t *r, const pulse_job_progress_t *p, char *err, size_t errlen)
{
    char pct[32], bd[32], bt[32], rr[32], ra[32], rj[32], rps[32], eta[32];
    snprintf(pct, sizeof(pct), "%.2f", p->percent);
    snprintf(rr, sizeof(rr), "%llu", (unsigned long long)p->rows_read);
    if (!r->counts_bytes) {
        const char *params[] = {r->job_id, p->phase, pct, rr};
        return pulse_jobs_tenant_exec(r->ctl, r->tenant,
                                      "UPDATE jobs SET phase = $2, progress = $3, rows_read = $4, heartbeat_at = now() "
                                      "WHERE id = $1 RETURNING cancel_requested",
                                      4, params, err, errlen);
    }
    snprintf(bd, sizeof(bd), "%llu", (unsigned long long)p->bytes_done);
    snprintf(bt, sizeof(bt), "%llu", (unsigned long long)p->bytes_total);
    snprintf(ra, sizeof(ra), "%llu", (unsigned long long)p->rows_accepted);
    snprintf(rj, sizeof(rj), "%llu", (unsigned long long)p->rows_rejected);
    snprintf(rps, sizeof(rps), "%.0f", p->rows_per_second);
    snprintf(eta, sizeof(eta), "%.1f", p->eta_seconds);
    const char *params[] = {r->job_id, p->phase, pct, bd, bt, rr, ra, rj, rps, p->eta_seconds >= 0 ? eta : NULL};
    return pulse_jobs_tenant_exec(r->ctl, r->tenant,
                                  "UPDATE jobs SET phase = $2, progress = $3, bytes_done = $4, bytes_total = $5, rows_read = $6, "
                                  "rows_accepted = $7, rows_rejected = $8, rows_per_second = $9, eta_seconds = $10, "
                                  "heartbeat_at = now() WHERE id = $1 RETURNING cancel_requested",
                                  10, params, err, errlen);
}

int pulse_jobrun_progress(pulse_jobrun_t *r, const pulse_job_progress_t *p, int force)
{
    if (pulse_jobrun_stopping(r))
        return 1;
    double now = pulse_jobrun_now();
    int new_phase = strcmp(r->last_phase, p->phase) != 0;
    if (!force && !new_phase && now - r->last_write < PROGRESS_EVERY_S)
        return r->cancelled;
    snprintf(r->last_phase, sizeof(r->last_phase), "%s", p->phase);
    r->last = *p;
    r->last.phase = r->last_phase;
    r->last_write = now;
    if (r->observer && r->observer(r->ud, p) != 0) {
        r->cancelled = 1; /* as a user would: the CLI's observer said so */
        return 1;
    }
    if (r->ctl == NULL)
        return r->cancelled;
    char err[256];
    PGresult *res = write_progress(r, p, err, sizeof(err));
    if (res == NULL) {
        pulse_log(PULSE_LOG_WARN, "jobs.progress", "job %s: cannot write progress: %s", r->job_id, err);
        return r->cancelled;
    }
    if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 0), "t") == 0)
        r->cancelled = 1; /* cancelled, or the job row was deleted */
    PQclear(res);
    return r->cancelled;
}

int pulse_jobrun_step(pulse_jobrun_t *r, const char *phase, double percent, uint64_t rows, int force)
{
    pulse_job_progress_t p = {phase, percent, 0, -1, 0, 0, rows, rows, 0};
    return pulse_jobrun_progress(r, &p, force);
}

int pulse_jobrun_check(pulse_jobrun_t *r)
{
    pulse_job_progress_t p = r->last;
    if (p.phase == NULL)
        p.phase = "running";
    return pulse_jobrun_progress(r, &p, 1);
}

static void set_outcome(pulse_job_outcome_t *out, const char *state, const char *code, const char *msg)
{
    snprintf(out->state, sizeof(out->state), "%s", state);
    snprintf(out->error_code, sizeof(out->error_code), "%s", code ? code : "");
    snprintf(out->error, sizeof(out->error), "%s", msg ? msg : "");
}

/* The server stopped while the job ran: back in the queue, this attempt not counted. */
static void hand_back(pulse_jobrun_t *r)
{
    const char *params[] = {r->job_id};
    char err[256];
    PGresult *x = pulse_jobs_tenant_exec(r->ctl, r->tenant,
                                         "UPDATE jobs SET state = 'queued', attempts = greatest(attempts - 1, 0), progress = 0, "
                                         "phase = 'queued again: the server stopped while it ran', started_at = NULL WHERE id = $1",
                                         1, params, err, sizeof(err));
    if (x == NULL)
        pulse_log(PULSE_LOG_ERROR, "jobs.finish", "job %s: cannot hand it back: %s", r->job_id, err);
    PQclear(x);
    x = PQexec(r->ctl, "NOTIFY pulse_jobs");
    PQclear(x);
}

static int exec_in_tx(PGconn *c, const char *sql, int n, const char *const *params, char *err, size_t errlen)
{
    PGresult *x = pulse_ajob_exec(c, sql, n, params, err, errlen);
    PQclear(x);
    return x != NULL ? 0 : -1;
}

/* The job row's end, and the kind's own record, in one tenant transaction. */
static int record_end(pulse_jobrun_t *r, const pulse_job_outcome_t *out, const char *result_json, const pulse_jobrun_extra_t *extra,
                      char *err, size_t errlen)
{
    char rr[32], ra[32], rj[32];
    snprintf(rr, sizeof(rr), "%llu", (unsigned long long)out->rows_read);
    snprintf(ra, sizeof(ra), "%llu", (unsigned long long)out->rows_accepted);
    snprintf(rj, sizeof(rj), "%llu", (unsigned long long)out->rows_rejected);
    const char *params[] = {r->job_id,
                            out->state,
                            out->error_code[0] ? out->error_code : NULL,
                            out->error[0] ? out->error : NULL,
                            result_json,
                            strcmp(out->state, "done") == 0 ? "100" : NULL,
                            rr,
                            ra,
                            rj};
    if (pulse_ajob_begin(r->ctl, r->tenant, err, errlen) != 0)
        return -1;
    int rc = extra ? exec_in_tx(r->ctl, extra->sql, extra->n, extra->params, err, errlen) : 0;
    if (rc == 0)
        rc = exec_in_tx(r->ctl,
                        r->counts_bytes
                            ? "UPDATE jobs SET state = $2, error_code = $3, error = $4, phase = $2, result = $5::jsonb, "
                              "progress = coalesce($6::real, progress), rows_read = $7, rows_accepted = $8, rows_rejected = $9, "
                              "eta_seconds = NULL, finished_at = now(), heartbeat_at = now() WHERE id = $1"
                            : "UPDATE jobs SET state = $2, error_code = $3, error = $4, phase = $2, result = $5::jsonb, "
                              "progress = coalesce($6::real, progress), eta_seconds = NULL, finished_at = now(), "
                              "heartbeat_at = now() WHERE id = $1",
                        r->counts_bytes ? 9 : 6, params, err, errlen);
    PGresult *x = PQexec(r->ctl, rc == 0 ? "COMMIT" : "ROLLBACK");
    if (rc == 0 && PQresultStatus(x) != PGRES_COMMAND_OK)
        rc = pulse_fail(err, errlen, "%s", PQerrorMessage(r->ctl));
    PQclear(x);
    return rc;
}

void pulse_jobrun_finish(pulse_jobrun_t *r, pulse_job_outcome_t *out, const char *state, const char *code, const char *msg,
                         const char *result_json, const pulse_jobrun_extra_t *extra)
{
    set_outcome(out, state, code, msg);
    if (r->ctl == NULL)
        return;
    if (strcmp(state, "queued") == 0) {
        hand_back(r);
        return;
    }
    char err[256];
    if (record_end(r, out, result_json, extra, err, sizeof(err)) != 0)
        pulse_log(PULSE_LOG_ERROR, "jobs.finish", "job %s: cannot record its outcome: %s", r->job_id, err);
}

int pulse_jobrun_interrupted(pulse_jobrun_t *r, pulse_job_outcome_t *out)
{
    if (pulse_jobrun_stopping(r) && !r->cancelled)
        pulse_jobrun_finish(r, out, "queued", NULL, PULSE_JOBRUN_HANDED_BACK_MSG, NULL, NULL);
    else
        pulse_jobrun_finish(r, out, "cancelled", "cancelled", PULSE_JOBRUN_CANCELLED_MSG, NULL, NULL);
    return -1;
}

int pulse_jobrun_fail(pulse_jobrun_t *r, pulse_job_outcome_t *out, const char *code, const char *msg)
{
    if (pulse_jobrun_stopping(r) && !r->cancelled)
        pulse_jobrun_finish(r, out, "queued", NULL, PULSE_JOBRUN_HANDED_BACK_MSG, NULL, NULL);
    else
        pulse_jobrun_finish(r, out, "failed", code, msg, NULL, NULL);
    return -1;
}
