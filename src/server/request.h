/* A request handled by the Lua application: it runs app.handle in a coroutine, which may yield
 * on database calls; the loop resumes it when the result arrives. The h2o request may vanish
 * while the coroutine waits (client gone): a guard in the request pool clears `req` then. */
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
    h2o_timeout_entry_t deadline;
    char id[48];
} pulse_request_t;

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

#endif
