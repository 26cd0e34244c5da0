/* Asynchronous PostgreSQL on an h2o event loop: a small pool of libpq connections per loop
 * thread, queries queued FIFO and results delivered by callback on the loop (OpenResty's
 * cosocket model: nothing blocks the loop). Broken connections are re-established with
 * back-off; while no connection is up, queries fail at once (PULSE_PG_UNAVAILABLE) so the API
 * answers 503 instead of hanging. A transaction pins one connection until COMMIT/ROLLBACK. */
#ifndef PULSE_DB_PG_H
#define PULSE_DB_PG_H

#include <libpq-fe.h>
#include <stddef.h>

#include <h2o.h>

typedef enum {
    PULSE_PG_OK,          /* result is PGRES_TUPLES_OK or PGRES_COMMAND_OK */
    PULSE_PG_ERROR,       /* the server answered with an error: result holds the diagnostics */
    PULSE_PG_UNAVAILABLE, /* no connection / connection lost: message says why */
} pulse_pg_status_t;

typedef struct pulse_pg_outcome_t {
    pulse_pg_status_t status;
    PGresult *result;    /* owned by the pool, valid only during the callback; NULL when UNAVAILABLE */
    const char *message; /* human-readable, for logs; valid only during the callback */
} pulse_pg_outcome_t;

typedef void (*pulse_pg_cb)(void *data, const pulse_pg_outcome_t *outcome);

typedef struct pulse_pg_pool_t pulse_pg_pool_t;
typedef struct pulse_pg_conn_t pulse_pg_conn_t;

/* A connection held by a transaction. epoch detects a reconnect in between (the transaction
 * died with the old session, so later queries on the pin must fail, not run outside it). */
typedef struct pulse_pg_pin_t {
    pulse_pg_conn_t *conn;
    unsigned epoch;
} pulse_pg_pin_t;

enum {
    PULSE_PG_PIN = 1,   /* keep the connection that runs this query reserved, stored into *pin */
    PULSE_PG_UNPIN = 2, /* release *pin once this query is done (COMMIT/ROLLBACK) */
};

/* Creates the pool and starts connecting. conninfo is a libpq keyword string or URI (copied).
 * role: the role every connection acts as (SET at connection start), so that Row-Level Security
 * applies to the server's queries; it must exist (pulse migrate creates it). */
pulse_pg_pool_t *pulse_pg_pool_create(h2o_loop_t *loop, const char *conninfo, int size, int statement_timeout_ms, const char *role);
/* Closes every connection; queued queries get PULSE_PG_UNAVAILABLE. */
void pulse_pg_pool_destroy(pulse_pg_pool_t *pool);
/* Number of connections ready for queries. */
int pulse_pg_pool_ready(const pulse_pg_pool_t *pool);

/* One query for pulse_pg_query. Values are text (values[i] == NULL is SQL NULL); everything is
 * copied, so the call and its buffers may go away once pulse_pg_query returns. */
typedef struct pulse_pg_call_t {
    const char *sql;
    int nparams;
    const char *const *values;
    const int *lengths;
    /* NULL, or the tenant (a UUID) this query runs for: set as pulse.tenant_id for this query's
     * transaction only, in the same round trip, so Row-Level Security sees it and nothing else
     * on the connection does. */
    const char *tenant;
    pulse_pg_pin_t *pin; /* NULL, or a transaction's pin (see flags) */
    int flags;           /* PULSE_PG_PIN, PULSE_PG_UNPIN */
    pulse_pg_cb cb;      /* NULL: fire and forget (the pin is copied and may go away at once) */
    void *data;
} pulse_pg_call_t;

/* 1 when s is a tenant id pulse_pg_call_t accepts (a UUID: 8-4-4-4-12 hex digits), else 0. */
int pulse_pg_tenant_valid(const char *s);

/* Queues a query. Returns 0 when queued: cb runs later on the loop, exactly once, never from
 * inside this call. Returns -1 when the database is unavailable right now or the pin is stale:
 * cb will not run, err says why. */
int pulse_pg_query(pulse_pg_pool_t *pool, const pulse_pg_call_t *call, char *err, size_t errlen);

#endif
