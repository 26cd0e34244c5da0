/* Unit tests for src/script/sandbox.c through its C API, as batch code in a worker thread uses it:
 * arguments pushed on the box's state, results read there or copied out; every escape fails with
 * an error and the box keeps working. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "script/sandbox.h"

#define CAP ((size_t)4 << 20)

static pulse_sandbox_t *new_box(uint64_t instructions, double wall_ms)
{
    pulse_sandbox_limits_t l;
    pulse_sandbox_limits_init(&l);
    l.memory_limit = CAP;
    if (instructions)
        l.instruction_limit = instructions;
    if (wall_ms > 0)
        l.wall_ms = wall_ms;
    pulse_sandbox_t *b = pulse_sandbox_new(&l);
    assert_non_null(b);
    return b;
}

/* Loads "return function(x)\n<body>\nend" as module name. */
static void load_fn(pulse_sandbox_t *b, const char *name, const char *body)
{
    char src[4096];
    int n = snprintf(src, sizeof(src), "return function(x)\n%s\nend", body);
    pulse_sandbox_error_t e;
    if (pulse_sandbox_load(b, name, "@rules/test.lua", src, (size_t)n, &e) != 0)
        fail_msg("load failed: %s: %s", e.kind, e.message);
}

/* Calls module name with no argument; must fail with kind. */
static void expect_failure(pulse_sandbox_t *b, const char *name, const char *kind, pulse_sandbox_error_t *e)
{
    lua_State *L = pulse_sandbox_state(b);
    lua_pushinteger(L, 1);
    int rc = pulse_sandbox_pcall(b, name, NULL, 1, 1, 0, e);
    if (rc == 0)
        fail_msg("%s: expected a %s error, the call succeeded", name, kind);
    if (strcmp(e->kind, kind) != 0)
        fail_msg("%s: expected a %s error, got %s: %s", name, kind, e->kind, e->message);
    assert_int_equal(lua_gettop(L), 0);
}

/* The box still runs a plain call and is under its cap. */
static void expect_usable(pulse_sandbox_t *b)
{
    pulse_sandbox_error_t e;
    load_fn(b, "plain", "return x * 2");
    lua_State *L = pulse_sandbox_state(b);
    lua_pushinteger(L, 21);
    assert_int_equal(pulse_sandbox_pcall(b, "plain", NULL, 1, 1, 0, &e), 0);
    assert_int_equal(lua_tointeger(L, -1), 42);
    lua_settop(L, 0);
    pulse_sandbox_stats_t s;
    pulse_sandbox_stats(b, &s);
    assert_true(s.memory < CAP);
}

static void test_call_and_results(void **state)
{
    (void)state;
    pulse_sandbox_t *b = new_box(0, 0);
    pulse_sandbox_error_t e;
    const char *src = "local M = {}\nfunction M.score(r, f, m) return r * 100 + f * 10 + m, 'ok' end\nreturn M";
    assert_int_equal(pulse_sandbox_load(b, "rfm", NULL, src, strlen(src), &e), 0);
    lua_State *L = pulse_sandbox_state(b);
    lua_pushinteger(L, 5);
    lua_pushinteger(L, 4);
    lua_pushinteger(L, 3);
    assert_int_equal(pulse_sandbox_pcall(b, "rfm", "score", 3, 2, 0, &e), 0);
    assert_int_equal(lua_gettop(L), 2);
    assert_int_equal(lua_tointeger(L, 1), 543);
    assert_string_equal(lua_tostring(L, 2), "ok");
    lua_settop(L, 0);
    assert_int_equal(pulse_sandbox_pcall(b, "rfm", "nope", 0, 1, 0, &e), -1);
    assert_string_equal(e.kind, "type");
    assert_int_equal(pulse_sandbox_pcall(b, "missing", NULL, 0, 1, 0, &e), -1);
    assert_string_equal(e.kind, "type");

    /* the round trip from another state, with deep copies */
    lua_State *H = luaL_newstate();
    luaL_openlibs(H);
    load_fn(b, "offer", "return { offer = { discount_pct = x.spend > 100 and 15 or 5 }, tags = { 'a' } }");
    luaL_dostring(H, "return { spend = 250 }");
    assert_int_equal(pulse_sandbox_call(b, H, "offer", NULL, 1, 1, 0, &e), 0);
    assert_int_equal(lua_gettop(H), 1);
    lua_getfield(H, 1, "offer");
    lua_getfield(H, -1, "discount_pct");
    assert_int_equal(lua_tointeger(H, -1), 15);
    lua_close(H);
    pulse_sandbox_free(b);
}

