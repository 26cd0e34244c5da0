/* Requests handled by the Lua application (see request.h): building the request table,
 * running the coroutine, turning its return values into the HTTP response, deadlines, the
 * access log. One place, app.handle, decides the answer; C only steps in when Lua itself
 * failed (500) or ran past the deadline (504), with the same problem+json shape. */
#include "server/request.h"
#include "core/buf.h"
#include "core/log.h"
#include "server/server.h"

#include <arpa/inet.h>
#include <lauxlib.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Lives in the request pool: h2o frees it with the request. It is also the generator of a
 * streamed answer, with the one write h2o may hold (PLATFORM-NOTES: one send in flight). */
typedef struct pulse_request_guard_t {
    h2o_generator_t generator; /* first: proceed/stop get it back */
    pulse_request_t *r;        /* NULL once the coroutine finished */
    int in_flight;             /* h2o holds a write until proceed */
    int queued;                /* buf waits for the write in flight (a keep-alive) */
    int final_pending;         /* the stream ended while a write was in flight */
    char *buf;                 /* the coroutine's write; freed with the guard */
    size_t len, cap;
} pulse_request_guard_t;

#define STREAM_KEEPALIVE_MS 15000
#define SLEEP_BUCKETS ((int)(sizeof(((pulse_loop_t *)0)->sleep_timeouts) / sizeof(h2o_timeout_t)))

static const char REQ_MT[] = "pulse.request";
static const char REQ_MT_KEY = 0;
static h2o_generator_t static_generator = {NULL, NULL};
static h2o_mime_attributes_t stream_mime = {0, H2O_MIME_ATTRIBUTE_PRIORITY_NORMAL}; /* never gzip */
static const char KEEPALIVE[] = ": keep-alive\n\n";

static void wake(pulse_request_t *r);

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

pulse_request_t *pulse_request_current(lua_State *co)
{
    return *(pulse_request_t **)lua_getextraspace(co);
}

static void on_guard_dispose(void *p)
{
    pulse_request_guard_t *g = p;
    free(g->buf);
    if (g->r != NULL) {
        pulse_request_t *r = g->r;
        r->req = NULL;
        r->guard = NULL;
        if (r->wait == PULSE_WAIT_SLEEP || r->wait == PULSE_WAIT_SEND)
            wake(r); /* the client is gone: a sleep ends early */
    }
}

/* --- the request table --- */

static void push_headers(lua_State *L, h2o_req_t *req)
{
    lua_createtable(L, 0, (int)req->headers.size);
    for (size_t i = 0; i != req->headers.size; ++i) {
        h2o_header_t *h = req->headers.entries + i;
        lua_pushlstring(L, h->name->base, h->name->len);
        if (lua_rawget(L, -2) == LUA_TSTRING) { /* repeated header: join as HTTP says */
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, h->value.base, h->value.len);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, h->value.base, h->value.len);
        }
        lua_pushlstring(L, h->name->base, h->name->len);
        lua_insert(L, -2);
        lua_rawset(L, -3);
    }
}

static void push_peer(lua_State *L, h2o_req_t *req)
{
    struct sockaddr_storage ss;
    char host[INET6_ADDRSTRLEN] = "";
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (len > 0 && ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
    else if (len > 0 && ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
    lua_pushstring(L, host);
}

/* Fields that cost something to build are made on first use and cached in the table. */
static int l_request_index(lua_State *L)
{
    pulse_request_t *r = pulse_request_current(L);
    const char *key = luaL_checkstring(L, 2);
    if (r == NULL || r->req == NULL)
        return 0;
    h2o_req_t *req = r->req;
    if (strcmp(key, "headers") == 0) {
        push_headers(L, req);
    } else if (strcmp(key, "body") == 0) {
        if (req->entity.base == NULL)
            return 0;
        lua_pushlstring(L, req->entity.base, req->entity.len);
    } else if (strcmp(key, "remote_addr") == 0) {
        push_peer(L, req);
    } else {
        return 0;
    }
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);
    return 1;
}

static void push_request(lua_State *L, pulse_request_t *r)
{
    h2o_req_t *req = r->req;
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    lua_createtable(L, 0, 8);
    lua_pushlstring(L, req->method.base, req->method.len);
    lua_setfield(L, -2, "method");
    lua_pushlstring(L, req->path.base, path_len);
    lua_setfield(L, -2, "path");
    if (req->query_at != SIZE_MAX) {
        lua_pushlstring(L, req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
        lua_setfield(L, -2, "query_string");
    }
    lua_pushstring(L, r->id);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, req->entity.base ? (lua_Integer)req->entity.len : 0);
    lua_setfield(L, -2, "body_length");
    /* CORS needs Origin on every request: one token lookup beats building req.headers */
    ssize_t origin = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);
    if (origin >= 0) {
        lua_pushlstring(L, req->headers.entries[origin].value.base, req->headers.entries[origin].value.len);
        lua_setfield(L, -2, "origin");
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &REQ_MT_KEY);
    lua_setmetatable(L, -2);
}

