/* Asynchronous libpq connection pool driven by an h2o event loop (see pg.h). */
#include "db/pg.h"
#include "core/buf.h"
#include "core/log.h"
#include "db/conninfo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Back-off between reconnect attempts; the last step repeats. */
static const uint64_t backoff_ms[] = {100, 200, 400, 800, 1600, 2000};
#define BACKOFF_STEPS (sizeof(backoff_ms) / sizeof(backoff_ms[0]))
#define MAX_PENDING 10000

typedef struct pg_job_t {
    struct pg_job_t *next;
    const char *sql;
    int nparams;
    const char **values;
    int *lengths;
    int flags;
    pulse_pg_pin_t *pin;
    pulse_pg_pin_t own_pin; /* fire-and-forget jobs (no cb) keep their pin here: the caller may be gone */
    pulse_pg_cb cb;
    void *data;
    uint32_t hash;           /* of sql, for the statement cache */
    char tenant[40];         /* "" or the UUID set for this query's transaction */
    PGresult *prepare_error; /* the Parse of its new statement failed: reported instead */
    int retried;             /* re-sent unnamed once after a stale cached plan */
} pg_job_t;

/* What a connection has on the wire, in order. Each step is followed by a Sync, so one failing
 * query never aborts its neighbours: results..., NULL, PGRES_PIPELINE_SYNC per step. */
typedef enum { STEP_PREPARE, STEP_EXECUTE } step_kind_t;
typedef struct pg_step_t {
    struct pg_step_t *next;
    pg_job_t *job;
    step_kind_t kind;
    int slot;         /* statement cache slot of a PREPARE */
    uint64_t sent_at; /* loop time (ms) it went on the wire */
    PGresult *result; /* first error, else last result, collected until the Sync */
} pg_step_t;

#define MAX_IN_FLIGHT 32 /* steps on the wire per connection */
#define SLOW_QUERY_MS 5  /* no new query is pipelined behind one that has run this long */
#define ON_DEMAND_MS 250 /* at most one early reconnect attempt per pool this often */

/* Statements a connection has prepared: parse and plan once, then only Bind/Execute. The SQL
 * of request handlers is a small fixed set (values always travel as parameters), so the cache
 * fills quickly and then stays put. */
#define STMT_CACHE_SIZE 256 /* power of two; past it, new statements run unnamed */
typedef struct stmt_entry_t {
    char *sql;
    uint32_t hash;
} stmt_entry_t;

typedef enum { CONN_BROKEN, CONN_CONNECTING, CONN_READY } conn_state_t;

struct pulse_pg_conn_t {
    pulse_pg_pool_t *pool;
    PGconn *pg;
    h2o_socket_t *sock; /* wraps a dup() of libpq's fd, so libpq may close its own */
    int sock_fd;        /* libpq's fd that sock mirrors */
    conn_state_t state;
    unsigned epoch;
    int reserved;                       /* pinned by a transaction */
    int ever_ready;                     /* connected at least once (for logging) */
    int verified;                       /* its set-up (statement, role check) has passed */
    pg_step_t *steps_head, *steps_tail; /* on the wire, oldest first */
    int in_flight;
    pg_job_t *pinned_head, *pinned_tail; /* queries of the owning transaction waiting their turn */
    stmt_entry_t stmts[STMT_CACHE_SIZE]; /* open addressing; the slot index names the statement */
    int stmt_count;
    unsigned backoff;
    h2o_timeout_entry_t retry;
};

struct pulse_pg_pool_t {
    h2o_loop_t *loop;
    char *conninfo;
    char options[200];
    char role[64];
    char last_error[512]; /* why the last connection failed: fail-fast answers repeat it */
    int size;
    pulse_pg_conn_t *conns;
    pg_job_t *pending_head, *pending_tail;
    size_t pending_count;
    h2o_timeout_t backoff[BACKOFF_STEPS];
    /* New queries are dispatched from a zero timeout, not inside pulse_pg_query, so a send
     * failure can never call back into the coroutine that is still submitting. */
    h2o_timeout_t zero;
    h2o_timeout_entry_t kick;
    int was_down; /* for one "database unavailable" / "database back" log pair */
    /* Traffic while every connection waits out its back-off asks for an early attempt (at most one
     * every ON_DEMAND_MS), so a database that is back is found by the next requests, not only by
     * the back-off timer up to 2 s later. */
    int reconnect_asked;
    uint64_t last_on_demand;
};

