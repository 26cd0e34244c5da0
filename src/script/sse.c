/* The `sse` Lua API behind response.sse (lua/response.lua, lua/app.lua): sse._begin starts the
 * 200 text/event-stream answer of the current request and returns its stream; stream:send and
 * stream:comment frame one event or comment, hand it to h2o and yield until h2o took it (one
 * write in flight); sse._finish ends the answer. The C side of the stream is in
 * src/server/request.c; a stream userdata names its request by serial, never by pointer, so one
 * kept past its request only raises. */
#include "script/script.h"
#include "core/buf.h"
#include "script/json.h"
#include "server/request.h"

#include <lauxlib.h>
#include <stdint.h>
#include <string.h>

static const char STREAM_MT[] = "pulse.sse.stream";

typedef struct stream_ud_t {
    uint64_t serial;
} stream_ud_t;

/* The request whose open stream is at index 1; raises otherwise. */
static pulse_request_t *check_stream(lua_State *L, const char *fn)
{
    stream_ud_t *s = luaL_checkudata(L, 1, STREAM_MT);
    pulse_request_t *r = pulse_request_current(L);
    if (r == NULL || r->stream.serial != s->serial)
        luaL_error(L, "stream:%s: the stream belongs to another request", fn);
    if (!r->stream.open)
        luaL_error(L, "stream:%s: the stream has ended", fn);
    if (!lua_isyieldable(L))
        luaL_error(L, "stream:%s: cannot wait here (not in the request's coroutine)", fn);
    return r;
}

/* field at idx -> its text (kept on the stack at the same slot), or NULL when nil. A string
 * that would end its line early (CR, LF) or be ignored (NUL) raises. */
static const char *line_field(lua_State *L, int idx, const char *name, size_t *len)
{
    int t = lua_type(L, idx);
    if (t == LUA_TNIL)
        return NULL;
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_error(L, "stream:send: %s must be a string", name);
    const char *s = lua_tolstring(L, idx, len);
    for (size_t i = 0; i < *len; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            luaL_error(L, "stream:send: %s must not contain CR, LF or NUL", name);
    return s;
}

/* Appends "<prefix><line>\n" for each line of s (CRLF, CR and LF all end a line). */
static void add_lines(luaL_Buffer *b, const char *prefix, const char *s, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '\r' && s[i] != '\n')
            continue;
        luaL_addstring(b, prefix);
        luaL_addlstring(b, s + start, i - start);
        luaL_addchar(b, '\n');
        if (i + 1 < len && s[i] == '\r' && s[i + 1] == '\n')
            i++;
        start = i + 1;
    }
}

/* Hands the framed text on top of the stack to the request and yields. */
static int write_and_yield(lua_State *L, pulse_request_t *r)
{
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    pulse_request_stream_write(r, text, len); /* copied */
    return lua_yield(L, 0);                   /* resumed with true | nil, "closed"|"expired"|"shutdown" */
}

/* stream:send(event) -> true | nil, "closed" | nil, "expired" | nil, "shutdown"
 * event: a string (data only) or {event=, data=, id=, retry=}; data a string, a number or a
 * value for json.encode. */
