/* Feature rows for the churn jobs (see ml_rows.h), read in one tenant transaction with binary COPY
 * (rows stream in: no result set the size of the tenant). The attributes come out of PostgreSQL in
 * long form (one row per customer and attribute, jsonb_each), so no JSON is parsed here and a
 * customer missing an attribute simply leaves a gap (NaN / NULL), which both models handle
 * natively; the stored features come as the real[] of each row with its run's names. Numeric
 * values are kept as numbers only: a column gets text only once a value in it is not a number. */
#include "jobs/ml_rows.h"

#include "core/buf.h"
#include "core/log.h"
#include "db/copybin.h"
#include "jobs/analytics_job.h"
#include "jobs/derived_write.h"
#include "jobs/id_index.h"
#include "jobs/jobs.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The label lives in customers.churned; an attribute of the same name would be the answer itself. */
static int is_label_name(const char *k)
{
    return strcasecmp(k, "churn") == 0 || strcasecmp(k, "churned") == 0 || strcasecmp(k, "churn_label") == 0;
}

/* The filter of the customers asked for, as SQL (ids are integers: inlined, as COPY takes no
 * parameters). */
static void customer_filter(pulse_buf_t *b, const char *id_col, int labelled_only, const int64_t *ids, size_t n_ids)
{
    if (labelled_only)
        pulse_buf_puts(b, " AND c.churned IS NOT NULL");
    if (n_ids == 0)
        return;
    pulse_buf_printf(b, " AND %s = ANY('{", id_col);
    for (size_t i = 0; i < n_ids; i++)
        pulse_buf_printf(b, "%s%lld", i ? "," : "", (long long)ids[i]);
    pulse_buf_puts(b, "}'::bigint[])");
}

static size_t add_col(pulse_mlrows_t *r, const char *name, size_t len, size_t *cap)
{
    if (r->n_cols == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        r->names = pulse_xrealloc(r->names, *cap * sizeof(*r->names));
        r->num = pulse_xrealloc(r->num, *cap * sizeof(*r->num));
        r->text = pulse_xrealloc(r->text, *cap * sizeof(*r->text));
        r->kind = pulse_xrealloc(r->kind, *cap);
    }
    size_t j = r->n_cols++;
    r->names[j] = pulse_xmalloc(len + 1);
    memcpy(r->names[j], name, len);
    r->names[j][len] = '\0';
    r->num[j] = pulse_xmalloc((r->n_rows ? r->n_rows : 1) * sizeof(double));
    for (size_t i = 0; i < r->n_rows; i++)
        r->num[j][i] = NAN;
    r->text[j] = NULL;
    r->kind[j] = 0;
    return j;
}

static long find_col_n(const pulse_mlrows_t *r, const char *name, size_t len, size_t hint)
{
    if (hint < r->n_cols && strlen(r->names[hint]) == len && memcmp(r->names[hint], name, len) == 0)
        return (long)hint;
    for (size_t j = 0; j < r->n_cols; j++)
        if (strlen(r->names[j]) == len && memcmp(r->names[j], name, len) == 0)
            return (long)j;
    return -1;
}

static long find_col(const pulse_mlrows_t *r, const char *name, size_t hint)
{
    return find_col_n(r, name, strlen(name), hint);
}

/* Column j becomes a text column: its numbers so far get their text too (categories are text). */
static void make_text(pulse_mlrows_t *r, size_t j)
{
    if (r->text[j] != NULL)
        return;
    r->text[j] = calloc(r->n_rows ? r->n_rows : 1, sizeof(char *));
    if (r->text[j] == NULL)
        abort();
    char tmp[40];
    for (size_t i = 0; i < r->n_rows; i++)
        if (!isnan(r->num[j][i])) {
            snprintf(tmp, sizeof(tmp), "%.15g", r->num[j][i]);
            r->text[j][i] = pulse_xstrdup(tmp);
        }
    r->kind[j] = 1;
}

static int is_present(const pulse_mlrows_t *r, size_t j, size_t i)
{
    return r->text[j] ? r->text[j][i] != NULL : !isnan(r->num[j][i]);
}

typedef struct load_t {
    pulse_mlrows_t *r;
    size_t n, cap, hint;
    int labels;            /* the customers query has the churned label */
    pulse_id_index_t rows; /* the row of a customer id */
} load_t;

