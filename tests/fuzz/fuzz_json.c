/* libFuzzer target for src/script/json.c: whatever decodes must encode, and the encoding must be a
 * fixed point (decode(encode(v)) encodes to the same text, with sorted keys).
 *
 * Build and run (clang only; needs add_subdirectory(fuzz) in tests/CMakeLists.txt):
 *   cmake -B build-fuzz -DCMAKE_C_COMPILER=clang -DPULSE_FUZZ=ON && cmake --build build-fuzz --target fuzz_json
 *   mkdir -p /tmp/json-corpus && build-fuzz/tests/fuzz/fuzz_json -max_total_time=60 -max_len=4096 /tmp/json-corpus
 * A crash leaves crash-<sha1> in the working directory; replay it with build-fuzz/tests/fuzz/fuzz_json crash-<sha1>. */
#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "script/json.h"

static lua_State *L;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_json: %s: %s\n", what, detail);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    if (L == NULL) {
        L = luaL_newstate();
        pulse_script_open_json(L);
        lua_pop(L, 1);
    }
    if (pulse_json_decode_push(L, (const char *)data, size, err, sizeof(err)) != 0) {
        if (lua_gettop(L) != 0)
            die("failed decode left values on the stack", err);
        if (strstr(err, " at line ") == NULL)
            die("decode error without a position", err);
        return 0;
    }
    pulse_buf_t first = PULSE_BUF_INIT, second = PULSE_BUF_INIT;
    if (pulse_json_encode_value(L, -1, &first, 1, err, sizeof(err)) != 0)
        die("a decoded value does not encode", err);
    if (pulse_json_decode_push(L, first.data, first.len, err, sizeof(err)) != 0)
        die("our own output does not decode", err);
    if (pulse_json_encode_value(L, -1, &second, 1, err, sizeof(err)) != 0)
        die("the re-decoded value does not encode", err);
    if (first.len != second.len || memcmp(first.data, second.data, first.len) != 0) {
        fprintf(stderr, "first:  %s\nsecond: %s\n", first.data, second.data);
        die("encoding is not a fixed point", "see above");
    }
    pulse_buf_free(&first);
    pulse_buf_free(&second);
    lua_settop(L, 0);
    return 0;
}
