/* The sandbox for tenant rules: each box is a separate lua_State with an allow-list of globals
 * over frozen library tables, a memory cap in its allocator, and an instruction and wall-clock
 * budget per call that pcall inside a rule cannot swallow. Values cross in and out by deep copy
 * only. A box belongs to one thread at a time (the caller caches and evicts boxes); the `sandbox`
 * Lua module (pulse_script_open_sandbox) is the application's handle on the same API. */
#ifndef PULSE_SCRIPT_SANDBOX_H
#define PULSE_SCRIPT_SANDBOX_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pulse_sandbox_t pulse_sandbox_t;

typedef struct pulse_sandbox_limits_t {
    size_t memory_limit;        /* bytes the box's state may hold (default 16 MB) */
    uint64_t instruction_limit; /* VM instructions per call, counted by 1000 (default 10 M) */
    double wall_ms;             /* wall-clock budget per call (default 100 ms) */
    size_t max_values;          /* values a copy in or out may hold (default 100,000) */
} pulse_sandbox_limits_t;

/* kind: "syntax", "runtime", "memory", "budget", "timeout", "type" (no such module or function,
 * a rule file not returning a table or function), "copy" (a value that cannot cross). source and
 * line: the innermost rule position known when the error was raised ("" and 0 when unknown,
 * e.g. for memory errors). message: Lua's text, with its "source:line:" prefix when it has one. */
typedef struct pulse_sandbox_error_t {
    char kind[16];
    char source[128];
    int line;
    char message[512];
} pulse_sandbox_error_t;

typedef struct pulse_sandbox_stats_t {
    size_t memory; /* bytes in use now */
    size_t peak;
    uint64_t calls; /* loads and calls */
    uint64_t failures;
    uint64_t last_instructions; /* of the last load or call, by 1000 */
} pulse_sandbox_stats_t;

void pulse_sandbox_limits_init(pulse_sandbox_limits_t *l);

/* A new box (l NULL: defaults). NULL when the process is out of memory. The caller owns it and
 * frees it with pulse_sandbox_free. */
pulse_sandbox_t *pulse_sandbox_new(const pulse_sandbox_limits_t *l);
void pulse_sandbox_free(pulse_sandbox_t *b);

/* Compiles src (text only, never bytecode) with chunkname (NULL: "@<name>"; a name without a
 * leading '@' or '=' gets '@'), runs it in a fresh environment under the budget and keeps its
 * return value (a table or a function) as module `name`, replacing an older one. 0, or -1 with e
 * filled. */
int pulse_sandbox_load(pulse_sandbox_t *b, const char *name, const char *chunkname, const char *src, size_t len,
                       pulse_sandbox_error_t *e);

/* The box's state, for C callers pushing arguments themselves before pulse_sandbox_pcall. Outside
 * a call the memory cap is not enforced (trusted code is pushing), so pushing cannot fail short
 * of the process running out of memory (which aborts). */
lua_State *pulse_sandbox_state(pulse_sandbox_t *b);

/* Calls module[fn] (fn NULL: the module itself, which must be a function) with the nargs values
 * on top of the box's stack, under the budget; math.random is seeded with seed. Returns 0 with
 * nresults values (or LUA_MULTRET) left on the box's stack, or -1 with e filled and the box's
 * stack emptied. Results are the box's own values: read them before the next call, or copy them
 * with pulse_sandbox_copy_out. After a failure the box stays usable: its garbage is collected and
 * its memory is back under the cap unless the rule's own module state keeps it above. */
int pulse_sandbox_pcall(pulse_sandbox_t *b, const char *module, const char *fn, int nargs, int nresults, uint64_t seed,
                        pulse_sandbox_error_t *e);

/* Deep-copies the box value at idx onto the top of `to` (another state) or fills e (kind "copy",
 * message naming the path from root, e.g. "result.offer: a function cannot leave a rule").
 * Memory errors in `to` raise in `to`. Leaves the box's stack as it was. */
int pulse_sandbox_copy_out(pulse_sandbox_t *b, int idx, lua_State *to, const char *root, pulse_sandbox_error_t *e);

/* The whole round trip for a caller holding its data in another state H: pops nargs values from
 * H, copies them into the box, calls as pulse_sandbox_pcall and pushes nresults copies onto H.
 * -1 with e filled (nothing pushed) on any failure, including an argument that cannot cross
 * (kind "copy", path "input..."). Memory errors in H raise in H. */
int pulse_sandbox_call(pulse_sandbox_t *b, lua_State *H, const char *module, const char *fn, int nargs, int nresults, uint64_t seed,
                       pulse_sandbox_error_t *e);

/* Pushes a copy of module[field] (raw lookup, no rule code runs) onto H, or fills e. */
int pulse_sandbox_get(pulse_sandbox_t *b, lua_State *H, const char *module, const char *field, pulse_sandbox_error_t *e);

void pulse_sandbox_stats(const pulse_sandbox_t *b, pulse_sandbox_stats_t *s);

/* For the box's own C library (sandbox_pattern.c): counts n units of work done in C against the
 * running call's instruction budget and raises when the call is out of budget or time. */
void pulse_sandbox_charge(lua_State *L, uint64_t n);

/* The `sandbox` Lua module for the application's VM (see sandbox.c for its API). */
int pulse_script_open_sandbox(lua_State *L);

#endif