/* One customer: id, and the churned label when the query has it. */
static int on_customer(void *ud, const unsigned char *const *f, const int32_t *len)
{
    load_t *l = ud;
    if (len[0] != 8)
        return 0;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4096;
        l->r->ids = pulse_xrealloc(l->r->ids, l->cap * sizeof(int64_t));
        l->r->label = pulse_xrealloc(l->r->label, l->cap * sizeof(double));
    }
    l->r->ids[l->n] = (int64_t)pulse_be64(f[0]);
    l->r->label[l->n] = l->labels && len[1] == 1 ? (f[1][0] ? 1.0 : 0.0) : NAN;
    l->n++;
    return 0;
}

/* One attribute: customer id, key, is a number, value text. */
static int on_attribute(void *ud, const unsigned char *const *f, const int32_t *len)
{
    load_t *l = ud;
    pulse_mlrows_t *r = l->r;
    if (len[0] != 8 || len[1] < 0 || len[3] < 0)
        return 0;
    long i = pulse_id_index_find(&l->rows, (int64_t)pulse_be64(f[0]));
    char key[256], *v;
    if (i < 0 || (size_t)len[1] >= sizeof(key))
        return 0;
    memcpy(key, f[1], (size_t)len[1]);
    key[len[1]] = '\0';
    if (is_label_name(key))
        return 0;
    long j = find_col_n(r, key, (size_t)len[1], l->hint);
    if (j < 0)
        j = (long)add_col(r, key, (size_t)len[1], &l->cap); /* a name first seen here */
    l->hint = (size_t)j + 1;
    v = pulse_xmalloc((size_t)len[3] + 1);
    memcpy(v, f[3], (size_t)len[3]);
    v[len[3]] = '\0';
    int number = len[2] == 1 && f[2][0];
    if (number)
        r->num[j][i] = strtod(v, NULL);
    if (!number || r->text[j] != NULL) {
        make_text(r, (size_t)j);
        free(r->text[j][i]);
        r->text[j][i] = v;
    } else {
        free(v);
    }
    return 0;
}

/* The stored features: names per analytics run (runs), each row's run and real[] values. */
typedef struct run_names_t {
    char id[37];
    unsigned char raw[16]; /* the id's bytes, as the binary COPY sends it */
    size_t n;
    long *col; /* the feature's column */
} run_names_t;

typedef struct features_t {
    load_t *l;
    run_names_t *runs;
    size_t nruns;
} features_t;

static int on_features(void *ud, const unsigned char *const *f, const int32_t *len)
{
    features_t *ft = ud;
    pulse_mlrows_t *r = ft->l->r;
    if (len[0] != 8 || len[1] != 16)
        return 0;
    long i = pulse_id_index_find(&ft->l->rows, (int64_t)pulse_be64(f[0]));
    if (i < 0)
        return 0;
    if (len[3] == 8)
        r->clv[i] = pulse_be_float8(f[3]);
    const run_names_t *names = NULL;
    for (size_t k = 0; k < ft->nruns && names == NULL; k++)
        if (memcmp(ft->runs[k].raw, f[1], 16) == 0)
            names = &ft->runs[k];
    /* real[]: ndim, has nulls, element type, then per dimension size and lower bound */
    if (names == NULL || len[2] < 12 || pulse_be32(f[2]) != 1 || len[2] < 20)
        return 0;
    size_t n = pulse_be32(f[2] + 12);
    const unsigned char *p = f[2] + 20, *end = f[2] + len[2];
    for (size_t k = 0; k < n && k < names->n && end - p >= 4; k++) {
        int32_t el = (int32_t)pulse_be32(p);
        p += 4;
        if (el != 4 || end - p < 4)
            break;
        float v = pulse_be_float4(p);
        p += 4;
        if (names->col[k] >= 0 && !isnan(v))
            r->num[names->col[k]][i] = v;
    }
    return 0;
}

