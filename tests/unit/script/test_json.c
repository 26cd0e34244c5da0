/* Unit tests for src/script/json.c: the Lua json module and its C entry points. Most cases are
 * written as Lua snippets run in a fresh state, because that is how the application uses them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "script/json.h"

static lua_State *new_state(void)
{
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    luaL_openlibs(L);
    assert_int_equal(pulse_script_open_json(L), 1);
    lua_setglobal(L, "json");
    return L;
}

/* Runs a chunk that must not raise (its asserts are the test). */
static void run_lua(lua_State *L, const char *chunk)
{
    if (luaL_dostring(L, chunk) != LUA_OK)
        fail_msg("Lua error: %s\nin chunk:\n%s", lua_tostring(L, -1), chunk);
    lua_settop(L, 0);
}

/* Evaluates a chunk returning one string and compares it with want. */
static void check_eval(lua_State *L, const char *chunk, const char *want)
{
    if (luaL_dostring(L, chunk) != LUA_OK)
        fail_msg("Lua error: %s\nin chunk:\n%s", lua_tostring(L, -1), chunk);
    const char *got = lua_tostring(L, -1);
    if (got == NULL || strcmp(got, want) != 0)
        fail_msg("chunk: %s\n got: %s\nwant: %s", chunk, got ? got : "(not a string)", want);
    lua_settop(L, 0);
}

/* json.decode(input) must fail with exactly want. */
static void check_decode_error(lua_State *L, const char *input, size_t n, const char *want)
{
    lua_getglobal(L, "json");
    lua_getfield(L, -1, "decode");
    lua_pushlstring(L, input, n);
    assert_int_equal(lua_pcall(L, 1, 2, 0), LUA_OK);
    if (!lua_isnil(L, -2))
        fail_msg("decoding %s should fail with \"%s\"", input, want);
    const char *got = lua_tostring(L, -1);
    if (got == NULL || strcmp(got, want) != 0)
        fail_msg("decoding %s\n got: %s\nwant: %s", input, got ? got : "(no message)", want);
    lua_settop(L, 0);
}

/* json.encode(<expr>) must raise exactly want. */
static void check_encode_error(lua_State *L, const char *expr, const char *want)
{
    char chunk[1024];
    snprintf(chunk, sizeof(chunk), "local ok, err = pcall(json.encode, %s)\nassert(not ok)\nreturn err", expr);
    check_eval(L, chunk, want);
}

static void test_scalars_round_trip(void **state)
{
    (void)state;
    lua_State *L = new_state();
    check_eval(L, "return json.encode(true) .. json.encode(false) .. json.encode(json.null) .. json.encode(nil)",
               "truefalsenullnull");
    check_eval(L, "return json.encode(42) .. ' ' .. json.encode(-7) .. ' ' .. json.encode(0)", "42 -7 0");
    check_eval(L, "return json.encode('hé \"q\"')", "\"hé \\\"q\\\"\"");
    run_lua(L, "assert(json.decode('true') == true and json.decode('false') == false)\n"
               "assert(json.decode('null') == json.null)\n"
               "assert(json.decode('\"x\"') == 'x')\n"
               "assert(math.type(json.decode('12')) == 'integer')\n"
               "assert(json.decode(' \\t\\r\\n[ 1 , 2 ] \\n')[2] == 2)\n");
    lua_close(L);
}

static void test_nested_round_trip(void **state)
{
    (void)state;
    lua_State *L = new_state();
    const char *doc = "{\"a\":[1,2.5,\"x\",[],{},[[[]]]],\"b\":{\"c\":{\"d\":[true,false,null]}},\"e\":\"\"}";
    char chunk[512];
    snprintf(chunk, sizeof(chunk), "return json.encode(json.decode('%s'), {sort_keys = true})", doc);
    check_eval(L, chunk, doc);
    run_lua(L, "local v = json.decode('{\"customer\":{\"id\":7,\"tags\":[\"vip\",\"eu\"]}}')\n"
               "assert(v.customer.id == 7 and v.customer.tags[2] == 'eu' and #v.customer.tags == 2)\n");
    lua_close(L);
}

