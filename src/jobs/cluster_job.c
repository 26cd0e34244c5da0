/* The "cluster" job (see jobs.h): the chosen features of every segmented customer read from
 * customer_analytics (positions from the latest analytics run's feature_names), customers with a
 * missing value left out and counted, pulse_cluster_run, and the result in clusterings plus each
 * customer's label in customer_analytics (staging table + UPDATE), in one transaction. */
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/cluster.h"
#include "core/buf.h"
#include "jobs/analytics_job.h"
#include "jobs/jobrun.h"
#include "jobs/jobs.h"

#define MAX_FEATURES 12

static void rollback(PGconn *c)
{
    PGresult *x = PQexec(c, "ROLLBACK");
    PQclear(x);
}

static void json_str(pulse_buf_t *b, const char *s)
{
    pulse_buf_putc(b, '"');
    pulse_buf_json_escape(b, s, strlen(s));
    pulse_buf_putc(b, '"');
}

/* The clusterings.result document. */
static void result_json(pulse_buf_t *b, const pulse_cluster_result_t *r, const char *const *names, size_t d, size_t left_out)
{
    pulse_buf_printf(b, "{\"k\":%zu,\"method\":\"%s\",\"features\":[", r->k, pulse_cluster_method_name(r->method));
    for (size_t j = 0; j < d; j++) {
        if (j)
            pulse_buf_putc(b, ',');
        json_str(b, names[j]);
    }
    pulse_buf_printf(b, "],\"customers\":%zu,\"left_out\":%zu,\"sizes\":[", r->n, left_out);
    for (size_t c = 0; c < r->k; c++)
        pulse_buf_printf(b, "%s%zu", c ? "," : "", r->sizes[c]);
    pulse_buf_puts(b, "],\"personas\":[");
    for (size_t c = 0; c < r->k; c++) {
        pulse_buf_printf(b, "%s{\"cluster\":%zu,\"label\":", c ? "," : "", c);
        json_str(b, r->personas[c].label);
        pulse_buf_puts(b, ",\"action\":");
        json_str(b, r->personas[c].action);
        pulse_buf_printf(b, ",\"size\":%zu,\"share\":", r->sizes[c]);
        pulse_buf_json_number(b, r->n ? (double)r->sizes[c] / (double)r->n : 0);
        const char *what[] = {"centroid", "mean"};
        const double *m[] = {r->centroids, r->means};
        for (int w = 0; w < 2; w++) {
            pulse_buf_printf(b, ",\"%s\":{", what[w]);
            for (size_t j = 0; j < d; j++) {
                if (j)
                    pulse_buf_putc(b, ',');
                json_str(b, names[j]);
                pulse_buf_putc(b, ':');
                pulse_buf_json_number(b, m[w][c * d + j]);
            }
            pulse_buf_putc(b, '}');
        }
        pulse_buf_putc(b, '}');
    }
    pulse_buf_puts(b, "],\"quality\":{\"inertia\":");
    pulse_buf_json_number(b, r->inertia);
    pulse_buf_puts(b, ",\"silhouette\":");
    pulse_buf_json_number(b, r->silhouette);
    pulse_buf_puts(b, ",\"log_likelihood\":");
    pulse_buf_json_number(b, r->method == PULSE_CLUSTER_GMM ? r->loglik : NAN);
    pulse_buf_puts(b, ",\"bic\":");
    pulse_buf_json_number(b, r->method == PULSE_CLUSTER_GMM ? r->bic : NAN);
    pulse_buf_puts(b, "},\"k_scores\":[");
    for (int i = 0; i < r->n_scores; i++) {
        pulse_buf_printf(b, "%s{\"k\":%d,\"%s\":", i ? "," : "", r->k_first + i, r->criterion ? r->criterion : "score");
        pulse_buf_json_number(b, r->scores[i]);
        pulse_buf_putc(b, '}');
    }
    pulse_buf_puts(b, "],\"preparation\":[");
    for (size_t j = 0; j < d; j++) {
        pulse_buf_printf(b, "%s{\"feature\":", j ? "," : "");
        json_str(b, names[j]);
        pulse_buf_printf(b, ",\"log\":%s,\"mean\":", r->features[j].log1p ? "true" : "false");
        pulse_buf_json_number(b, r->features[j].mean);
        pulse_buf_puts(b, ",\"sd\":");
        pulse_buf_json_number(b, r->features[j].sd);
        pulse_buf_putc(b, '}');
    }
    pulse_buf_puts(b, "],\"seconds\":");
    pulse_buf_json_number(b, r->seconds);
    pulse_buf_putc(b, '}');
}