static void conn_connect(pulse_pg_conn_t *c);
static void conn_flush(pulse_pg_conn_t *c);
static void push_step(pulse_pg_conn_t *c, pg_job_t *job, step_kind_t kind, int slot);
static void conn_dispatch(pulse_pg_conn_t *c);
static void on_readable(h2o_socket_t *sock, const char *err);

/* --- jobs --- */

static pg_job_t *job_new(const char *sql, int nparams, const char *const *values, const int *lengths)
{
    size_t sql_len = strlen(sql) + 1, total = sizeof(pg_job_t) + sql_len;
    total += (size_t)nparams * (sizeof(char *) + sizeof(int));
    for (int i = 0; i < nparams; i++)
        if (values[i] != NULL)
            total += (size_t)lengths[i] + 1;
    /* one allocation: the job, the parameter arrays, then the bytes */
    pg_job_t *job = pulse_xmalloc(total);
    memset(job, 0, sizeof(*job));
    char *p = (char *)(job + 1);
    job->values = (const char **)p;
    p += (size_t)nparams * sizeof(char *);
    job->lengths = (int *)p;
    p += (size_t)nparams * sizeof(int);
    job->sql = memcpy(p, sql, sql_len);
    p += sql_len;
    job->nparams = nparams;
    for (int i = 0; i < nparams; i++) {
        job->lengths[i] = values[i] ? lengths[i] : 0;
        if (values[i] == NULL) {
            job->values[i] = NULL;
            continue;
        }
        memcpy(p, values[i], (size_t)lengths[i]);
        p[lengths[i]] = '\0';
        job->values[i] = p;
        p += lengths[i] + 1;
    }
    return job;
}

static void job_finish(pg_job_t *job, pulse_pg_status_t status, PGresult *res, const char *message)
{
    pulse_pg_outcome_t out = {status, res, message};
    if (job->cb != NULL) /* fire-and-forget, e.g. the safety ROLLBACK of an abandoned transaction */
        job->cb(job->data, &out);
    free(job);
}

static void queue_push(pg_job_t **head, pg_job_t **tail, pg_job_t *job)
{
    job->next = NULL;
    if (*tail)
        (*tail)->next = job;
    else
        *head = job;
    *tail = job;
}

static pg_job_t *queue_pop(pg_job_t **head, pg_job_t **tail)
{
    pg_job_t *job = *head;
    if (job) {
        *head = job->next;
        if (*head == NULL)
            *tail = NULL;
    }
    return job;
}

/* --- pool state --- */

int pulse_pg_pool_ready(const pulse_pg_pool_t *pool)
{
    int n = 0;
    for (int i = 0; i < pool->size; i++)
        n += pool->conns[i].state == CONN_READY && pool->conns[i].verified;
    return n;
}

static int pool_may_recover_soon(const pulse_pg_pool_t *pool)
{
    for (int i = 0; i < pool->size; i++)
        if (pool->conns[i].state != CONN_BROKEN)
            return 1;
    return 0;
}

/* No connection is up or on its way: everyone waiting gets "unavailable" now, not a hang. */
static void pool_fail_pending(pulse_pg_pool_t *pool, const char *why)
{
    pg_job_t *job;
    while ((job = queue_pop(&pool->pending_head, &pool->pending_tail)) != NULL) {
        pool->pending_count--;
        job_finish(job, PULSE_PG_UNAVAILABLE, NULL, why);
    }
}

/* --- connection life cycle --- */

/* --- tenant context --- */

#define SET_TENANT_STMT "pulse_set_tenant"
#define SET_TENANT_SQL "SELECT set_config('pulse.tenant_id', $1, true)"
#define ROLE_CHECK_SQL "SELECT current_user AS role, rolsuper OR rolbypassrls AS bypass FROM pg_roles WHERE rolname = current_user"
#define SETUP_ROLE_CHECK (-2) /* slot value marking the set-up step that checks the role */
#define SETUP_STEPS 2         /* the set-up's steps: prepare the tenant statement, check the role */

/* 8-4-4-4-12 hexadecimal digits. */
int pulse_pg_tenant_valid(const char *s)
{
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return 0;
        }
    }
    return s[36] == '\0';
}