static void test_budget(void **state)
{
    (void)state;
    pulse_sandbox_t *b = new_box(1000000, 0);
    pulse_sandbox_error_t e;
    load_fn(b, "loop", "while true do end");
    load_fn(b, "pcall", "pcall(function() while true do end end) return 1");
    load_fn(b, "pcalls", "for i = 1, math.maxinteger do pcall(function() while true do end end) end");
    load_fn(b, "xpcall", "return xpcall(function() while true do end end, function(m) return m end)");
    load_fn(b, "handler", "return xpcall(error, function() while true do end end)");
    const char *names[] = {"loop", "pcall", "pcalls", "xpcall", "handler"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        expect_failure(b, names[i], "budget", &e);
        assert_string_equal(e.source, "rules/test.lua");
        assert_non_null(strstr(e.message, "instruction budget exceeded"));
        expect_usable(b);
    }
    pulse_sandbox_stats_t s;
    pulse_sandbox_stats(b, &s);
    assert_true(s.failures >= 5);
    pulse_sandbox_free(b);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void test_timeout(void **state)
{
    (void)state;
    pulse_sandbox_t *b = new_box(UINT64_C(1) << 60, 50);
    pulse_sandbox_error_t e;
    load_fn(b, "explode", "return string.rep('x', 1000000):find('.-.-.-.-y')");
    load_fn(b, "gsub", "return (string.rep('a', 100000):gsub('a-a-a-a-b', ''))");
    double t0 = now_ms();
    expect_failure(b, "explode", "timeout", &e);
    expect_failure(b, "gsub", "timeout", &e);
    assert_true(now_ms() - t0 < 2000);
    expect_usable(b);
    pulse_sandbox_free(b);
}

static void test_memory(void **state)
{
    (void)state;
    pulse_sandbox_t *b = new_box(UINT64_C(1) << 40, 10000);
    pulse_sandbox_error_t e;
    load_fn(b, "rep", "return string.rep('x', 1 << 30)");
    load_fn(b, "double", "local s = 'x' while true do s = s .. s end");
    load_fn(b, "grow", "local t = {} while true do t[#t + 1] = {} end");
    load_fn(b, "caught", "local ok = pcall(function() local t = {} while true do t[#t + 1] = {} end end) return ok");
    load_fn(b, "kept",
            "keep = {} local ok = pcall(function() while true do keep[#keep + 1] = 'xxxxxxxx' .. #keep end end) return ok");
    const char *names[] = {"rep", "double", "grow", "caught"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        expect_failure(b, names[i], "memory", &e);
        expect_usable(b);
    }
    /* a rule keeping its bomb in its module state keeps failing, but the others still run */
    expect_failure(b, "kept", "memory", &e);
    pulse_sandbox_free(b);
}

static void test_recursion(void **state)
{
    (void)state;
    pulse_sandbox_t *b = new_box(0, 0);
    pulse_sandbox_error_t e;
    load_fn(b, "rec", "local function f(n) return 1 + f(n + 1) end return f(1)");
    lua_pushinteger(pulse_sandbox_state(b), 1);
    assert_int_equal(pulse_sandbox_pcall(b, "rec", NULL, 1, 1, 0, &e), -1);
    assert_true(strcmp(e.kind, "runtime") == 0 || strcmp(e.kind, "memory") == 0);
    expect_usable(b);
    pulse_sandbox_free(b);
}

static void test_allow_list(void **state)
{
    (void)state;
    pulse_sandbox_t *b = new_box(0, 0);
    pulse_sandbox_error_t e;
    load_fn(b, "probe",
            "local n = 0\n"
            "for _, v in ipairs({ io, require, load, loadstring, loadfile, dofile, debug, collectgarbage, coroutine,\n"
            "  rawset, package, os.execute, os.getenv, os.exit, os.remove, string.dump }) do n = n + 1 end\n"
            "return n");
    lua_State *L = pulse_sandbox_state(b);
    assert_int_equal(pulse_sandbox_pcall(b, "probe", NULL, 0, 1, 0, &e), 0);
    assert_int_equal(lua_tointeger(L, -1), 0);
    lua_settop(L, 0);
    const char *writes[] = {
        "string.upper = nil",   "math.floor = 1", "_G.x = 1", "setmetatable(string, {})", "getmetatable('').__index = {}",
        "rawset(math, 'pi', 3)"};
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        load_fn(b, "write", writes[i]);
        expect_failure(b, "write", "runtime", &e);
        assert_string_equal(e.source, "rules/test.lua");
        assert_int_equal(e.line, 2);
    }
    load_fn(b, "upper", "return ('x'):upper() .. string.upper('y')");
    assert_int_equal(pulse_sandbox_pcall(b, "upper", NULL, 0, 1, 0, &e), 0);
    assert_string_equal(lua_tostring(L, -1), "XY");
    lua_settop(L, 0);
    pulse_sandbox_free(b);
}

