/* One import job (see jobs.h): the plan from the job's params, the file's hash (an identical file
 * already imported is not read again), the loader with progress written to the job row, a
 * heartbeat while it runs, and the outcome in the jobs and imports rows. Every statement runs as
 * pulse_app inside a transaction for the job's tenant: Row-Level Security applies here too. */
#include "core/buf.h"
#include "core/log.h"
#include "ingest/load.h"
#include "jobs/jobs.h"
#include "jobs/score_job.h"
#include "jobs/train_job.h"
#include "script/script.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lualib.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROGRESS_EVERY_S 0.25
#define READ_SHARE 90.0 /* percent of the bar for reading; storing and merging share the rest */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

PGresult *pulse_jobs_tenant_exec(PGconn *c, const char *tenant, const char *sql, int n, const char *const *params, char *err,
                                 size_t errlen)
{
    PGresult *r = PQexec(c, "BEGIN");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (ok) {
        const char *t[] = {tenant};
        r = PQexecParams(c, "SELECT set_config('pulse.tenant_id', $1, true)", 1, NULL, t, NULL, NULL, 0);
        ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
    }
    PGresult *res = NULL;
    if (ok) {
        res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    }
    if (ok) {
        r = PQexec(c, "COMMIT");
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
    }
    if (!ok) {
        snprintf(err, errlen, "%s", PQerrorMessage(c));
        PQclear(res);
        r = PQexec(c, "ROLLBACK");
        PQclear(r);
        return NULL;
    }
    return res;
}

/* --- heartbeat --- */

typedef struct beat_t {
    const pulse_config_t *cfg;
    PGconn *conn;
    const char *job_id, *tenant;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} beat_t;

