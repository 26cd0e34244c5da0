/* Feature rows for the churn jobs (see ml_rows.h). The attributes come out of PostgreSQL in long
 * form (one row per customer and attribute, jsonb_each), so no JSON is parsed here and a customer
 * missing an attribute simply leaves a gap (NaN / NULL), which both models handle natively. */
#include "jobs/ml_rows.h"

#include "core/buf.h"
#include "core/log.h"
#include "jobs/jobs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The label lives in customers.churned; an attribute of the same name would be the answer itself. */
static int is_label_name(const char *k)
{
    return strcasecmp(k, "churn") == 0 || strcasecmp(k, "churned") == 0 || strcasecmp(k, "churn_label") == 0;
}

static void ids_literal(const int64_t *ids, size_t n, pulse_buf_t *b)
{
    pulse_buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            pulse_buf_putc(b, ',');
        pulse_buf_printf(b, "%lld", (long long)ids[i]);
    }
    pulse_buf_putc(b, '}');
}

static size_t add_col(pulse_mlrows_t *r, const char *name, size_t *cap)
{
    if (r->n_cols == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        r->names = pulse_xrealloc(r->names, *cap * sizeof(*r->names));
        r->num = pulse_xrealloc(r->num, *cap * sizeof(*r->num));
        r->text = pulse_xrealloc(r->text, *cap * sizeof(*r->text));
        r->kind = pulse_xrealloc(r->kind, *cap);
    }
    size_t j = r->n_cols++;
    r->names[j] = pulse_xstrdup(name);
    r->num[j] = pulse_xmalloc((r->n_rows ? r->n_rows : 1) * sizeof(double));
    for (size_t i = 0; i < r->n_rows; i++)
        r->num[j][i] = NAN;
    r->text[j] = calloc(r->n_rows ? r->n_rows : 1, sizeof(char *));
    if (r->text[j] == NULL) {
        fprintf(stderr, "pulse: out of memory\n");
        abort();
    }
    r->kind[j] = 0;
    return j;
}

static long find_col(const pulse_mlrows_t *r, const char *name, size_t hint)
{
    if (hint < r->n_cols && strcmp(r->names[hint], name) == 0)
        return (long)hint;
    for (size_t j = 0; j < r->n_cols; j++)
        if (strcmp(r->names[j], name) == 0)
            return (long)j;
    return -1;
}

static long find_row(const pulse_mlrows_t *r, int64_t id)
{
    size_t lo = 0, hi = r->n_rows;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < r->n_rows && r->ids[lo] == id ? (long)lo : -1;
}

