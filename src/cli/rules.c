/* pulse rules check|test: the rule author's tools (lua/rules_cli.lua), run in an embedded VM with
 * the application's Lua modules and the rules sandbox, without a server or a database. */
#include "cli/cli.h"
#include "script/script.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>

int pulse_cli_rules(int argc, char **argv)
{
    pulse_config_t cfg;
    if (pulse_cli_config("rules", &cfg) != 0)
        return 2;
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "pulse rules: out of memory\n");
        return 1;
    }
    pulse_script_open(L, &cfg, NULL);
    int code = 2;
    lua_getglobal(L, "require"); /* require */
    lua_pushliteral(L, "rules_cli");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) { /* cli */
        fprintf(stderr, "pulse rules: %s\n", lua_tostring(L, -1));
        goto done;
    }
    lua_getfield(L, -1, "main"); /* cli, main */
    lua_createtable(L, argc > 1 ? argc - 1 : 0, 0);
    for (int i = 1; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "pulse rules: %s\n", lua_tostring(L, -1));
        code = 1;
        goto done;
    }
    code = (int)luaL_optinteger(L, -1, 1);
done:
    fflush(stdout);
    lua_close(L);
    return code;
}
