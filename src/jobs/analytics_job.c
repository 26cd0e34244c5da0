/* Shared parts of the analytics jobs (see analytics_job.h). */
#include "jobs/analytics_job.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "script/json.h"

static const char *str_field(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1); /* the string stays anchored in the table */
    return s;
}

static int num_field(lua_State *L, int t, const char *k, double *v)
{
    lua_getfield(L, t, k);
    int ok = lua_type(L, -1) == LUA_TNUMBER;
    if (ok)
        *v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return ok;
}

int pulse_segment_spec_from_lua(lua_State *L, int seg, int beh, pulse_segment_spec_t *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    seg = lua_absindex(L, seg);
    if (!lua_istable(L, seg))
        return pulse_fail(err, errlen, "segments: missing lookup table");
    if (lua_getfield(L, seg, "names") != LUA_TTABLE) {
        lua_pop(L, 1);
        return pulse_fail(err, errlen, "segments.names: must be an array");
    }
    size_t nn = (size_t)luaL_len(L, -1);
    if (nn == 0 || nn > PULSE_SEGMENT_MAX_NAMES) {
        lua_pop(L, 1);
        return pulse_fail(err, errlen, "segments.names: 1 to %d names", PULSE_SEGMENT_MAX_NAMES);
    }
    for (size_t i = 0; i < nn; i++) {
        lua_geti(L, -1, (lua_Integer)i + 1);
        s->table.names[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
        if (s->table.names[i] == NULL) {
            lua_pop(L, 1);
            return pulse_fail(err, errlen, "segments.names[%zu]: must be a string", i + 1);
        }
    }
    lua_pop(L, 1);
    s->table.nnames = nn;
    const char *arr[] = {"segment", "score"};
    for (int a = 0; a < 2; a++) {
        if (lua_getfield(L, seg, arr[a]) != LUA_TTABLE || luaL_len(L, -1) != PULSE_SEGMENT_KEYS) {
            lua_pop(L, 1);
            return pulse_fail(err, errlen, "segments.%s: must be an array of %d numbers", arr[a], PULSE_SEGMENT_KEYS);
        }
        for (int k = 0; k < PULSE_SEGMENT_KEYS; k++) {
            lua_geti(L, -1, k + 1);
            double v = lua_tonumber(L, -1);
            lua_pop(L, 1);
            if (a == 0) {
                if (v < 0 || v > (double)nn) {
                    lua_pop(L, 1);
                    return pulse_fail(err, errlen, "segments.segment[%d]: %g is not a segment index", k + 1, v);
                }
                s->table.segment[k] = (uint8_t)v;
            } else {
                s->table.score[k] = (float)v;
            }
        }
        lua_pop(L, 1);
    }
    s->table.churn_medium = 0.4;
    s->table.churn_high = 0.7;
    if (lua_getfield(L, seg, "churn_bands") == LUA_TTABLE) {
        int cb = lua_gettop(L);
        num_field(L, cb, "medium", &s->table.churn_medium);
        num_field(L, cb, "high", &s->table.churn_high);
    }
    lua_pop(L, 1);
    double v = 0;
    num_field(L, seg, "version", &v);
    s->table.version = (int)v;

    if (beh == 0 || !lua_istable(L, beh))
        return 0;
    beh = lua_absindex(L, beh);
    pulse_behaviour_t *b = &s->behaviour;
    b->aggregates = s->aggs;
    b->score = s->terms;
    b->signals = s->signals;
    if (lua_getfield(L, beh, "aggregates") == LUA_TTABLE) {
        int t = lua_gettop(L);
        size_t n = (size_t)luaL_len(L, t);
        if (n > PULSE_SPEC_MAX)
            n = PULSE_SPEC_MAX;
        for (size_t i = 0; i < n; i++) {
            lua_geti(L, t, (lua_Integer)i + 1);
            int e = lua_gettop(L);
            pulse_agg_spec_t *a = &s->aggs[i];
            a->name = str_field(L, e, "name");
            a->event_type = str_field(L, e, "event_type");
            const char *op = str_field(L, e, "op"), *field = str_field(L, e, "field");
            a->op = op == NULL                 ? (pulse_agg_op_t)-1
                    : strcmp(op, "count") == 0 ? PULSE_AGG_COUNT
                    : strcmp(op, "sum") == 0   ? PULSE_AGG_SUM
                    : strcmp(op, "avg") == 0   ? PULSE_AGG_AVG
                    : strcmp(op, "slope") == 0 ? PULSE_AGG_SLOPE
                                               : (pulse_agg_op_t)-1;
            a->field = field && strcmp(field, "quantity") == 0 ? PULSE_AGG_QUANTITY : PULSE_AGG_VALUE;
            double w = 0;
            num_field(L, e, "window_days", &w);
            a->window_days = (int32_t)w;
            lua_pop(L, 1);
            if (a->name == NULL || a->event_type == NULL || (int)a->op < 0) {
                lua_pop(L, 1);
                return pulse_fail(err, errlen, "behaviour.aggregates[%zu]: needs name, event_type and a known op", i + 1);
            }
        }
        b->naggregates = n;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, beh, "score") == LUA_TTABLE) {
        int t = lua_gettop(L);
        size_t n = (size_t)luaL_len(L, t);
        if (n > PULSE_SPEC_MAX)
            n = PULSE_SPEC_MAX;
        for (size_t i = 0; i < n; i++) {
            lua_geti(L, t, (lua_Integer)i + 1);
            int e = lua_gettop(L);
            pulse_score_term_t *x = &s->terms[i];
            x->feature = str_field(L, e, "feature");
            int ok = num_field(L, e, "center", &x->center) && num_field(L, e, "scale", &x->scale) &&
                     num_field(L, e, "weight", &x->weight);
            lua_pop(L, 1);
            if (x->feature == NULL || !ok || !(x->scale > 0)) {
                lua_pop(L, 1);
                return pulse_fail(err, errlen, "behaviour.score[%zu]: needs feature, center, scale > 0 and weight", i + 1);
            }
        }
        b->nscore = n;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, beh, "trend") == LUA_TTABLE) {
        int t = lua_gettop(L);
        b->trend_feature = str_field(L, t, "feature");
        if (!num_field(L, t, "increasing", &b->trend_increasing) || !num_field(L, t, "declining", &b->trend_declining))
            b->trend_feature = NULL;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, beh, "signals") == LUA_TTABLE) {
        int t = lua_gettop(L);
        size_t n = (size_t)luaL_len(L, t);
        if (n > PULSE_SEGMENT_MAX_SIGNALS) { /* a customer's fired signals are a 32-bit mask */
            lua_pop(L, 1);
            return pulse_fail(err, errlen, "behaviour.signals: %zu signals, at most %d", n, PULSE_SEGMENT_MAX_SIGNALS);
        }
        for (size_t i = 0; i < n; i++) {
            lua_geti(L, t, (lua_Integer)i + 1);
            int e = lua_gettop(L);
            pulse_signal_t *x = &s->signals[i];
            x->name = str_field(L, e, "name");
            x->feature = str_field(L, e, "feature");
            x->message = str_field(L, e, "message");
            x->recommendation = str_field(L, e, "recommendation");
            int ok = 1;
            if (num_field(L, e, "above", &x->threshold))
                x->below = 0;
            else if (num_field(L, e, "below", &x->threshold))
                x->below = 1;
            else
                ok = 0;
            lua_pop(L, 1);
            if (x->name == NULL || x->feature == NULL || !ok) {
                lua_pop(L, 1);
                return pulse_fail(err, errlen, "behaviour.signals[%zu]: needs name, feature and above or below", i + 1);
            }
            if (x->message == NULL)
                x->message = x->name;
        }
        b->nsignals = n;
    }
    lua_pop(L, 1);
    return 0;
}

