/* The sandbox for tenant rules (see sandbox.h): box creation and its allow-listed library, the
 * memory cap, the budget hook, deep copies between states, and the `sandbox` Lua module:
 *   local box = sandbox.new{ memory =, instructions =, wall_ms =, values = }
 *   box:load(name, source [, chunkname]) -> true | nil, err
 *   box:call(module, fn, input [, seed]) -> result | nil, err    (fn nil: the module is the function)
 *   box:get(module, field) -> value | nil, err
 *   box:stats() -> { memory, peak, calls, failures, last_instructions };  box:close()
 * err = { kind =, source =, line =, message = } (kinds as pulse_sandbox_error_t). */
#include "script/sandbox.h"
#include "core/clock.h"
#include "script/sandbox_pattern.h"
#include "script/script.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HOOK_EVERY 1000 /* instructions between two budget checks */
#define MAX_DEPTH 32    /* table nesting a copy accepts */
#define DATE_FORMAT_MAX 64
#define SANDBOX_MT "pulse.sandbox"

enum { KILL_NONE, KILL_BUDGET, KILL_TIMEOUT };

struct pulse_sandbox_t {
    lua_State *L;
    pulse_sandbox_limits_t limits;
    size_t used, peak;
    int enforce;     /* the cap applies: tenant code may be running (only inside lua_pcall) */
    int mem_hit;     /* a memory error happened in this call: it fails even if the rule caught it */
    int killed;      /* KILL_*: the hook raises at every tick until the call has unwound */
    uint64_t count;  /* instructions of the running call */
    double deadline; /* monotonic seconds */
    uint64_t rng[4]; /* xoshiro256** */
    int modules_ref; /* registry: name -> module value */
    int envmt_ref;   /* registry: the metatable of every rule environment */
    uint64_t calls, failures, last_instructions;
    struct call_ctx_t *call; /* the call being made (do_call's arguments) */
    /* set by the message handler: the innermost rule position of the error */
    char err_source[128];
    int err_line;
};

static pulse_sandbox_t *box_of(lua_State *L)
{
    return *(pulse_sandbox_t **)lua_getextraspace(L);
}

void pulse_sandbox_limits_init(pulse_sandbox_limits_t *l)
{
    l->memory_limit = (size_t)16 << 20;
    l->instruction_limit = 10000000;
    l->wall_ms = 100;
    l->max_values = 100000;
}

/* ---------------------------------------------------------------------------------------------
 * Memory: every byte of the box goes through here. Frees and shrinks always succeed. */

static void *box_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    pulse_sandbox_t *b = ud;
    size_t old = ptr ? osize : 0; /* without ptr, osize is a type tag */
    if (nsize == 0) {
        free(ptr);
        b->used -= old;
        return NULL;
    }
    if (nsize > old && b->enforce) {
        size_t room = b->used < b->limits.memory_limit ? b->limits.memory_limit - b->used : 0;
        if (nsize - old > room)
            return NULL; /* Lua collects and retries once, then raises a memory error */
    }
    void *p = realloc(ptr, nsize);
    if (p == NULL)
        return NULL;
    b->used = b->used - old + nsize;
    if (b->used > b->peak)
        b->peak = b->used;
    return p;
}

static int box_panic(lua_State *L)
{
    /* Only reached outside a protected call, where the cap is off: the process is out of memory. */
    fprintf(stderr, "pulse: fatal error in a sandbox state: %s\n", lua_tostring(L, -1));
    abort();
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The budget. */

static int raise_kill(lua_State *L, pulse_sandbox_t *b)
{
    if (b->killed == KILL_BUDGET)
        return luaL_error(L, "instruction budget exceeded (%I instructions)", (lua_Integer)b->limits.instruction_limit);
    if (b->killed == KILL_TIMEOUT)
        return luaL_error(L, "wall-clock budget exceeded (%d ms)", (int)b->limits.wall_ms);
    return luaL_error(L, "memory limit exceeded (%I bytes)", (lua_Integer)b->limits.memory_limit);
}

static void check_budget(lua_State *L, pulse_sandbox_t *b)
{
    if (!b->killed) {
        if (b->count > b->limits.instruction_limit)
            b->killed = KILL_BUDGET;
        else if (pulse_now_s() > b->deadline)
            b->killed = KILL_TIMEOUT;
        else
            return;
    }
    raise_kill(L, b);
}

static void box_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    pulse_sandbox_t *b = box_of(L);
    b->count += HOOK_EVERY;
    check_budget(L, b);
}

void pulse_sandbox_charge(lua_State *L, uint64_t n)
{
    pulse_sandbox_t *b = box_of(L);
    b->count += n;
    check_budget(L, b);
}