static int l_stream_send(lua_State *L)
{
    pulse_request_t *r = check_stream(L, "send");
    int t = lua_type(L, 2);
    luaL_argcheck(L, t == LUA_TSTRING || t == LUA_TTABLE, 2, "an event is a string or a table");
    lua_settop(L, 2);
    if (t == LUA_TSTRING) {
        lua_pushnil(L);      /* 3: event */
        lua_pushnil(L);      /* 4: id */
        lua_pushnil(L);      /* 5: retry */
        lua_pushvalue(L, 2); /* 6: data */
    } else {
        lua_getfield(L, 2, "event");
        lua_getfield(L, 2, "id");
        lua_getfield(L, 2, "retry");
        lua_getfield(L, 2, "data");
    }
    size_t event_len = 0, id_len = 0, data_len = 0;
    const char *event = line_field(L, 3, "event", &event_len);
    const char *id = line_field(L, 4, "id", &id_len);
    lua_Integer retry = -1;
    if (!lua_isnil(L, 5)) {
        int isint = 0;
        retry = lua_tointegerx(L, 5, &isint);
        if (!isint || retry < 0)
            return luaL_error(L, "stream:send: retry must be a non-negative integer (milliseconds)");
    }
    const char *data = NULL;
    int dt = lua_type(L, 6);
    if (dt == LUA_TSTRING || dt == LUA_TNUMBER) {
        data = lua_tolstring(L, 6, &data_len);
    } else if (dt != LUA_TNIL) {
        pulse_buf_t json = PULSE_BUF_INIT;
        char err[256];
        if (pulse_json_encode_value(L, 6, &json, 0, err, sizeof(err)) != 0) {
            pulse_buf_free(&json);
            return luaL_error(L, "stream:send: data: %s", err);
        }
        lua_pushlstring(L, json.data, json.len);
        pulse_buf_free(&json);
        lua_replace(L, 6);
        data = lua_tolstring(L, 6, &data_len);
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (event != NULL) {
        luaL_addstring(&b, "event: ");
        luaL_addlstring(&b, event, event_len);
        luaL_addchar(&b, '\n');
    }
    if (id != NULL) {
        luaL_addstring(&b, "id: ");
        luaL_addlstring(&b, id, id_len);
        luaL_addchar(&b, '\n');
    }
    if (retry >= 0) {
        lua_pushfstring(L, "retry: %I\n", retry);
        luaL_addvalue(&b);
    }
    if (data != NULL)
        add_lines(&b, "data: ", data, data_len);
    luaL_addchar(&b, '\n'); /* the blank line dispatches the event */
    luaL_pushresult(&b);
    return write_and_yield(L, r);
}

/* stream:comment([text]) -> like send: ": text" lines the client ignores (keep-alives). */
static int l_stream_comment(lua_State *L)
{
    pulse_request_t *r = check_stream(L, "comment");
    size_t len;
    const char *text = luaL_optlstring(L, 2, "", &len);
    lua_settop(L, 2);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    add_lines(&b, ": ", text, len);
    luaL_addchar(&b, '\n');
    luaL_pushresult(&b);
    return write_and_yield(L, r);
}

/* sse._begin([headers [, tenant]]) -> stream | nil, "closed": starts the answer of the current
 * request. nil when it can no longer be streamed: the client is gone, a 504 (or, for an unsafe
 * header, a 500) went out. */
static int l_sse_begin(lua_State *L)
{
    pulse_request_t *r = pulse_request_current(L);
    if (r == NULL || r->loop == NULL)
        return luaL_error(L, "response.sse can only answer a request");
    if (!lua_isnoneornil(L, 1))
        luaL_checktype(L, 1, LUA_TTABLE);
    const char *tenant = luaL_optstring(L, 2, NULL);
    if (pulse_request_stream_begin(r, L, lua_istable(L, 1) ? 1 : 0, tenant) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    stream_ud_t *s = lua_newuserdatauv(L, sizeof(*s), 0);
    s->serial = r->stream.serial;
    luaL_setmetatable(L, STREAM_MT);
    return 1;
}

/* sse._finish(stream): the final chunk and the access log line. Idempotent. */
static int l_sse_finish(lua_State *L)
{
    stream_ud_t *s = luaL_checkudata(L, 1, STREAM_MT);
    pulse_request_t *r = pulse_request_current(L);
    if (r != NULL && r->stream.serial == s->serial)
        pulse_request_stream_end(r);
    return 0;
}

static int l_stream_tostring(lua_State *L)
{
    stream_ud_t *s = luaL_checkudata(L, 1, STREAM_MT);
    lua_pushfstring(L, "sse stream %I", (lua_Integer)s->serial);
    return 1;
}

int pulse_script_open_sse(lua_State *L)
{
    static const luaL_Reg methods[] = {{"send", l_stream_send}, {"comment", l_stream_comment}, {NULL, NULL}};
    luaL_newmetatable(L, STREAM_MT); /* mt */
    luaL_newlib(L, methods);         /* mt, methods */
    lua_setfield(L, -2, "__index");  /* mt */
    lua_pushcfunction(L, l_stream_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"_begin", l_sse_begin}, {"_finish", l_sse_finish}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
