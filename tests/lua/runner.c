/* Runs Lua spec files inside the embedded VM: the same libraries, C bindings (json, db, pulse,
 * auth) and package.path as the server's VMs, without a loop (db.query raises outside a request;
 * auth.hash_password and auth.verify_password run synchronously). The auth state (blocklist, dummy
 * hash, token keys) is set up as pulse serve does it.
 * Usage: pulse_spec tests/lua/run.lua spec_a.lua spec_b.lua ... */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

#include "auth/setup.h"
#include "core/config.h"
#include "script/script.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s RUNNER.lua SPEC.lua...\n", argv[0]);
        return 2;
    }
    pulse_config_t cfg;
    char err[1024];
    if (pulse_config_load(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (pulse_auth_setup(strcmp(cfg.env, "production") == 0, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    lua_State *L = luaL_newstate();
    pulse_script_open(L, &cfg, NULL);
    lua_createtable(L, argc, 0); /* arg, as the stand-alone interpreter sets it */
    for (int i = 1; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");
    if (luaL_loadfile(L, argv[1]) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        return 2;
    }
    for (int i = 2; i < argc; i++)
        lua_pushstring(L, argv[i]);
    if (lua_pcall(L, argc - 2, 1, 0) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        return 1;
    }
    int failed = (int)lua_tointeger(L, -1);
    lua_close(L);
    pulse_auth_teardown();
    return failed == 0 ? 0 : 1;
}
