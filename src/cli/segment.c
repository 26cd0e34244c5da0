/* pulse segment FILE: the whole segmentation pipeline on a transactions file, with no server and
 * no database (the data scientist's path): the mapping from lua/import_plan.lua, the fast reader,
 * the segments rule's lookup table, the industry's behaviour declaration, RFM segments, behaviour,
 * k-means personas; a CSV per customer and a summary on stdout. */
#include "cli/cli.h"

#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/cluster.h"
#include "analytics/segment.h"
#include "analytics/segment_bench.h"
#include "analytics/txfile.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/procstat.h"
#include "db/conninfo.h"
#include "jobs/jobs.h"
#include "ingest/load.h"
#include "jobs/analytics_job.h"
#include "jobs/jobrun.h"
#include "script/script.h"

/* The segments lookup table of a rule file (nil: the shipped one), evaluated in the rules sandbox
 * over the 500 input combinations (lua/rules.lua). */
static const char SEGMENT_TABLE_LUA[] = "return require('rules').segment_table_of(...)\n";

static void usage(FILE *f)
{
    fprintf(f, "Usage: pulse segment FILE [--industry ecommerce|telecom|banking] [--rules segments.lua]\n"
               "                    [--as-of YYYY-MM-DD] [--k N|auto] [--method kmeans|gmm|ward] [--out result.csv]\n"
               "       pulse segment --tenant ORG [--rules segments.lua] [--as-of YYYY-MM-DD] [--k N|auto] [--method M]\n\n"
               "Segments the customers of a transactions file with no server or database: features, RFM scores,\n"
               "the segments rule (default: rules/segments.lua), the industry's behaviour signals and clusters\n"
               "(k-means, k = 4 by default, on log/standardised recency, frequency and monetary). Writes one CSV\n"
               "row per customer (--out, default result.csv) and prints a summary.\n\n"
               "With --tenant: runs the segment job on the organization's data in PostgreSQL (as POST\n"
               "/api/v1/segmentation/organizations/{id}/segment does) and, with --k or --method, a cluster job\n"
               "after it; prints each job's result. Exit codes: 0 ok, 1 failure, 2 usage.\n");
}

/* import_plan.for_file's plan for the file, as a txfile plan. */
static int file_plan(lua_State *L, const char *path, const char *industry, pulse_txfile_plan_t *tp, char *err, size_t errlen)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "import_plan");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        return pulse_fail(err, errlen, "%s", lua_tostring(L, -1));
    lua_getfield(L, -1, "for_file");
    lua_createtable(L, 0, 4);
    lua_pushstring(L, path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, path);
    lua_setfield(L, -2, "filename");
    lua_pushstring(L, industry);
    lua_setfield(L, -2, "industry");
    lua_pushliteral(L, "transactions");
    lua_setfield(L, -2, "kind");
    if (lua_pcall(L, 1, 2, 0) != LUA_OK)
        return pulse_fail(err, errlen, "%s", lua_tostring(L, -1));
    if (lua_isnil(L, -2)) {
        int n = lua_istable(L, -1) ? (int)luaL_len(L, -1) : 0;
        const char *m = "the file cannot be read as transactions";
        if (n > 0) {
            lua_geti(L, -1, 1);
            lua_getfield(L, -1, "message");
            if (lua_isstring(L, -1))
                m = lua_tostring(L, -1);
        }
        return pulse_fail(err, errlen, "%s", m);
    }
    pulse_import_plan_t plan;
    pulse_import_plan_init(&plan);
    if (pulse_import_plan_from_lua(L, lua_gettop(L) - 1, &plan, err, errlen) != 0)
        return -1;
    if (plan.xlsx || plan.derive_amount_from_qty_price)
        return pulse_fail(err, errlen, "%s: workbooks and amounts derived from quantity x price are read by `pulse import` only",
                          path);
    pulse_txfile_plan_init(tp);
    tp->sep = plan.dialect.sep;
    tp->has_header = plan.has_header;
    tp->decimal_comma = plan.dialect.decimal_comma;
    tp->col_customer = tp->col_date = tp->col_amount = -1;
    for (int i = 0; i < plan.n_fields; i++) {
        const pulse_import_field_t *f = &plan.fields[i];
        if (strcmp(f->name, "customer_id") == 0)
            tp->col_customer = f->column;
        else if (strcmp(f->name, "transaction_date") == 0) {
            tp->col_date = f->column;
            tp->date_format = f->date_format;
        } else if (strcmp(f->name, "amount") == 0)
            tp->col_amount = f->column;
        else if (strcmp(f->name, "quantity") == 0)
            tp->col_quantity = f->column;
        else if (strcmp(f->name, "product_category") == 0)
            tp->col_category = f->column;
        else if (strcmp(f->name, "product") == 0)
            tp->col_product = f->column;
        else if (strcmp(f->name, "invoice_no") == 0)
            tp->col_invoice = f->column;
    }
    if (plan.cancellation_field[0] && strcmp(plan.cancellation_field, "invoice_no") == 0)
        snprintf(tp->cancel_prefix, sizeof(tp->cancel_prefix), "%s", plan.cancellation_prefix);
    if (tp->col_customer < 0 || tp->col_date < 0 || tp->col_amount < 0)
        return pulse_fail(err, errlen, "%s: no customer, date or amount column", path);
    return 0;
}