/* ---------------------------------------------------------------------------------------------
 * The library inside the box. */

/* pcall and xpcall re-raise a kill or a memory error once the protected call returns: a rule
 * cannot catch its way past its budget (as Redis' script_lua.c does). */
static int after_protected(lua_State *L, int status)
{
    pulse_sandbox_t *b = box_of(L);
    if (status == LUA_ERRMEM)
        b->mem_hit = 1;
    if (b->killed || b->mem_hit)
        return raise_kill(L, b);
    return 0;
}

static int l_sandbox_pcall(lua_State *L)
{
    luaL_checkany(L, 1);
    int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    after_protected(L, status);
    luaL_checkstack(L, 1, NULL);
    lua_pushboolean(L, status == LUA_OK);
    lua_insert(L, 1);
    return lua_gettop(L);
}

/* Lua runs a message handler before unwinding, and for an error raised by the hook that is still
 * inside the hook, where hooks are off: a looping handler would never be stopped. So the rule's
 * handler only runs for errors of a live call. */
static int l_sandbox_handler(lua_State *L)
{
    pulse_sandbox_t *b = box_of(L);
    if (b->killed || b->mem_hit)
        return 1; /* the error as it is */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int l_sandbox_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 1); /* f, h, args..., f */
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, l_sandbox_handler, 1); /* f, h, args..., f, guard */
    lua_replace(L, 1);                         /* guard, h, args..., f */
    lua_replace(L, 2);                         /* guard, f, args... */
    int status = lua_pcall(L, n - 2, LUA_MULTRET, 1);
    after_protected(L, status);
    lua_pushboolean(L, status == LUA_OK);
    lua_replace(L, 1);
    return lua_gettop(L);
}

/* As the base library's, plus: no __gc, because a finalizer would run outside any budget (during a
 * later allocation or when the box is freed). */
static int l_sandbox_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    if (t == LUA_TTABLE && lua_getfield(L, 2, "__gc") != LUA_TNIL)
        return luaL_error(L, "__gc metamethods are not allowed in rules");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

static int l_sandbox_print(lua_State *L)
{
    (void)L; /* rules have no output: print is accepted and dropped */
    return 0;
}

static int l_sandbox_readonly(lua_State *L)
{
    return luaL_error(L, "attempt to modify read-only table '%s'", lua_tostring(L, lua_upvalueindex(1)));
}