/* --- answers --- */

static void add_header(h2o_req_t *req, const char *name, size_t name_len, const char *value, size_t value_len)
{
    char *n = h2o_mem_alloc_pool(&req->pool, name_len);
    for (size_t i = 0; i < name_len; i++) /* h2o wants lower-case names for token matching */
        n[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    h2o_iovec_t v = h2o_strdup(&req->pool, value, value_len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, n, name_len, 1, NULL, v.base, v.len);
}

/* "12.345" from nanoseconds: printf's float path costs more than the rest of the header work. */
static size_t format_ms(char *out, uint64_t ns)
{
    uint64_t us = ns / 1000;
    char tmp[32];
    int n = 0;
    uint64_t whole = us / 1000, frac = us % 1000;
    do {
        tmp[n++] = (char)('0' + whole % 10);
        whole /= 10;
    } while (whole);
    size_t len = 0;
    while (n)
        out[len++] = tmp[--n];
    out[len++] = '.';
    out[len++] = (char)('0' + frac / 100);
    out[len++] = (char)('0' + frac / 10 % 10);
    out[len++] = (char)('0' + frac % 10);
    out[len] = '\0';
    return len;
}

static void access_log_line(pulse_loop_t *loop, h2o_iovec_t method, h2o_iovec_t path, const char *id, int status, size_t bytes,
                            uint64_t elapsed_ns, const char *tenant)
{
    if (!loop->cfg->access_log)
        return;
    pulse_buf_t *b = &loop->access_log;
    pulse_buf_puts(b, "{\"ts\":\"");
    pulse_log_timestamp(b);
    pulse_buf_puts(b, "\",\"level\":\"info\",\"event\":\"request\",\"id\":\"");
    pulse_buf_json_escape(b, id, strlen(id));
    pulse_buf_puts(b, "\",\"method\":\"");
    pulse_buf_json_escape(b, method.base, method.len);
    pulse_buf_puts(b, "\",\"path\":\""); /* never the query: it may carry tokens */
    pulse_buf_json_escape(b, path.base, path.len);
    char ms[32];
    size_t ms_len = format_ms(ms, elapsed_ns);
    pulse_buf_puts(b, "\",\"status\":");
    pulse_buf_put_uint(b, (uint64_t)status);
    pulse_buf_puts(b, ",\"ms\":");
    pulse_buf_append(b, ms, ms_len);
    pulse_buf_puts(b, ",\"bytes\":");
    pulse_buf_put_uint(b, bytes);
    if (tenant != NULL) {
        pulse_buf_puts(b, ",\"tenant\":\"");
        pulse_buf_json_escape(b, tenant, strlen(tenant));
        pulse_buf_putc(b, '"');
    }
    pulse_buf_puts(b, "}\n");
    pulse_server_access_log_added(loop);
}

void pulse_request_access_log(pulse_loop_t *loop, h2o_req_t *req, const char *id, int status, size_t bytes, uint64_t elapsed_ns,
                              const char *tenant)
{
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    access_log_line(loop, req->method, h2o_iovec_init(req->path.base, path_len), id, status, bytes, elapsed_ns, tenant);
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error" : "Server Error";
    }
}

/* x-request-id and server-timing: every answer carries them. */
static void add_common_headers(pulse_request_t *r)
{
    char timing[48] = "app;dur=";
    size_t n = 8 + format_ms(timing + 8, now_ns() - r->started_ns);
    add_header(r->req, "x-request-id", 12, r->id, strlen(r->id));
    add_header(r->req, "server-timing", 13, timing, n);
}

