/* Application VMs: creation, loading lua/app.lua, the coroutine pool, retirement on reload. */
#include "script/script.h"
#include "core/buf.h"
#include "script/embedded.h"
#include "script/sandbox.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char HOST_KEY[] = "pulse.host";
static const char CONFIG_KEY[] = "pulse.config";

void *pulse_script_host(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, HOST_KEY);
    void *host = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return host;
}

static int load_embedded(lua_State *L)
{
    const pulse_embedded_t *e = lua_touserdata(L, lua_upvalueindex(1));
    if (luaL_loadbuffer(L, e->source, e->len, e->chunkname) != LUA_OK)
        return lua_error(L);
    lua_pushstring(L, e->module);
    lua_call(L, 1, 1);
    return 1;
}

static void preload_embedded(lua_State *L)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE); /* preload */
    for (const pulse_embedded_t *e = pulse_embedded_sources; e->module != NULL; e++) {
        lua_pushlightuserdata(L, (void *)e);
        lua_pushcclosure(L, load_embedded, 1);
        lua_setfield(L, -2, e->module);
    }
    lua_pop(L, 1);
}

static void set_loaded(lua_State *L, const char *name, lua_CFunction open)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE); /* loaded */
    open(L);                                                  /* loaded, module */
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

void pulse_script_open(lua_State *L, const pulse_config_t *cfg, void *host)
{
    /* The extra space names the request a coroutine runs for. Lua leaves the main thread's
     * uninitialised, and new threads copy it: clear it before any thread exists. */
    *(void **)lua_getextraspace(L) = NULL;
    luaL_openlibs(L);
    lua_pushlightuserdata(L, host);
    lua_setfield(L, LUA_REGISTRYINDEX, HOST_KEY);
    lua_pushlightuserdata(L, (void *)cfg);
    lua_setfield(L, LUA_REGISTRYINDEX, CONFIG_KEY);

    /* package.path: the application folder only; no ./?.lua surprises from the working dir */
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", cfg->lua_dir, cfg->lua_dir);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);

    preload_embedded(L);
    set_loaded(L, "json", pulse_script_open_json);
    set_loaded(L, "pulse", pulse_script_open_pulse);
    set_loaded(L, "db", pulse_script_open_db);
    set_loaded(L, "auth", pulse_script_open_auth);
    set_loaded(L, "ratelimit", pulse_script_open_ratelimit);
    set_loaded(L, "ingest", pulse_script_open_ingest);
    set_loaded(L, "import", pulse_script_open_import);
    set_loaded(L, "sse", pulse_script_open_sse);
    set_loaded(L, "sandbox", pulse_script_open_sandbox);
    set_loaded(L, "ml", pulse_script_open_ml);
    /* db.tx and friends are written in Lua on top of the C primitives */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "script.db");
    lua_call(L, 1, 0);
}

const pulse_config_t *pulse_script_config(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, CONFIG_KEY);
    const pulse_config_t *cfg = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return cfg;
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

/* Runs require("app") and keeps app.handle. */
static int load_app(lua_State *L, pulse_vm_t *vm, char *err, size_t errlen)
{
    lua_pushcfunction(L, traceback);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "app");
    if (lua_pcall(L, 1, 1, -3) != LUA_OK) {
        snprintf(err, errlen, "loading lua/app.lua failed: %s", lua_tostring(L, -1));
        return -1;
    }
    if (!lua_istable(L, -1) || lua_getfield(L, -1, "handle") != LUA_TFUNCTION) {
        snprintf(err, errlen, "lua/app.lua must return a table with a handle(req) function");
        return -1;
    }
    vm->handle_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, 0);
    return 0;
}

pulse_vm_t *pulse_script_vm_create(const pulse_config_t *cfg, void *host, char *err, size_t errlen)
{
    pulse_vm_t *vm = pulse_xmalloc(sizeof(*vm));
    memset(vm, 0, sizeof(*vm));
    vm->L = luaL_newstate();
    if (vm->L == NULL) {
        snprintf(err, errlen, "cannot create a Lua state (out of memory)");
        free(vm);
        return NULL;
    }
    pulse_script_open(vm->L, cfg, host);
    if (load_app(vm->L, vm, err, errlen) != 0) {
        lua_close(vm->L);
        free(vm);
        return NULL;
    }
    /* Generational GC keeps short-lived request garbage cheap and pauses short. */
    lua_gc(vm->L, LUA_GCGEN, 0, 0);
    return vm;
}

static void vm_close(pulse_vm_t *vm)
{
    lua_close(vm->L);
    free(vm);
}

void pulse_script_vm_retire(pulse_vm_t *vm)
{
    vm->retired = 1;
    if (vm->refs == 0)
        vm_close(vm);
}

lua_State *pulse_script_vm_acquire(pulse_vm_t *vm, int *ref)
{
    lua_State *co;
    if (vm->pool_n > 0) {
        vm->pool_n--;
        co = vm->pool[vm->pool_n].co;
        *ref = vm->pool[vm->pool_n].ref;
    } else {
        co = lua_newthread(vm->L);
        *ref = luaL_ref(vm->L, LUA_REGISTRYINDEX); /* anchors the coroutine while it waits */
    }
    vm->refs++;
    lua_rawgeti(co, LUA_REGISTRYINDEX, vm->handle_ref);
    return co;
}

void pulse_script_vm_release(pulse_vm_t *vm, lua_State *co, int ref, int ok)
{
    *(void **)lua_getextraspace(co) = NULL;
    if (ok) {
        lua_settop(co, 0);
    } else {
        lua_resetthread(co); /* a dead coroutine is reusable once reset */
    }
    if (vm->pool_n < PULSE_VM_COROUTINE_POOL && lua_status(co) == LUA_OK) {
        vm->pool[vm->pool_n].co = co;
        vm->pool[vm->pool_n].ref = ref;
        vm->pool_n++;
    } else {
        luaL_unref(vm->L, LUA_REGISTRYINDEX, ref);
    }
    vm->refs--;
    if (vm->retired && vm->refs == 0)
        vm_close(vm);
}