static void test_empty_array_vs_object(void **state)
{
    (void)state;
    lua_State *L = new_state();
    check_eval(L, "return json.encode({})", "{}");
    check_eval(L, "return json.encode(json.array())", "[]");
    check_eval(L, "return json.encode(json.array({}))", "[]");
    check_eval(L, "return json.encode(setmetatable({}, json.array_mt))", "[]");
    check_eval(L, "return json.encode(json.decode('[]')) .. json.encode(json.decode('{}'))", "[]{}");
    check_eval(L, "return json.encode({a = json.decode('[]'), b = {}}, {sort_keys = true})", "{\"a\":[],\"b\":{}}");
    run_lua(L, "assert(getmetatable(json.decode('[1]')) == json.array_mt)\n"
               "assert(getmetatable(json.decode('{}')) == nil)\n"
               "local t = {1, 2}\n"
               "assert(json.array(t) == t and getmetatable(t) == json.array_mt)\n"
               "assert(json.array(t) == t)\n" /* idempotent */
               "local ok, err = pcall(json.array, setmetatable({}, {}))\n"
               "assert(not ok and err:find('already has a metatable'))\n"
               "assert(not pcall(json.array, 5))\n");
    lua_close(L);
}

static void test_sequences_and_sparse_tables(void **state)
{
    (void)state;
    lua_State *L = new_state();
    check_eval(L, "return json.encode({1, 2, 3})", "[1,2,3]");
    /* keys 1..n inserted backwards live in the hash part and come out of lua_next unordered */
    check_eval(L, "local t = {} for i = 40, 1, -1 do t[i] = i end return json.encode(t):sub(1, 10)", "[1,2,3,4,5");
    check_eval(L, "local t = {} t[3] = 'c' t[1] = 'a' t[2] = 'b' return json.encode(t)", "[\"a\",\"b\",\"c\"]");
    check_eval(L, "return json.encode(json.array({1, nil, 3}))", "[1,null,3]");
    check_eval(L, "return json.encode({['1'] = 'string key'})", "{\"1\":\"string key\"}");
    check_encode_error(L, "{[1] = 1, [3] = 3}",
                       "json.encode: cannot encode a table whose integer keys are not exactly 1..n "
                       "(2 keys, largest 3; json.array writes holes as null) at $");
    check_encode_error(L, "{list = {1, 2, x = 3}}",
                       "json.encode: cannot encode a table mixing integer keys (e.g. 1) and string keys (e.g. \"x\") at $.list");
    check_encode_error(L, "json.array({1, x = 2})", "json.encode: cannot encode string key \"x\" in an array at $");
    check_encode_error(L, "json.array({[0] = 1})", "json.encode: cannot encode integer key 0 in an array at $");
    check_encode_error(L, "json.array({[1000] = 1})", "json.encode: array too sparse (1 values, largest index 1000) at $");
    lua_close(L);
}

static void test_key_errors(void **state)
{
    (void)state;
    lua_State *L = new_state();
    check_encode_error(L, "{[true] = 1}", "json.encode: cannot encode boolean key in an object at $");
    check_encode_error(L, "{a = {[1.5] = 1}}", "json.encode: cannot encode number key 1.5 in an object at $.a");
    check_encode_error(L, "{x = 1, [-1] = 2}", "json.encode: cannot encode integer key -1 in an object at $");
    check_encode_error(L, "{[{}] = 1}", "json.encode: cannot encode table key in an object at $");
    check_encode_error(L, "{['bad\\xff'] = 1}", "json.encode: cannot encode key with invalid UTF-8 at $[\"bad\\xff\"]");
    lua_close(L);
}

static void test_unencodable_values_name_the_path(void **state)
{
    (void)state;
    lua_State *L = new_state();
    check_encode_error(L, "{items = {1, 2, {cb = print}}}", "json.encode: cannot encode function at $.items[3].cb");
    check_encode_error(L, "{co = coroutine.create(print)}", "json.encode: cannot encode thread at $.co");
    check_encode_error(L, "{f = io.stdout}", "json.encode: cannot encode userdata at $.f");
    check_encode_error(L, "{['a key'] = {0/0}}", "json.encode: cannot encode NaN at $[\"a key\"][1]");
    check_encode_error(L, "{x = 1/0}", "json.encode: cannot encode inf at $.x");
    check_encode_error(L, "json.array({-1/0})", "json.encode: cannot encode -inf at $[1]");
    check_encode_error(L, "print", "json.encode: cannot encode function at $");
    check_encode_error(L, "'\\xc3'", "json.encode: cannot encode string with invalid UTF-8 at $");
    run_lua(L, "local ok, err = pcall(json.encode)\nassert(not ok and err:find('bad argument #1'))\n"
               "ok, err = pcall(json.encode, 1, 5)\nassert(not ok and err:find('bad argument #2'))\n");

    /* a non-NULL light userdata is not json.null */
    lua_getglobal(L, "json");
    lua_getfield(L, -1, "encode");
    lua_pushlightuserdata(L, (void *)&state);
    assert_int_equal(lua_pcall(L, 1, 1, 0), LUA_ERRRUN);
    assert_string_equal(lua_tostring(L, -1), "json.encode: cannot encode light userdata at $");
    lua_close(L);
}