/* --- statement cache --- */

static uint32_t hash_sql(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void stmt_cache_clear(pulse_pg_conn_t *c)
{
    for (int i = 0; i < STMT_CACHE_SIZE; i++) {
        free(c->stmts[i].sql);
        c->stmts[i].sql = NULL;
    }
    c->stmt_count = 0;
}

/* Slot of sql: found (*found = 1), or the free slot where it would go; -1 when the cache is full. */
static int stmt_slot(pulse_pg_conn_t *c, const char *sql, uint32_t hash, int *found)
{
    for (int probe = 0; probe < STMT_CACHE_SIZE; probe++) {
        int i = (int)((hash + (uint32_t)probe) & (STMT_CACHE_SIZE - 1));
        stmt_entry_t *e = &c->stmts[i];
        if (e->sql == NULL) {
            *found = 0;
            return c->stmt_count < STMT_CACHE_SIZE * 3 / 4 ? i : -1;
        }
        if (e->hash == hash && strcmp(e->sql, sql) == 0) {
            *found = 1;
            return i;
        }
    }
    *found = 0;
    return -1;
}

static void stmt_name(char *out, int slot)
{
    snprintf(out, 24, "pulse_%d", slot);
}

static void conn_close_socket(pulse_pg_conn_t *c)
{
    if (c->sock != NULL) {
        h2o_socket_close(c->sock); /* closes our dup, never libpq's fd */
        c->sock = NULL;
        c->sock_fd = -1;
    }
}

/* Makes sure c->sock mirrors libpq's current fd (it may change while connecting). */
static int conn_wrap_socket(pulse_pg_conn_t *c)
{
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return -1;
    if (c->sock != NULL && c->sock_fd == fd)
        return 0;
    conn_close_socket(c);
    int dupfd = dup(fd);
    if (dupfd < 0)
        return -1;
    c->sock = h2o_evloop_socket_create(c->pool->loop, dupfd, H2O_SOCKET_FLAG_DONT_READ);
    c->sock->data = c;
    c->sock_fd = fd;
    return 0;
}

static void on_retry(h2o_timeout_entry_t *entry)
{
    pulse_pg_conn_t *c = H2O_STRUCT_FROM_MEMBER(pulse_pg_conn_t, retry, entry);
    conn_connect(c);
}

static void conn_schedule_retry(pulse_pg_conn_t *c)
{
    unsigned step = c->backoff < BACKOFF_STEPS ? c->backoff : BACKOFF_STEPS - 1;
    if (c->backoff < BACKOFF_STEPS)
        c->backoff++;
    h2o_timeout_link(c->pool->loop, &c->pool->backoff[step], &c->retry);
}

static void step_free(pg_step_t *step)
{
    if (step->result)
        PQclear(step->result);
    free(step);
}

/* Every job on the wire gets `msg` (once: a PREPARE step has no callback of its own). */
static void conn_fail_steps(pulse_pg_conn_t *c, const char *msg)
{
    pg_step_t *step;
    while ((step = c->steps_head) != NULL) {
        c->steps_head = step->next;
        if (step->kind == STEP_EXECUTE && step->job != NULL) {
            if (step->job->prepare_error)
                PQclear(step->job->prepare_error);
            job_finish(step->job, PULSE_PG_UNAVAILABLE, NULL, msg);
        }
        step_free(step);
    }
    c->steps_tail = NULL;
    c->in_flight = 0;
}

/* The connection is gone: fail what it was doing, and try again later. */
static void conn_break(pulse_pg_conn_t *c, const char *why)
{
    pulse_pg_pool_t *pool = c->pool;
    char msg[512];
    snprintf(msg, sizeof(msg), "database connection lost: %s", why && *why ? why : "unknown reason");
    char missing[96];
    snprintf(missing, sizeof(missing), "role \"%s\" does not exist", pool->role);
    if (strstr(msg, missing) != NULL || strstr(msg, "parameter \"role\"") != NULL) /* not migrated yet */
        snprintf(msg, sizeof(msg), "database role %s is missing: run 'pulse migrate', which creates it", pool->role);
    snprintf(pool->last_error, sizeof(pool->last_error), "%s", msg);
    pulse_db_one_line(msg);
    conn_close_socket(c);
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    c->state = CONN_BROKEN;
    c->reserved = 0;     /* the transaction died with the session; its pin is now stale (epoch) */
    stmt_cache_clear(c); /* prepared statements die with the session too */
    conn_fail_steps(c, msg);
    pg_job_t *job;
    while ((job = queue_pop(&c->pinned_head, &c->pinned_tail)) != NULL)
        job_finish(job, PULSE_PG_UNAVAILABLE, NULL, msg);
    if (!pool_may_recover_soon(pool)) {
        if (!pool->was_down)
            pulse_log(PULSE_LOG_ERROR, "db_unavailable", "%s", msg);
        pool->was_down = 1;
        pool_fail_pending(pool, msg);
    }
    conn_schedule_retry(c);
}

/* Server notices (e.g. "terminating connection due to administrator command") go to our log,
 * not raw to stderr as libpq does by default. */
static void on_notice(void *arg, const char *message)
{
    char line[512];
    snprintf(line, sizeof(line), "%s", message);
    pulse_db_one_line(line);
    pulse_log(PULSE_LOG_DEBUG, "db_notice", "%s", line);
}

static void conn_became_ready(pulse_pg_conn_t *c)
{
    PQsetnonblocking(c->pg, 1);
    if (!PQenterPipelineMode(c->pg)) {
        conn_break(c, PQerrorMessage(c->pg));
        return;
    }
    c->state = CONN_READY;
    c->verified = 0;
    c->epoch++;
    c->ever_ready = 1; /* the back-off resets and "available" is logged once the set-up passed */
    h2o_socket_read_start(c->sock, on_readable);
    /* the tenant statement every connection needs, queued ahead of any query */
    if (!PQsendPrepare(c->pg, SET_TENANT_STMT, SET_TENANT_SQL, 1, NULL) || !PQpipelineSync(c->pg)) {
        conn_break(c, PQerrorMessage(c->pg));
        return;
    }
    push_step(c, NULL, STEP_PREPARE, -1);
    /* Isolation rests on Row-Level Security: a role that bypasses it must never serve requests */
    if (!PQsendQueryParams(c->pg, ROLE_CHECK_SQL, 0, NULL, NULL, NULL, NULL, 0) || !PQpipelineSync(c->pg)) {
        conn_break(c, PQerrorMessage(c->pg));
        return;
    }
    push_step(c, NULL, STEP_EXECUTE, SETUP_ROLE_CHECK);
    conn_flush(c);
    if (c->state == CONN_READY)
        conn_dispatch(c);
}

static void on_connect_io(h2o_socket_t *sock, const char *err);

static void conn_poll(pulse_pg_conn_t *c)
{
    for (;;) {
        PostgresPollingStatusType st = PQconnectPoll(c->pg);
        if (st == PGRES_POLLING_OK) {
            if (conn_wrap_socket(c) != 0) {
                conn_break(c, "cannot watch the database socket");
                return;
            }
            conn_became_ready(c);
            return;
        }
        if (st == PGRES_POLLING_FAILED) {
            conn_break(c, PQerrorMessage(c->pg));
            return;
        }
        if (conn_wrap_socket(c) != 0) {
            conn_break(c, "cannot watch the database socket");
            return;
        }
        if (st == PGRES_POLLING_READING) {
            h2o_socket_read_start(c->sock, on_connect_io);
        } else { /* PGRES_POLLING_WRITING */
            h2o_socket_read_stop(c->sock);
            h2o_socket_notify_write(c->sock, on_connect_io);
        }
        return;
    }
}

static void on_connect_io(h2o_socket_t *sock, const char *err)
{
    pulse_pg_conn_t *c = sock->data;
    h2o_socket_read_stop(sock);
    conn_poll(c);
}

static void conn_connect(pulse_pg_conn_t *c)
{
    pulse_pg_pool_t *pool = c->pool;
    /* dbname is expanded as a conninfo string or URI; the keywords after it override it. */
    const char *keys[] = {"dbname", "application_name", "options", "connect_timeout", NULL};
    const char *vals[] = {pool->conninfo, "pulse", pool->options, "5", NULL};
    c->state = CONN_CONNECTING;
    c->pg = PQconnectStartParams(keys, vals, 1);
    if (c->pg != NULL)
        PQsetNoticeProcessor(c->pg, on_notice, NULL);
    if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_break(c, c->pg ? PQerrorMessage(c->pg) : "out of memory");
        return;
    }
    conn_poll(c);
}