static void *beat_main(void *arg)
{
    beat_t *b = arg;
    double every = b->cfg->job_stale_seconds / 6.0;
    if (every < 0.2)
        every = 0.2;
    pthread_mutex_lock(&b->mu);
    while (!b->done) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long ns = until.tv_nsec + (long)((every - (long)every) * 1e9);
        until.tv_sec += (time_t)every + ns / 1000000000L;
        until.tv_nsec = ns % 1000000000L;
        pthread_cond_timedwait(&b->cv, &b->mu, &until);
        if (b->done)
            break;
        pthread_mutex_unlock(&b->mu);
        char err[256];
        const char *p[] = {b->job_id};
        PGresult *r = pulse_jobs_tenant_exec(b->conn, b->tenant, "UPDATE jobs SET heartbeat_at = now() WHERE id = $1", 1, p, err,
                                             sizeof(err));
        if (r == NULL)
            pulse_log(PULSE_LOG_WARN, "jobs.heartbeat", "job %s: heartbeat failed: %s", b->job_id, err);
        PQclear(r);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* The heartbeat has its own connection: the worker's are busy inside the loader's statements. */
static int beat_start(beat_t *b, const pulse_config_t *cfg, PGconn *like, const char *job_id, const char *tenant)
{
    memset(b, 0, sizeof(*b));
    b->cfg = cfg;
    b->job_id = job_id;
    b->tenant = tenant;
    /* the same server, database, user and options as the worker's connection */
    const char *keys[] = {"host", "port", "dbname", "user", "password", "options", "application_name", NULL};
    PQconninfoOption *opts = PQconninfo(like);
    const char *vals[8] = {NULL};
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        for (int i = 0; keys[i]; i++)
            if (strcmp(o->keyword, keys[i]) == 0)
                vals[i] = o->val;
    vals[6] = "pulse-heartbeat";
    b->conn = PQconnectdbParams(keys, vals, 0);
    PQconninfoFree(opts);
    if (PQstatus(b->conn) != CONNECTION_OK) {
        pulse_log(PULSE_LOG_WARN, "jobs.heartbeat", "job %s: no heartbeat connection: %s", job_id, PQerrorMessage(b->conn));
        PQfinish(b->conn);
        b->conn = NULL;
        return -1;
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    if (pthread_create(&b->thread, NULL, beat_main, b) != 0) {
        PQfinish(b->conn);
        b->conn = NULL;
        return -1;
    }
    return 0;
}

static void beat_stop(beat_t *b)
{
    if (b->conn == NULL)
        return;
    pthread_mutex_lock(&b->mu);
    b->done = 1;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    PQfinish(b->conn);
    b->conn = NULL;
}

pulse_job_beat_t *pulse_job_beat_start(const pulse_config_t *cfg, PGconn *like, const char *job_id, const char *tenant)
{
    beat_t *b = pulse_xmalloc(sizeof(*b));
    beat_start(b, cfg, like, job_id, tenant);
    return (pulse_job_beat_t *)b;
}

void pulse_job_beat_stop(pulse_job_beat_t *b)
{
    if (b == NULL)
        return;
    beat_stop((beat_t *)b);
    free(b);
}

/* --- progress --- */

typedef struct run_t {
    const pulse_config_t *cfg;
    PGconn *ctl;
    const char *job_id, *tenant;
    volatile int *stop;
    pulse_job_observer observer;
    void *ud;
    double started, last_write;
    const char *last_phase;
    int cancel_requested, stopping;
} run_t;

static double percent_of(const pulse_import_progress_t *p)
{
    if (strcmp(p->phase, "done") == 0)
        return 100.0;
    if (strcmp(p->phase, "checking") == 0)
        return 0.0;
    if (strcmp(p->phase, "reading") != 0)
        return strcmp(p->phase, "storing") == 0 ? READ_SHARE : READ_SHARE + 5.0;
    if (p->bytes_total == 0)
        return 0.0;
    return READ_SHARE * (double)p->bytes_done / (double)p->bytes_total;
}

static int on_progress(void *ud, const pulse_import_progress_t *p)
{
    run_t *r = ud;
    double now = now_s();
    int phase_changed = r->last_phase == NULL || strcmp(r->last_phase, p->phase) != 0;
    if (r->stop != NULL && *r->stop) {
        r->stopping = 1;
        return 1;
    }
    if (!phase_changed && now - r->last_write < PROGRESS_EVERY_S)
        return 0;
    r->last_phase = p->phase;
    r->last_write = now;
    double elapsed = now - r->started;
    pulse_job_progress_t jp = {p->phase,         percent_of(p),   0, -1, p->bytes_done, p->bytes_total, p->rows_read,
                               p->rows_accepted, p->rows_rejected};
    if (elapsed > 0.05)
        jp.rows_per_second = (double)p->rows_read / elapsed;
    if (strcmp(p->phase, "reading") == 0 && p->bytes_done > 0 && p->bytes_total >= p->bytes_done && elapsed > 0.05)
        jp.eta_seconds = (double)(p->bytes_total - p->bytes_done) / ((double)p->bytes_done / elapsed);
    if (r->observer && r->observer(r->ud, &jp) != 0) {
        r->cancel_requested = 1;
        return 1;
    }
    char pct[32], bd[32], bt[32], rr[32], ra[32], rj[32], rps[32], eta[32];
    snprintf(pct, sizeof(pct), "%.2f", jp.percent);
    snprintf(bd, sizeof(bd), "%llu", (unsigned long long)p->bytes_done);
    snprintf(bt, sizeof(bt), "%llu", (unsigned long long)p->bytes_total);
    snprintf(rr, sizeof(rr), "%llu", (unsigned long long)p->rows_read);
    snprintf(ra, sizeof(ra), "%llu", (unsigned long long)p->rows_accepted);
    snprintf(rj, sizeof(rj), "%llu", (unsigned long long)p->rows_rejected);
    snprintf(rps, sizeof(rps), "%.0f", jp.rows_per_second);
    snprintf(eta, sizeof(eta), "%.1f", jp.eta_seconds);
    const char *params[] = {r->job_id, p->phase, pct, bd, bt, rr, ra, rj, rps, jp.eta_seconds >= 0 ? eta : NULL};
    char err[256];
    PGresult *res =
        pulse_jobs_tenant_exec(r->ctl, r->tenant,
                               "UPDATE jobs SET phase = $2, progress = $3, bytes_done = $4, bytes_total = $5, rows_read = $6, "
                               "rows_accepted = $7, rows_rejected = $8, rows_per_second = $9, eta_seconds = $10, "
                               "heartbeat_at = now() WHERE id = $1 RETURNING cancel_requested",
                               10, params, err, sizeof(err));
    if (res == NULL) {
        pulse_log(PULSE_LOG_WARN, "jobs.progress", "job %s: cannot write progress: %s", r->job_id, err);
        return 0;
    }
    if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 0), "t") == 0)
        r->cancel_requested = 1; /* cancelled, or the job row was deleted */
    PQclear(res);
    return r->cancel_requested;
}