static void csv_field(FILE *f, const char *s, size_t n)
{
    int quote = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r')
            quote = 1;
    if (!quote) {
        fwrite(s, 1, n, f);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            fputc('"', f);
        fputc(s[i], f);
    }
    fputc('"', f);
}

/* Pushes the rule's lookup table (nil: the shipped rule) or prints why not. Returns 0 or -1. */
static int push_segment_table(lua_State *L, const char *rules)
{
    if (luaL_loadbuffer(L, SEGMENT_TABLE_LUA, sizeof(SEGMENT_TABLE_LUA) - 1, "=segment_table") != LUA_OK) {
        fprintf(stderr, "pulse segment: %s\n", lua_tostring(L, -1));
        return -1;
    }
    if (rules)
        lua_pushstring(L, rules);
    else
        lua_pushnil(L);
    if (lua_pcall(L, 1, 2, 0) != LUA_OK || lua_isnil(L, -2)) {
        fprintf(stderr, "pulse segment: the segments rule: %s\n", lua_tostring(L, -1));
        return -1;
    }
    lua_pop(L, 1);
    return 0;
}

/* Runs one job of kind for tenant here (the row is created running, as pulse import does) and
 * prints its result. Returns 0 when done. */
static int run_tenant_job(const pulse_config_t *cfg, const char *conninfo, const char *tenant, const char *kind, const char *params,
                          int quiet)
{
    char err[512];
    PGconn *ctl = pulse_jobs_connect(cfg, conninfo, "pulse-segment", err, sizeof(err));
    PGconn *work = ctl ? pulse_jobs_connect(cfg, conninfo, "pulse-segment", err, sizeof(err)) : NULL;
    int rc = -1;
    if (work == NULL) {
        fprintf(stderr, "pulse segment: %s\n", err);
        goto done;
    }
    const char *jp[] = {tenant, kind, params};
    PGresult *r =
        pulse_jobs_tenant_exec(ctl, tenant,
                               "WITH j AS (INSERT INTO jobs (tenant_id, kind, params, state, attempts, phase, started_at, "
                               "heartbeat_at) VALUES ($1, $2, $3::jsonb, 'running', 1, 'starting', now(), now()) "
                               "RETURNING id, params), c AS (INSERT INTO clusterings (id, tenant_id, method, k_requested) "
                               "SELECT id, $1, coalesce(params->>'method', 'kmeans'), nullif((params->>'k')::int, 0) "
                               "FROM j WHERE $2 = 'cluster') SELECT id FROM j",
                               3, jp, err, sizeof(err));
    if (r == NULL || PQntuples(r) != 1) {
        fprintf(stderr, "pulse segment: cannot create the job: %s\n", r ? "no row came back" : err);
        PQclear(r);
        goto done;
    }
    char id[40];
    snprintf(id, sizeof(id), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    pulse_job_outcome_t out;
    rc = pulse_job_run(cfg, ctl, work, id, tenant, kind, params, NULL, NULL, NULL, &out);
    if (rc != 0) {
        fprintf(stderr, "pulse segment: %s job %s %s: %s\n", kind, id, out.state, out.error);
        goto done;
    }
    const char *ip[] = {id};
    r = pulse_jobs_tenant_exec(ctl, tenant, "SELECT result FROM jobs WHERE id = $1", 1, ip, err, sizeof(err));
    if (r && PQntuples(r) == 1 && !quiet)
        printf("%s job %s done: %s\n", kind, id, PQgetvalue(r, 0, 0));
    PQclear(r);
done:
    PQfinish(ctl);
    PQfinish(work);
    return rc;
}

/* pulse segment --tenant ORG: the segment job (and a cluster job with --k/--method) for an
 * organization's data in PostgreSQL, run here as the server's workers would. */
static int segment_tenant(const char *which, const char *rules, const char *as_of, int cluster, const char *method, int k)
{
    pulse_config_t cfg;
    char conninfo[2048], err[512], tenant[40], industry[32];
    if (pulse_cli_database("segment", &cfg, conninfo, sizeof(conninfo)) != 0)
        return 1;
    PGconn *owner = pulse_db_connect_blocking(conninfo, err, sizeof(err));
    if (owner == NULL) {
        fprintf(stderr, "pulse segment: %s\n", err);
        return 1;
    }
    const char *p[] = {which};
    PGresult *r = PQexecParams(owner,
                               "SELECT id, industry FROM organizations WHERE id::text = $1 OR business_id::text = $1 OR name = $1 "
                               "ORDER BY (id::text = $1) DESC LIMIT 1",
                               1, NULL, p, NULL, NULL, 0);
    int found = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (found) {
        snprintf(tenant, sizeof(tenant), "%s", PQgetvalue(r, 0, 0));
        snprintf(industry, sizeof(industry), "%s", PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    PQfinish(owner);
    if (!found) {
        fprintf(stderr, "pulse segment: no organization has the id, business id or name '%s'\n", which);
        return 1;
    }
    return pulse_segment_org(&cfg, conninfo, tenant, industry, rules, as_of, cluster, method, k, 0) == 0 ? 0 : 1;
}

int pulse_segment_org(const pulse_config_t *cfg, const char *conninfo, const char *tenant, const char *industry, const char *rules,
                      const char *as_of, int cluster, const char *method, int k, int quiet)
{
    lua_State *L = luaL_newstate();
    pulse_script_open(L, cfg, NULL);
    int rc = 1;
    if (push_segment_table(L, rules) != 0)
        goto done;
    int seg = lua_gettop(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "json");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "encode");
    lua_createtable(L, 0, 4);
    lua_pushstring(L, industry);
    lua_setfield(L, -2, "industry");
    if (as_of) {
        lua_pushstring(L, as_of);
        lua_setfield(L, -2, "as_of");
    }
    lua_pushvalue(L, seg);
    lua_setfield(L, -2, "segments");
    lua_getglobal(L, "require");
    lua_pushliteral(L, "industries");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "get");
    lua_pushstring(L, industry);
    lua_call(L, 1, 1);
    if (lua_istable(L, -1))
        lua_getfield(L, -1, "behaviour");
    else
        lua_pushnil(L);
    lua_setfield(L, -4, "behaviour");
    lua_pop(L, 2);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "pulse segment: %s\n", lua_tostring(L, -1));
        goto done;
    }
    if (run_tenant_job(cfg, conninfo, tenant, "segment", lua_tostring(L, -1), quiet) != 0)
        goto done;
    if (cluster) {
        char params[256];
        snprintf(params, sizeof(params), "{\"method\":\"%s\",\"k\":%d,\"seed\":42}", method, k);
        if (run_tenant_job(cfg, conninfo, tenant, "cluster", params, quiet) != 0)
            goto done;
    }
    rc = 0;