int pulse_cluster_job_run(const pulse_config_t *cfg, PGconn *ctl, PGconn *work, const char *job_id, const char *tenant_id,
                          const char *params_json, volatile int *stop, pulse_job_observer observer, void *ud,
                          pulse_job_outcome_t *out)
{
    memset(out, 0, sizeof(*out));
    pulse_jobrun_t j;
    pulse_jobrun_init(&j, ctl, job_id, tenant_id, stop, observer, ud);
    char err[512];
    lua_State *L = luaL_newstate();
    if (L == NULL)
        abort();
    pulse_cluster_opts_t co;
    pulse_cluster_opts_init(&co);
    const char *names[MAX_FEATURES];
    size_t d = 0;
    const char *code = "bad_params";
    int failed_early = 1;
    if (pulse_ajob_params(L, params_json, err, sizeof(err)) != 0)
        goto early;
    int p = lua_gettop(L);
    lua_getfield(L, p, "method");
    const char *method = lua_isstring(L, -1) ? lua_tostring(L, -1) : "kmeans";
    if (strcmp(method, "kmeans") == 0)
        co.method = PULSE_CLUSTER_KMEANS;
    else if (strcmp(method, "gmm") == 0)
        co.method = PULSE_CLUSTER_GMM;
    else if (strcmp(method, "ward") == 0)
        co.method = PULSE_CLUSTER_WARD;
    else {
        snprintf(err, sizeof(err), "method: must be kmeans, gmm or ward (got '%s')", method);
        goto early;
    }
    lua_getfield(L, p, "k");
    co.k = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
    if (co.k < 0 || co.k == 1 || co.k > PULSE_CLUSTER_K_LIMIT) {
        snprintf(err, sizeof(err), "k: 0 (automatic) or 2 to %d", PULSE_CLUSTER_K_LIMIT);
        goto early;
    }
    lua_getfield(L, p, "seed");
    co.seed = lua_isinteger(L, -1) ? (unsigned long long)lua_tointeger(L, -1) : 42;
    if (lua_getfield(L, p, "features") == LUA_TTABLE) {
        size_t n = (size_t)luaL_len(L, -1);
        for (size_t i = 0; i < n && d < MAX_FEATURES; i++) {
            lua_geti(L, -1, (lua_Integer)i + 1);
            names[d] = lua_tostring(L, -1);
            lua_pop(L, 1);
            if (names[d] == NULL) {
                snprintf(err, sizeof(err), "features[%zu]: must be a feature name", i + 1);
                goto early;
            }
            d++;
        }
    }
    if (d == 0) {
        static const char *dflt[] = {"recency_days", "frequency", "monetary"};
        for (d = 0; d < 3; d++)
            names[d] = dflt[d];
    }
    failed_early = 0;
early:
    if (failed_early) {
        pulse_jobrun_finish(&j, out, "failed", code, err, NULL, NULL);
        const char *fp[] = {job_id};
        PQclear(pulse_jobs_tenant_exec(ctl, tenant_id, "UPDATE clusterings SET state = 'failed', finished_at = now() WHERE id = $1",
                                       1, fp, err, sizeof(err)));
        lua_close(L);
        return -1;
    }

    pulse_job_beat_t *beat = pulse_job_beat_start(cfg, ctl, job_id, tenant_id);
    pulse_jobrun_step(&j, "loading rows", 0, 0, 1);
    const char *state = "failed";
    code = "database";
    double *x = NULL;
    long long *ids = NULL;
    pulse_cluster_result_t res;
    memset(&res, 0, sizeof(res));
    pulse_buf_t b = PULSE_BUF_INIT, sql = PULSE_BUF_INIT;
    size_t left_out = 0, n = 0;
    if (pulse_ajob_begin(work, tenant_id, err, sizeof(err)) != 0)
        goto end;
    PGresult *q = pulse_ajob_exec(work, "SELECT feature_names FROM analytics_runs ORDER BY created_at DESC LIMIT 1", 0, NULL, err,
                                  sizeof(err));
    if (q == NULL)
        goto fail_tx;
    if (PQntuples(q) == 0) {
        PQclear(q);
        code = "not_segmented";
        snprintf(err, sizeof(err),
                 "no segmentation has run yet: run POST /api/v1/segmentation/organizations/{org_id}/segment first");
        goto fail_tx;
    }
    PQclear(q);
    int pos[MAX_FEATURES];
    /* the features' positions in the latest run's feature_names */
    pulse_buf_puts(&sql, "SELECT ");
    for (size_t f = 0; f < d; f++)
        pulse_buf_printf(&sql, "%sarray_position(feature_names, $%zu)", f ? ", " : "", f + 1);
    pulse_buf_puts(&sql, " FROM analytics_runs ORDER BY created_at DESC LIMIT 1");
    q = pulse_ajob_exec(work, sql.data, (int)d, names, err, sizeof(err));
    if (q == NULL)
        goto fail_tx;
    for (size_t f = 0; f < d; f++) {
        if (PQgetisnull(q, 0, (int)f)) {
            code = "unknown_feature";
            snprintf(err, sizeof(err), "features: '%s' is not a feature of the latest segmentation run", names[f]);
            PQclear(q);
            goto fail_tx;
        }
        pos[f] = atoi(PQgetvalue(q, 0, (int)f));
    }
    PQclear(q);
    pulse_buf_reset(&sql);
    pulse_buf_puts(&sql, "SELECT customer_id");
    for (size_t f = 0; f < d; f++)
        pulse_buf_printf(&sql, ", features[%d]", pos[f]);
    pulse_buf_puts(&sql, " FROM customer_analytics WHERE segment IS NOT NULL ORDER BY customer_id");
    q = pulse_ajob_exec(work, sql.data, 0, NULL, err, sizeof(err));
    if (q == NULL)
        goto fail_tx;
    size_t rows = (size_t)PQntuples(q);
    x = pulse_xmalloc((rows + 1) * d * sizeof(double));
    ids = pulse_xmalloc((rows + 1) * sizeof(long long));
    for (size_t i = 0; i < rows; i++) {
        int ok = 1;
        for (size_t f = 0; f < d; f++) {
            double v = PQgetisnull(q, (int)i, (int)f + 1) ? NAN : strtod(PQgetvalue(q, (int)i, (int)f + 1), NULL);
            if (!isfinite(v))
                ok = 0;
            x[n * d + f] = v;
        }
        if (ok)
            ids[n++] = atoll(PQgetvalue(q, (int)i, 0));
        else
            left_out++;
    }
    PQclear(q);
    if (pulse_jobrun_step(&j, "clustering", 30, n, 1) != 0)
        goto interrupted;
    if (pulse_cluster_run(x, n, d, names, &co, &res, err, sizeof(err)) != 0) {
        code = "cannot_cluster";
        goto fail_tx;
    }
    if (pulse_jobrun_step(&j, "writing", 80, n, 1) != 0)
        goto interrupted;
    q = pulse_ajob_exec(work, "CREATE TEMP TABLE cluster_stage (customer_id bigint, cluster smallint) ON COMMIT DROP", 0, NULL, err,
                        sizeof(err));
    if (q == NULL)
        goto fail_tx;
    PQclear(q);
    q = PQexec(work, "COPY cluster_stage FROM STDIN");
    int copy_ok = PQresultStatus(q) == PGRES_COPY_IN;
    PQclear(q);
    for (size_t i = 0; copy_ok && i < n; i++) {
        pulse_buf_printf(&b, "%lld\t%d\n", ids[i], res.labels[i]);
        if (b.len > (1u << 20) || i + 1 == n) {
            copy_ok = PQputCopyData(work, b.data, (int)b.len) == 1;
            pulse_buf_reset(&b);
        }
    }
    if (copy_ok)
        copy_ok = PQputCopyEnd(work, NULL) == 1;
    while ((q = PQgetResult(work)) != NULL) {
        if (PQresultStatus(q) != PGRES_COMMAND_OK)
            copy_ok = 0;
        PQclear(q);
    }
    if (!copy_ok) {
        snprintf(err, sizeof(err), "cannot write the labels: %s", PQerrorMessage(work));
        goto fail_tx;
    }
    const char *up[] = {tenant_id, job_id};
    q = pulse_ajob_exec(work,
                        "UPDATE customer_analytics ca SET cluster = s.cluster, cluster_id = $2 FROM cluster_stage s "
                        "WHERE ca.tenant_id = $1 AND ca.customer_id = s.customer_id",
                        2, up, err, sizeof(err));
    if (q == NULL)
        goto fail_tx;
    PQclear(q);
    q = pulse_ajob_exec(work,
                        "UPDATE customer_analytics SET cluster = NULL, cluster_id = NULL WHERE tenant_id = $1 AND cluster_id IS "
                        "DISTINCT FROM $2::uuid AND cluster IS NOT NULL",
                        2, up, err, sizeof(err));
    if (q == NULL)
        goto fail_tx;
    PQclear(q);
    pulse_buf_reset(&b);
    result_json(&b, &res, names, d, left_out);
    char kreq[16];
    snprintf(kreq, sizeof(kreq), "%d", co.k);
    const char *cp[] = {job_id, tenant_id, pulse_cluster_method_name(co.method), co.k ? kreq : NULL, b.data};
    q = pulse_ajob_exec(work,
                        "INSERT INTO clusterings (id, tenant_id, method, k_requested, state, result, finished_at) "
                        "VALUES ($1, $2, $3, $4, 'done', $5::jsonb, now()) ON CONFLICT (id) DO UPDATE SET state = 'done', "
                        "result = EXCLUDED.result, finished_at = now()",
                        5, cp, err, sizeof(err));
    if (q == NULL)
        goto fail_tx;
    PQclear(q);
    q = PQexec(work, "COMMIT");
    int committed = PQresultStatus(q) == PGRES_COMMAND_OK;
    if (!committed)
        snprintf(err, sizeof(err), "%s", PQerrorMessage(work));
    PQclear(q);
    if (!committed)
        goto fail_tx;
    pulse_buf_reset(&b);
    pulse_buf_printf(&b, "{\"clustering_id\":\"%s\",\"k\":%zu,\"customers\":%zu,\"left_out\":%zu,\"sizes\":[", job_id, res.k, n,
                     left_out);
    for (size_t c = 0; c < res.k; c++)
        pulse_buf_printf(&b, "%s%zu", c ? "," : "", res.sizes[c]);
    pulse_buf_puts(&b, "]}");
    out->rows_read = out->rows_accepted = n;
    state = "done";
    code = NULL;
    goto end;
interrupted:
    rollback(work);
    if (j.stopping && !j.cancelled) {
        state = "queued";
        code = NULL;
    } else {
        state = "cancelled";
        code = "cancelled";
        snprintf(err, sizeof(err), "cancelled by a user; nothing was stored");
    }
    goto end;
fail_tx:
    rollback(work);
end:
    pulse_jobrun_finish(&j, out, state, code, code ? err : NULL, strcmp(state, "done") == 0 ? b.data : NULL, NULL);
    if (strcmp(state, "done") != 0 && strcmp(state, "queued") != 0) {
        const char *fp[] = {job_id, state};
        char e2[256];
        PQclear(pulse_jobs_tenant_exec(ctl, tenant_id, "UPDATE clusterings SET state = $2, finished_at = now() WHERE id = $1", 2,
                                       fp, e2, sizeof(e2)));
    }
    pulse_job_beat_stop(beat);
    pulse_cluster_result_free(&res);
    pulse_buf_free(&b);
    pulse_buf_free(&sql);
    free(x);
    free(ids);
    lua_close(L);
    return strcmp(out->state, "done") == 0 ? 0 : -1;
}