/* --- running queries (pipeline mode) --- */

static void on_writable(h2o_socket_t *sock, const char *err)
{
    pulse_pg_conn_t *c = sock->data;
    if (c->state != CONN_READY)
        return;
    int r = PQflush(c->pg);
    if (r < 0)
        conn_break(c, PQerrorMessage(c->pg));
    else if (r == 1)
        h2o_socket_notify_write(c->sock, on_writable);
}

static void conn_flush(pulse_pg_conn_t *c)
{
    int r = PQflush(c->pg);
    if (r < 0)
        conn_break(c, PQerrorMessage(c->pg));
    else if (r == 1)
        h2o_socket_notify_write(c->sock, on_writable);
}

static void push_step(pulse_pg_conn_t *c, pg_job_t *job, step_kind_t kind, int slot)
{
    pg_step_t *step = pulse_xmalloc(sizeof(*step));
    *step = (pg_step_t){NULL, job, kind, slot, h2o_now(c->pool->loop), NULL};
    if (c->steps_tail)
        c->steps_tail->next = step;
    else
        c->steps_head = step;
    c->steps_tail = step;
    c->in_flight++;
}

/* Puts job on the wire (not yet flushed): as a cached prepared statement when possible; a
 * statement new to this connection is sent as Parse+Sync, then Execute+Sync, back to back.
 * Returns -1 when the connection broke (the job was failed with the others). */