static void test_random(void **state)
{
    (void)state;
    pulse_sandbox_t *b = new_box(0, 0);
    pulse_sandbox_error_t e;
    load_fn(b, "r", "return math.random(1, 1000000) * 1000 + math.random(1000)");
    lua_State *L = pulse_sandbox_state(b);
    lua_Integer v[3];
    uint64_t seeds[3] = {7, 7, 8};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pulse_sandbox_pcall(b, "r", NULL, 0, 1, seeds[i], &e), 0);
        v[i] = lua_tointeger(L, -1);
        lua_settop(L, 0);
    }
    assert_true(v[0] == v[1]);
    assert_true(v[0] != v[2]);
    pulse_sandbox_free(b);
}

static void test_errors_and_loading(void **state)
{
    (void)state;
    pulse_sandbox_t *b = new_box(0, 0);
    pulse_sandbox_error_t e;
    const char *bad = "local M = {}\n\nfunction M.f(\nreturn M";
    assert_int_equal(pulse_sandbox_load(b, "bad", "@rules/bad.lua", bad, strlen(bad), &e), -1);
    assert_string_equal(e.kind, "syntax");
    assert_string_equal(e.source, "rules/bad.lua");
    assert_int_equal(e.line, 4);

    load_fn(b, "boom", "local y = 1\nerror('boom ' .. y)");
    expect_failure(b, "boom", "runtime", &e);
    assert_int_equal(e.line, 3);
    assert_string_equal(e.message, "rules/test.lua:3: boom 1");

    /* a binary chunk is refused */
    lua_State *H = luaL_newstate();
    luaL_openlibs(H);
    luaL_dostring(H, "return string.dump(function() return {} end)");
    size_t len;
    const char *bin = lua_tolstring(H, -1, &len);
    assert_int_equal(pulse_sandbox_load(b, "bin", NULL, bin, len, &e), -1);
    assert_string_equal(e.kind, "syntax");
    assert_non_null(strstr(e.message, "binary"));
    lua_close(H);
    expect_usable(b);
    pulse_sandbox_free(b);
}

static void test_copy_out(void **state)
{
    (void)state;
    pulse_sandbox_t *b = new_box(0, 0);
    pulse_sandbox_error_t e;
    lua_State *L = pulse_sandbox_state(b);
    lua_State *H = luaL_newstate();
    /* the C caller may hand the rule a userdata or a coroutine; neither may leave */
    load_fn(b, "echo", "return { offer = { value = x } }");
    lua_newuserdatauv(L, 8, 0);
    assert_int_equal(pulse_sandbox_pcall(b, "echo", NULL, 1, 1, 0, &e), 0);
    assert_int_equal(pulse_sandbox_copy_out(b, -1, H, "result", &e), -1);
    assert_string_equal(e.kind, "copy");
    assert_string_equal(e.message, "result.offer.value: a userdata cannot leave a rule");
    lua_settop(L, 0);
    lua_newthread(L);
    assert_int_equal(pulse_sandbox_pcall(b, "echo", NULL, 1, 1, 0, &e), 0);
    assert_int_equal(pulse_sandbox_copy_out(b, -1, H, "result", &e), -1);
    assert_string_equal(e.message, "result.offer.value: a coroutine cannot leave a rule");
    lua_settop(L, 0);
    load_fn(b, "cycle", "local t = { list = {} } t.list[2] = t return t");
    assert_int_equal(pulse_sandbox_pcall(b, "cycle", NULL, 0, 1, 0, &e), 0);
    assert_int_equal(pulse_sandbox_copy_out(b, -1, H, "result", &e), -1);
    assert_non_null(strstr(e.message, "result.list[2]: a table that contains itself"));
    lua_settop(L, 0);
    load_fn(b, "deep", "local r = {} local t = r for i = 1, 33 do t[1] = {} t = t[1] end return r");
    assert_int_equal(pulse_sandbox_call(b, H, "deep", NULL, 0, 1, 0, &e), -1);
    assert_non_null(strstr(e.message, "32 levels"));
    assert_int_equal(lua_gettop(H), 0);
    load_fn(b, "fn", "return function() end");
    assert_int_equal(pulse_sandbox_call(b, H, "fn", NULL, 0, 1, 0, &e), -1);
    assert_string_equal(e.message, "result: a function cannot leave a rule");
    lua_close(H);
    expect_usable(b);
    pulse_sandbox_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_and_results), cmocka_unit_test(test_budget),
        cmocka_unit_test(test_timeout),          cmocka_unit_test(test_memory),
        cmocka_unit_test(test_recursion),        cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_random),           cmocka_unit_test(test_errors_and_loading),
        cmocka_unit_test(test_copy_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