static int l_sandbox_date(lua_State *L)
{
    size_t len = 0;
    luaL_optlstring(L, 1, "%c", &len);
    luaL_argcheck(L, len <= DATE_FORMAT_MAX, 1, "format longer than 64 characters");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* math.random: xoshiro256** as Lua 5.4's, re-seeded from the caller's seed at every call, so a
 * rule's choices are reproducible (dry runs, tests, A/B assignment). */
static uint64_t rotl(uint64_t x, int n)
{
    return (x << n) | (x >> (64 - n));
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static void rng_seed(uint64_t *s, uint64_t seed)
{
    for (int i = 0; i < 4; i++) { /* splitmix64: no all-zero state for any seed */
        seed += 0x9e3779b97f4a7c15ULL;
        uint64_t z = seed;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        s[i] = z ^ (z >> 31);
    }
}

static int l_sandbox_random(lua_State *L)
{
    uint64_t *s = box_of(L)->rng;
    uint64_t r = rng_next(s);
    lua_Integer low, up;
    switch (lua_gettop(L)) {
    case 0:
        lua_pushnumber(L, (lua_Number)(r >> 11) * 0x1.0p-53);
        return 1;
    case 1:
        low = 1;
        up = luaL_checkinteger(L, 1);
        break;
    case 2:
        low = luaL_checkinteger(L, 1);
        up = luaL_checkinteger(L, 2);
        break;
    default:
        return luaL_error(L, "wrong number of arguments");
    }
    luaL_argcheck(L, low <= up, lua_gettop(L), "interval is empty");
    uint64_t lim = (uint64_t)up - (uint64_t)low;
    if ((lim & (lim + 1)) == 0) {
        r &= lim;
    } else { /* the smallest 2^b - 1 >= lim, then rejection: no modulo bias */
        uint64_t mask = lim;
        for (int sh = 1; sh < 64; sh <<= 1)
            mask |= mask >> sh;
        while ((r &= mask) > lim)
            r = rng_next(s);
    }
    lua_pushinteger(L, (lua_Integer)(r + (uint64_t)low));
    return 1;
}

static int l_sandbox_randomseed(lua_State *L)
{
    lua_Integer n = lua_isinteger(L, 1) ? lua_tointeger(L, 1) : (lua_Integer)luaL_optnumber(L, 1, 0);
    rng_seed(box_of(L)->rng, (uint64_t)n);
    return 0;
}

/* Pushes a read-only view of the table at idx: reads go to it, writes raise, and its metatable
 * can be neither read nor replaced. The real table never reaches rule code. */
static void push_frozen(lua_State *L, int idx, const char *name)
{
    idx = lua_absindex(L, idx);
    lua_createtable(L, 0, 0); /* proxy */
    lua_createtable(L, 0, 3); /* proxy, mt */
    lua_pushvalue(L, idx);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, name);
    lua_pushcclosure(L, l_sandbox_readonly, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
}

static void open_lib(lua_State *L, lua_CFunction open)
{
    lua_pushcfunction(L, open);
    lua_call(L, 0, 1);
}

/* Builds the base every rule environment reads through. Runs protected, cap off. */
static int setup_box(lua_State *L)
{
    pulse_sandbox_t *b = lua_touserdata(L, 1);
    static const char *const base_names[] = {"assert", "error",    "ipairs",       "next",     "pairs",
                                             "select", "tonumber", "tostring",     "type",     "rawequal",
                                             "rawlen", "rawget",   "getmetatable", "_VERSION", NULL};
    open_lib(L, luaopen_base); /* G (the real global table: never reachable from rules) */
    lua_createtable(L, 0, 32); /* G, base */
    for (const char *const *n = base_names; *n; n++) {
        lua_getfield(L, -2, *n);
        lua_setfield(L, -2, *n);
    }
    static const luaL_Reg own[] = {{"pcall", l_sandbox_pcall},
                                   {"xpcall", l_sandbox_xpcall},
                                   {"setmetatable", l_sandbox_setmetatable},
                                   {"print", l_sandbox_print},
                                   {NULL, NULL}};
    luaL_setfuncs(L, own, 0);

    /* string: no dump; budgeted pattern functions; the string metatable locked */
    open_lib(L, luaopen_string); /* G, base, string */
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    pulse_sandbox_pattern_register(L, lua_gettop(L));
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1); /* G, base, string, "", smt */
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
    push_frozen(L, -1, "string");
    lua_setfield(L, -3, "string");
    lua_pop(L, 1);

    open_lib(L, luaopen_table);
    push_frozen(L, -1, "table");
    lua_setfield(L, -3, "table");
    lua_pop(L, 1);

    open_lib(L, luaopen_math);
    lua_pushcfunction(L, l_sandbox_random);
    lua_setfield(L, -2, "random");
    lua_pushcfunction(L, l_sandbox_randomseed);
    lua_setfield(L, -2, "randomseed");
    push_frozen(L, -1, "math");
    lua_setfield(L, -3, "math");
    lua_pop(L, 1);

    open_lib(L, luaopen_utf8);
    push_frozen(L, -1, "utf8");
    lua_setfield(L, -3, "utf8");
    lua_pop(L, 1);

    open_lib(L, luaopen_os);  /* G, base, fullos */
    lua_createtable(L, 0, 2); /* G, base, fullos, os */
    lua_getfield(L, -2, "time");
    lua_setfield(L, -2, "time");
    lua_getfield(L, -2, "date");
    lua_pushcclosure(L, l_sandbox_date, 1);
    lua_setfield(L, -2, "date");
    push_frozen(L, -1, "os");
    lua_setfield(L, -4, "os");
    lua_pop(L, 2);

    push_frozen(L, -1, "_G"); /* G, base, proxy */
    lua_setfield(L, -2, "_G");

    lua_createtable(L, 0, 2); /* G, base, envmt */
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    b->envmt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_createtable(L, 0, 8);
    b->modules_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

pulse_sandbox_t *pulse_sandbox_new(const pulse_sandbox_limits_t *l)
{
    pulse_sandbox_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    pulse_sandbox_limits_init(&b->limits);
    if (l != NULL)
        b->limits = *l;
    b->L = lua_newstate(box_alloc, b);
    if (b->L == NULL) {
        free(b);
        return NULL;
    }
    *(pulse_sandbox_t **)lua_getextraspace(b->L) = b;
    lua_atpanic(b->L, box_panic);
    lua_pushcfunction(b->L, setup_box);
    lua_pushlightuserdata(b->L, b);
    if (lua_pcall(b->L, 1, 0, 0) != LUA_OK) {
        lua_close(b->L);
        free(b);
        return NULL;
    }
    /* The generational collector suits the short-lived garbage of many small calls. */
    lua_gc(b->L, LUA_GCGEN, 0, 0);
    return b;
}

void pulse_sandbox_free(pulse_sandbox_t *b)
{
    if (b == NULL)
        return;
    lua_close(b->L);
    free(b);
}

lua_State *pulse_sandbox_state(pulse_sandbox_t *b)
{
    return b->L;
}

void pulse_sandbox_stats(const pulse_sandbox_t *b, pulse_sandbox_stats_t *s)
{
    s->memory = b->used;
    s->peak = b->peak;
    s->calls = b->calls;
    s->failures = b->failures;
    s->last_instructions = b->last_instructions;
}

/* ---------------------------------------------------------------------------------------------
 * Running rule code: one protected call with the cap and the hook on, then the error sorted. */

static void set_error(pulse_sandbox_error_t *e, const char *kind, const char *source, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void set_error(pulse_sandbox_error_t *e, const char *kind, const char *source, int line, const char *fmt, ...)
{
    if (e == NULL)
        return;
    snprintf(e->kind, sizeof(e->kind), "%s", kind);
    snprintf(e->source, sizeof(e->source), "%s", source ? source : "");
    e->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

/* Message handler: notes the innermost Lua position (the rule's file and line). Allocates
 * nothing, so it also works when the box is at its cap. */
static int box_msgh(lua_State *L)
{
    pulse_sandbox_t *b = box_of(L);
    lua_Debug ar;
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            const char *src = ar.source;
            if (src[0] == '@' || src[0] == '=')
                src++;
            snprintf(b->err_source, sizeof(b->err_source), "%s", src);
            b->err_line = ar.currentline;
            break;
        }
    }
    return 1;
}

static void begin_run(pulse_sandbox_t *b, uint64_t seed)
{
    b->killed = KILL_NONE;
    b->mem_hit = 0;
    b->count = 0;
    b->err_source[0] = '\0';
    b->err_line = 0;
    b->deadline = pulse_now_s() + b->limits.wall_ms / 1000.0;
    rng_seed(b->rng, seed);
    lua_sethook(b->L, box_hook, LUA_MASKCOUNT, HOOK_EVERY);
}

/* Runs the function below nargs values on the stack (above the message handler at base) under
 * the budget. On failure fills e, empties the stack and returns -1. */
static int run(pulse_sandbox_t *b, int base, int nargs, int nresults, const char *errkind, pulse_sandbox_error_t *e)
{
    lua_State *L = b->L;
    b->enforce = 1;
    int status = lua_pcall(L, nargs, nresults, base);
    b->enforce = 0;
    b->calls++;
    b->last_instructions = b->count;
    if (status == LUA_ERRMEM)
        b->mem_hit = 1;
    if (status == LUA_OK && !b->killed && !b->mem_hit) {
        lua_remove(L, base);
        return 0;
    }
    b->failures++;
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(error object is not a string)";
    const char *kind = b->killed == KILL_BUDGET    ? "budget"
                       : b->killed == KILL_TIMEOUT ? "timeout"
                       : b->mem_hit                ? "memory"
                                                   : errkind;
    set_error(e, kind, b->err_source, b->err_line, "%s", msg);
    if (b->mem_hit && !b->killed && e != NULL && strstr(e->message, "memory") == NULL)
        snprintf(e->message, sizeof(e->message), "memory limit exceeded (%zu bytes)", b->limits.memory_limit);
    lua_settop(L, 0);
    /* Give back what the failed call left, so the next call starts under the cap. */
    lua_gc(L, LUA_GCCOLLECT, 0);
    return -1;
}

typedef struct {
    const char *name;
    const char *chunkname;
    const char *src;
    size_t len;
    int syntax; /* the chunk did not compile */
} load_ctx_t;

static int do_load(lua_State *L)
{
    load_ctx_t *c = lua_touserdata(L, 1);
    pulse_sandbox_t *b = box_of(L);
    /* "t": precompiled chunks could break the VM's invariants; never load them */
    int st = luaL_loadbufferx(L, c->src, c->len, c->chunkname, "t");
    if (st != LUA_OK) {
        c->syntax = st == LUA_ERRSYNTAX;
        return lua_error(L);
    }
    /* each chunk gets its own environment over the frozen base */
    lua_createtable(L, 0, 8);
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->envmt_ref);
    lua_setmetatable(L, -2);
    lua_setupvalue(L, -2, 1); /* chunk */
    lua_call(L, 0, 1);        /* value */
    int t = lua_type(L, -1);
    if (t != LUA_TTABLE && t != LUA_TFUNCTION) {
        c->syntax = -1; /* a type error, not a Lua error */
        return luaL_error(L, "%s: a rule file must return a table or a function (got %s)", c->chunkname + 1, lua_typename(L, t));
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->modules_ref);
    lua_pushstring(L, c->name);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    return 0;
}

/* The line of a "source:line: message" text; the source may hold ':' itself ("tenant:segments"). */
static int message_line(const char *msg)
{
    for (const char *p = strchr(msg, ':'); p != NULL; p = strchr(p + 1, ':')) {
        const char *q = p + 1;
        while (*q >= '0' && *q <= '9')
            q++;
        if (q > p + 1 && *q == ':')
            return atoi(p + 1);
    }
    return 0;
}

int pulse_sandbox_load(pulse_sandbox_t *b, const char *name, const char *chunkname, const char *src, size_t len,
                       pulse_sandbox_error_t *e)
{
    lua_State *L = b->L;
    char cn[120];
    if (chunkname == NULL)
        snprintf(cn, sizeof(cn), "@%s", name);
    else if (chunkname[0] == '@' || chunkname[0] == '=')
        snprintf(cn, sizeof(cn), "%s", chunkname);
    else
        snprintf(cn, sizeof(cn), "@%s", chunkname);
    load_ctx_t c = {name, cn, src, len, 0};
    lua_settop(L, 0);
    begin_run(b, 0);
    lua_pushcfunction(L, box_msgh);
    lua_pushcfunction(L, do_load);
    lua_pushlightuserdata(L, &c);
    int rc = run(b, 1, 1, 0, "runtime", e);
    if (rc != 0 && e != NULL && c.syntax && !b->killed && strcmp(e->kind, "memory") != 0) {
        snprintf(e->kind, sizeof(e->kind), "%s", c.syntax > 0 ? "syntax" : "type");
        if (c.syntax > 0) { /* the parser's message is "source:line: ...": no stack to look at */
            snprintf(e->source, sizeof(e->source), "%s", cn + 1);
            e->line = message_line(e->message);
        }
    }
    lua_settop(L, 0);
    return rc;
}

typedef struct call_ctx_t {
    const char *module;
    const char *fn;
    int nargs;
    int nresults;
    int lookup_failed; /* the caller's error: no such module or function */
} call_ctx_t;

static int do_call(lua_State *L)
{
    pulse_sandbox_t *b = box_of(L);
    call_ctx_t *c = b->call;
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->modules_ref);
    c->lookup_failed = 1;
    if (lua_getfield(L, -1, c->module) == LUA_TNIL)
        return luaL_error(L, "no rule module '%s' is loaded", c->module);
    if (c->fn != NULL) {
        if (!lua_istable(L, -1))
            return luaL_error(L, "rule module '%s' is not a table", c->module);
        lua_pushstring(L, c->fn);
        lua_rawget(L, -2);
    }
    if (!lua_isfunction(L, -1))
        return luaL_error(L, "rule module '%s' has no function '%s'", c->module, c->fn ? c->fn : "(module)");
    c->lookup_failed = 0;
    lua_replace(L, 1); /* fn, args..., modules[, module] */
    lua_settop(L, c->nargs + 1);
    lua_call(L, c->nargs, c->nresults);
    return c->nresults == LUA_MULTRET ? lua_gettop(L) : c->nresults;
}

