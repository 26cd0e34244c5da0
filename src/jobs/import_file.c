/* One file imported for one organization outside the server (pulse import, pulse demo): the
 * plan decided by lua/import_plan.lua in an embedded VM, a job row created already running (no
 * server worker claims it), then the same job code the workers run (pulse_job_run). */
#include "core/buf.h"
#include "jobs/jobs.h"
#include "script/script.h"

#include <lauxlib.h>
#include <libgen.h>
#include <limits.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Sets t[key] = the decoded JSON option, or prints why it is not a JSON object. */
static int set_json_option(lua_State *L, int t, const char *key, const char *text, const char *flag, const char *who, FILE *errors)
{
    if (text == NULL)
        return 0;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "json");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "decode");
    lua_pushstring(L, text);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
        fprintf(errors, "%s: %s must be a JSON object, e.g. {\"customer_id\": \"Client\"}\n", who, flag);
        lua_pop(L, 2);
        return -1;
    }
    lua_setfield(L, t, key);
    lua_pop(L, 1);
    return 0;
}

/* Runs import_plan.for_file and returns the job params as JSON (malloc'd), or NULL after printing
 * every problem. */
static char *plan_params(const pulse_config_t *cfg, const pulse_import_request_t *a, const char *path, const char *industry,
                         const char *who, FILE *errors)
{
    lua_State *L = luaL_newstate();
    pulse_script_open(L, cfg, NULL);
    char *out = NULL;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "import_plan");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fprintf(errors, "%s: %s\n", who, lua_tostring(L, -1));
        goto done;
    }
    lua_getfield(L, -1, "for_file");
    lua_newtable(L);
    int t = lua_gettop(L);
    char name_buf[PATH_MAX];
    snprintf(name_buf, sizeof(name_buf), "%s", a->display_name ? a->display_name : path);
    const char *strings[][2] = {{"path", path},         {"filename", basename(name_buf)},
                                {"industry", industry}, {"kind", a->kind},
                                {"sheet", a->sheet},    {"sep", a->sep}};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        if (strings[i][1] != NULL) {
            lua_pushstring(L, strcmp(strings[i][1], "tab") == 0 ? "\t" : strings[i][1]);
            lua_setfield(L, t, strings[i][0]);
        }
    }
    if (a->max_error_rate != NULL) {
        char *end;
        double r = strtod(a->max_error_rate, &end);
        if (*end != '\0' || r < 0 || r > 1) {
            fprintf(errors, "%s: --max-error-rate must be a number from 0 to 1, got '%s'\n", who, a->max_error_rate);
            goto done;
        }
        lua_pushnumber(L, r);
        lua_setfield(L, t, "max_error_rate");
    }
    if (set_json_option(L, t, "mapping", a->mapping, "--mapping", who, errors) != 0 ||
        set_json_option(L, t, "date_formats", a->date_formats, "--date-formats", who, errors) != 0)
        goto done;
    if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
        fprintf(errors, "%s: %s\n", who, lua_tostring(L, -1));
        goto done;
    }
    if (lua_isnil(L, -2)) { /* nil, errors */
        fprintf(errors, "%s: %s cannot be imported as it is:\n", who, name_buf);
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, -1, i);
            lua_getfield(L, -1, "field");
            lua_getfield(L, -2, "message");
            fprintf(stderr, "  - %s: %s\n", lua_tostring(L, -2), lua_tostring(L, -1));
            lua_pop(L, 3);
        }
        goto done;
    }
    lua_pop(L, 1); /* chosen */
    int plan = lua_gettop(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "json");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "encode");
    lua_createtable(L, 0, 4);
    lua_pushstring(L, path);
    lua_setfield(L, -2, "file");
    lua_pushstring(L, basename(name_buf));
    lua_setfield(L, -2, "file_name");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "keep_file");
    lua_pushvalue(L, plan);
    lua_setfield(L, -2, "plan");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fprintf(errors, "%s: %s\n", who, lua_tostring(L, -1));
        goto done;
    }
    out = strdup(lua_tostring(L, -1));
done:
    lua_close(L);
    return out;
}

int pulse_import_file(const pulse_config_t *cfg, const char *conninfo, const char *tenant, const char *industry,
                      const pulse_import_request_t *rq, pulse_job_observer observer, void *ud, pulse_job_outcome_t *out,
                      char job_id[40], const char *who, FILE *errors)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->state, sizeof(out->state), "failed");
    job_id[0] = '\0';
    char path[PATH_MAX], err[512];
    if (realpath(rq->path, path) == NULL) {
        fprintf(errors, "%s: cannot read %s\n", who, rq->path);
        return -1;
    }
    char *params = plan_params(cfg, rq, path, industry, who, errors);
    if (params == NULL)
        return -1;
    PGconn *ctl = pulse_jobs_connect(cfg, conninfo, "pulse-import", err, sizeof(err));
    PGconn *work = ctl ? pulse_jobs_connect(cfg, conninfo, "pulse-import", err, sizeof(err)) : NULL;
    int rc = -1;
    if (work == NULL) {
        fprintf(errors, "%s: %s\n", who, err);
        goto done;
    }
    struct stat st;
    char size[32];
    snprintf(size, sizeof(size), "%lld", stat(path, &st) == 0 ? (long long)st.st_size : 0LL);
    const char *jp[] = {tenant, params, size};
    PGresult *r = pulse_jobs_tenant_exec(
        ctl, tenant,
        "WITH j AS (INSERT INTO jobs (tenant_id, kind, params, state, attempts, phase, bytes_total, "
        "started_at, heartbeat_at) VALUES ($1, 'import', $2::jsonb, 'running', 1, 'starting', $3, now(), now()) "
        "RETURNING id, params) "
        "INSERT INTO imports (id, tenant_id, kind, file_name, file_size, plan) "
        "SELECT id, $1, params->'plan'->>'kind', params->>'file_name', $3, params->'plan' FROM j RETURNING id",
        3, jp, err, sizeof(err));
    if (r == NULL || PQntuples(r) != 1) {
        fprintf(errors, "%s: cannot create the job: %s\n", who, r ? "no row came back" : err);
        PQclear(r);
        goto done;
    }
    snprintf(job_id, 40, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    rc = pulse_job_run(cfg, ctl, work, job_id, tenant, "import", params, NULL, observer, ud, out);
done:
    PQfinish(ctl);
    PQfinish(work);
    free(params);
    return rc;
}

void pulse_import_print_report(const pulse_config_t *cfg, const char *conninfo, const char *tenant, const char *job_id, FILE *f)
{
    char err[512];
    PGconn *c = pulse_jobs_connect(cfg, conninfo, "pulse-import", err, sizeof(err));
    if (c == NULL)
        return;
    const char *p[] = {job_id};
    PGresult *r =
        pulse_jobs_tenant_exec(c, tenant,
                               "SELECT i->>'code', i->>'action', i->>'count', coalesce(i->>'field', ''), "
                               "coalesce((SELECT string_agg(l, ', ') FROM jsonb_array_elements_text(i->'first_lines') l), '') "
                               "FROM imports, jsonb_array_elements(report->'issues') i WHERE id = $1",
                               1, p, err, sizeof(err));
    if (r != NULL) {
        for (int i = 0; i < PQntuples(r); i++)
            fprintf(f, "  %-20s %-9s %8s%s%s   lines %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                    *PQgetvalue(r, i, 3) ? " " : "", PQgetvalue(r, i, 3), PQgetvalue(r, i, 4));
    }
    PQclear(r);
    PQfinish(c);
}