int pulse_ajob_params(lua_State *L, const char *json, char *err, size_t errlen)
{
    char e[200];
    if (pulse_json_decode_push(L, json, strlen(json), e, sizeof(e)) != 0)
        return pulse_fail(err, errlen, "the job's parameters are not JSON: %s", e);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return pulse_fail(err, errlen, "the job's parameters are not a JSON object");
    }
    return 0;
}

/* r's status is want: 0. Otherwise the transaction begun is rolled back and err says why: -1.
 * Clears r either way. */
static int ok_or_rollback(PGconn *c, PGresult *r, ExecStatusType want, char *err, size_t errlen)
{
    int ok = PQresultStatus(r) == want;
    PQclear(r);
    if (ok)
        return 0;
    pulse_fail(err, errlen, "%s", PQerrorMessage(c));
    PQclear(PQexec(c, "ROLLBACK"));
    return -1;
}

/* begin_sql, then the snapshot when given, then the tenant's settings. */
static int begin_as(PGconn *c, const char *tenant, const char *begin_sql, const char *snapshot, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, begin_sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok)
        return pulse_fail(err, errlen, "%s", PQerrorMessage(c));
    if (snapshot) {
        /* SET TRANSACTION SNAPSHOT takes no parameter: the id is quoted as a literal */
        char *lit = PQescapeLiteral(c, snapshot, strlen(snapshot));
        char sql[160];
        snprintf(sql, sizeof(sql), "SET TRANSACTION SNAPSHOT %s", lit ? lit : "''");
        PQfreemem(lit);
        if (ok_or_rollback(c, PQexec(c, sql), PGRES_COMMAND_OK, err, errlen) != 0)
            return -1;
    }
    const char *t[] = {tenant};
    /* whole-tenant reads join and sort millions of rows: with the default 4 MB a hash join of 3.5 M
     * customers spilled to 64 batches (10.9 s instead of ~4 s), and JIT compiling added 0.3 s a query */
    r = PQexecParams(c,
                     "SELECT set_config('pulse.tenant_id', $1, true), set_config('work_mem', '256MB', true), "
                     "set_config('jit', 'off', true)",
                     1, NULL, t, NULL, NULL, 0);
    return ok_or_rollback(c, r, PGRES_TUPLES_OK, err, errlen);
}

int pulse_ajob_begin(PGconn *c, const char *tenant, char *err, size_t errlen)
{
    return begin_as(c, tenant, "BEGIN", NULL, err, errlen);
}

int pulse_ajob_begin_snapshot(PGconn *c, const char *tenant, const char *snapshot, char *err, size_t errlen)
{
    return begin_as(c, tenant, "BEGIN ISOLATION LEVEL REPEATABLE READ", snapshot, err, errlen);
}

PGresult *pulse_ajob_exec(PGconn *c, const char *sql, int n, const char *const *params, char *err, size_t errlen)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        pulse_fail(err, errlen, "%s", PQerrorMessage(c));
        PQclear(r);
        return NULL;
    }
    return r;
}