/* Every analytics run of the tenant with its feature columns (added as "analytics.<name>"). */
static int load_runs(PGconn *c, load_t *l, features_t *ft, char *err, size_t errlen)
{
    PGresult *res =
        pulse_ajob_exec(c,
                        "SELECT r.id, array_length(r.feature_names, 1), u.ord, u.name FROM analytics_runs r, "
                        "unnest(r.feature_names) WITH ORDINALITY u(name, ord) WHERE u.name IS NOT NULL ORDER BY r.id, u.ord",
                        0, NULL, err, errlen);
    if (res == NULL)
        return -1;
    char name[300];
    for (int t = 0; t < PQntuples(res); t++) {
        const char *id = PQgetvalue(res, t, 0);
        if (ft->nruns == 0 || strcmp(ft->runs[ft->nruns - 1].id, id) != 0) {
            ft->runs = pulse_xrealloc(ft->runs, (ft->nruns + 1) * sizeof(*ft->runs));
            run_names_t *rn = &ft->runs[ft->nruns++];
            snprintf(rn->id, sizeof(rn->id), "%s", id);
            pulse_derived_parse_uuid(id, rn->raw);
            rn->n = (size_t)atol(PQgetvalue(res, t, 1));
            rn->col = pulse_xmalloc((rn->n ? rn->n : 1) * sizeof(long));
            for (size_t k = 0; k < rn->n; k++)
                rn->col[k] = -1;
        }
        run_names_t *rn = &ft->runs[ft->nruns - 1];
        size_t k = (size_t)atol(PQgetvalue(res, t, 2)) - 1;
        int len = snprintf(name, sizeof(name), "analytics.%s", PQgetvalue(res, t, 3));
        if (k >= rn->n || len < 0 || (size_t)len >= sizeof(name))
            continue;
        long j = find_col(l->r, name, 0);
        rn->col[k] = j >= 0 ? j : (long)add_col(l->r, name, (size_t)len, &l->cap);
    }
    PQclear(res);
    return 0;
}

/* Whether the model reads a feature Pulse computes (analytics.*), or else an attribute. */
static int uses_features(const pulse_ml_model_t *m, int computed)
{
    for (size_t j = 0; j < m->n_features; j++)
        if ((strncmp(m->features[j].name, "analytics.", 10) == 0) == computed)
            return 1;
    return 0;
}

/* The customers in id order (for find_row), with their label unless scoring: then the id alone
 * comes from the (tenant_id, id) index without touching the table (1.4 s instead of 6.4 s on 3.5 M). */
static int load_customers(PGconn *c, load_t *l, int labelled_only, const int64_t *ids, size_t n_ids, char *err, size_t errlen)
{
    pulse_buf_t sql = PULSE_BUF_INIT;
    pulse_buf_printf(&sql, "COPY (SELECT c.id%s FROM customers c WHERE c.tenant_id = pulse_current_tenant()",
                     l->labels ? ", c.churned" : "");
    customer_filter(&sql, "c.id", labelled_only, ids, n_ids);
    pulse_buf_puts(&sql, " ORDER BY c.id) TO STDOUT (FORMAT binary)");
    int rc = pulse_copybin_read(c, sql.data, l->labels ? 2 : 1, on_customer, l, "customers", err, errlen);
    pulse_buf_free(&sql);
    return rc;
}

/* The header order of the last customers file: the column order is part of what makes a training
 * run reproducible (column subsampling draws by position). */
static int load_header(PGconn *c, load_t *l, char *err, size_t errlen)
{
    PGresult *res = pulse_ajob_exec(c,
                                    "SELECT x.a->>'name' FROM (SELECT plan FROM imports WHERE kind = 'customers' "
                                    "AND state = 'done' ORDER BY created_at DESC LIMIT 1) i, "
                                    "jsonb_array_elements(CASE WHEN jsonb_typeof(i.plan->'attributes') = 'array' "
                                    "THEN i.plan->'attributes' ELSE '[]' END) WITH ORDINALITY x(a, ord) ORDER BY x.ord",
                                    0, NULL, err, errlen);
    for (int i = 0; res && i < PQntuples(res); i++) {
        const char *k = PQgetvalue(res, i, 0);
        if (!PQgetisnull(res, i, 0) && !is_label_name(k) && find_col(l->r, k, 0) < 0)
            add_col(l->r, k, strlen(k), &l->cap);
    }
    int rc = res == NULL ? -1 : 0;
    PQclear(res);
    return rc;
}

static int load_attributes(PGconn *c, load_t *l, int labelled_only, const int64_t *ids, size_t n_ids, char *err, size_t errlen)
{
    pulse_buf_t sql = PULSE_BUF_INIT;
    pulse_buf_puts(&sql, "COPY (SELECT c.id, e.key, jsonb_typeof(e.value) = 'number', e.value #>> '{}' FROM customers c "
                         "CROSS JOIN LATERAL jsonb_each(c.attributes) e WHERE c.tenant_id = pulse_current_tenant() "
                         "AND jsonb_typeof(e.value) IN ('number', 'string', 'boolean')");
    customer_filter(&sql, "c.id", labelled_only, ids, n_ids);
    pulse_buf_puts(&sql, ") TO STDOUT (FORMAT binary)");
    int rc = pulse_copybin_read(c, sql.data, 4, on_attribute, l, "customer attributes", err, errlen);
    pulse_buf_free(&sql);
    return rc;
}