done:
    lua_close(L);
    return rc;
}

int pulse_cli_segment(int argc, char **argv)
{
    if (pulse_cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *path = NULL, *industry = "ecommerce", *rules = NULL, *as_of_s = NULL, *out_path = "result.csv";
    const char *method = "kmeans", *tenant = NULL;
    int k = 4, cluster_asked = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            if (path) {
                usage(stderr);
                return 2;
            }
            path = a;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "pulse segment: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--industry") == 0)
            industry = v;
        else if (strcmp(a, "--tenant") == 0)
            tenant = v;
        else if (strcmp(a, "--rules") == 0)
            rules = v;
        else if (strcmp(a, "--as-of") == 0)
            as_of_s = v;
        else if (strcmp(a, "--out") == 0)
            out_path = v;
        else if (strcmp(a, "--method") == 0)
            method = v, cluster_asked = 1;
        else if (strcmp(a, "--k") == 0) {
            char *end;
            cluster_asked = 1;
            k = strcmp(v, "auto") == 0 ? 0 : (int)strtol(v, &end, 10);
            if ((strcmp(v, "auto") != 0 && *end) || k < 0 || k == 1 || k > 12) {
                fprintf(stderr, "pulse segment: --k must be 2 to 12 or auto\n");
                return 2;
            }
        } else {
            fprintf(stderr, "pulse segment: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    pulse_cluster_opts_t co;
    pulse_cluster_opts_init(&co);
    co.k = k;
    if (strcmp(method, "kmeans") == 0)
        co.method = PULSE_CLUSTER_KMEANS;
    else if (strcmp(method, "gmm") == 0)
        co.method = PULSE_CLUSTER_GMM;
    else if (strcmp(method, "ward") == 0)
        co.method = PULSE_CLUSTER_WARD;
    else {
        fprintf(stderr, "pulse segment: --method must be kmeans, gmm or ward\n");
        return 2;
    }
    int32_t as_of = 0;
    if (as_of_s) {
        int y, m, d;
        char tail;
        if (sscanf(as_of_s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || m < 1 || m > 12 || d < 1 || d > 31) {
            fprintf(stderr, "pulse segment: --as-of must be a date YYYY-MM-DD\n");
            return 2;
        }
        as_of = pulse_txstore_days_from_civil(y, (unsigned)m, (unsigned)d);
    }
    if (tenant != NULL) {
        if (path != NULL) {
            fprintf(stderr, "pulse segment: give a FILE or --tenant ORG, not both\n");
            return 2;
        }
        return segment_tenant(tenant, rules, as_of_s, cluster_asked, method, k);
    }
    if (path == NULL) {
        usage(stderr);
        return 2;
    }
    pulse_config_t cfg;
    if (pulse_cli_config("segment", &cfg) != 0)
        return 1;
    char err[512];
    int rc = 1;
    lua_State *L = luaL_newstate();
    pulse_script_open(L, &cfg, NULL);
    pulse_txstore_t st;
    pulse_txstore_init(&st);
    pulse_segment_result_t res;
    memset(&res, 0, sizeof(res));
    pulse_cluster_result_t cr;
    memset(&cr, 0, sizeof(cr));
    pulse_segment_spec_t *spec = pulse_xmalloc(sizeof(*spec));
    double *x = NULL;
    uint32_t *rows = NULL;
    int *label = NULL;
    FILE *out = NULL;

    double t0 = pulse_now_s();
    pulse_txfile_plan_t plan;
    if (file_plan(L, path, industry, &plan, err, sizeof(err)) != 0) {
        fprintf(stderr, "pulse segment: %s\n", err);
        goto done;
    }
    lua_settop(L, 0);
    /* the rule's table and the industry's behaviour */
    if (push_segment_table(L, rules) != 0)
        goto done;
    int seg_idx = lua_gettop(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "industries");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "pulse segment: %s\n", lua_tostring(L, -1));
        goto done;
    }
    lua_getfield(L, -1, "get");
    lua_pushstring(L, industry);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
        fprintf(stderr, "pulse segment: unknown industry '%s'\n", industry);
        goto done;
    }
    lua_getfield(L, -1, "behaviour");
    int beh_idx = lua_istable(L, -1) ? lua_gettop(L) : 0;
    if (pulse_segment_spec_from_lua(L, seg_idx, beh_idx, spec, err, sizeof(err)) != 0) {
        fprintf(stderr, "pulse segment: %s\n", err);
        goto done;
    }
    double t_plan = pulse_now_s();

    pulse_txfile_stats_t stats;
    if (pulse_txfile_read(path, &plan, &st, &stats, err, sizeof(err)) != 0) {
        fprintf(stderr, "pulse segment: %s\n", err);
        goto done;
    }
    pulse_txstore_finish(&st);
    double t_read = pulse_now_s();
    pulse_segment_opts_t so;
    memset(&so, 0, sizeof(so));
    so.as_of = as_of;
    so.table = &spec->table;
    so.behaviour = &spec->behaviour;
    if (pulse_segment_run(&st, &so, &res, err, sizeof(err)) != 0) {
        fprintf(stderr, "pulse segment: %s\n", err);
        goto done;
    }
    double t_seg = pulse_now_s();

    /* clusters of the customers with a purchase */
    size_t n = 0;
    x = pulse_xmalloc(((size_t)res.n + 1) * 3 * sizeof(double));
    rows = pulse_xmalloc(((size_t)res.n + 1) * sizeof(uint32_t));
    label = pulse_xmalloc(((size_t)res.n + 1) * sizeof(int));
    for (uint32_t i = 0; i < res.n; i++) {
        label[i] = -1;
        if (!isfinite(res.recency[i]) || !isfinite(res.monetary[i]))
            continue;
        x[n * 3] = res.recency[i];
        x[n * 3 + 1] = res.frequency[i];
        x[n * 3 + 2] = res.monetary[i] < 0 ? 0 : res.monetary[i];
        rows[n++] = i;
    }
    static const char *cnames[] = {"recency_days", "frequency", "monetary"};
    int clustered = 0;
    if (n >= (size_t)(co.k ? co.k : 8) && n >= 2) {
        if (pulse_cluster_run(x, n, 3, cnames, &co, &cr, err, sizeof(err)) != 0)
            fprintf(stderr, "pulse segment: clustering skipped: %s\n", err);
        else {
            clustered = 1;
            for (size_t i = 0; i < n; i++)
                label[rows[i]] = cr.labels[i];
        }
    }
    double t_cluster = pulse_now_s();

    out = fopen(out_path, "w");
    if (out == NULL) {
        fprintf(stderr, "pulse segment: cannot write %s\n", out_path);
        goto done;
    }
    fputs("customer_id,recency_days,frequency,monetary,r,f,m,segment,segment_score,behavior_score,trend,signals,cluster,"
          "cluster_label\n",
          out);
    double *revenue = calloc(PULSE_SEGMENT_MAX_NAMES + 1, sizeof(double));
    for (uint32_t i = 0; i < res.n; i++) {
        size_t len;
        const char *ref = pulse_strtab_get(&st.customers, i, &len);
        csv_field(out, ref, len);
        if (isnan(res.recency[i]))
            fprintf(out, ",,%.0f,%.2f,,,,,", res.frequency[i], res.monetary[i]);
        else
            fprintf(out, ",%.0f,%.0f,%.2f,%u,%u,%u,", res.recency[i], res.frequency[i], res.monetary[i], res.r[i], res.f[i],
                    res.m[i]);
        if (res.segment[i]) {
            const char *name = spec->table.names[res.segment[i] - 1];
            csv_field(out, name, strlen(name));
            fprintf(out, ",%.0f", res.segment_score[i]);
            revenue[res.segment[i]] += res.monetary[i];
        } else if (!isnan(res.recency[i])) {
            fputc(',', out);
        }
        const char *trend = pulse_segment_trend_name(res.trend[i]);
        fprintf(out, ",%.1f,%s,", res.behaviour_score[i], trend ? trend : "");
        int first = 1;
        for (size_t s = 0; s < spec->behaviour.nsignals; s++)
            if (res.signals[i] >> s & 1) {
                fprintf(out, "%s%s", first ? "" : ";", spec->behaviour.signals[s].name);
                first = 0;
            }
        if (label[i] >= 0) {
            fprintf(out, ",%d,", label[i]);
            csv_field(out, cr.personas[label[i]].label, strlen(cr.personas[label[i]].label));
            fputc('\n', out);
        } else {
            fputs(",,\n", out);
        }
    }
    int werr = ferror(out);
    werr |= fclose(out);
    out = NULL;
    double t_write = pulse_now_s();
    if (werr) {
        fprintf(stderr, "pulse segment: writing %s failed\n", out_path);
        free(revenue);
        goto done;
    }

    char day[32];
    int64_t epoch = (int64_t)res.as_of * 86400;
    pulse_date_format_iso(epoch, 0, day, sizeof(day));
    printf("%s: %llu rows (%llu skipped), %u customers, as of %s\n", path, (unsigned long long)stats.rows,
           (unsigned long long)stats.bad_rows, res.n, day);
    for (size_t b = 0; b < stats.nbad; b++)
        printf("  skipped line %llu: %s\n", (unsigned long long)stats.bad[b].line, stats.bad[b].reason);
    printf("\nsegments (%u customers with a purchase):\n", res.segmented);
    printf("  %-22s %10s %7s %16s\n", "segment", "customers", "share", "revenue");
    for (size_t s = 0; s < spec->table.nnames; s++)
        printf("  %-22s %10zu %6.1f%% %16.2f\n", spec->table.names[s], res.counts[s + 1],
               res.segmented ? 100.0 * (double)res.counts[s + 1] / res.segmented : 0.0, revenue[s + 1]);
    if (res.counts[0])
        printf("  %-22s %10zu\n", "(no purchase)", res.counts[0]);
    free(revenue);
    size_t tr[3] = {0, 0, 0};
    for (uint32_t i = 0; i < res.n; i++)
        if (res.trend[i] != PULSE_TREND_NONE)
            tr[res.trend[i] + 1]++;
    printf("\nbehaviour: %zu declining, %zu stable, %zu increasing\n", tr[0], tr[1], tr[2]);
    for (size_t s = 0; s < spec->behaviour.nsignals; s++) {
        size_t c = 0;
        for (uint32_t i = 0; i < res.n; i++)
            c += res.signals[i] >> s & 1;
        printf("  signal %-28s %10zu customers\n", spec->behaviour.signals[s].name, c);
    }
    if (clustered) {
        printf("\nclusters (%s, k = %zu, silhouette %.3f):\n", pulse_cluster_method_name(cr.method), cr.k, cr.silhouette);
        for (size_t c = 0; c < cr.k; c++)
            printf("  %zu  %8zu  %-48s recency %.0f d, frequency %.1f, monetary %.2f  -> %s\n", c, cr.sizes[c],
                   cr.personas[c].label, cr.means[c * 3], cr.means[c * 3 + 1], cr.means[c * 3 + 2], cr.personas[c].action);
    }
    printf("\ntime: plan %.3f s, read %.3f s, segment %.3f s (features %.3f, rfm %.3f, lookup %.3f), cluster %.3f s, "
           "write %.3f s; total %.3f s, peak RSS %.0f MB\nwrote %s\n",
           t_plan - t0, t_read - t_plan, t_seg - t_read, res.features_seconds, res.rfm_seconds, res.segment_seconds,
           t_cluster - t_seg, t_write - t_cluster, t_write - t0, pulse_peak_rss_mb(), out_path);
    rc = 0;