/* Sends status/body with the headers every answer carries. body must live in req->pool. */
static void send_response(pulse_request_t *r, int status, h2o_iovec_t body, const char *tenant)
{
    h2o_req_t *req = r->req;
    add_common_headers(r);
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    req->res.content_length = body.len;
    r->responded = 1;
    if (h2o_timeout_is_linked(&r->deadline))
        h2o_timeout_unlink(&r->deadline);
    if (r->req != NULL)
        pulse_request_access_log(r->loop, req, r->id, status, body.len, now_ns() - r->started_ns, tenant);
    h2o_start_response(req, &static_generator);
    int is_head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    h2o_send(req, is_head ? NULL : &body, is_head ? 0 : 1, H2O_SEND_STATE_FINAL);
}

/* A problem+json answer made in C: only when the Lua application could not make one. */
static void send_problem(pulse_request_t *r, int status, const char *code, const char *title, const char *detail)
{
    h2o_req_t *req = r->req;
    pulse_buf_t b = PULSE_BUF_INIT;
    pulse_buf_printf(&b,
                     "{\"type\":\"about:blank\",\"title\":\"%s\",\"status\":%d,\"code\":\"%s\",\"detail\":\"%s\","
                     "\"request_id\":\"",
                     title, status, code, detail);
    pulse_buf_json_escape(&b, r->id, strlen(r->id));
    pulse_buf_puts(&b, "\"}");
    h2o_iovec_t body = h2o_strdup(&req->pool, b.data, b.len);
    pulse_buf_free(&b);
    req->res.headers = (h2o_headers_t){NULL, 0, 0}; /* drop whatever a failed handler had set */
    add_header(req, "content-type", 12, H2O_STRLIT("application/problem+json"));
    send_response(r, status, body, NULL);
}

/* A header name is an HTTP token; a value has no CR, LF or NUL. */
static int header_is_safe(const char *name, size_t nl, const char *value, size_t vl)
{
    if (nl == 0)
        return 0;
    for (size_t i = 0; i < nl; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", c) != NULL)
            return 0;
    }
    for (size_t i = 0; i < vl; i++)
        if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
            return 0;
    return 1;
}

/* Adds the string pairs of the table at idx of L as response headers. An unsafe one: logged,
 * nothing more added, -1 (the caller answers 500). */
static int add_lua_headers(pulse_request_t *r, lua_State *L, int idx)
{
    lua_pushnil(L);                 /* key */
    while (lua_next(L, idx) != 0) { /* key, value */
        size_t nl, vl;
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
            const char *name = lua_tolstring(L, -2, &nl), *value = lua_tolstring(L, -1, &vl);
            if (!header_is_safe(name, nl, value, vl)) {
                /* a value built from user input must never split the response */
                pulse_log(PULSE_LOG_ERROR, "handler_result", "request %s: refused an unsafe response header", r->id);
                lua_pop(L, 2);
                return -1;
            }
            add_header(r->req, name, nl, value, vl);
        }
        lua_pop(L, 1); /* key */
    }
    return 0;
}

/* The coroutine returned (status, headers, body, tenant, content type). Anything malformed is a 500. */
static void respond_from_lua(pulse_request_t *r, int nres)
{
    lua_State *co = r->co;
    int base = lua_gettop(co) - nres + 1;
    int isnum = 0;
    lua_Integer status = nres >= 1 ? lua_tointegerx(co, base, &isnum) : 0;
    if (!isnum || status < 100 || status > 599) {
        pulse_log(PULSE_LOG_ERROR, "handler_result", "request %s: app.handle returned no valid status", r->id);
        send_problem(r, 500, "internal_error", "Internal Server Error", "The server failed to handle the request.");
        return;
    }
    h2o_req_t *req = r->req;
    if (nres >= 2 && lua_istable(co, base + 1) && add_lua_headers(r, co, base + 1) != 0) {
        send_problem(r, 500, "internal_error", "Internal Server Error", "The server failed to handle the request.");
        return;
    }
    size_t len;
    const char *ct = nres >= 5 ? lua_tolstring(co, base + 4, &len) : NULL;
    if (ct != NULL) /* set after the table's headers: a handler's own content-type wins */
        h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, h2o_strdup(&req->pool, ct, len).base, len, 0);
    h2o_iovec_t body = {NULL, 0};
    const char *s = nres >= 3 ? lua_tolstring(co, base + 2, &len) : NULL;
    if (s != NULL)
        body = h2o_strdup(&req->pool, s, len);
    const char *tenant = nres >= 4 ? lua_tostring(co, base + 3) : NULL;
    send_response(r, (int)status, body, tenant);
}

