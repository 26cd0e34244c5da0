/* The `db` Lua API for request handlers: db.query(sql, ...) sends the query on the loop's pool
 * and yields; the coroutine resumes with (rows, affected) or (nil, err). db.tx (embedded Lua,
 * src/script/db.lua) builds transactions on the _begin/_finish primitives here, which pin one
 * connection to the request until COMMIT/ROLLBACK. Parameters are always sent separately from
 * the SQL text ($1, $2 ...): no value is ever spliced into a query. */
#include "script/script.h"
#include "core/buf.h"
#include "db/pg.h"
#include "script/json.h"
#include "server/request.h"
#include "server/server.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Type OIDs from PostgreSQL's pg_type catalog (stable across versions). */
enum {
    OID_BOOL = 16,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_OID = 26,
    OID_JSON = 114,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_NUMERIC = 1700,
    OID_JSONB = 3802,
    OID_TIMESTAMP = 1114,
    OID_TIMESTAMPTZ = 1184
};

#define MAX_PARAMS 1000

static const char ARRAY_MT_KEY = 0; /* registry key (address) of json.array_mt */

/* PostgreSQL's ISO output ("2026-11-21 20:39:45.135+00", the session being in UTC) as RFC 3339,
 * what the API promises: "2026-11-21T20:39:45.135Z". Anything unexpected passes through as is. */
static void push_timestamp(lua_State *L, const char *v, size_t len)
{
    char out[64];
    if (len < 19 || len + 3 > sizeof(out) || v[10] != ' ') {
        lua_pushlstring(L, v, len);
        return;
    }
    memcpy(out, v, len);
    out[10] = 'T';
    if (len >= 22 && memcmp(out + len - 3, "+00", 3) == 0) {
        out[len - 3] = 'Z'; /* UTC */
        len -= 2;
    } else if (len >= 22 && (out[len - 3] == '+' || out[len - 3] == '-')) {
        memcpy(out + len, ":00", 3); /* "+05" -> "+05:00" */
        len += 3;
    }
    lua_pushlstring(L, out, len);
}

static void push_value(lua_State *L, const PGresult *res, int row, int col, Oid type)
{
    if (PQgetisnull(res, row, col)) {
        lua_pushlightuserdata(L, NULL); /* json.null: the column exists, and encodes as null */
        return;
    }
    const char *v = PQgetvalue(res, row, col);
    int len = PQgetlength(res, row, col);
    switch (type) {
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        lua_pushinteger(L, strtoll(v, NULL, 10));
        break;
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC:
        lua_pushnumber(L, strtod(v, NULL));
        break;
    case OID_BOOL:
        lua_pushboolean(L, v[0] == 't');
        break;
    case OID_JSON:
    case OID_JSONB: {
        char err[160];
        if (pulse_json_decode_push(L, v, (size_t)len, err, sizeof(err)) != 0)
            lua_pushlstring(L, v, (size_t)len);
        break;
    }
    case OID_TIMESTAMP:
    case OID_TIMESTAMPTZ:
        push_timestamp(L, v, (size_t)len);
        break;
    default:
        lua_pushlstring(L, v, (size_t)len);
    }
}

/* rows: an array (json.array_mt) of {column = value}; affected: PQcmdTuples as an integer. */
static void push_rows(lua_State *L, const PGresult *res)
{
    int nrows = PQntuples(res), ncols = PQnfields(res);
    luaL_checkstack(L, ncols + 8, "too many columns");
    lua_createtable(L, nrows, 0);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &ARRAY_MT_KEY);
    lua_setmetatable(L, -2);
    int rows_idx = lua_gettop(L);
    for (int c = 0; c < ncols; c++)
        lua_pushstring(L, PQfname(res, c)); /* column names interned once, above the rows */
    for (int r = 0; r < nrows; r++) {
        lua_createtable(L, 0, ncols);
        for (int c = 0; c < ncols; c++) {
            lua_pushvalue(L, rows_idx + 1 + c);
            push_value(L, res, r, c, PQftype(res, c));
            lua_rawset(L, -3);
        }
        lua_rawseti(L, rows_idx, r + 1);
    }
    lua_settop(L, rows_idx);
    const char *affected = PQcmdTuples((PGresult *)res);
    lua_pushinteger(L, affected[0] ? strtoll(affected, NULL, 10) : nrows);
}

