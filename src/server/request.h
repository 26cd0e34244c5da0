/* A request handled by the Lua application: it runs app.handle in a coroutine, which may yield
 * on database calls, on pulse.sleep or on a stream write; the loop resumes it when the result
 * arrives. The h2o request may vanish while the coroutine waits (client gone): a guard in the
 * request pool clears `req` then. A streamed answer (Server-Sent Events) starts with
 * pulse_request_stream_begin, writes with pulse_request_stream_write and ends with
 * pulse_request_stream_end, all from the request's own coroutine. */
#ifndef PULSE_SERVER_REQUEST_H
#define PULSE_SERVER_REQUEST_H

#include <lua.h>
#include <stdint.h>

#include <h2o.h>

#include "db/pg.h"
#include "script/script.h"

struct pulse_loop_t;

typedef struct pulse_request_t {
    h2o_req_t *req; /* NULL once h2o disposed of the request */
    struct pulse_request_guard_t *guard;
    struct pulse_loop_t *loop;
    pulse_vm_t *vm;
    lua_State *co;
    int co_ref;
    int responded; /* an answer went out (possibly a 504 while the coroutine still runs) */
    int waiting;   /* yielded on I/O */
    pulse_pg_pin_t pin;
    char tenant[40]; /* "" or the authenticated tenant: every query of the request runs for it */
    uint64_t started_ns;
    h2o_timeout_entry_t deadline; /* PULSE_REQUEST_TIMEOUT_MS, then PULSE_STREAM_MAX_SECONDS once streaming */
    char id[48];
    /* pulse.sleep and streams: what the coroutine waits for (PULSE_WAIT_*), the timer that wakes
     * it (a loop-owned timeout: the entry may be linked to one of them only), and the loop's list
     * of requests to tell on shutdown. */
    int wait;
    h2o_timeout_entry_t timer;
    uint64_t sleep_until; /* h2o_now() milliseconds */
    h2o_linklist_t link;
    struct {
        int open;    /* begun and not ended */
        int closed;  /* the client went away (the generator was stopped) */
        int expired; /* ran past PULSE_STREAM_MAX_SECONDS */
        int acked;   /* h2o took the write the coroutine waits on */
        uint64_t serial;
        uint64_t last_write; /* h2o_now() of the last write, for the keep-alive comments */
        size_t bytes;
        char *method, *path; /* copies for the access log line written when the stream ends */
        char tenant[64];
    } stream;
} pulse_request_t;

enum { PULSE_WAIT_NONE, PULSE_WAIT_SLEEP, PULSE_WAIT_SEND, PULSE_WAIT_ERROR };

/* Why a stream cannot be written to, or NULL when it can: "closed", "expired" or "shutdown". */
const char *pulse_request_stream_state(pulse_request_t *r);

/* Registers the Lua handler on a path (it answers every request that reaches it). */
void pulse_request_register(h2o_pathconf_t *pathconf);
/* The request a coroutine runs for, or NULL (not inside a request). */
pulse_request_t *pulse_request_current(lua_State *co);
/* The request id: the caller's X-Request-Id when it is safe to log and echo, else a new one.
 * outlen must be at least 32. */
void pulse_request_make_id(struct pulse_loop_t *loop, h2o_req_t *req, char *out, size_t outlen);
/* Appends the access-log line of an answered request to the loop's batch. tenant may be NULL. */
void pulse_request_access_log(struct pulse_loop_t *loop, h2o_req_t *req, const char *id, int status, size_t bytes,
                              uint64_t elapsed_ns, const char *tenant);
/* Defines the metatable of request tables in a VM (called by the pulse binding). */
void pulse_request_define_metatable(lua_State *L);
/* Resumes a coroutine that yielded on I/O with nargs values pushed on r->co. */
void pulse_request_resume(pulse_request_t *r, int nargs);

/* pulse.sleep: arms the wake-up of r after ms milliseconds; the caller then yields. The coroutine
 * is resumed with true, or false as soon as the loop shuts down, the client goes away or the
 * stream expires. */
void pulse_request_sleep(pulse_request_t *r, uint64_t ms);
/* Starts the 200 text/event-stream answer with the headers of the table at headers_idx of L (may
 * be 0: none) and tenant (may be NULL) for the access log. Returns 0, or -1 when the request can
 * no longer be answered (the client is gone, or a 504 went out) or a header is unsafe (a 500
 * went out then). */
int pulse_request_stream_begin(pulse_request_t *r, lua_State *L, int headers_idx, const char *tenant);
/* Sends len bytes of the open stream and arranges for the coroutine to be resumed (the caller
 * yields): with true once h2o took them, or nil, reason (see pulse_request_stream_state).
 * The bytes are copied. */
void pulse_request_stream_write(pulse_request_t *r, const char *data, size_t len);
/* Ends the open stream (final chunk, access log line). Idempotent. */
void pulse_request_stream_end(pulse_request_t *r);
/* SIGTERM: wakes the requests of the loop that sleep or stream (they see "shutdown"). */
void pulse_request_shutdown_notify(struct pulse_loop_t *loop);

#endif