static void request_finish(pulse_request_t *r, int ok)
{
    pulse_loop_t *loop = r->loop;
    pulse_request_stream_end(r); /* a coroutine that died with its stream open */
    if (h2o_timeout_is_linked(&r->timer))
        h2o_timeout_unlink(&r->timer);
    if (h2o_linklist_is_linked(&r->link))
        h2o_linklist_unlink(&r->link);
    free(r->stream.method);
    free(r->stream.path);
    if (r->pin.conn != NULL) {
        /* The handler ended inside a transaction (it cannot, through db.tx; but never leave a
         * connection pinned): roll back and let the pool have it again. */
        char err[128];
        pulse_pg_call_t rollback = {.sql = "ROLLBACK", .pin = &r->pin, .flags = PULSE_PG_UNPIN};
        pulse_pg_query(loop->pg, &rollback, err, sizeof(err));
    }
    if (h2o_timeout_is_linked(&r->deadline))
        h2o_timeout_unlink(&r->deadline);
    if (r->guard != NULL)
        r->guard->r = NULL;
    pulse_script_vm_release(r->vm, r->co, r->co_ref, ok);
    loop->inflight--;
    free(r);
}

void pulse_request_resume(pulse_request_t *r, int nargs)
{
    int nres = 0;
    r->waiting = 0;
    int st = lua_resume(r->co, NULL, nargs, &nres);
    if (st == LUA_YIELD) {
        lua_pop(r->co, nres);
        r->waiting = 1;
        return;
    }
    if (r->req != NULL && !r->responded) {
        if (st == LUA_OK) {
            respond_from_lua(r, nres);
        } else {
            /* app.handle catches handler errors itself; getting here is a bug in the app layer */
            pulse_log(PULSE_LOG_ERROR, "handler_crash", "request %s: %s", r->id, lua_tostring(r->co, -1));
            send_problem(r, 500, "internal_error", "Internal Server Error", "The server failed to handle the request.");
        }
    }
    request_finish(r, st == LUA_OK);
}

static void on_deadline(h2o_timeout_entry_t *entry)
{
    pulse_request_t *r = H2O_STRUCT_FROM_MEMBER(pulse_request_t, deadline, entry);
    if (r->req == NULL || r->responded)
        return;
    pulse_log(PULSE_LOG_WARN, "request_timeout", "request %s ran past PULSE_REQUEST_TIMEOUT_MS", r->id);
    send_problem(r, 504, "timeout", "Gateway Timeout", "The request took too long; try again later.");
    /* the coroutine goes on until its I/O completes; its answer is then dropped */
}

/* --- pulse.sleep and streams --- */

/* Every wake-up goes through r->timer, linked to one loop-owned timeout at a time: the resumed
 * coroutine may finish and free r, which must then own no h2o_timeout_t (h2o walks the loop's
 * list of timeouts after the callback). */
static void wake(pulse_request_t *r)
{
    if (h2o_timeout_is_linked(&r->timer))
        h2o_timeout_unlink(&r->timer);
    h2o_timeout_link(r->loop->ctx.loop, &r->loop->ctx.zero_timeout, &r->timer);
}

static void watch(pulse_request_t *r)
{
    if (!h2o_linklist_is_linked(&r->link))
        h2o_linklist_insert(&r->loop->sleepers, &r->link);
}

static int sleep_interrupted(pulse_request_t *r)
{
    return r->loop->shutting_down || r->req == NULL || r->stream.closed || r->stream.expired;
}

const char *pulse_request_stream_state(pulse_request_t *r)
{
    if (r->req == NULL || r->guard == NULL || r->stream.closed || !r->stream.open)
        return "closed";
    if (r->stream.expired)
        return "expired";
    if (r->loop->shutting_down)
        return "shutdown";
    return NULL;
}