static void set_field(lua_State *L, const char *key, const char *value)
{
    if (value != NULL && *value) {
        lua_pushstring(L, value);
        lua_setfield(L, -2, key);
    }
}

/* err = {code=, message=, sqlstate=, detail=, constraint=, table=, column=} */
static void push_error(lua_State *L, const pulse_pg_outcome_t *out)
{
    lua_pushnil(L);
    lua_createtable(L, 0, 6);
    if (out->status == PULSE_PG_UNAVAILABLE || out->result == NULL) {
        set_field(L, "code", "db_unavailable");
        set_field(L, "message", out->message);
        return;
    }
    const PGresult *res = out->result;
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *code = "db_error";
    if (state && strcmp(state, "57014") == 0)
        code = "db_timeout"; /* statement_timeout */
    else if (state && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0))
        code = "db_unavailable"; /* connection failure, server shutting down */
    set_field(L, "code", code);
    set_field(L, "sqlstate", state);
    set_field(L, "message", PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
    set_field(L, "detail", PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL));
    set_field(L, "constraint", PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME));
    set_field(L, "table", PQresultErrorField(res, PG_DIAG_TABLE_NAME));
    set_field(L, "column", PQresultErrorField(res, PG_DIAG_COLUMN_NAME));
}

static void on_result(void *data, const pulse_pg_outcome_t *out)
{
    pulse_request_t *r = data;
    lua_State *co = r->co;
    if (out->status == PULSE_PG_OK)
        push_rows(co, out->result);
    else
        push_error(co, out);
    pulse_request_resume(r, 2);
}

static pulse_request_t *checked_request(lua_State *L, const char *fn)
{
    pulse_request_t *r = pulse_request_current(L);
    if (r == NULL || r->loop == NULL || r->loop->pg == NULL)
        luaL_error(L, "%s can only be called while handling a request", fn);
    return r;
}

/* Converts the Lua arguments from index `first` into text parameters (kept alive on the stack). */
static int collect_params(lua_State *L, int first, const char **values, int *lengths, pulse_buf_t *scratch)
{
    int top = lua_gettop(L), n = top - first + 1;
    if (n > MAX_PARAMS)
        luaL_error(L, "db.query: at most %d parameters", MAX_PARAMS);
    for (int i = 0; i < n; i++) {
        int idx = first + i;
        size_t len = 0;
        switch (lua_type(L, idx)) {
        case LUA_TNIL:
            values[i] = NULL;
            break;
        case LUA_TLIGHTUSERDATA:
            if (lua_touserdata(L, idx) != NULL)
                luaL_argerror(L, idx, "cannot send a userdata to the database");
            values[i] = NULL;
            break;
        case LUA_TBOOLEAN:
            values[i] = lua_toboolean(L, idx) ? "true" : "false";
            len = strlen(values[i]);
            break;
        case LUA_TNUMBER:
            values[i] = lua_tolstring(L, idx, &len); /* converts in place: fine, we own the slot */
            break;
        case LUA_TSTRING:
            values[i] = lua_tolstring(L, idx, &len);
            /* text parameters end at a NUL: the database would silently see a shorter value */
            if (memchr(values[i], '\0', len) != NULL)
                luaL_argerror(L, idx, "a string sent to the database cannot contain NUL bytes");
            break;
        case LUA_TTABLE: {
            char err[256];
            pulse_buf_reset(scratch);
            if (pulse_json_encode_value(L, idx, scratch, 0, err, sizeof(err)) != 0)
                luaL_argerror(L, idx, err);
            lua_pushlstring(L, scratch->data, scratch->len);
            lua_replace(L, idx);
            values[i] = lua_tolstring(L, idx, &len);
            break;
        }
        default:
            luaL_argerror(L, idx, lua_pushfstring(L, "cannot send a %s to the database", luaL_typename(L, idx)));
        }
        lengths[i] = (int)len;
    }
    return n;
}