/* Lookup errors are the caller's ("type"), not the rule's. */
static int call_in_box(pulse_sandbox_t *b, const char *module, const char *fn, int nargs, int nresults, uint64_t seed,
                       pulse_sandbox_error_t *e)
{
    lua_State *L = b->L;
    call_ctx_t c = {module, fn, nargs, nresults, 0};
    int base = lua_gettop(L) - nargs;
    begin_run(b, seed);
    lua_pushcfunction(L, box_msgh);
    lua_insert(L, base + 1);
    b->call = &c; /* a light C function: no closure allocated per call */
    lua_pushcfunction(L, do_call);
    lua_insert(L, base + 2);
    lua_pushnil(L); /* slot 1 of do_call, replaced by the rule function */
    lua_insert(L, base + 3);
    int rc = run(b, base + 1, nargs + 1, nresults, "runtime", e);
    if (rc != 0 && e != NULL && c.lookup_failed && strcmp(e->kind, "runtime") == 0)
        snprintf(e->kind, sizeof(e->kind), "type");
    return rc;
}

int pulse_sandbox_pcall(pulse_sandbox_t *b, const char *module, const char *fn, int nargs, int nresults, uint64_t seed,
                        pulse_sandbox_error_t *e)
{
    return call_in_box(b, module, fn, nargs, nresults, seed, e);
}