static int conn_send(pulse_pg_conn_t *c, pg_job_t *job)
{
    int found = 0, slot = job->retried ? -1 : stmt_slot(c, job->sql, job->hash, &found);
    char name[24];
    int ok = 1;
    if (slot >= 0 && !found) {
        stmt_name(name, slot);
        ok = PQsendPrepare(c->pg, name, job->sql, job->nparams, NULL) && PQpipelineSync(c->pg);
        /* cached now, so the jobs right behind it reuse it; a failed Parse removes it again */
        c->stmts[slot].sql = pulse_xstrdup(job->sql);
        c->stmts[slot].hash = job->hash;
        c->stmt_count++;
        push_step(c, job, STEP_PREPARE, slot);
        found = 1;
    }
    if (ok && job->tenant[0]) { /* no Sync in between: one implicit transaction with the query */
        const char *tenant = job->tenant;
        ok = PQsendQueryPrepared(c->pg, SET_TENANT_STMT, 1, &tenant, NULL, NULL, 0);
    }
    if (ok && slot >= 0) {
        stmt_name(name, slot);
        ok = PQsendQueryPrepared(c->pg, name, job->nparams, job->values, job->lengths, NULL, 0);
    } else if (ok) {
        ok = PQsendQueryParams(c->pg, job->sql, job->nparams, NULL, job->values, job->lengths, NULL, 0);
    }
    ok = ok && PQpipelineSync(c->pg);
    push_step(c, job, STEP_EXECUTE, slot);
    /* a transaction owns the connection from the moment its BEGIN is queued behind the others */
    if (job->flags & PULSE_PG_PIN)
        c->reserved = 1;
    if (job->flags & PULSE_PG_UNPIN)
        c->reserved = 0;
    if (!ok) {
        conn_break(c, PQerrorMessage(c->pg));
        return -1;
    }
    return 0;
}

/* Puts up to `limit` queries on the wire (no flush): the transaction's own, then (from_pool)
 * the pool's queue. Returns how many, or -1 when the connection broke. */
static int conn_take(pulse_pg_conn_t *c, int limit, int from_pool)
{
    int sent = 0;
    while (c->state == CONN_READY && c->in_flight < MAX_IN_FLIGHT && sent < limit) {
        pg_job_t *job = queue_pop(&c->pinned_head, &c->pinned_tail);
        if (job == NULL && from_pool && !c->reserved) {
            job = queue_pop(&c->pool->pending_head, &c->pool->pending_tail);
            if (job)
                c->pool->pending_count--;
        }
        if (job == NULL)
            break;
        if (conn_send(c, job) != 0)
            return -1;
        sent++;
    }
    return sent;
}

/* After results came in: the transaction's next queries right away, the pool's through the
 * kick, which chooses the connection. */