/* --- the job --- */

typedef struct params_t {
    pulse_import_plan_t plan;
    char file[1024];
    char kind[32];
    int keep_file;
} params_t;

/* Reads the job's params JSON ({file =, plan = {...}}) into p. */
static int read_params(const pulse_config_t *cfg, const char *json, params_t *p, char *err, size_t errlen)
{
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pulse_script_open(L, cfg, NULL);
    int rc = -1;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "json");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        snprintf(err, errlen, "json module: %s", lua_tostring(L, -1));
        goto out;
    }
    lua_getfield(L, -1, "decode");
    lua_pushstring(L, json);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
        snprintf(err, errlen, "the job's parameters are not a JSON object");
        goto out;
    }
    int t = lua_gettop(L);
    if (lua_getfield(L, t, "file") != LUA_TSTRING) {
        snprintf(err, errlen, "the job names no file");
        goto out;
    }
    snprintf(p->file, sizeof(p->file), "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_getfield(L, t, "keep_file");
    p->keep_file = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, t, "plan") != LUA_TTABLE) {
        snprintf(err, errlen, "the job has no import plan");
        goto out;
    }
    pulse_import_plan_init(&p->plan);
    char perr[400];
    if (pulse_import_plan_from_lua(L, lua_gettop(L), &p->plan, perr, sizeof(perr)) != 0) {
        snprintf(err, errlen, "the import plan is not valid: %s", perr);
        goto out;
    }
    snprintf(p->kind, sizeof(p->kind), "%s", pulse_import_kind_name(p->plan.kind));
    rc = 0;
out:
    lua_close(L);
    return rc;
}

/* SHA-256 of the file as 64 hex digits. */
static int file_sha256(const char *path, char hex[65], char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "the uploaded file is gone (%s): upload it again", strerror(errno));
        return -1;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    static __thread char buf[1 << 20];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
        if (n > 0)
            EVP_DigestUpdate(ctx, buf, (size_t)n);
    int rc = n < 0 ? -1 : 0;
    if (rc != 0)
        snprintf(err, errlen, "cannot read the uploaded file: %s", strerror(errno));
    unsigned char md[32];
    EVP_DigestFinal_ex(ctx, md, NULL);
    EVP_MD_CTX_free(ctx);
    close(fd);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return rc;
}

static void set_outcome(pulse_job_outcome_t *out, const char *state, const char *code, const char *msg)
{
    snprintf(out->state, sizeof(out->state), "%s", state);
    snprintf(out->error_code, sizeof(out->error_code), "%s", code ? code : "");
    snprintf(out->error, sizeof(out->error), "%s", msg ? msg : "");
}

/* Writes the outcome to the imports and jobs rows in one transaction. */
static void record_outcome(run_t *r, const pulse_job_outcome_t *out, const char *import_state, const char *report,
                           const pulse_import_result_t *res, const char *result_json)
{
    char rr[32], ra[32], rj[32], rd[32], re[32];
    snprintf(rr, sizeof(rr), "%llu", (unsigned long long)(res ? res->rows_read : 0));
    snprintf(ra, sizeof(ra), "%llu", (unsigned long long)(res ? res->rows_accepted : 0));
    snprintf(rj, sizeof(rj), "%llu", (unsigned long long)(res ? res->rows_rejected : 0));
    snprintf(rd, sizeof(rd), "%llu", (unsigned long long)(res ? res->rows_duplicate : 0));
    snprintf(re, sizeof(re), "%llu", (unsigned long long)(res ? res->rows_existing : 0));
    int done = strcmp(out->state, "done") == 0;
    const char *params[] = {r->job_id,
                            out->state,
                            out->error_code[0] ? out->error_code : NULL,
                            out->error[0] ? out->error : NULL,
                            import_state,
                            report,
                            rr,
                            ra,
                            rj,
                            rd,
                            re,
                            result_json,
                            done ? "100" : NULL};
    char err[256];
    PGresult *x =
        pulse_jobs_tenant_exec(r->ctl, r->tenant,
                               "WITH i AS (UPDATE imports SET state = $5, report = $6::jsonb, rows_read = $7, rows_accepted = $8, "
                               "rows_rejected = $9, rows_duplicate = $10, rows_existing = $11, finished_at = now() "
                               "WHERE id = $1 RETURNING id) "
                               "UPDATE jobs SET state = $2, error_code = $3, error = $4, phase = $2, result = $12::jsonb, "
                               "progress = coalesce($13::real, progress), rows_read = $7, rows_accepted = $8, rows_rejected = $9, "
                               "eta_seconds = NULL, finished_at = now(), heartbeat_at = now() WHERE id = $1",
                               13, params, err, sizeof(err));
    if (x == NULL)
        pulse_log(PULSE_LOG_ERROR, "jobs.finish", "job %s: cannot record its outcome: %s", r->job_id, err);
    PQclear(x);
}