/* ---------------------------------------------------------------------------------------------
 * Deep copies between two states. The source is only read raw (lua_next, lua_rawlen): no
 * metamethod of a rule runs, nothing is allocated in it. */

typedef struct {
    lua_State *from, *to;
    const char *root;
    int rootn;        /* > 0: the root is "<root><rootn>" (one of several arguments or results) */
    const char *verb; /* "leave" or "enter" */
    size_t values, bytes, max_values, max_bytes;
    int depth;
    const void *tables[MAX_DEPTH + 1]; /* the tables on the current path: a cycle check */
    int keyidx[MAX_DEPTH + 1];         /* where each path key sits on `from`'s stack */
    pulse_sandbox_error_t *e;
} copy_t;

static void path_string(copy_t *c, char *out, size_t n)
{
    size_t k = c->rootn > 0 ? (size_t)snprintf(out, n, "%s%d", c->root, c->rootn) : (size_t)snprintf(out, n, "%s", c->root);
    for (int d = 1; d <= c->depth && k < n; d++) {
        int idx = c->keyidx[d];
        switch (lua_type(c->from, idx)) {
        case LUA_TSTRING:
            k += (size_t)snprintf(out + k, n - k, ".%s", lua_tostring(c->from, idx));
            break;
        case LUA_TNUMBER:
            if (lua_isinteger(c->from, idx))
                k += (size_t)snprintf(out + k, n - k, "[%lld]", (long long)lua_tointeger(c->from, idx));
            else
                k += (size_t)snprintf(out + k, n - k, "[%g]", (double)lua_tonumber(c->from, idx));
            break;
        case LUA_TBOOLEAN:
            k += (size_t)snprintf(out + k, n - k, "[%s]", lua_toboolean(c->from, idx) ? "true" : "false");
            break;
        default:
            k += (size_t)snprintf(out + k, n - k, "[?]");
        }
    }
}

