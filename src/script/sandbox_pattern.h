/* Lua's pattern functions for the sandbox (string.find, match, gmatch, gsub), written to count
 * their backtracking work against the call's budget: Lua's own matcher runs in C where the count
 * hook never fires, so a pattern like ".-.-.-.-y" over a long subject would hold a thread for
 * hours. Same patterns, captures and results as Lua 5.4's string library. */
#ifndef PULSE_SCRIPT_SANDBOX_PATTERN_H
#define PULSE_SCRIPT_SANDBOX_PATTERN_H

#include <lua.h>

/* Replaces find, match, gmatch and gsub in the string library table at idx. */
void pulse_sandbox_pattern_register(lua_State *L, int idx);

#endif
