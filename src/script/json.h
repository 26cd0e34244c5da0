/* The JSON codec of the Lua layer (`require "json"`) and of the C code that talks to it: strict
 * RFC 8259 decoding straight into Lua values (no intermediate tree), encoding that refuses what
 * JSON cannot say (functions, NaN, cycles, mixed keys) with the path of the offending value.
 * JSON null is the light userdata json.null; arrays carry json.array_mt so [] survives a round
 * trip. Both directions stop at PULSE_JSON_MAX_DEPTH nested containers. */
#ifndef PULSE_SCRIPT_JSON_H
#define PULSE_SCRIPT_JSON_H

#include <lua.h>
#include <stddef.h>

#include "core/buf.h"

#define PULSE_JSON_MAX_DEPTH 128
/* Registry name of the metatable marking a table as a JSON array (json.array_mt). */
#define PULSE_JSON_ARRAY_MT "pulse.json.array"

/* Pushes the module table; sets no global. Returns 1. From Lua:
 *   json.encode(v [, {sort_keys = true}]) -> string; raises "json.encode: <problem> at <path>".
 *     A table is an array if it has json.array_mt (nil holes become null) or its keys are exactly
 *     1..n; otherwise an object whose keys must all be strings. Strings must be valid UTF-8.
 *     Integers print as integers; floats as the shortest of %.15g/%.16g/%.17g that reads back
 *     exactly, so an integral float like 3.0 prints as 3 (and decodes as an integer).
 *   json.decode(s) -> value | nil, err; raises only if s is not a string. Object keys stay strings,
 *     a repeated key keeps its last value, integers that fit in int64 become Lua integers and
 *     everything else a float ("-0" too, to keep its sign); numbers beyond double range are refused.
 *   json.null (a NULL light userdata: truthy in Lua), json.array([t]) -> t, json.array_mt. */
int pulse_script_open_json(lua_State *L);

/* Appends the JSON text of the value at idx to out (the caller owns out and frees it). Object keys
 * are sorted bytewise when sort_keys is non-zero. Returns 0, or -1 with a message naming the
 * problem and its path (e.g. "cannot encode function at $.items[3].cb", Lua 1-based indices) in
 * err; on failure out is left as it was. Never raises; the Lua stack is left unchanged. */
int pulse_json_encode_value(lua_State *L, int idx, pulse_buf_t *out, int sort_keys, char *err, size_t errlen);

/* Decodes the n bytes at s (need not be NUL-terminated; not retained) and pushes the value:
 * returns 0. On malformed input pushes nothing and returns -1 with "<problem> at line L column C"
 * (1-based, columns in bytes) in err. Never raises. */
int pulse_json_decode_push(lua_State *L, const char *s, size_t n, char *err, size_t errlen);

#endif
