/* The job workers (see jobs.h): claim, run, wait for a NOTIFY or a second, again. */
#include "jobs/jobs.h"
#include "core/log.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_ATTEMPTS 3
#define IDLE_WAIT_MS 1000

typedef struct worker_t {
    struct pulse_jobs_t *jobs;
    pthread_t thread;
    int index, started;
    pthread_mutex_t mu; /* guards cancel */
    PGcancel *cancel;   /* for the work connection: stopping interrupts a long statement */
} worker_t;

struct pulse_jobs_t {
    const pulse_config_t *cfg;
    char *conninfo;
    volatile int stop;
    int wake[2]; /* a byte here wakes the idle workers (stop) */
    worker_t *workers;
    int nworkers;
};

PGconn *pulse_jobs_connect(const pulse_config_t *cfg, const char *conninfo, const char *app_name, char *err, size_t errlen)
{
    char options[256];
    snprintf(options, sizeof(options), "-c statement_timeout=0 -c role=%s -c TimeZone=UTC -c DateStyle=ISO", cfg->db_role);
    const char *keys[] = {"dbname", "application_name", "options", "connect_timeout", NULL};
    const char *vals[] = {conninfo, app_name, options, "10", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to the database: %s", c ? PQerrorMessage(c) : "out of memory");
        size_t n = strlen(err);
        while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
            err[--n] = '\0';
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Waits for a NOTIFY on ctl, the wake pipe, or the timeout. */
static void wait_for_work(pulse_jobs_t *jobs, PGconn *ctl)
{
    struct pollfd fds[2] = {{ctl ? PQsocket(ctl) : -1, POLLIN, 0}, {jobs->wake[0], POLLIN, 0}};
    if (poll(fds, 2, IDLE_WAIT_MS) > 0 && (fds[0].revents & POLLIN)) {
        PQconsumeInput(ctl);
        PGnotify *n;
        while ((n = PQnotifies(ctl)) != NULL)
            PQfreemem(n);
    }
}

/* One claim: 1 when a job ran, 0 when the queue was empty, -1 when the connection broke. */
static int claim_and_run(pulse_jobs_t *jobs, PGconn *ctl, PGconn *work)
{
    char stale[32], attempts[16];
    snprintf(stale, sizeof(stale), "%d seconds", jobs->cfg->job_stale_seconds);
    snprintf(attempts, sizeof(attempts), "%d", MAX_ATTEMPTS);
    const char *params[] = {stale, attempts};
    PGresult *res = PQexecParams(ctl, "SELECT id, tenant_id, kind, params::text FROM pulse_job_claim($1::interval, $2::int)", 2,
                                 NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pulse_log(PULSE_LOG_WARN, "jobs.claim", "cannot claim a job: %s", PQerrorMessage(ctl));
        PQclear(res);
        return PQstatus(ctl) == CONNECTION_OK ? 0 : -1;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        return 0;
    }
    pulse_job_outcome_t out;
    const char *id = PQgetvalue(res, 0, 0), *tenant = PQgetvalue(res, 0, 1);
    pulse_log(PULSE_LOG_INFO, "jobs.start", "job %s (%s) started for tenant %s", id, PQgetvalue(res, 0, 2), tenant);
    pulse_job_run(jobs->cfg, ctl, work, id, tenant, PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3), &jobs->stop, NULL, NULL, &out);
    pulse_log(PULSE_LOG_INFO, "jobs.end", "job %s %s: %llu rows read, %llu accepted, %llu rejected%s%s", id, out.state,
              (unsigned long long)out.rows_read, (unsigned long long)out.rows_accepted, (unsigned long long)out.rows_rejected,
              out.error[0] ? "; " : "", out.error);
    PQclear(res);
    return 1;
}

/* Keeps (or drops, with NULL) the cancel handle of the worker's work connection. */
static void set_cancel(worker_t *w, PGconn *work)
{
    pthread_mutex_lock(&w->mu);
    if (w->cancel != NULL)
        PQfreeCancel(w->cancel);
    w->cancel = work ? PQgetCancel(work) : NULL;
    pthread_mutex_unlock(&w->mu);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    pulse_jobs_t *jobs = w->jobs;
    PGconn *ctl = NULL, *work = NULL;
    char err[512], name[32];
    snprintf(name, sizeof(name), "pulse-jobs-%d", w->index);
    int failures = 0;
    while (!jobs->stop) {
        if (ctl == NULL || work == NULL || PQstatus(ctl) != CONNECTION_OK || PQstatus(work) != CONNECTION_OK) {
            set_cancel(w, NULL);
            PQfinish(ctl);
            PQfinish(work);
            work = NULL;
            ctl = pulse_jobs_connect(jobs->cfg, jobs->conninfo, name, err, sizeof(err));
            if (ctl != NULL)
                work = pulse_jobs_connect(jobs->cfg, jobs->conninfo, name, err, sizeof(err));
            PGresult *res = work ? PQexec(ctl, "LISTEN pulse_jobs") : NULL;
            PQclear(res);
            if (work == NULL) {
                if (failures++ % 30 == 0)
                    pulse_log(PULSE_LOG_WARN, "jobs.connect", "job worker %d: %s (retrying)", w->index, err);
                PQfinish(ctl);
                ctl = NULL;
                wait_for_work(jobs, NULL); /* the wake pipe or a second */
                continue;
            }
            failures = 0;
            set_cancel(w, work);
        }
        int ran = claim_and_run(jobs, ctl, work);
        if (ran == 0)
            wait_for_work(jobs, ctl);
    }
    set_cancel(w, NULL);
    PQfinish(ctl);
    PQfinish(work);
    return NULL;
}

pulse_jobs_t *pulse_jobs_start(const pulse_config_t *cfg, const char *conninfo, char *err, size_t errlen)
{
    pulse_jobs_t *jobs = calloc(1, sizeof(*jobs));
    if (jobs == NULL || pipe(jobs->wake) != 0) {
        snprintf(err, errlen, "cannot start the job workers: %s", strerror(errno));
        free(jobs);
        return NULL;
    }
    jobs->cfg = cfg;
    jobs->conninfo = strdup(conninfo);
    jobs->nworkers = cfg->job_threads;
    jobs->workers = calloc((size_t)(jobs->nworkers > 0 ? jobs->nworkers : 1), sizeof(worker_t));
    for (int i = 0; i < jobs->nworkers; i++) {
        worker_t *w = &jobs->workers[i];
        w->jobs = jobs;
        w->index = i;
        pthread_mutex_init(&w->mu, NULL);
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            snprintf(err, errlen, "cannot start job worker %d: %s", i, strerror(rc));
            pulse_jobs_stop(jobs);
            return NULL;
        }
        w->started = 1;
    }
    if (jobs->nworkers > 0)
        pulse_log(PULSE_LOG_INFO, "jobs.ready", "%d job worker%s waiting for imports", jobs->nworkers,
                  jobs->nworkers > 1 ? "s" : "");
    return jobs;
}

void pulse_jobs_stop(pulse_jobs_t *jobs)
{
    if (jobs == NULL)
        return;
    jobs->stop = 1;
    for (int i = 0; i < jobs->nworkers; i++)
        if (write(jobs->wake[1], "x", 1) < 0)
            break;
    /* a statement running for minutes (the insert of a big upload) stops now, not at its end */
    for (int i = 0; i < jobs->nworkers; i++) {
        worker_t *w = &jobs->workers[i];
        if (!w->started)
            continue;
        char err[256];
        pthread_mutex_lock(&w->mu);
        if (w->cancel != NULL)
            PQcancel(w->cancel, err, sizeof(err));
        pthread_mutex_unlock(&w->mu);
    }
    for (int i = 0; i < jobs->nworkers; i++)
        if (jobs->workers[i].started) {
            pthread_join(jobs->workers[i].thread, NULL);
            pthread_mutex_destroy(&jobs->workers[i].mu);
        }
    close(jobs->wake[0]);
    close(jobs->wake[1]);
    free(jobs->workers);
    free(jobs->conninfo);
    free(jobs);
}