/* The stored features (NULL when with_features is 0: the CLV alone) of the analytics rows. */
static int load_stored(PGconn *c, features_t *ft, int with_features, const int64_t *ids, size_t n_ids, char *err, size_t errlen)
{
    pulse_buf_t sql = PULSE_BUF_INIT;
    pulse_buf_printf(&sql,
                     "COPY (SELECT a.customer_id, a.run_id, %s, a.clv FROM customer_analytics a "
                     "WHERE a.tenant_id = pulse_current_tenant()",
                     with_features ? "a.features" : "NULL::real[]");
    customer_filter(&sql, "a.customer_id", 0, ids, n_ids);
    pulse_buf_puts(&sql, ") TO STDOUT (FORMAT binary)");
    int rc = pulse_copybin_read(c, sql.data, 4, on_features, ft, "stored features", err, errlen);
    pulse_buf_free(&sql);
    return rc;
}

/* Customers above which a whole-tenant scoring read takes the stored features over two
 * connections: the server's array_send (a buffer per element) is most of that read, 8 s of 12 on
 * 3.5 M rows, and two backends share it. */
#define SPLIT_ROWS 200000

/* A second connection as c's (database, user, role, options). NULL when it cannot connect. */
static PGconn *twin_connect(PGconn *c)
{
    PQconninfoOption *opts = PQconninfo(c);
    if (opts == NULL)
        return NULL;
    size_t n = 0, k = 0;
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        n++;
    const char **keys = pulse_xmalloc((n + 1) * sizeof(char *)), **vals = pulse_xmalloc((n + 1) * sizeof(char *));
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        if (o->val && o->val[0]) {
            keys[k] = o->keyword;
            vals[k++] = o->val;
        }
    keys[k] = vals[k] = NULL;
    PGconn *t = PQconnectdbParams(keys, vals, 0);
    free(keys), free(vals);
    PQconninfoFree(opts);
    if (t != NULL && PQstatus(t) != CONNECTION_OK) {
        PQfinish(t);
        t = NULL;
    }
    return t;
}

/* One half of the stored features, read on its own connection and thread. */
typedef struct half_t {
    PGconn *c;
    features_t ft;
    char sql[512];
    int rc;
    char err[512];
} half_t;

static void *read_half(void *arg)
{
    half_t *h = arg;
    h->rc = pulse_copybin_read(h->c, h->sql, 4, on_features, &h->ft, "stored features", h->err, sizeof(h->err));
    return NULL;
}

/* The stored features of every analytics row over two connections in the same snapshot: the
 * tenant's partition cut in two block ranges (a TID range scan each). The read stays whole on c
 * when the second connection cannot be had. */