/* The server stopped while the job ran: back in the queue, this attempt not counted. */
static void hand_back(run_t *r, pulse_job_outcome_t *out)
{
    const char *params[] = {r->job_id};
    char err[256];
    PGresult *x = pulse_jobs_tenant_exec(r->ctl, r->tenant,
                                         "UPDATE jobs SET state = 'queued', attempts = greatest(attempts - 1, 0), progress = 0, "
                                         "phase = 'queued again: the server stopped while it ran', started_at = NULL WHERE id = $1",
                                         1, params, err, sizeof(err));
    PQclear(x);
    x = PQexec(r->ctl, "NOTIFY pulse_jobs");
    PQclear(x);
    set_outcome(out, "queued", NULL, "handed back to the queue: the server is stopping");
}

/* Looks for an earlier import of the same file and kind. Returns 1 (id in dup), 0, or -1. */
static int find_duplicate(run_t *r, const char *hash, const char *kind, char dup[40], char *err, size_t errlen)
{
    const char *params[] = {r->job_id, hash, kind};
    PGresult *x =
        pulse_jobs_tenant_exec(r->ctl, r->tenant,
                               "WITH h AS (UPDATE imports SET content_hash = $2 WHERE id = $1) "
                               "SELECT id FROM imports WHERE content_hash = $2 AND kind = $3 AND state = 'done' AND id <> $1 "
                               "ORDER BY created_at LIMIT 1",
                               3, params, err, errlen);
    if (x == NULL)
        return -1;
    int found = PQntuples(x) > 0;
    if (found)
        snprintf(dup, 40, "%s", PQgetvalue(x, 0, 0));
    PQclear(x);
    return found;
}

static void result_json(pulse_buf_t *b, const char *dup, const pulse_import_result_t *res)
{
    pulse_buf_puts(b, "{\"import_id\":\"");
    pulse_buf_puts(b, dup ? dup : "");
    pulse_buf_putc(b, '"');
    if (res != NULL) {
        char tmp[256];
        snprintf(tmp, sizeof(tmp),
                 ",\"rows_read\":%llu,\"rows_accepted\":%llu,\"rows_rejected\":%llu,\"rows_duplicate\":%llu,"
                 "\"rows_existing\":%llu,\"customers_created\":%llu",
                 (unsigned long long)res->rows_read, (unsigned long long)res->rows_accepted, (unsigned long long)res->rows_rejected,
                 (unsigned long long)res->rows_duplicate, (unsigned long long)res->rows_existing,
                 (unsigned long long)res->customers_created);
        pulse_buf_puts(b, tmp);
    }
    pulse_buf_putc(b, '}');
}