int pulse_mlrows_load(PGconn *c, const char *tenant, int labelled_only, const int64_t *ids, size_t n_ids, pulse_mlrows_t *out,
                      char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    pulse_buf_t lit = PULSE_BUF_INIT;
    if (n_ids > 0)
        ids_literal(ids, n_ids, &lit);
    const char *params[] = {tenant, labelled_only ? "t" : "f", n_ids > 0 ? lit.data : NULL};
    PGresult *res = pulse_jobs_tenant_exec(c, tenant,
                                           "SELECT id, CASE WHEN churned THEN 1 WHEN NOT churned THEN 0 END FROM customers "
                                           "WHERE tenant_id = $1 AND ($2 = 'f' OR churned IS NOT NULL) "
                                           "AND ($3::bigint[] IS NULL OR id = ANY($3::bigint[])) ORDER BY id",
                                           3, params, err, errlen);
    if (res == NULL) {
        pulse_buf_free(&lit);
        return -1;
    }
    size_t n = (size_t)PQntuples(res);
    out->n_rows = n;
    out->ids = pulse_xmalloc((n ? n : 1) * sizeof(int64_t));
    out->label = pulse_xmalloc((n ? n : 1) * sizeof(double));
    for (size_t i = 0; i < n; i++) {
        out->ids[i] = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
        out->label[i] = PQgetisnull(res, (int)i, 1) ? NAN : atof(PQgetvalue(res, (int)i, 1));
    }
    PQclear(res);
    size_t cap = 0;
    /* the header order of the last customers file first: the column order is part of what makes a
     * training run reproducible (column subsampling draws by position) */
    const char *p1[] = {tenant};
    res = pulse_jobs_tenant_exec(c, tenant,
                                 "SELECT x.a->>'name' FROM (SELECT plan FROM imports WHERE tenant_id = $1 AND kind = 'customers' "
                                 "AND state = 'done' ORDER BY created_at DESC LIMIT 1) i, "
                                 "jsonb_array_elements(CASE WHEN jsonb_typeof(i.plan->'attributes') = 'array' "
                                 "THEN i.plan->'attributes' ELSE '[]' END) WITH ORDINALITY x(a, ord) ORDER BY x.ord",
                                 1, p1, err, errlen);
    if (res == NULL) {
        pulse_buf_free(&lit);
        pulse_mlrows_free(out);
        return -1;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        const char *k = PQgetvalue(res, i, 0);
        if (!PQgetisnull(res, i, 0) && !is_label_name(k) && find_col(out, k, 0) < 0)
            add_col(out, k, &cap);
    }
    PQclear(res);
    if (n == 0) {
        pulse_buf_free(&lit);
        return 0;
    }
    res = pulse_jobs_tenant_exec(
        c, tenant,
        "SELECT c.id, e.key, jsonb_typeof(e.value) = 'number', e.value #>> '{}' FROM customers c "
        "CROSS JOIN LATERAL jsonb_each(c.attributes) e WHERE c.tenant_id = $1 AND ($2 = 'f' OR c.churned IS NOT NULL) "
        "AND ($3::bigint[] IS NULL OR c.id = ANY($3::bigint[])) AND jsonb_typeof(e.value) IN ('number', 'string', 'boolean') "
        "UNION ALL "
        "SELECT a.customer_id, 'analytics.' || u.name, true, u.v::text FROM customer_analytics a "
        "JOIN analytics_runs r ON r.id = a.run_id JOIN customers c ON c.id = a.customer_id "
        "CROSS JOIN LATERAL unnest(r.feature_names, a.features) u(name, v) "
        "WHERE a.tenant_id = $1 AND ($2 = 'f' OR c.churned IS NOT NULL) AND ($3::bigint[] IS NULL OR c.id = ANY($3::bigint[])) "
        "AND u.name IS NOT NULL",
        3, params, err, errlen);
    pulse_buf_free(&lit);
    if (res == NULL) {
        pulse_mlrows_free(out);
        return -1;
    }
    size_t hint = 0;
    for (int t = 0, nt = PQntuples(res); t < nt; t++) {
        long i = find_row(out, strtoll(PQgetvalue(res, t, 0), NULL, 10));
        const char *k = PQgetvalue(res, t, 1);
        if (i < 0 || is_label_name(k) || PQgetisnull(res, t, 3))
            continue;
        long j = find_col(out, k, hint);
        if (j < 0) {
            /* a name first seen here: keep the arrays we write through valid */
            j = (long)add_col(out, k, &cap);
        }
        hint = (size_t)j + 1;
        const char *v = PQgetvalue(res, t, 3);
        free(out->text[j][i]);
        out->text[j][i] = pulse_xstrdup(v);
        if (strcmp(PQgetvalue(res, t, 2), "t") == 0)
            out->num[j][i] = strtod(v, NULL);
        else
            out->kind[j] = 1;
    }
    PQclear(res);
    return 0;
}

void pulse_mlrows_free(pulse_mlrows_t *r)
{
    for (size_t j = 0; j < r->n_cols; j++) {
        for (size_t i = 0; i < r->n_rows; i++)
            free(r->text[j][i]);
        free(r->text[j]);
        free(r->num[j]);
        free(r->names[j]);
    }
    free(r->names);
    free(r->num);
    free(r->text);
    free(r->kind);
    free(r->ids);
    free(r->label);
    memset(r, 0, sizeof(*r));
}