/* The next step of a sleep: the largest 2^k ms timeout not past the wake-up (nor past the next
 * keep-alive comment of an open stream), so any delay is met to the millisecond in a few steps. */
static void arm_sleep(pulse_request_t *r, uint64_t now)
{
    pulse_loop_t *loop = r->loop;
    uint64_t left = r->sleep_until - now;
    if (r->stream.open) {
        uint64_t due = r->stream.last_write + STREAM_KEEPALIVE_MS;
        uint64_t until_due = due > now ? due - now : 1000; /* a write is in flight: look again soon */
        if (until_due < left)
            left = until_due;
    }
    int k = 0;
    while (k + 1 < SLEEP_BUCKETS && ((uint64_t)1 << (k + 1)) <= left)
        k++;
    if (!(loop->sleep_timeouts_ready & (1u << k))) {
        h2o_timeout_init(loop->ctx.loop, &loop->sleep_timeouts[k], (uint64_t)1 << k);
        loop->sleep_timeouts_ready |= 1u << k;
    }
    h2o_timeout_link(loop->ctx.loop, &loop->sleep_timeouts[k], &r->timer);
}

static void send_buffered(pulse_request_guard_t *g, h2o_req_t *req)
{
    h2o_iovec_t v = h2o_iovec_init(g->buf, g->len);
    g->in_flight = 1;
    h2o_send(req, &v, 1, H2O_SEND_STATE_IN_PROGRESS);
}

/* A keep-alive comment while the producer sleeps: HTTP/1 notices a gone client on a write only. */
static void keepalive(pulse_request_t *r, uint64_t now)
{
    pulse_request_guard_t *g = r->guard;
    if (r->req == NULL || g == NULL || g->in_flight || now < r->stream.last_write + STREAM_KEEPALIVE_MS)
        return;
    h2o_iovec_t v = h2o_iovec_init(KEEPALIVE, sizeof(KEEPALIVE) - 1);
    g->in_flight = 1;
    r->stream.last_write = now;
    r->stream.bytes += v.len;
    h2o_send(r->req, &v, 1, H2O_SEND_STATE_IN_PROGRESS);
}

static void resume_boolean(pulse_request_t *r, int value)
{
    r->wait = PULSE_WAIT_NONE;
    lua_pushboolean(r->co, value);
    pulse_request_resume(r, 1);
}

static void on_timer(h2o_timeout_entry_t *entry)
{
    pulse_request_t *r = H2O_STRUCT_FROM_MEMBER(pulse_request_t, timer, entry);
    switch (r->wait) {
    case PULSE_WAIT_SLEEP: {
        if (sleep_interrupted(r)) {
            resume_boolean(r, 0);
            return;
        }
        uint64_t now = h2o_now(r->loop->ctx.loop);
        if (now >= r->sleep_until) {
            resume_boolean(r, 1);
            return;
        }
        if (r->stream.open)
            keepalive(r, now);
        arm_sleep(r, now);
        return;
    }
    case PULSE_WAIT_SEND:
    case PULSE_WAIT_ERROR: {
        int acked = r->wait == PULSE_WAIT_SEND && r->stream.acked;
        r->wait = PULSE_WAIT_NONE;
        r->stream.acked = 0;
        if (acked) {
            lua_pushboolean(r->co, 1);
            pulse_request_resume(r, 1);
            return;
        }
        const char *why = pulse_request_stream_state(r);
        if (r->guard != NULL)
            r->guard->queued = 0; /* not sent after all */
        lua_pushnil(r->co);
        lua_pushstring(r->co, why != NULL ? why : "closed");
        pulse_request_resume(r, 2);
        return;
    }
    default:
        return;
    }
}

void pulse_request_sleep(pulse_request_t *r, uint64_t ms)
{
    watch(r);
    r->wait = PULSE_WAIT_SLEEP;
    uint64_t now = h2o_now(r->loop->ctx.loop);
    r->sleep_until = now + ms;
    /* even an interrupted sleep yields: a loop that ignores `false` still lets the loop run */
    if (ms == 0 || sleep_interrupted(r))
        wake(r);
    else
        arm_sleep(r, now);
}

