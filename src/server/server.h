/* The HTTP server: N h2o event-loop threads, each with its own SO_REUSEPORT listener, Lua VM,
 * database pool and worker inbox; one worker pool per process for CPU-heavy work (argon2); static files for the dashboard and
 * widget; signals (SIGTERM: drain and exit 0, SIGHUP: reload lua/ keeping the old code if the new one fails to load). */
#ifndef PULSE_SERVER_SERVER_H
#define PULSE_SERVER_SERVER_H

#include <pthread.h>
#include <stdint.h>

#include <h2o.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/workers.h"
#include "db/pg.h"
#include "script/script.h"

typedef struct pulse_loop_t {
    h2o_context_t ctx; /* first: handlers find their loop through req->conn->ctx */
    int index;
    const pulse_config_t *cfg;
    pulse_vm_t *vm;
    pulse_pg_pool_t *pg;
    pulse_workers_t *workers;     /* the process's worker pool (shared by every loop) */
    pulse_workers_inbox_t *inbox; /* where this loop's finished works come back */
    int listen_fd;
    h2o_socket_t *listener;
    h2o_accept_ctx_t accept_ctx;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t control; /* reload and shutdown messages from the main thread */
    size_t inflight;                    /* requests whose coroutine has not finished */
    uint64_t request_seq;
    int shutting_down;
    uint64_t shutdown_deadline;
    h2o_timeout_t request_timeout;
    h2o_timeout_t stream_timeout;     /* PULSE_STREAM_MAX_SECONDS */
    h2o_timeout_t sleep_timeouts[22]; /* 2^k ms each, made on first use (pulse.sleep) */
    unsigned sleep_timeouts_ready;    /* bit k: sleep_timeouts[k] is initialised */
    h2o_linklist_t sleepers;          /* requests that slept or stream (shutdown notice) */
    uint64_t stream_seq;
    pulse_buf_t access_log; /* lines waiting for one write(2) */
    h2o_timeout_t log_flush_timeout;
    h2o_timeout_entry_t log_flush;
    pthread_t thread;
} pulse_loop_t;

/* Runs the server until SIGTERM/SIGINT. conninfo: the database. Returns the exit code. */
int pulse_server_run(const pulse_config_t *cfg, const char *conninfo);

/* Call after appending lines to loop->access_log: they are written out in batches. */
void pulse_server_access_log_added(pulse_loop_t *loop);

#endif
