/* One import job (see jobs.h): the plan from the job's params, the file's hash (an identical file
 * already imported is not read again), the loader with progress written to the job row, a
 * heartbeat while it runs, and the outcome in the jobs and imports rows. Every statement runs as
 * pulse_app inside a transaction for the job's tenant: Row-Level Security applies here too. */
#include "core/buf.h"
#include "core/log.h"
#include "ingest/load.h"
#include "jobs/jobs.h"
#include "jobs/jobrun.h"
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

#define READ_SHARE 90.0 /* percent of the bar for reading; storing and merging share the rest */

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

/* The loader's progress as the job row has it: the bar's percent, rows/s, and the ETA while reading. */
static int on_progress(void *ud, const pulse_import_progress_t *p)
{
    pulse_jobrun_t *r = ud;
    double elapsed = pulse_jobrun_now() - r->started;
    pulse_job_progress_t jp = {p->phase,         percent_of(p),   0, -1, p->bytes_done, p->bytes_total, p->rows_read,
                               p->rows_accepted, p->rows_rejected};
    if (elapsed > 0.05)
        jp.rows_per_second = (double)p->rows_read / elapsed;
    if (strcmp(p->phase, "reading") == 0 && p->bytes_done > 0 && p->bytes_total >= p->bytes_done && elapsed > 0.05)
        jp.eta_seconds = (double)(p->bytes_total - p->bytes_done) / ((double)p->bytes_done / elapsed);
    return pulse_jobrun_progress(r, &jp, 0);
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

/* Ends the job: its row and the import's row (state, report, counts) in one transaction. res
 * NULL: nothing was read. */
static void finish(pulse_jobrun_t *r, pulse_job_outcome_t *out, const char *state, const char *code, const char *msg,
                   const char *report, const pulse_import_result_t *res, const char *result_json)
{
    pulse_import_result_t none;
    if (res == NULL) {
        memset(&none, 0, sizeof(none));
        res = &none;
    }
    out->rows_read = res->rows_read;
    out->rows_accepted = res->rows_accepted;
    out->rows_rejected = res->rows_rejected;
    char rr[32], ra[32], rj[32], rd[32], re[32];
    snprintf(rr, sizeof(rr), "%llu", (unsigned long long)res->rows_read);
    snprintf(ra, sizeof(ra), "%llu", (unsigned long long)res->rows_accepted);
    snprintf(rj, sizeof(rj), "%llu", (unsigned long long)res->rows_rejected);
    snprintf(rd, sizeof(rd), "%llu", (unsigned long long)res->rows_duplicate);
    snprintf(re, sizeof(re), "%llu", (unsigned long long)res->rows_existing);
    const char *params[] = {r->job_id, state, report, rr, ra, rj, rd, re};
    pulse_jobrun_extra_t import_row = {"UPDATE imports SET state = $2, report = $3::jsonb, rows_read = $4, rows_accepted = $5, "
                                       "rows_rejected = $6, rows_duplicate = $7, rows_existing = $8, finished_at = now() "
                                       "WHERE id = $1",
                                       8, params};
    pulse_jobrun_finish(r, out, state, code, msg, result_json, &import_row);
}

/* Looks for an earlier import of the same file and kind. Returns 1 (id in dup), 0, or -1. */
static int find_duplicate(pulse_jobrun_t *r, const char *hash, const char *kind, char dup[40], char *err, size_t errlen)
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
    pulse_jobrun_t r;
    pulse_jobrun_init(&r, ctl, job_id, tenant_id, stop, observer, ud);
    r.counts_bytes = 1;
    char err[512];
    if (strcmp(kind, "segment") == 0)
        return pulse_segment_job_run(cfg, ctl, work, job_id, tenant_id, params_json, stop, observer, ud, out);
    if (strcmp(kind, "cluster") == 0)
        return pulse_cluster_job_run(cfg, ctl, work, job_id, tenant_id, params_json, stop, observer, ud, out);
    if (strcmp(kind, "train") == 0 || strcmp(kind, "score") == 0)
        return (kind[0] == 't' ? pulse_train_job_run : pulse_score_job_run)(cfg, ctl, work, job_id, tenant_id, params_json, stop,
                                                                            observer, ud, out);
    if (strcmp(kind, "import") != 0) {
        finish(&r, out, "failed", "unknown_job", "this server does not know jobs of this kind", NULL, NULL, NULL);
        return -1;
    }
    params_t *p = calloc(1, sizeof(*p));
    if (read_params(cfg, params_json, p, err, sizeof(err)) != 0) {
        finish(&r, out, "failed", "bad_plan", err, NULL, NULL, NULL);
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
        finish(&r, out, "failed", "io", err, NULL, NULL, NULL);
    } else if (found < 0) {
        finish(&r, out, "failed", "database", err, NULL, NULL, NULL);
    } else if (found == 1) {
        /* the same bytes were imported already: nothing to add (the report says so) */
        char report[256];
        snprintf(report, sizeof(report), "{\"duplicate_of\":\"%s\",\"rows_read\":0,\"rows_accepted\":0,\"issues\":[]}", dup);
        result_json(&result, dup, &res);
        finish(&r, out, "done", NULL, NULL, report, &res, result.data);
    } else {
        pulse_import_run(work, tenant_id, job_id, &p->plan, p->file, on_progress, &r, &res);
        out->rows_read = res.rows_read;
        out->rows_accepted = res.rows_accepted;
        out->rows_rejected = res.rows_rejected;
        result_json(&result, job_id, &res);
        /* cancelled, or its statement interrupted by the stopping server */
        if (res.status != PULSE_IMPORT_OK && pulse_jobrun_stopping(&r) && !r.cancelled) {
            pulse_jobrun_finish(&r, out, "queued", NULL, PULSE_JOBRUN_HANDED_BACK_MSG, NULL, NULL);
            terminal = 0;
        } else if (res.status == PULSE_IMPORT_CANCELLED) {
            finish(&r, out, "cancelled", "cancelled", PULSE_JOBRUN_CANCELLED_MSG, res.report_json, &res, result.data);
        } else if (res.status == PULSE_IMPORT_OK) {
            pulse_import_progress_t last = {"done", size, size, res.rows_read, res.rows_accepted, res.rows_rejected};
            on_progress(&r, &last);
            finish(&r, out, "done", NULL, NULL, res.report_json, &res, result.data);
        } else {
            finish(&r, out, "failed", res.error_code[0] ? res.error_code : "failed", res.error, res.report_json, &res, result.data);
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