done:
    if (out)
        fclose(out);
    free(x);
    free(rows);
    free(label);
    pulse_cluster_result_free(&cr);
    pulse_segment_result_free(&res);
    pulse_txstore_free(&st);
    free(spec);
    lua_close(L);
    return rc;
}

/* pulse bench segment FILE | --tenant ORG (see bench.c): the shipped rule's table and the
 * e-commerce behaviour for the file bench; the whole job for the tenant bench (its result carries
 * the load, compute and write times). */
int pulse_cli_segment_bench(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--tenant") == 0) {
            double t0 = pulse_now_s();
            int rc = segment_tenant(argv[i + 1], NULL, NULL, 0, "kmeans", 4);
            printf("total: %.3f s (job result above: timings_ms load / compute / write)\n", pulse_now_s() - t0);
            return rc;
        }
    pulse_config_t cfg;
    if (pulse_cli_config("bench", &cfg) != 0)
        return 1;
    lua_State *L = luaL_newstate();
    pulse_script_open(L, &cfg, NULL);
    int rc = 1;
    pulse_segment_spec_t *spec = pulse_xmalloc(sizeof(*spec));
    char err[512];
    if (push_segment_table(L, NULL) != 0)
        goto done;
    int seg = lua_gettop(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "industries");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "get");
    lua_pushliteral(L, "ecommerce");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "behaviour");
    if (pulse_segment_spec_from_lua(L, seg, lua_istable(L, -1) ? lua_gettop(L) : 0, spec, err, sizeof(err)) != 0) {
        fprintf(stderr, "pulse bench segment: %s\n", err);
        goto done;
    }
    rc = pulse_segment_bench(argc, argv, &spec->table, &spec->behaviour, stdout);
done:
    free(spec);
    lua_close(L);
    return rc;
}