static void conn_dispatch(pulse_pg_conn_t *c)
{
    if (conn_take(c, MAX_IN_FLIGHT, 0) > 0)
        conn_flush(c);
    if (c->pool->pending_head != NULL && !h2o_timeout_is_linked(&c->pool->kick))
        h2o_timeout_link(c->pool->loop, &c->pool->zero, &c->pool->kick);
}

/* A cached plan whose tables changed shape (a migration ran while we serve): PostgreSQL says
 * "cached plan must not change result type" (0A000). */
static int is_stale_plan(const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return state != NULL && strcmp(state, "0A000") == 0;
}

static int result_ok(const PGresult *res)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK || st == PGRES_EMPTY_QUERY;
}

/* The Sync after a step arrived: the step is complete. */
static void conn_step_done(pulse_pg_conn_t *c)
{
    pg_step_t *step = c->steps_head;
    c->steps_head = step->next;
    if (c->steps_head == NULL)
        c->steps_tail = NULL;
    c->in_flight--;
    pg_job_t *job = step->job;
    PGresult *res = step->result;
    step->result = NULL;
    if (job == NULL) { /* the connection's own set-up */
        int ok = result_ok(res);
        char msg[384];
        snprintf(msg, sizeof(msg), "%s", res ? PQresultErrorMessage(res) : "no result");
        if (ok && step->slot == SETUP_ROLE_CHECK && (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 1), "f") != 0)) {
            ok = 0;
            snprintf(msg, sizeof(msg),
                     "the database role %s bypasses Row-Level Security (superuser or BYPASSRLS): serving requests as it "
                     "would break tenant isolation; set PULSE_DB_ROLE to a role that does not (pulse migrate creates pulse_app)",
                     PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "?");
        }
        int verified = ok && step->slot == SETUP_ROLE_CHECK;
        if (res)
            PQclear(res);
        step_free(step);
        if (!ok) {
            conn_break(c, msg);
        } else if (verified) {
            c->verified = 1;
            c->backoff = 0;
            if (c->pool->was_down) {
                c->pool->was_down = 0;
                pulse_log(PULSE_LOG_INFO, "db_available", "database connection re-established");
            }
        }
        return;
    }
    if (step->kind == STEP_PREPARE) {
        if (!result_ok(res)) { /* forget the statement; its Execute reports this error */
            free(c->stmts[step->slot].sql);
            c->stmts[step->slot].sql = NULL;
            c->stmt_count--;
            job->prepare_error = res;
            res = NULL;
        }
        if (res)
            PQclear(res);
        step_free(step);
        return;
    }
    step_free(step);
    if (job->prepare_error) {
        if (res)
            PQclear(res);
        res = job->prepare_error;
        job->prepare_error = NULL;
    } else if (!result_ok(res) && res && !job->retried && is_stale_plan(res) && !c->reserved) {
        /* outside a transaction the statement can simply run again, unnamed, at the back */
        PQclear(res);
        job->retried = 1;
        if (conn_send(c, job) == 0)
            conn_flush(c);
        return;
    }
    int ok = result_ok(res);
    if ((job->flags & PULSE_PG_PIN) && job->pin != NULL) {
        if (ok) {
            job->pin->conn = c;
            job->pin->epoch = c->epoch;
        } else {
            c->reserved = 0; /* BEGIN failed: nobody owns the connection */
        }
    }
    if (job->flags & PULSE_PG_UNPIN)
        job->pin->conn = NULL;
    job_finish(job, ok ? PULSE_PG_OK : PULSE_PG_ERROR, res, res ? PQresultErrorMessage(res) : "no result");
    if (res)
        PQclear(res);
}

static void on_readable(h2o_socket_t *sock, const char *err)
{
    pulse_pg_conn_t *c = sock->data;
    if (!PQconsumeInput(c->pg) || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_break(c, PQerrorMessage(c->pg));
        return;
    }
    PGnotify *n;
    while ((n = PQnotifies(c->pg)) != NULL)
        PQfreemem(n); /* LISTEN/NOTIFY is not used on request connections yet */
    unsigned epoch = c->epoch;
    while (c->steps_head != NULL && !PQisBusy(c->pg)) {
        PGresult *res = PQgetResult(c->pg);
        if (res == NULL)
            continue; /* end of the step's results; its Sync comes next */
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            conn_step_done(c); /* may resume coroutines, which may queue more queries */
            if (c->state != CONN_READY || c->epoch != epoch)
                return;
            continue;
        }
        pg_step_t *step = c->steps_head;
        /* several results (or an aborted pipeline): keep the first error, else the last result */
        if (step->result == NULL || result_ok(step->result)) {
            if (step->result)
                PQclear(step->result);
            step->result = res;
        } else {
            PQclear(res);
        }
    }
    conn_dispatch(c);
}