/* h2o took the last write: send what waits, end, or let the coroutine go on. */
static void on_stream_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    pulse_request_guard_t *g = (pulse_request_guard_t *)gen;
    g->in_flight = 0;
    if (g->queued) {
        g->queued = 0;
        send_buffered(g, req);
        return;
    }
    if (g->final_pending) {
        g->final_pending = 0;
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    pulse_request_t *r = g->r;
    if (r != NULL && r->wait == PULSE_WAIT_SEND) {
        r->stream.acked = 1;
        wake(r); /* resumed from the loop, not from inside h2o's write callback */
    }
}

/* The client is gone (h2o disposes of the request next). */
static void on_stream_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    pulse_request_guard_t *g = (pulse_request_guard_t *)gen;
    g->in_flight = g->queued = g->final_pending = 0;
    pulse_request_t *r = g->r;
    if (r == NULL)
        return;
    r->stream.closed = 1;
    if (r->wait == PULSE_WAIT_SLEEP || r->wait == PULSE_WAIT_SEND)
        wake(r);
}

static void on_stream_expired(h2o_timeout_entry_t *entry)
{
    pulse_request_t *r = H2O_STRUCT_FROM_MEMBER(pulse_request_t, deadline, entry);
    r->stream.expired = 1;
    pulse_log(PULSE_LOG_INFO, "stream_expired", "request %s: stream ran PULSE_STREAM_MAX_SECONDS", r->id);
    if (r->wait == PULSE_WAIT_SLEEP || r->wait == PULSE_WAIT_SEND)
        wake(r);
}

int pulse_request_stream_begin(pulse_request_t *r, lua_State *L, int headers_idx, const char *tenant)
{
    if (r->req == NULL || r->guard == NULL || r->responded || r->stream.open)
        return -1;
    h2o_req_t *req = r->req;
    if (headers_idx != 0 && add_lua_headers(r, L, headers_idx) != 0) {
        send_problem(r, 500, "internal_error", "Internal Server Error", "The server failed to handle the request.");
        return -1;
    }
    /* after the table's headers: these three make it a stream */
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, H2O_STRLIT("text/event-stream; charset=utf-8"), 1);
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, H2O_STRLIT("no-store"), 1);
    h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-accel-buffering"), 0, H2O_STRLIT("no"), 1);
    add_common_headers(r);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = SIZE_MAX;
    req->compress_hint = H2O_COMPRESS_HINT_DISABLE; /* gzip would hold events back */
    req->res.mime_attr = &stream_mime;
    r->responded = 1;
    if (h2o_timeout_is_linked(&r->deadline))
        h2o_timeout_unlink(&r->deadline);
    r->deadline.cb = on_stream_expired;
    h2o_timeout_link(r->loop->ctx.loop, &r->loop->stream_timeout, &r->deadline);
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    r->stream.method = strndup(req->method.base, req->method.len);
    r->stream.path = strndup(req->path.base, path_len);
    snprintf(r->stream.tenant, sizeof(r->stream.tenant), "%s", tenant != NULL ? tenant : "");
    r->stream.open = 1;
    r->stream.serial = ++r->loop->stream_seq;
    r->stream.last_write = h2o_now(r->loop->ctx.loop);
    watch(r);
    h2o_start_response(req, &r->guard->generator);
    r->guard->in_flight = 1; /* the headers go out now, not with the first event */
    h2o_send(req, NULL, 0, H2O_SEND_STATE_IN_PROGRESS);
    return 0;
}

void pulse_request_stream_write(pulse_request_t *r, const char *data, size_t len)
{
    if (pulse_request_stream_state(r) != NULL) {
        r->wait = PULSE_WAIT_ERROR; /* answered from the loop: a loop ignoring errors cannot spin */
        wake(r);
        return;
    }
    pulse_request_guard_t *g = r->guard;
    if (g->cap < len) {
        free(g->buf);
        g->cap = len < 4096 ? 4096 : len;
        g->buf = pulse_xmalloc(g->cap);
    }
    memcpy(g->buf, data, len);
    g->len = len;
    r->stream.bytes += len;
    r->stream.last_write = h2o_now(r->loop->ctx.loop);
    r->stream.acked = 0;
    r->wait = PULSE_WAIT_SEND;
    if (g->in_flight)
        g->queued = 1; /* behind a keep-alive comment */
    else
        send_buffered(g, r->req);
}