int pulse_job_run(const pulse_config_t *cfg, PGconn *ctl, PGconn *work, const char *job_id, const char *tenant_id, const char *kind,
                  const char *params_json, volatile int *stop, pulse_job_observer observer, void *ud, pulse_job_outcome_t *out)
{
    memset(out, 0, sizeof(*out));
    run_t r = {cfg, ctl, job_id, tenant_id, stop, observer, ud, now_s(), 0, NULL, 0, 0};
    char err[512];
    if (strcmp(kind, "segment") == 0)
        return pulse_segment_job_run(cfg, ctl, work, job_id, tenant_id, params_json, stop, observer, ud, out);
    if (strcmp(kind, "cluster") == 0)
        return pulse_cluster_job_run(cfg, ctl, work, job_id, tenant_id, params_json, stop, observer, ud, out);
    if (strcmp(kind, "train") == 0 || strcmp(kind, "score") == 0)
        return (kind[0] == 't' ? pulse_train_job_run : pulse_score_job_run)(cfg, ctl, work, job_id, tenant_id, params_json, out);
    if (strcmp(kind, "import") != 0) {
        set_outcome(out, "failed", "unknown_job", "this server does not know jobs of this kind");
        record_outcome(&r, out, "failed", NULL, NULL, NULL);
        return -1;
    }
    params_t *p = calloc(1, sizeof(*p));
    if (read_params(cfg, params_json, p, err, sizeof(err)) != 0) {
        set_outcome(out, "failed", "bad_plan", err);
        record_outcome(&r, out, "failed", NULL, NULL, NULL);
        free(p);
        return -1;
    }
    beat_t beat;
    beat_start(&beat, cfg, ctl, job_id, tenant_id);
    struct stat st;
    uint64_t size = stat(p->file, &st) == 0 ? (uint64_t)st.st_size : 0;
    pulse_import_progress_t first = {"checking", 0, size, 0, 0, 0};
    on_progress(&r, &first);

    char hash[65], dup[40];
    int found = file_sha256(p->file, hash, err, sizeof(err)) == 0 ? find_duplicate(&r, hash, p->kind, dup, err, sizeof(err)) : -2;
    pulse_import_result_t res;
    memset(&res, 0, sizeof(res));
    pulse_buf_t result = PULSE_BUF_INIT;
    int terminal = 1;
    if (found == -2) {
        set_outcome(out, "failed", "io", err);
        record_outcome(&r, out, "failed", NULL, NULL, NULL);
    } else if (found < 0) {
        set_outcome(out, "failed", "database", err);
        record_outcome(&r, out, "failed", NULL, NULL, NULL);
    } else if (found == 1) {
        /* the same bytes were imported already: nothing to add (the report says so) */
        char report[256];
        snprintf(report, sizeof(report), "{\"duplicate_of\":\"%s\",\"rows_read\":0,\"rows_accepted\":0,\"issues\":[]}", dup);
        result_json(&result, dup, &res);
        set_outcome(out, "done", NULL, NULL);
        record_outcome(&r, out, "done", report, &res, result.data);
    } else {
        pulse_import_run(work, tenant_id, job_id, &p->plan, p->file, on_progress, &r, &res);
        out->rows_read = res.rows_read;
        out->rows_accepted = res.rows_accepted;
        out->rows_rejected = res.rows_rejected;
        result_json(&result, job_id, &res);
        int stopping = r.stopping || (stop != NULL && *stop); /* cancelled, or its statement interrupted */
        if (res.status != PULSE_IMPORT_OK && stopping && !r.cancel_requested) {
            hand_back(&r, out);
            terminal = 0;
        } else if (res.status == PULSE_IMPORT_CANCELLED) {
            set_outcome(out, "cancelled", "cancelled", "cancelled by a user; nothing was stored");
            record_outcome(&r, out, "cancelled", res.report_json, &res, result.data);
        } else if (res.status == PULSE_IMPORT_OK) {
            set_outcome(out, "done", NULL, NULL);
            pulse_import_progress_t last = {"done", size, size, res.rows_read, res.rows_accepted, res.rows_rejected};
            on_progress(&r, &last);
            record_outcome(&r, out, "done", res.report_json, &res, result.data);
        } else {
            set_outcome(out, "failed", res.error_code[0] ? res.error_code : "failed", res.error);
            record_outcome(&r, out, "failed", res.report_json, &res, result.data);
        }
    }
    beat_stop(&beat);
    if (terminal && !p->keep_file)
        unlink(p->file); /* kept only while the job may still run */
    pulse_buf_free(&result);
    free(res.report_json);
    free(p);
    return strcmp(out->state, "done") == 0 ? 0 : -1;
}