static int submit(lua_State *L, pulse_request_t *r, int flags, const char *sql, int first)
{
    const char *values[MAX_PARAMS];
    int lengths[MAX_PARAMS];
    pulse_buf_t scratch = PULSE_BUF_INIT;
    int n = first > 0 ? collect_params(L, first, values, lengths, &scratch) : 0;
    char err[256];
    pulse_pg_call_t call = {.sql = sql,
                            .nparams = n,
                            .values = values,
                            .lengths = lengths,
                            /* not before COMMIT/ROLLBACK: in a failed transaction the set_config
                             * would fail too, and the ROLLBACK behind it (no Sync between) be skipped */
                            .tenant = (r->tenant[0] && !(flags & PULSE_PG_UNPIN)) ? r->tenant : NULL,
                            .pin = (flags || r->pin.conn) ? &r->pin : NULL,
                            .flags = flags,
                            .cb = on_result,
                            .data = r};
    int rc = pulse_pg_query(r->loop->pg, &call, err, sizeof(err));
    pulse_buf_free(&scratch);
    if (rc != 0) {
        pulse_pg_outcome_t out = {PULSE_PG_UNAVAILABLE, NULL, err};
        push_error(L, &out);
        return 2;
    }
    return lua_yield(L, 0); /* resumed by on_result with (rows, affected) or (nil, err) */
}

/* db.query(sql, ...) -> rows, affected | nil, err */
static int l_db_query(lua_State *L)
{
    const char *sql = luaL_checkstring(L, 1);
    pulse_request_t *r = checked_request(L, "db.query");
    return submit(L, r, 0, sql, 2);
}

/* db._begin() -> rows | nil, err : BEGIN on a connection pinned to this request */
static int l_db_begin(lua_State *L)
{
    pulse_request_t *r = checked_request(L, "db.tx");
    if (r->pin.conn != NULL)
        return luaL_error(L, "db.tx: already inside a transaction (nested db.tx is not supported)");
    return submit(L, r, PULSE_PG_PIN, "BEGIN", 0);
}

/* db._finish(commit) -> rows | nil, err : COMMIT or ROLLBACK and unpin */
static int l_db_finish(lua_State *L)
{
    int commit = lua_toboolean(L, 1);
    pulse_request_t *r = checked_request(L, "db.tx");
    if (r->pin.conn == NULL) {
        pulse_pg_outcome_t out = {PULSE_PG_UNAVAILABLE, NULL, "the transaction's database connection was lost"};
        push_error(L, &out);
        return 2;
    }
    lua_settop(L, 0);
    return submit(L, r, PULSE_PG_UNPIN, commit ? "COMMIT" : "ROLLBACK", 0);
}

/* db.set_tenant(uuid): every later query of this request runs with pulse.tenant_id = uuid (its
 * transaction only), which Row-Level Security policies read. Called by the authentication
 * middleware with the tenant of the verified identity, never with a value from the request. */
static int l_db_set_tenant(lua_State *L)
{
    size_t len;
    const char *tenant = luaL_checklstring(L, 1, &len);
    pulse_request_t *r = checked_request(L, "db.set_tenant");
    if (len != 36 || !pulse_pg_tenant_valid(tenant))
        return luaL_argerror(L, 1, "the tenant must be a UUID");
    memcpy(r->tenant, tenant, 37);
    return 0;
}

/* db.in_tx() -> boolean */
static int l_db_in_tx(lua_State *L)
{
    pulse_request_t *r = pulse_request_current(L);
    lua_pushboolean(L, r != NULL && r->pin.conn != NULL);
    return 1;
}

int pulse_script_open_db(lua_State *L)
{
    /* keep json.array_mt at hand for result rows */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "json");
    lua_getfield(L, -1, "array_mt");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ARRAY_MT_KEY);
    lua_pop(L, 2);

    static const luaL_Reg fns[] = {{"query", l_db_query}, {"_begin", l_db_begin},          {"_finish", l_db_finish},
                                   {"in_tx", l_db_in_tx}, {"set_tenant", l_db_set_tenant}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