static int copy_fail(copy_t *c, const char *fmt, const char *what)
{
    char path[256];
    path_string(c, path, sizeof(path));
    set_error(c->e, "copy", "", 0, "%s: ", path);
    if (c->e != NULL) {
        size_t k = strlen(c->e->message);
        snprintf(c->e->message + k, sizeof(c->e->message) - k, fmt, what, c->verb);
    }
    return -1;
}

static const char *a_type(int t)
{
    switch (t) {
    case LUA_TFUNCTION:
        return "a function";
    case LUA_TTHREAD:
        return "a coroutine";
    case LUA_TTABLE:
        return "a table";
    default:
        return "a userdata";
    }
}

static int copy_value(copy_t *c, int idx);

static int copy_table(copy_t *c, int idx)
{
    lua_State *from = c->from, *to = c->to;
    const void *p = lua_topointer(from, idx);
    for (int d = 0; d < c->depth; d++)
        if (c->tables[d] == p)
            return copy_fail(c, "%s that contains itself (a cycle) cannot %s a rule", "a table");
    if (c->depth >= MAX_DEPTH)
        return copy_fail(c, "%s nested deeper than 32 levels cannot %s a rule", "a table");
    if (!lua_checkstack(from, 4) || !lua_checkstack(to, 4))
        return copy_fail(c, "%s too deep for the stack cannot %s a rule", "a table");
    c->tables[c->depth] = p;
    /* size the new table in one go: a count pass is cheaper than rehashing while it grows */
    int narr = (int)lua_rawlen(from, idx), n = 0;
    lua_pushnil(from);
    while (lua_next(from, idx) != 0) {
        n++;
        lua_pop(from, 1);
    }
    lua_createtable(to, narr, n > narr ? n - narr : 0);
    c->depth++;
    lua_pushnil(from); /* from: ..., key */
    while (lua_next(from, idx) != 0) {
        int kidx = lua_gettop(from) - 1;
        c->keyidx[c->depth] = kidx;
        int kt = lua_type(from, kidx);
        if (kt != LUA_TSTRING && kt != LUA_TNUMBER && kt != LUA_TBOOLEAN)
            return copy_fail(c, "%s used as a key cannot %s a rule", a_type(kt));
        if (copy_value(c, kidx) != 0) /* to: ..., t, k */
            return -1;
        if (copy_value(c, kidx + 1) != 0) /* to: ..., t, k, v */
            return -1;
        lua_rawset(to, -3);
        lua_pop(from, 1);
    }
    c->depth--;
    return 0;
}

