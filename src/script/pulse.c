/* The `pulse` Lua API: structured logging, the clock, sleeping without blocking the loop, the
 * non-secret configuration, the migration files the binary expects (for /ready), and the state
 * of the database pool. */
#include "script/script.h"
#include "core/buf.h"
#include "core/log.h"
#include "db/migrate.h"
#include "server/request.h"
#include "server/server.h"

#include <lauxlib.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

static pulse_log_level_t check_level(lua_State *L, int idx)
{
    static const char *const names[] = {"debug", "info", "warn", "error", NULL};
    return (pulse_log_level_t)luaL_checkoption(L, idx, "info", names);
}

/* pulse.log(level, event, message) */
static int l_pulse_log(lua_State *L)
{
    pulse_log_level_t level = check_level(L, 1);
    const char *event = luaL_checkstring(L, 2);
    const char *msg = luaL_optstring(L, 3, "");
    pulse_request_t *r = pulse_request_current(L);
    if (r != NULL)
        pulse_log(level, event, "request %s: %s", r->id, msg);
    else
        pulse_log(level, event, "%s", msg);
    return 0;
}

/* pulse.now() -> seconds since the epoch, with sub-millisecond precision */
/* A process-wide counter the loop threads' VMs share: bumped when something cached per VM
 * changed (a rule published or rolled back), so the other threads look again at once instead of
 * after their cache's time to live. */
static _Atomic uint64_t change_counter;

/* pulse.changes([bump]) -> the counter (after adding one when bump is true) */
static int l_pulse_changes(lua_State *L)
{
    uint64_t v = lua_toboolean(L, 1) ? atomic_fetch_add(&change_counter, 1) + 1 : atomic_load(&change_counter);
    lua_pushinteger(L, (lua_Integer)v);
    return 1;
}

static int l_pulse_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + ts.tv_nsec / 1e9);
    return 1;
}

/* pulse.sleep(seconds) -> true | false (the server is shutting down, the client went away or the
 * request's stream expired: end the loop). Yields the request's coroutine; an h2o timer on its
 * loop resumes it. While a stream is open, a keep-alive comment goes out every 15 s of sleep. */
static int l_pulse_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s >= 0 && s <= 3600, 1, "seconds must be from 0 to 3600");
    pulse_request_t *r = pulse_request_current(L);
    if (r == NULL || r->loop == NULL || !lua_isyieldable(L))
        return luaL_error(L, "pulse.sleep can only be called while handling a request");
    pulse_request_sleep(r, (uint64_t)(s * 1000 + 0.5));
    return lua_yield(L, 0); /* resumed with true or false */
}

/* pulse.db_ready() -> connections of this loop ready for queries (nil outside the server) */
static int l_pulse_db_ready(lua_State *L)
{
    pulse_loop_t *loop = pulse_script_host(L);
    if (loop == NULL || loop->pg == NULL)
        return 0;
    lua_pushinteger(L, pulse_pg_pool_ready(loop->pg));
    return 1;
}

/* pulse.migrations() -> {{version=, name=, checksum=}, ...} as found in migrations/ | nil, err */
static int l_pulse_migrations(lua_State *L)
{
    const pulse_config_t *cfg = pulse_script_config(L);
    pulse_migration_t *list = NULL;
    size_t n = 0;
    char err[512];
    if (pulse_migrate_scan(cfg->migrations_dir, &list, &n, err, sizeof(err)) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, (lua_Integer)list[i].version);
        lua_setfield(L, -2, "version");
        lua_pushstring(L, list[i].name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, list[i].checksum);
        lua_setfield(L, -2, "checksum");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    pulse_migrate_free(list, n);
    return 1;
}

static void set_string(lua_State *L, const char *key, const char *value)
{
    lua_pushstring(L, value ? value : "");
    lua_setfield(L, -2, key);
}

static void set_integer(lua_State *L, const char *key, lua_Integer value)
{
    lua_pushinteger(L, value);
    lua_setfield(L, -2, key);
}

/* pulse.config: what the application layer may read. No secrets, no database URL. */
static void push_config(lua_State *L, const pulse_config_t *cfg)
{
    lua_createtable(L, 0, 8);
    set_string(L, "env", cfg->env);
    set_string(L, "cors_origins", cfg->cors_origins);
    set_string(L, "app_extra", cfg->app_extra);
    set_string(L, "home", cfg->home);
    set_integer(L, "max_body_bytes", (lua_Integer)cfg->max_body_bytes);
    set_integer(L, "max_upload_bytes", (lua_Integer)cfg->max_upload_bytes);
    set_string(L, "upload_dir", cfg->upload_dir);
    set_integer(L, "request_timeout_ms", cfg->request_timeout_ms);
    set_integer(L, "threads", cfg->threads);
}

int pulse_script_open_pulse(lua_State *L)
{
    static const luaL_Reg fns[] = {{"log", l_pulse_log},
                                   {"now", l_pulse_now},
                                   {"changes", l_pulse_changes},
                                   {"sleep", l_pulse_sleep},
                                   {"db_ready", l_pulse_db_ready},
                                   {"migrations", l_pulse_migrations},
                                   {NULL, NULL}};
    pulse_request_define_metatable(L);
    luaL_newlib(L, fns);
    push_config(L, pulse_script_config(L));
    lua_setfield(L, -2, "config");
    lua_pushliteral(L, PULSE_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