static void test_cycles(void **state)
{
    (void)state;
    lua_State *L = new_state();
    check_eval(L,
               "local t = {} t.self = t\n"
               "local ok, err = pcall(json.encode, {root = t})\n"
               "return err",
               "json.encode: cannot encode a cycle (table contains itself) at $.root.self");
    check_eval(L,
               "local a = {} local b = {a} a[1] = b\n"
               "local ok, err = pcall(json.encode, a)\n"
               "return err",
               "json.encode: cannot encode a cycle (table contains itself) at $[1][1]");
    /* the same table twice, side by side, is not a cycle */
    check_eval(L, "local x = {1} return json.encode({x, x, {x}})", "[[1],[1],[[1]]]");
    lua_close(L);
}

static void test_sort_keys(void **state)
{
    (void)state;
    lua_State *L = new_state();
    check_eval(L,
               "return json.encode({b = 1, a = {z = 1, y = {2, {d = 1, c = 2}}}, B = 0, aa = true, [''] = 0},"
               " {sort_keys = true})",
               "{\"\":0,\"B\":0,\"a\":{\"y\":[2,{\"c\":2,\"d\":1}],\"z\":1},\"aa\":true,\"b\":1}");
    /* bytewise order is code point order for UTF-8, and a prefix sorts first */
    check_eval(L, "return json.encode({['é'] = 1, z = 2, ['ab\\0c'] = 3, ab = 4}, {sort_keys = true})",
               "{\"ab\":4,\"ab\\u0000c\":3,\"z\":2,\"é\":1}");
    /* unsorted output holds the same members */
    run_lua(L, "local t = {}\n"
               "for i = 1, 200 do t['k' .. i] = i end\n"
               "local u = json.decode(json.encode(t))\n"
               "for i = 1, 200 do assert(u['k' .. i] == i) end\n"
               "assert(json.encode(u, {sort_keys = true}) == json.encode(t, {sort_keys = true}))\n");
    lua_close(L);
}

static void test_null_in_objects_and_arrays(void **state)
{
    (void)state;
    lua_State *L = new_state();
    run_lua(L, "local v = json.decode('{\"a\":null,\"b\":[null,1,null],\"c\":{\"d\":null}}')\n"
               "assert(v.a == json.null and v.c.d == json.null)\n"
               "assert(#v.b == 3 and v.b[1] == json.null and v.b[2] == 1 and v.b[3] == json.null)\n"
               "assert(type(json.null) == 'userdata')\n");
    check_eval(L, "return json.encode(json.decode('{\"a\":null,\"b\":[null,1,null],\"c\":{\"d\":null}}'), {sort_keys=true})",
               "{\"a\":null,\"b\":[null,1,null],\"c\":{\"d\":null}}");
    check_eval(L, "return json.encode({x = json.null})", "{\"x\":null}");
    lua_close(L);
}

static void test_string_escapes(void **state)
{
    (void)state;
    lua_State *L = new_state();
    check_eval(L, "return json.encode('a\"b\\\\c\\n\\r\\t\\b\\f\\1/\\127')", "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001/\x7f\"");
    run_lua(L, "assert(json.decode([[\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"]]) == '\" \\\\ / \\b \\f \\n \\r \\t')\n"
               "assert(json.decode([[\"\\u0041\\u00e9\\u20AC\"]]) == 'A\\u{e9}\\u{20ac}')\n"
               "assert(json.decode([[\"\\ud83d\\ude00\"]]) == '\\u{1F600}')\n"
               "assert(json.decode([[\"\\uDBFF\\uDFFF\"]]) == '\\u{10FFFF}')\n"
               "local nul = json.decode([[\"a\\u0000b\"]])\n"
               "assert(#nul == 3 and nul:byte(2) == 0)\n"
               "assert(json.encode(nul) == [[\"a\\u0000b\"]])\n"
               "assert(json.decode(json.encode('😀 é ✓')) == '😀 é ✓')\n"
               /* escapes inside keys too */
               "assert(json.decode([[{\"k\\u00e9y\":1}]])['k\\u{e9}y'] == 1)\n");
    lua_close(L);
}