static int copy_value(copy_t *c, int idx)
{
    lua_State *from = c->from, *to = c->to;
    if (++c->values > c->max_values)
        return copy_fail(c, "%s of more than the allowed number of values cannot %s a rule", "a value");
    switch (lua_type(from, idx)) {
    case LUA_TNIL:
        lua_pushnil(to);
        return 0;
    case LUA_TBOOLEAN:
        lua_pushboolean(to, lua_toboolean(from, idx));
        return 0;
    case LUA_TNUMBER:
        if (lua_isinteger(from, idx))
            lua_pushinteger(to, lua_tointeger(from, idx));
        else
            lua_pushnumber(to, lua_tonumber(from, idx));
        return 0;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(from, idx, &len);
        c->bytes += len;
        if (c->bytes > c->max_bytes)
            return copy_fail(c, "%s over the memory limit cannot %s a rule", "a string");
        lua_pushlstring(to, s, len);
        return 0;
    }
    case LUA_TTABLE:
        return copy_table(c, lua_absindex(from, idx));
    default:
        return copy_fail(c, "%s cannot %s a rule", a_type(lua_type(from, idx)));
    }
}

static int copy(pulse_sandbox_t *b, lua_State *from, int idx, lua_State *to, const char *root, int rootn, const char *verb,
                pulse_sandbox_error_t *e)
{
    copy_t c = {.from = from,
                .to = to,
                .root = root,
                .rootn = rootn,
                .verb = verb,
                .max_values = b->limits.max_values,
                .max_bytes = b->limits.memory_limit,
                .e = e};
    int ftop = lua_gettop(from), ttop = lua_gettop(to);
    if (!lua_checkstack(to, 2)) {
        set_error(e, "copy", "", 0, "%s: no stack space", root);
        return -1;
    }
    int rc = copy_value(&c, lua_absindex(from, idx));
    lua_settop(from, ftop);
    if (rc != 0)
        lua_settop(to, ttop);
    return rc;
}

int pulse_sandbox_copy_out(pulse_sandbox_t *b, int idx, lua_State *to, const char *root, pulse_sandbox_error_t *e)
{
    return copy(b, b->L, idx, to, root, 0, "leave", e);
}

int pulse_sandbox_call(pulse_sandbox_t *b, lua_State *H, const char *module, const char *fn, int nargs, int nresults, uint64_t seed,
                       pulse_sandbox_error_t *e)
{
    lua_State *L = b->L;
    lua_settop(L, 0); /* anything a host error left behind last time */
    int first = lua_gettop(H) - nargs + 1;
    for (int i = 0; i < nargs; i++) {
        if (copy(b, H, first + i, L, "input", nargs == 1 ? 0 : i + 1, "enter", e) != 0) {
            lua_settop(H, first - 1);
            lua_settop(L, 0);
            return -1;
        }
    }
    lua_settop(H, first - 1);
    if (call_in_box(b, module, fn, nargs, nresults, seed, e) != 0)
        return -1;
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        if (copy(b, L, i, H, "result", n == 1 ? 0 : i, "leave", e) != 0) {
            lua_settop(H, first - 1);
            lua_settop(L, 0);
            b->failures++;
            return -1;
        }
    }
    lua_settop(L, 0);
    return 0;
}

int pulse_sandbox_get(pulse_sandbox_t *b, lua_State *H, const char *module, const char *field, pulse_sandbox_error_t *e)
{
    lua_State *L = b->L;
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->modules_ref);
    lua_pushstring(L, module);
    if (lua_rawget(L, -2) != LUA_TTABLE) {
        lua_settop(L, 0);
        set_error(e, "type", "", 0, "no rule module '%s' is loaded as a table", module);
        return -1;
    }
    lua_pushstring(L, field);
    lua_rawget(L, -2);
    char root[160];
    snprintf(root, sizeof(root), "%s.%s", module, field);
    int rc = pulse_sandbox_copy_out(b, -1, H, root, e);
    lua_settop(L, 0);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * The `sandbox` module of the application's VM. */

typedef struct {
    pulse_sandbox_t *b; /* NULL once closed */
} box_ud_t;

static pulse_sandbox_t *check_box(lua_State *L)
{
    box_ud_t *u = luaL_checkudata(L, 1, SANDBOX_MT);
    if (u->b == NULL)
        luaL_error(L, "attempt to use a closed sandbox");
    return u->b;
}

static size_t opt_size_field(lua_State *L, int t, const char *name, size_t def)
{
    int ty = lua_getfield(L, t, name);
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return def;
    }
    lua_Number v = lua_tonumber(L, -1);
    if (ty != LUA_TNUMBER || !(v > 0) || v > 1e15)
        luaL_error(L, "sandbox.new: %s must be a positive number", name);
    lua_pop(L, 1);
    return (size_t)v;
}