void pulse_request_stream_end(pulse_request_t *r)
{
    if (!r->stream.open)
        return;
    r->stream.open = 0;
    access_log_line(r->loop, h2o_iovec_init(r->stream.method, strlen(r->stream.method)),
                    h2o_iovec_init(r->stream.path, strlen(r->stream.path)), r->id, 200, r->stream.bytes, now_ns() - r->started_ns,
                    r->stream.tenant[0] ? r->stream.tenant : NULL);
    if (h2o_timeout_is_linked(&r->deadline))
        h2o_timeout_unlink(&r->deadline);
    pulse_request_guard_t *g = r->guard;
    if (r->req == NULL || g == NULL || r->stream.closed)
        return;
    if (g->in_flight || g->queued)
        g->final_pending = 1;
    else
        h2o_send(r->req, NULL, 0, H2O_SEND_STATE_FINAL);
}

void pulse_request_shutdown_notify(pulse_loop_t *loop)
{
    for (h2o_linklist_t *n = loop->sleepers.next; n != &loop->sleepers; n = n->next) {
        pulse_request_t *r = H2O_STRUCT_FROM_MEMBER(pulse_request_t, link, n);
        if (r->wait == PULSE_WAIT_SLEEP || r->wait == PULSE_WAIT_SEND)
            wake(r);
    }
}

void pulse_request_make_id(pulse_loop_t *loop, h2o_req_t *req, char *out, size_t outlen)
{
    /* A caller's X-Request-Id is kept when it is safe to log and echo. */
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        int ok = v.len > 0 && v.len < outlen;
        for (size_t k = 0; ok && k < v.len; k++) {
            char c = v.base[k];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        }
        if (ok) {
            memcpy(out, v.base, v.len);
            out[v.len] = '\0';
            return;
        }
    }
    /* <process tag>-<thread>-<sequence> in hex, formatted by hand: snprintf showed up in profiles */
    static const char hex[] = "0123456789abcdef";
    static uint32_t process_tag;
    if (process_tag == 0)
        process_tag = (uint32_t)(now_ns() ^ ((uint64_t)getpid() << 16)) | 1;
    char *p = out; /* at most 8 + 1 + 1 + 1 + 16 + 1 bytes: outlen >= 32 */
    for (int shift = 28; shift >= 0; shift -= 4)
        *p++ = hex[(process_tag >> shift) & 15];
    *p++ = '-';
    *p++ = hex[loop->index & 15];
    *p++ = '-';
    uint64_t seq = ++loop->request_seq;
    char tmp[16];
    int n = 0;
    do {
        tmp[n++] = hex[seq & 15];
        seq >>= 4;
    } while (seq);
    while (n)
        *p++ = tmp[--n];
    *p = '\0';
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    pulse_loop_t *loop = (pulse_loop_t *)req->conn->ctx;
    pulse_request_t *r = pulse_xmalloc(sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->req = req;
    r->loop = loop;
    r->started_ns = now_ns();
    r->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*r->guard), on_guard_dispose);
    memset(r->guard, 0, sizeof(*r->guard));
    r->guard->generator.proceed = on_stream_proceed;
    r->guard->generator.stop = on_stream_stop;
    r->guard->r = r;
    pulse_request_make_id(loop, req, r->id, sizeof(r->id));
    r->vm = loop->vm;
    r->co = pulse_script_vm_acquire(r->vm, &r->co_ref);
    *(pulse_request_t **)lua_getextraspace(r->co) = r;
    loop->inflight++;
    r->timer.cb = on_timer;
    r->deadline.cb = on_deadline;
    h2o_timeout_link(loop->ctx.loop, &loop->request_timeout, &r->deadline);
    push_request(r->co, r);
    pulse_request_resume(r, 1);
    return 0;
}

void pulse_request_register(h2o_pathconf_t *pathconf)
{
    h2o_handler_t *h = h2o_create_handler(pathconf, sizeof(*h));
    h->on_req = on_req;
}

void pulse_request_define_metatable(lua_State *L)
{
    luaL_newmetatable(L, REQ_MT);
    lua_pushcfunction(L, l_request_index);
    lua_setfield(L, -2, "__index");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &REQ_MT_KEY); /* found by address on the hot path */
}
