/* Benchmark of rule calls through the sandbox (see sandbox_bench.h). The caller's state plays the
 * request handler's VM: its tables are deep-copied into the box and the results copied back. */
#include "script/sandbox_bench.h"
#include "core/clock.h"
#include "script/sandbox.h"

#include <lauxlib.h>
#include <lualib.h>
#include <string.h>
#include <time.h>

static const char RULES[] = "local M = {}\n"
                            "function M.noop() return true end\n"
                            "function M.offer(p)\n"
                            "  local pct = 5\n"
                            "  if p.churn_risk > 0.7 then pct = 20 elseif p.churn_risk > 0.4 then pct = 10 end\n"
                            "  if p.tier == 'gold' then pct = pct + 5 end\n"
                            "  return { kind = 'discount', discount_pct = pct, channel = p.email_opt_in and 'email' or 'site' }\n"
                            "end\n"
                            "function M.segment(s)\n"
                            "  local r, f, m = s.r, s.f, s.m\n"
                            "  if r >= 4 and f >= 4 and m >= 4 then return 'champions' end\n"
                            "  if r >= 3 and f >= 3 then return 'loyal' end\n"
                            "  if r <= 2 and f >= 3 then return 'at_risk' end\n"
                            "  if r <= 1 then return 'lost' end\n"
                            "  return 'others'\n"
                            "end\n"
                            "return M\n";

static const char PROFILE[] = "return { customer_id = 123456, tier = 'gold', churn_risk = 0.72, ltv = 1830.5, orders = 14,"
                              " days_since_last = 41, avg_basket = 62.3, email_opt_in = true, country = 'FR', segment = 'loyal' }";

static int fail(FILE *out, const char *what, const pulse_sandbox_error_t *e)
{
    fprintf(out, "sandbox bench: %s failed: %s: %s\n", what, e->kind, e->message);
    return -1;
}

int pulse_sandbox_bench(FILE *out)
{
    pulse_sandbox_error_t e;
    pulse_sandbox_t *b = pulse_sandbox_new(NULL);
    lua_State *H = luaL_newstate();
    int rc = -1;
    if (b == NULL || H == NULL) {
        fprintf(out, "sandbox bench: out of memory\n");
        goto done;
    }
    luaL_openlibs(H);
    if (pulse_sandbox_load(b, "rules", "@bench/rules.lua", RULES, strlen(RULES), &e) != 0) {
        rc = fail(out, "load", &e);
        goto done;
    }
    luaL_dostring(H, PROFILE); /* 1: the profile */
    const int n = 200000;

    double t0 = pulse_now_s();
    for (int i = 0; i < n; i++) {
        if (pulse_sandbox_call(b, H, "rules", "noop", 0, 1, 0, &e) != 0) {
            rc = fail(out, "noop", &e);
            goto done;
        }
        lua_pop(H, 1);
    }
    double t1 = pulse_now_s();
    fprintf(out, "trivial function          %8.2f us/call\n", (t1 - t0) * 1e6 / n);

    t0 = pulse_now_s();
    for (int i = 0; i < n; i++) {
        lua_pushvalue(H, 1);
        if (pulse_sandbox_call(b, H, "rules", "offer", 1, 1, (uint64_t)i, &e) != 0) {
            rc = fail(out, "offer", &e);
            goto done;
        }
        lua_pop(H, 1);
    }
    t1 = pulse_now_s();
    fprintf(out, "profile in, offer out     %8.2f us/call (10-field table in, 3-field table out)\n", (t1 - t0) * 1e6 / n);

    const int rounds = 2000;
    t0 = pulse_now_s();
    for (int k = 0; k < rounds; k++) {
        for (int r = 1; r <= 5; r++)
            for (int f = 1; f <= 5; f++)
                for (int m = 1; m <= 5; m++) {
                    lua_createtable(H, 0, 3);
                    lua_pushinteger(H, r);
                    lua_setfield(H, -2, "r");
                    lua_pushinteger(H, f);
                    lua_setfield(H, -2, "f");
                    lua_pushinteger(H, m);
                    lua_setfield(H, -2, "m");
                    if (pulse_sandbox_call(b, H, "rules", "segment", 1, 1, 0, &e) != 0) {
                        rc = fail(out, "segment", &e);
                        goto done;
                    }
                    lua_pop(H, 1);
                }
    }
    t1 = pulse_now_s();
    fprintf(out, "segments over 5x5x5 RFM   %8.2f us for the 125 calls (%.2f us/call)\n", (t1 - t0) * 1e6 / rounds,
            (t1 - t0) * 1e6 / rounds / 125);
    pulse_sandbox_stats_t s;
    pulse_sandbox_stats(b, &s);
    fprintf(out, "box memory %zu bytes (peak %zu), %llu calls, %llu failures\n", s.memory, s.peak, (unsigned long long)s.calls,
            (unsigned long long)s.failures);
    rc = 0;
done:
    if (H != NULL)
        lua_close(H);
    pulse_sandbox_free(b);
    return rc;
}