/* sandbox.new([{memory =, instructions =, wall_ms =, values =}]) -> box */
static int l_sandbox_new(lua_State *L)
{
    pulse_sandbox_limits_t lim;
    pulse_sandbox_limits_init(&lim);
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        lim.memory_limit = opt_size_field(L, 1, "memory", lim.memory_limit);
        lim.instruction_limit = opt_size_field(L, 1, "instructions", lim.instruction_limit);
        lim.wall_ms = (double)opt_size_field(L, 1, "wall_ms", (size_t)lim.wall_ms);
        lim.max_values = opt_size_field(L, 1, "values", lim.max_values);
    }
    box_ud_t *u = lua_newuserdatauv(L, sizeof(*u), 0);
    u->b = NULL; /* closed until the box exists, so __gc is safe on any path */
    luaL_setmetatable(L, SANDBOX_MT);
    u->b = pulse_sandbox_new(&lim);
    if (u->b == NULL)
        return luaL_error(L, "sandbox.new: out of memory");
    return 1;
}

static void push_error(lua_State *L, const pulse_sandbox_error_t *e)
{
    lua_pushnil(L);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, e->kind);
    lua_setfield(L, -2, "kind");
    if (e->source[0]) {
        lua_pushstring(L, e->source);
        lua_setfield(L, -2, "source");
    }
    if (e->line > 0) {
        lua_pushinteger(L, e->line);
        lua_setfield(L, -2, "line");
    }
    lua_pushstring(L, e->message);
    lua_setfield(L, -2, "message");
}

/* box:load(name, source [, chunkname = "@" .. name]) -> true | nil, err */
static int l_sandbox_load(lua_State *L)
{
    pulse_sandbox_t *b = check_box(L);
    const char *name = luaL_checkstring(L, 2);
    size_t len;
    const char *src = luaL_checklstring(L, 3, &len);
    const char *chunkname = luaL_optstring(L, 4, NULL);
    pulse_sandbox_error_t e;
    if (pulse_sandbox_load(b, name, chunkname, src, len, &e) != 0) {
        push_error(L, &e);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* box:call(module, fn | nil, input [, seed = 0]) -> result | nil, err */
static int l_sandbox_call(lua_State *L)
{
    pulse_sandbox_t *b = check_box(L);
    const char *module = luaL_checkstring(L, 2);
    const char *fn = luaL_optstring(L, 3, NULL);
    lua_Integer seed = luaL_optinteger(L, 5, 0);
    pulse_sandbox_error_t e;
    lua_settop(L, 4);
    if (pulse_sandbox_call(b, L, module, fn, 1, 1, (uint64_t)seed, &e) != 0) {
        push_error(L, &e);
        return 2;
    }
    return 1;
}

/* box:get(module, field) -> value | nil, err */
static int l_sandbox_get(lua_State *L)
{
    pulse_sandbox_t *b = check_box(L);
    const char *module = luaL_checkstring(L, 2);
    const char *field = luaL_checkstring(L, 3);
    pulse_sandbox_error_t e;
    if (pulse_sandbox_get(b, L, module, field, &e) != 0) {
        push_error(L, &e);
        return 2;
    }
    return 1;
}

static int l_sandbox_stats(lua_State *L)
{
    pulse_sandbox_stats_t s;
    pulse_sandbox_stats(check_box(L), &s);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)s.memory);
    lua_setfield(L, -2, "memory");
    lua_pushinteger(L, (lua_Integer)s.peak);
    lua_setfield(L, -2, "peak");
    lua_pushinteger(L, (lua_Integer)s.calls);
    lua_setfield(L, -2, "calls");
    lua_pushinteger(L, (lua_Integer)s.failures);
    lua_setfield(L, -2, "failures");
    lua_pushinteger(L, (lua_Integer)s.last_instructions);
    lua_setfield(L, -2, "last_instructions");
    return 1;
}

/* box:close(): idempotent; __gc and __close too */
static int l_sandbox_close(lua_State *L)
{
    box_ud_t *u = luaL_checkudata(L, 1, SANDBOX_MT);
    pulse_sandbox_free(u->b);
    u->b = NULL;
    return 0;
}

static int l_sandbox_tostring(lua_State *L)
{
    box_ud_t *u = luaL_checkudata(L, 1, SANDBOX_MT);
    lua_pushfstring(L, "sandbox (%s)", u->b ? "open" : "closed");
    return 1;
}

int pulse_script_open_sandbox(lua_State *L)
{
    static const luaL_Reg methods[] = {{"load", l_sandbox_load},   {"call", l_sandbox_call},   {"get", l_sandbox_get},
                                       {"stats", l_sandbox_stats}, {"close", l_sandbox_close}, {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__gc", l_sandbox_close}, {"__close", l_sandbox_close}, {"__tostring", l_sandbox_tostring}, {NULL, NULL}};
    if (luaL_newmetatable(L, SANDBOX_MT)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    static const luaL_Reg funcs[] = {{"new", l_sandbox_new}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