/* Where the next query of the pool's queue goes: an idle connection first (a query never waits
 * behind another while a connection is free); else, pipelined, the least loaded connection
 * whose oldest query is still young (never behind one that looks slow); else the least loaded.
 * NULL when every connection is full, reserved or down. */
static pulse_pg_conn_t *pool_pick(pulse_pg_pool_t *pool, uint64_t now)
{
    pulse_pg_conn_t *young = NULL, *any = NULL, *setting_up = NULL;
    for (int i = 0; i < pool->size; i++) {
        pulse_pg_conn_t *c = &pool->conns[i];
        if (c->state != CONN_READY || c->reserved || c->in_flight >= MAX_IN_FLIGHT)
            continue;
        if (c->in_flight == 0)
            return c;
        if (!c->verified && c->in_flight <= SETUP_STEPS && setting_up == NULL)
            setting_up = c; /* only its own set-up ahead: a few ms, never a user's slow query */
        if (any == NULL || c->in_flight < any->in_flight)
            any = c;
        if (now - c->steps_head->sent_at < SLOW_QUERY_MS && (young == NULL || c->in_flight < young->in_flight))
            young = c;
    }
    return setting_up ? setting_up : young ? young : any;
}

static void ask_reconnect(pulse_pg_pool_t *pool)
{
    uint64_t now = h2o_now(pool->loop);
    if (pool->reconnect_asked || now - pool->last_on_demand < ON_DEMAND_MS)
        return;
    pool->reconnect_asked = 1;
    pool->last_on_demand = now;
    if (!h2o_timeout_is_linked(&pool->kick))
        h2o_timeout_link(pool->loop, &pool->zero, &pool->kick);
}

/* One broken connection tries now instead of at the end of its back-off. */
static void reconnect_one(pulse_pg_pool_t *pool)
{
    pool->reconnect_asked = 0;
    for (int i = 0; i < pool->size; i++) {
        pulse_pg_conn_t *c = &pool->conns[i];
        if (c->state == CONN_BROKEN && h2o_timeout_is_linked(&c->retry)) {
            h2o_timeout_unlink(&c->retry);
            conn_connect(c);
            return;
        }
    }
}

static void on_kick(h2o_timeout_entry_t *entry)
{
    pulse_pg_pool_t *pool = H2O_STRUCT_FROM_MEMBER(pulse_pg_pool_t, kick, entry);
    if (pool->reconnect_asked)
        reconnect_one(pool);
    uint64_t now = h2o_now(pool->loop);
    int sent[pool->size];
    memset(sent, 0, sizeof(sent));
    for (int i = 0; i < pool->size; i++) /* transactions' own queries first */
        if (pool->conns[i].pinned_head != NULL && conn_take(&pool->conns[i], MAX_IN_FLIGHT, 0) > 0)
            sent[i] = 1;
    pulse_pg_conn_t *c;
    while (pool->pending_head != NULL && (c = pool_pick(pool, now)) != NULL) {
        if (conn_take(c, 1, 1) > 0)
            sent[c - pool->conns] = 1;
    }
    for (int i = 0; i < pool->size; i++)
        if (sent[i] && pool->conns[i].state == CONN_READY)
            conn_flush(&pool->conns[i]);
}

/* --- public API --- */

