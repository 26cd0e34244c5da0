/* The `ratelimit` Lua API: ratelimit.take(name, key, rate, per_seconds [, burst]) against the
 * process-wide limiter (core/ratelimit.h), so every loop thread's VM sees the same buckets.
 * Returns true, or false and the whole seconds to wait (for Retry-After). */
#include "core/ratelimit.h"
#include "script/script.h"

#include <lauxlib.h>
#include <math.h>
#include <string.h>

#define MAX_RETRY_AFTER 2147483647.0 /* seconds; keeps the integer sane for a header */

static const char *check_string(lua_State *L, int arg, size_t *len)
{
    if (lua_type(L, arg) != LUA_TSTRING)
        luaL_typeerror(L, arg, "string");
    return lua_tolstring(L, arg, len);
}

/* ratelimit.take(name, key, rate, per_seconds [, burst = max(rate, 1)]) -> true | false, retry_after */
static int l_ratelimit_take(lua_State *L)
{
    size_t namelen, keylen;
    const char *name = check_string(L, 1, &namelen);
    const char *key = check_string(L, 2, &keylen);
    lua_Number rate = luaL_checknumber(L, 3);
    lua_Number per = luaL_checknumber(L, 4);
    luaL_argcheck(L, namelen > 0 && memchr(name, '\0', namelen) == NULL, 1, "non-empty name without NUL bytes expected");
    luaL_argcheck(L, rate > 0 && isfinite(rate), 3, "rate must be > 0");
    luaL_argcheck(L, per > 0 && isfinite(per), 4, "per_seconds must be > 0");
    lua_Number burst = luaL_optnumber(L, 5, rate < 1 ? 1 : rate);
    luaL_argcheck(L, burst >= 1 && isfinite(burst), 5, "burst must be >= 1");

    /* one key, "name\0key": the name cannot contain NUL, so no two (name, key) pairs collide */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, name, namelen);
    luaL_addchar(&b, '\0');
    luaL_addlstring(&b, key, keylen);
    luaL_pushresult(&b); /* ..., fullkey */
    size_t len;
    const char *full = lua_tolstring(L, -1, &len);

    double retry = 0;
    int ok = pulse_ratelimit_take(pulse_ratelimit_default(), full, len, rate / per, burst, pulse_ratelimit_now(), &retry);
    lua_pop(L, 1);
    if (ok < 0)
        return luaL_argerror(L, 3, "rate / per_seconds too small");
    if (ok == 1) {
        lua_pushboolean(L, 1);
        return 1;
    }
    double secs = ceil(retry);
    if (!(secs >= 1))
        secs = 1;
    if (secs > MAX_RETRY_AFTER)
        secs = MAX_RETRY_AFTER;
    lua_pushboolean(L, 0);
    lua_pushinteger(L, (lua_Integer)secs);
    return 2;
}

int pulse_script_open_ratelimit(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"take", l_ratelimit_take},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    return 1;
}