int pulse_mlrows_table(const pulse_mlrows_t *r, pulse_ml_table_t **out, char *err, size_t errlen)
{
    pulse_ml_column_t *cols = pulse_xmalloc((r->n_cols + 1) * sizeof(*cols));
    size_t k = 0;
    for (size_t j = 0; j < r->n_cols; j++) {
        size_t present = 0;
        for (size_t i = 0; i < r->n_rows; i++)
            present += r->text[j][i] != NULL;
        if (present == 0)
            continue; /* nothing to learn from, and the scorer would only see gaps */
        cols[k].name = r->names[j];
        cols[k].num = r->kind[j] ? NULL : r->num[j];
        cols[k].text = r->kind[j] ? (const char *const *)r->text[j] : NULL;
        k++;
    }
    cols[k].name = "churned";
    cols[k].num = r->label;
    cols[k].text = NULL;
    k++;
    pulse_ml_table_options_t opt = {"churned", NULL};
    int rc = pulse_ml_table_from_columns(cols, k, r->n_rows, &opt, out, err, errlen);
    free(cols);
    return rc;
}

static int cmp_level(const void *key, const void *elem)
{
    return strcmp((const char *)key, *(char *const *)elem);
}

float *pulse_mlrows_matrix(const pulse_mlrows_t *r, const pulse_ml_model_t *m)
{
    size_t n = r->n_rows;
    float *x = pulse_xmalloc((n ? n : 1) * (m->n_features ? m->n_features : 1) * sizeof(float));
    for (size_t f = 0; f < m->n_features; f++) {
        const pulse_ml_feature_t *ft = &m->features[f];
        float *col = x + f * n;
        long j = find_col(r, ft->name, f);
        for (size_t i = 0; i < n; i++) {
            col[i] = NAN;
            if (j < 0 || r->text[j][i] == NULL)
                continue;
            if (ft->categorical) {
                char **hit = bsearch(r->text[j][i], ft->levels, (size_t)ft->n_levels, sizeof(char *), cmp_level);
                if (hit != NULL)
                    col[i] = (float)(hit - ft->levels);
            } else if (!isnan(r->num[j][i])) {
                col[i] = (float)r->num[j][i];
            } else {
                char *end;
                double v = strtod(r->text[j][i], &end);
                if (end != r->text[j][i] && *end == '\0')
                    col[i] = (float)v;
            }
        }
    }
    return x;
}

int pulse_mljob_progress(PGconn *ctl, const char *tenant, const char *job_id, const char *phase, double percent, uint64_t rows)
{
    char pct[32], rr[32], err[256];
    snprintf(pct, sizeof(pct), "%.2f", percent);
    snprintf(rr, sizeof(rr), "%llu", (unsigned long long)rows);
    const char *params[] = {job_id, phase, pct, rr};
    PGresult *res = pulse_jobs_tenant_exec(ctl, tenant,
                                           "UPDATE jobs SET phase = $2, progress = $3, rows_read = $4, heartbeat_at = now() "
                                           "WHERE id = $1 RETURNING cancel_requested",
                                           4, params, err, sizeof(err));
    if (res == NULL) {
        pulse_log(PULSE_LOG_WARN, "jobs.progress", "job %s: cannot write progress: %s", job_id, err);
        return 0;
    }
    int cancel = PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return cancel;
}

void pulse_mljob_finish(PGconn *ctl, const char *tenant, const char *job_id, const char *state, const char *code, const char *msg,
                        const char *result_json)
{
    char err[256];
    const char *params[] = {job_id, state, code && code[0] ? code : NULL, msg && msg[0] ? msg : NULL, result_json};
    PGresult *res =
        pulse_jobs_tenant_exec(ctl, tenant,
                               "UPDATE jobs SET state = $2, error_code = $3, error = $4, phase = $2, result = $5::jsonb, "
                               "progress = CASE WHEN $2 = 'done' THEN 100 ELSE progress END, eta_seconds = NULL, "
                               "finished_at = now(), heartbeat_at = now() WHERE id = $1",
                               5, params, err, sizeof(err));
    if (res == NULL)
        pulse_log(PULSE_LOG_ERROR, "jobs.finish", "job %s: cannot record its outcome: %s", job_id, err);
    PQclear(res);
}

char *pulse_mljob_param(PGconn *ctl, const char *params_json, const char *path)
{
    const char *params[] = {params_json && params_json[0] ? params_json : "{}", path};
    PGresult *res = PQexecParams(ctl, "SELECT $1::jsonb #>> $2::text[]", 2, NULL, params, NULL, NULL, 0);
    char *v = NULL;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        v = pulse_xstrdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}