static void test_surrogates_rejected(void **state)
{
    (void)state;
    lua_State *L = new_state();
    check_decode_error(L, "\"\\ud800\"", 8, "lone high surrogate \\uD800 at line 1 column 2");
    check_decode_error(L, "\"x\\udc00\"", 9, "lone low surrogate \\uDC00 at line 1 column 3");
    check_decode_error(L, "\"\\ud800\\u0041\"", 14, "lone high surrogate \\uD800 at line 1 column 2");
    check_decode_error(L, "\"\\ud800\\ud800\"", 14, "lone high surrogate \\uD800 at line 1 column 2");
    check_decode_error(L, "\"\\ud800x\"", 9, "lone high surrogate \\uD800 at line 1 column 2");
    check_decode_error(L, "\"\\u12\"", 6, "invalid \\u escape (needs 4 hex digits) at line 1 column 2");
    check_decode_error(L, "\"\\u12G4\"", 8, "invalid \\u escape (needs 4 hex digits) at line 1 column 2");
    check_decode_error(L, "\"\\x\"", 4, "invalid escape in string at line 1 column 2");
    check_decode_error(L, "\"\\'\"", 4, "invalid escape in string at line 1 column 2");
    lua_close(L);
}

static void test_invalid_utf8_rejected(void **state)
{
    (void)state;
    lua_State *L = new_state();
    static const char *bad[] = {
        "\"\xc0\xaf\"",         /* overlong '/' */
        "\"\xe0\x80\xaf\"",     /* overlong, 3 bytes */
        "\"\xed\xa0\x80\"",     /* UTF-8 encoded surrogate */
        "\"\xf4\x90\x80\x80\"", /* above U+10FFFF */
        "\"\xf5\x80\x80\x80\"", /* never a lead byte */
        "\"\x80\"",             /* stray continuation */
        "\"\xe2\x82\"",         /* truncated before the quote */
        "\"\xff\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check_decode_error(L, bad[i], strlen(bad[i]), "invalid UTF-8 in string at line 1 column 2");
    check_decode_error(L, "\"\xe2\x82", 3, "invalid UTF-8 in string at line 1 column 2"); /* truncated at the end */
    run_lua(L, "assert(json.decode('\"\\xe2\\x82\\xac \\xf0\\x9f\\x98\\x80 \\xc3\\xa9 \\xef\\xbf\\xbf\"') == '€ 😀 é \\u{FFFF}')\n");
    /* outside strings any non-ASCII byte is simply unexpected */
    check_decode_error(L, "\xef\xbb\xbf[]", 5, "unexpected byte 0xef at line 1 column 1");
    lua_close(L);
}

static void test_rejections(void **state)
{
    (void)state;
    lua_State *L = new_state();
    static const struct {
        const char *in, *err;
    } cases[] = {
        {"[1,]", "trailing comma at line 1 column 4"},
        {"[1, ]", "trailing comma at line 1 column 5"},
        {"{\"a\":1,}", "trailing comma at line 1 column 8"},
        {"[,]", "unexpected character ',' at line 1 column 2"},
        {"[1,,2]", "unexpected character ',' at line 1 column 4"},
        {"[1 2]", "unexpected character '2' (expected ',' or ']') at line 1 column 4"},
        {"{\"a\":1 \"b\":2}", "unexpected character '\"' (expected ',' or '}') at line 1 column 8"},
        {"// hi\n1", "comments are not JSON at line 1 column 1"},
        {"[1 /* x */]", "unexpected character '/' (expected ',' or ']') at line 1 column 4"},
        {"01", "number with a leading zero at line 1 column 1"},
        {"-012", "number with a leading zero at line 1 column 1"},
        {"00", "number with a leading zero at line 1 column 1"},
        {"NaN", "NaN and Infinity are not JSON at line 1 column 1"},
        {"[Infinity]", "NaN and Infinity are not JSON at line 1 column 2"},
        {"-Infinity", "unexpected character 'I' in number at line 1 column 2"},
        {"+1", "unexpected character '+' at line 1 column 1"},
        {".5", "unexpected character '.' at line 1 column 1"},
        {"1.", "unexpected end of input (expected a digit after '.') at line 1 column 3"},
        {"1.e5", "unexpected character 'e' (expected a digit after '.') at line 1 column 3"},
        {"1e+", "unexpected end of input (expected a digit in the exponent) at line 1 column 4"},
        {"0x10", "unexpected data after the JSON value at line 1 column 2"},
        {"1e400", "number out of range at line 1 column 1"},
        {"-1e400", "number out of range at line 1 column 1"},
        {"\"tab\there\"", "control character in string (must be escaped) at line 1 column 5"},
        {"\"line\nbreak\"", "control character in string (must be escaped) at line 1 column 6"},
        {"\"abc", "unterminated string at line 1 column 1"},
        {"\"abc\\", "unterminated string at line 1 column 1"},
        {"'single'", "unexpected character ''' at line 1 column 1"},
        {"{a:1}", "unexpected character 'a' (expected a string key) at line 1 column 2"},
        {"{1:1}", "unexpected character '1' (expected a string key) at line 1 column 2"},
        {"{\"a\" 1}", "unexpected character '1' (expected ':') at line 1 column 6"},
        {"{\"a\":}", "unexpected character '}' at line 1 column 6"},
        {"[1] [2]", "unexpected data after the JSON value at line 1 column 5"},
        {"{} x", "unexpected data after the JSON value at line 1 column 4"},
        {"tru", "invalid literal (expected 'true') at line 1 column 1"},
        {"nul", "invalid literal (expected 'null') at line 1 column 1"},
        {"True", "unexpected character 'T' at line 1 column 1"},
        {"truex", "unexpected data after the JSON value at line 1 column 5"},
        {"", "unexpected end of input at line 1 column 1"},
        {" \n ", "unexpected end of input at line 2 column 2"},
        {"[", "unexpected end of input at line 1 column 2"},
        {"[1", "unexpected end of input (expected ',' or ']') at line 1 column 3"},
        {"{\"a\":1", "unexpected end of input (expected ',' or '}') at line 1 column 7"},
        {"\f1", "unexpected byte 0x0c at line 1 column 1"},
        {"\v1", "unexpected byte 0x0b at line 1 column 1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_decode_error(L, cases[i].in, strlen(cases[i].in), cases[i].err);
    check_decode_error(L, "1\0", 2, "unexpected data after the JSON value at line 1 column 2");
    run_lua(L, "local ok, err = pcall(json.decode, 5)\nassert(not ok and err:find('string expected, got number'))\n"
               "ok, err = pcall(json.decode)\nassert(not ok and err:find('string expected, got no value'))\n"
               "ok, err = pcall(json.decode, {})\nassert(not ok and err:find('bad argument #1'))\n");
    lua_close(L);
}

static void test_error_line_and_column(void **state)
{
    (void)state;
    lua_State *L = new_state();
    const char *doc = "{\n  \"a\": [1, 2,]\n}";
    check_decode_error(L, doc, strlen(doc), "trailing comma at line 2 column 14");
    const char *doc2 = "[1,\r\n 2,\n\n   x]";
    check_decode_error(L, doc2, strlen(doc2), "unexpected character 'x' at line 4 column 4");
    lua_close(L);
}

static void test_integers(void **state)
{
    (void)state;
    lua_State *L = new_state();
    run_lua(L, "local v = json.decode('[9223372036854775807,-9223372036854775808,0,-1,1234567890123]')\n"
               "assert(v[1] == math.maxinteger and math.type(v[1]) == 'integer')\n"
               "assert(v[2] == math.mininteger and math.type(v[2]) == 'integer')\n"
               "assert(math.type(v[3]) == 'integer' and math.type(v[4]) == 'integer' and v[5] == 1234567890123)\n"
               /* one past either bound is no longer an integer */
               "local big = json.decode('9223372036854775808')\n"
               "assert(math.type(big) == 'float' and big == 2^63)\n"
               "local small = json.decode('-9223372036854775809')\n"
               "assert(math.type(small) == 'float' and small == -2^63)\n"
               "local huge = json.decode('123456789012345678901234567890')\n"
               "assert(math.type(huge) == 'float' and huge == 1.2345678901234568e29)\n"
               "assert(math.type(json.decode('10000000000000000000')) == 'float')\n"
               /* a fraction or exponent makes a float even when integral */
               "assert(math.type(json.decode('1.0')) == 'float' and math.type(json.decode('1e2')) == 'float')\n"
               "assert(json.decode('1E2') == 100 and json.decode('2e-2') == 0.02 and json.decode('-1.5') == -1.5)\n"
               /* -0 keeps its sign: it has no integer form */
               "local z = json.decode('-0')\n"
               "assert(math.type(z) == 'float' and 1/z == -math.huge)\n"
               "assert(math.type(json.decode('0')) == 'integer')\n");
    check_eval(L, "return json.encode({math.maxinteger, math.mininteger})", "[9223372036854775807,-9223372036854775808]");
    check_eval(L, "return json.encode(-0.0) .. ' ' .. json.encode(json.decode('-0'))", "-0 -0");
    lua_close(L);
}

static void test_floats(void **state)
{
    (void)state;
    lua_State *L = new_state();
    check_eval(L, "return json.encode({0.1, 1/3, 1.5, -2.5e-7, 1e300, 5e-324, 3.0, 2^53})",
               "[0.1,0.3333333333333333,1.5,-2.5e-07,1e+300,4.94065645841247e-324,3,9007199254740992]");
    check_eval(L, "return json.encode(1.7976931348623157e308)", "1.7976931348623157e+308");
    check_eval(L, "return json.encode(math.pi)", "3.141592653589793");
    check_eval(L, "return json.encode({19.99, 0.0001, 1e-05, -0.5, 100.25, 1e15, 999999999999999.9, 0.1 + 0.2})",
               "[19.99,0.0001,1e-05,-0.5,100.25,1e+15,999999999999999.9,0.30000000000000004]");
    /* every finite double comes back bit for bit */
    run_lua(L, "math.randomseed(42)\n"
               "local n = 0\n"
               "while n < 20000 do\n"
               "  local x = string.unpack('<d', string.pack('<i8', math.random(0)))\n"
               "  if x == x and x ~= math.huge and x ~= -math.huge then\n"
               "    n = n + 1\n"
               "    local s = json.encode(x)\n"
               "    local y = json.decode(s)\n"
               "    assert(y == x, s)\n"
               "    assert(#s <= 24, s)\n"
               "  end\n"
               "end\n"
               "for _, x in ipairs{0.1, 0.2, 0.3, 1e-10, 123.456, 1e21, 2^-1022, 2^-1074, 2^1023} do\n"
               "  assert(json.decode(json.encode(x)) == x)\n"
               "end\n");
    lua_close(L);
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The encoder skips printf for short decimals; its text must still be exactly the reference:
 * the first of %.15g, %.16g, %.17g that reads back as the same double. */
static void test_float_text_matches_printf(void **state)
{
    (void)state;
    static const double p10[] = {1,    1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,
                                 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19};
    lua_State *L = new_state();
    pulse_buf_t out = PULSE_BUF_INIT;
    char err[256], want[40];
    uint64_t seed = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < 300000; i++) {
        double d;
        uint64_t r = xorshift(&seed);
        switch (i % 3) {
        case 0:
            memcpy(&d, &r, sizeof(d));
            if (d != d || d - d != 0) /* NaN or inf */
                continue;
            break;
        case 1:
            d = (double)(r % 1000000000000000u) / p10[xorshift(&seed) % 20];
            break;
        default:
            d = (double)(r % 100000) / p10[xorshift(&seed) % 8] * ((r >> 40) & 1 ? -1 : 1);
        }
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(want, sizeof(want), "%.*g", prec, d);
            if (strtod(want, NULL) == d)
                break;
        }
        lua_pushnumber(L, d);
        pulse_buf_reset(&out);
        assert_int_equal(pulse_json_encode_value(L, -1, &out, 0, err, sizeof(err)), 0);
        lua_pop(L, 1);
        if (strcmp(out.data, want) != 0)
            fail_msg("%.17g encodes as %s, want %s", d, out.data, want);
    }
    pulse_buf_free(&out);
    lua_close(L);
}

/* The decoder computes short decimals itself (Clinger's fast path); it must agree with strtod. */
static void test_float_decode_matches_strtod(void **state)
{
    (void)state;
    lua_State *L = new_state();
    char text[160], err[256];
    uint64_t seed = 0x2545F4914F6CDD1Du;
    for (int i = 0; i < 200000; i++) {
        char *o = text;
        if (xorshift(&seed) & 1)
            *o++ = '-';
        int nint = (int)(xorshift(&seed) % 22), nfrac = 1 + (int)(xorshift(&seed) % 24);
        *o++ = nint ? (char)('1' + xorshift(&seed) % 9) : '0';
        for (int k = 1; k < nint; k++)
            *o++ = (char)('0' + xorshift(&seed) % 10);
        *o++ = '.';
        for (int k = (int)(xorshift(&seed) % 4 == 0 ? xorshift(&seed) % 20 : 0); k > 0; k--)
            *o++ = '0';
        for (int k = 0; k < nfrac; k++)
            *o++ = (char)('0' + xorshift(&seed) % 10);
        if (xorshift(&seed) % 3 == 0)
            o += sprintf(o, "e%s%d", xorshift(&seed) & 1 ? "-" : "+", (int)(xorshift(&seed) % 40));
        *o = '\0';
        assert_int_equal(pulse_json_decode_push(L, text, strlen(text), err, sizeof(err)), 0);
        double got = lua_tonumber(L, -1), want = strtod(text, NULL);
        lua_pop(L, 1);
        if (memcmp(&got, &want, sizeof(got)) != 0)
            fail_msg("%s decodes as %.17g, strtod says %.17g", text, got, want);
    }
    lua_close(L);
}

static void test_depth_limit(void **state)
{
    (void)state;
    lua_State *L = new_state();
    run_lua(L, "assert(json.decode(string.rep('[', 128) .. string.rep(']', 128)))\n"
               "assert(json.decode(string.rep('{\"a\":', 127) .. '[]' .. string.rep('}', 127)))\n");
    check_eval(L, "local v, err = json.decode(string.rep('[', 129) .. string.rep(']', 129)) assert(v == nil) return err",
               "nesting deeper than 128 at line 1 column 129");
    check_eval(L, "local v, err = json.decode(string.rep('{\"k\":', 129) .. '1' .. string.rep('}', 129)) return err",
               "nesting deeper than 128 at line 1 column 641");
    /* a hostile depth stops at the limit instead of exhausting the C stack */
    check_eval(L, "local v, err = json.decode(string.rep('[', 1000000)) return err",
               "nesting deeper than 128 at line 1 column 129");
    run_lua(L, "local function nest(n) local t = {} for i = 1, n - 1 do t = {t} end return t end\n"
               "local s = json.encode(nest(128))\n"
               "assert(s == string.rep('[', 127) .. '{}' .. string.rep(']', 127))\n"
               "local ok, err = pcall(json.encode, nest(129))\n"
               "assert(not ok and err:find('^json.encode: cannot encode tables nested deeper than 128 at %$%[1%]%[1%]'), err)\n"
               "assert(json.encode(json.decode(string.rep('[', 128) .. string.rep(']', 128))) == "
               "string.rep('[', 128) .. string.rep(']', 128))\n");
    lua_close(L);
}

static void test_duplicate_keys_last_wins(void **state)
{
    (void)state;
    lua_State *L = new_state();
    run_lua(L, "local v = json.decode('{\"a\":1,\"a\":2}')\nassert(v.a == 2)\n");
    lua_close(L);
}

static void test_large_round_trip(void **state)
{
    (void)state;
    lua_State *L = new_state();
    run_lua(L, "local rows = {}\n"
               "for i = 1, 20000 do\n"
               "  rows[i] = {id = i, name = 'customer ' .. i .. ' \\u{e9}\\n', score = i / 7, tags = json.array(),\n"
               "             active = i % 2 == 0, ref = json.null}\n"
               "end\n"
               "local s = json.encode(rows, {sort_keys = true})\n"
               "local back = json.decode(s)\n"
               "assert(#back == 20000 and back[20000].id == 20000 and back[7].score == 1)\n"
               "assert(json.encode(back, {sort_keys = true}) == s)\n");
    lua_close(L);
}

static void test_c_encode_entry_point(void **state)
{
    (void)state;
    lua_State *L = new_state();
    char err[256] = "";
    pulse_buf_t out = PULSE_BUF_INIT;
    pulse_buf_puts(&out, "prefix:");

    assert_int_equal(luaL_dostring(L, "return {b = {1, 2}, a = 'x'}"), LUA_OK);
    int top = lua_gettop(L);
    assert_int_equal(pulse_json_encode_value(L, -1, &out, 1, err, sizeof(err)), 0);
    assert_string_equal(out.data, "prefix:{\"a\":\"x\",\"b\":[1,2]}");
    assert_int_equal(lua_gettop(L), top);

    /* on failure out is left as it was and nothing is raised */
    size_t len = out.len;
    assert_int_equal(luaL_dostring(L, "return {ok = 1, bad = {print}}"), LUA_OK);
    assert_int_equal(pulse_json_encode_value(L, -1, &out, 0, err, sizeof(err)), -1);
    assert_string_equal(err, "cannot encode function at $.bad[1]");
    assert_int_equal(out.len, len);
    assert_string_equal(out.data, "prefix:{\"a\":\"x\",\"b\":[1,2]}");
    assert_int_equal(lua_gettop(L), top + 1);

    /* works in a state that never opened the module (no json.array_mt there) */
    lua_State *bare = luaL_newstate();
    lua_createtable(bare, 0, 0);
    pulse_buf_reset(&out);
    assert_int_equal(pulse_json_encode_value(bare, 1, &out, 0, NULL, 0), 0);
    assert_string_equal(out.data, "{}");
    lua_close(bare);

    pulse_buf_free(&out);
    lua_close(L);
}

static void test_c_decode_entry_point(void **state)
{
    (void)state;
    lua_State *L = new_state();
    char err[256] = "";
    int top = lua_gettop(L);
    /* the input need not be NUL-terminated: only n bytes are read */
    const char text[] = "[1,\"two\",{\"three\":3}]garbage";
    assert_int_equal(pulse_json_decode_push(L, text, 21, err, sizeof(err)), 0);
    assert_int_equal(lua_gettop(L), top + 1);
    assert_true(lua_istable(L, -1));
    lua_setglobal(L, "v");
    run_lua(L, "assert(v[2] == 'two' and v[3].three == 3 and getmetatable(v) == json.array_mt)");

    assert_int_equal(pulse_json_decode_push(L, text, sizeof(text) - 1, err, sizeof(err)), -1);
    assert_string_equal(err, "unexpected data after the JSON value at line 1 column 22");
    assert_int_equal(lua_gettop(L), top);

    /* a module-less state still gets array metatables (created on demand) */
    lua_State *bare = luaL_newstate();
    assert_int_equal(pulse_json_decode_push(bare, "[[]]", 4, err, sizeof(err)), 0);
    assert_int_equal(lua_gettop(bare), 1);
    assert_true(lua_getmetatable(bare, 1));
    luaL_getmetatable(bare, PULSE_JSON_ARRAY_MT);
    assert_true(lua_rawequal(bare, -1, -2));
    lua_close(bare);
    lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars_round_trip),
        cmocka_unit_test(test_nested_round_trip),
        cmocka_unit_test(test_empty_array_vs_object),
        cmocka_unit_test(test_sequences_and_sparse_tables),
        cmocka_unit_test(test_key_errors),
        cmocka_unit_test(test_unencodable_values_name_the_path),
        cmocka_unit_test(test_cycles),
        cmocka_unit_test(test_sort_keys),
        cmocka_unit_test(test_null_in_objects_and_arrays),
        cmocka_unit_test(test_string_escapes),
        cmocka_unit_test(test_surrogates_rejected),
        cmocka_unit_test(test_invalid_utf8_rejected),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_error_line_and_column),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_floats),
        cmocka_unit_test(test_float_text_matches_printf),
        cmocka_unit_test(test_float_decode_matches_strtod),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_duplicate_keys_last_wins),
        cmocka_unit_test(test_large_round_trip),
        cmocka_unit_test(test_c_encode_entry_point),
        cmocka_unit_test(test_c_decode_entry_point),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