pulse_pg_pool_t *pulse_pg_pool_create(h2o_loop_t *loop, const char *conninfo, int size, int statement_timeout_ms, const char *role)
{
    pulse_pg_pool_t *pool = pulse_xmalloc(sizeof(*pool));
    memset(pool, 0, sizeof(*pool));
    pool->loop = loop;
    pool->conninfo = pulse_xstrdup(conninfo);
    /* UTC and ISO dates: timestamps reach the API in one shape whatever the server's settings */
    snprintf(pool->options, sizeof(pool->options), "-c statement_timeout=%d -c role=%s -c TimeZone=UTC -c DateStyle=ISO",
             statement_timeout_ms, role);
    snprintf(pool->role, sizeof(pool->role), "%s", role);
    pool->size = size;
    pool->conns = pulse_xmalloc(sizeof(pulse_pg_conn_t) * (size_t)size);
    memset(pool->conns, 0, sizeof(pulse_pg_conn_t) * (size_t)size);
    for (size_t i = 0; i < BACKOFF_STEPS; i++)
        h2o_timeout_init(loop, &pool->backoff[i], backoff_ms[i]);
    h2o_timeout_init(loop, &pool->zero, 0);
    pool->kick.cb = on_kick;
    for (int i = 0; i < size; i++) {
        pulse_pg_conn_t *c = &pool->conns[i];
        c->pool = pool;
        c->sock_fd = -1;
        c->retry.cb = on_retry;
        conn_connect(c);
    }
    return pool;
}

void pulse_pg_pool_destroy(pulse_pg_pool_t *pool)
{
    if (pool == NULL)
        return;
    pool_fail_pending(pool, "server shutting down");
    for (int i = 0; i < pool->size; i++) {
        pulse_pg_conn_t *c = &pool->conns[i];
        if (h2o_timeout_is_linked(&c->retry))
            h2o_timeout_unlink(&c->retry);
        conn_close_socket(c);
        if (c->pg)
            PQfinish(c->pg);
        c->pg = NULL;
        c->state = CONN_BROKEN;
        stmt_cache_clear(c);
        conn_fail_steps(c, "server shutting down");
        pg_job_t *job;
        while ((job = queue_pop(&c->pinned_head, &c->pinned_tail)) != NULL)
            job_finish(job, PULSE_PG_UNAVAILABLE, NULL, "server shutting down");
    }
    if (h2o_timeout_is_linked(&pool->kick))
        h2o_timeout_unlink(&pool->kick);
    for (size_t i = 0; i < BACKOFF_STEPS; i++)
        h2o_timeout_dispose(pool->loop, &pool->backoff[i]);
    h2o_timeout_dispose(pool->loop, &pool->zero);
    free(pool->conns);
    free(pool->conninfo);
    free(pool);
}

int pulse_pg_query(pulse_pg_pool_t *pool, const pulse_pg_call_t *call, char *err, size_t errlen)
{
    pulse_pg_pin_t *pin = call->pin;
    int flags = call->flags;
    pulse_pg_conn_t *target = NULL;
    if (call->tenant != NULL && !pulse_pg_tenant_valid(call->tenant)) {
        snprintf(err, errlen, "the tenant of a query must be a UUID");
        return -1;
    }
    if (pin != NULL && pin->conn != NULL) {
        target = pin->conn;
        if (target->state != CONN_READY || target->epoch != pin->epoch || !target->reserved) {
            snprintf(err, errlen, "the transaction's database connection was lost");
            if (flags & PULSE_PG_UNPIN)
                pin->conn = NULL;
            return -1;
        }
    } else if (!pool_may_recover_soon(pool)) {
        snprintf(err, errlen, "database unavailable (reconnecting): %s", pool->last_error);
        ask_reconnect(pool); /* after this request: connecting here could call back into the caller */
        return -1;
    } else if (pool->pending_count >= MAX_PENDING) {
        snprintf(err, errlen, "database overloaded: %d queries waiting", MAX_PENDING);
        return -1;
    }
    pg_job_t *job = job_new(call->sql, call->nparams, call->values, call->lengths);
    job->hash = hash_sql(job->sql);
    if (call->tenant != NULL)
        memcpy(job->tenant, call->tenant, 37);
    job->flags = flags;
    job->pin = pin;
    if (call->cb == NULL && pin != NULL) {
        job->own_pin = *pin;
        job->pin = &job->own_pin;
        if (flags & PULSE_PG_UNPIN)
            pin->conn = NULL; /* released as far as the caller is concerned */
    }
    job->cb = call->cb;
    job->data = call->data;
    if (target != NULL) {
        queue_push(&target->pinned_head, &target->pinned_tail, job);
    } else {
        queue_push(&pool->pending_head, &pool->pending_tail, job);
        pool->pending_count++;
    }
    if (!h2o_timeout_is_linked(&pool->kick))
        h2o_timeout_link(pool->loop, &pool->zero, &pool->kick);
    return 0;
}