static int load_stored_split(PGconn *c, const char *tenant, features_t *ft, char *err, size_t errlen)
{
    char part[80];
    size_t k = (size_t)snprintf(part, sizeof(part), "customer_analytics_");
    for (const char *p = tenant; *p && k + 1 < sizeof(part); p++)
        if (*p != '-')
            part[k++] = (char)(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
    part[k] = '\0';
    const char *pp[] = {part};
    PGresult *r = pulse_ajob_exec(c,
                                  "SELECT pg_relation_size(to_regclass($1)) / current_setting('block_size')::bigint, "
                                  "pg_export_snapshot()",
                                  1, pp, err, errlen);
    if (r == NULL)
        return -1;
    long blocks = PQgetisnull(r, 0, 0) ? 0 : atol(PQgetvalue(r, 0, 0));
    char snapshot[64];
    snprintf(snapshot, sizeof(snapshot), "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    PGconn *twin = blocks > 1 ? twin_connect(c) : NULL;
    if (twin == NULL || pulse_ajob_begin_snapshot(twin, tenant, snapshot, err, errlen) != 0) {
        PQfinish(twin);
        return load_stored(c, ft, 1, NULL, 0, err, errlen);
    }
    static const char *const SQL =
        "COPY (SELECT a.customer_id, a.run_id, a.features, a.clv FROM customer_analytics a "
        "WHERE a.tenant_id = pulse_current_tenant() AND a.ctid %s '(%ld,0)'::tid) TO STDOUT (FORMAT binary)";
    half_t *hi = pulse_xmalloc(sizeof(*hi));
    memset(hi, 0, sizeof(*hi));
    hi->c = twin;
    hi->ft = *ft;
    snprintf(hi->sql, sizeof(hi->sql), SQL, ">=", blocks / 2);
    pthread_t th;
    int threaded = pthread_create(&th, NULL, read_half, hi) == 0;
    char lo[512];
    snprintf(lo, sizeof(lo), SQL, "<", blocks / 2);
    int rc = pulse_copybin_read(c, lo, 4, on_features, ft, "stored features", err, errlen);
    if (threaded)
        pthread_join(th, NULL);
    else
        read_half(hi);
    if (rc == 0 && hi->rc != 0)
        rc = pulse_fail(err, errlen, "%s", hi->err);
    PGresult *end = PQexec(twin, "ROLLBACK");
    PQclear(end);
    PQfinish(twin);
    free(hi);
    return rc;
}

static int load_in_tx(PGconn *c, const char *tenant, int labelled_only, const int64_t *ids, size_t n_ids,
                      const pulse_ml_model_t *only, pulse_mlrows_t *out, char *err, size_t errlen)
{
    load_t l = {out, 0, 0, 0, only == NULL, {0}};
    out->epoch = pulse_derived_epoch(c);
    int rc = load_customers(c, &l, labelled_only, ids, n_ids, err, errlen);
    out->n_rows = l.n;
    l.cap = 0;
    if (rc == 0)
        pulse_id_index_build(&l.rows, out->ids, out->n_rows);
    if (rc == 0) {
        out->clv = pulse_xmalloc((l.n ? l.n : 1) * sizeof(double));
        for (size_t i = 0; i < l.n; i++)
            out->clv[i] = NAN;
    }
    if (rc == 0 && only == NULL)
        rc = load_header(c, &l, err, errlen);
    if (rc == 0 && l.n > 0 && (only == NULL || uses_features(only, 0)))
        rc = load_attributes(c, &l, labelled_only, ids, n_ids, err, errlen);
    features_t ft = {&l, NULL, 0};
    int with_features = only == NULL || uses_features(only, 1);
    if (rc == 0 && l.n > 0 && with_features)
        rc = load_runs(c, &l, &ft, err, errlen);
    if (rc == 0 && l.n >= SPLIT_ROWS && only != NULL && with_features && n_ids == 0)
        rc = load_stored_split(c, tenant, &ft, err, errlen);
    else if (rc == 0 && l.n > 0)
        rc = load_stored(c, &ft, with_features, ids, n_ids, err, errlen);
    for (size_t k = 0; k < ft.nruns; k++)
        free(ft.runs[k].col);
    free(ft.runs);
    pulse_id_index_free(&l.rows);
    return rc;
}

int pulse_mlrows_load(PGconn *c, const char *tenant, int labelled_only, const int64_t *ids, size_t n_ids,
                      const pulse_ml_model_t *only, pulse_mlrows_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    /* scoring reads in one snapshot, which a second connection may share (load_stored_split) */
    if ((only ? pulse_ajob_begin_snapshot(c, tenant, NULL, err, errlen) : pulse_ajob_begin(c, tenant, err, errlen)) != 0)
        return -1;
    int rc = load_in_tx(c, tenant, labelled_only, ids, n_ids, only, out, err, errlen);
    PGresult *r = PQexec(c, rc == 0 ? "COMMIT" : "ROLLBACK");
    PQclear(r);
    if (rc != 0) {
        pulse_mlrows_free(out);
        return -1;
    }
    return 0;
}

void pulse_mlrows_free(pulse_mlrows_t *r)
{
    for (size_t j = 0; j < r->n_cols; j++) {
        for (size_t i = 0; r->text[j] && i < r->n_rows; i++)
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
    free(r->clv);
    memset(r, 0, sizeof(*r));
}

int pulse_mlrows_table(const pulse_mlrows_t *r, pulse_ml_table_t **out, char *err, size_t errlen)
{
    pulse_ml_column_t *cols = pulse_xmalloc((r->n_cols + 1) * sizeof(*cols));
    size_t k = 0;
    for (size_t j = 0; j < r->n_cols; j++) {
        size_t present = 0;
        for (size_t i = 0; i < r->n_rows; i++)
            present += (size_t)is_present(r, j, i);
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
            if (j < 0 || !is_present(r, (size_t)j, i))
                continue;
            if (ft->categorical) {
                const char *v = r->text[j] ? r->text[j][i] : NULL;
                char tmp[40];
                if (v == NULL) { /* a number where the model learnt categories */
                    snprintf(tmp, sizeof(tmp), "%.15g", r->num[j][i]);
                    v = tmp;
                }
                char **hit = bsearch(v, ft->levels, (size_t)ft->n_levels, sizeof(char *), cmp_level);
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
