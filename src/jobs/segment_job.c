/* The "segment" job (see jobs.h): the tenant's rows loaded with COPY (analytics/pgload), its
 * customer ids and what the stored rows carry over read with one binary COPY, the pipeline
 * (analytics/segment), and the results written as a replacement of the tenant's rows
 * (jobs/derived_write: binary COPY into a fresh table swapped in), all in one transaction: a run
 * fails or is cancelled as a whole, and readers see the previous run until it commits. */
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/pgload.h"
#include "analytics/segment.h"
#include "core/buf.h"
#include "db/copybin.h"
#include "jobs/analytics_job.h"
#include "jobs/jobrun.h"
#include "jobs/churn_scores.h"
#include "jobs/derived_write.h"
#include "jobs/id_index.h"
#include "jobs/jobs.h"

/* --- the tenant's customers and what a run carries over, by store customer --- */

static uint64_t hash_str(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* The store's customer refs by text (open addressing over the store's own strings: slot = index
 * + 1), to find the store customer of each customers row. */
typedef struct ref_index_t {
    uint32_t *slot;
    size_t mask;
} ref_index_t;

static void ref_index_build(ref_index_t *x, const pulse_strtab_t *t)
{
    size_t cap = 1024;
    while (cap < (size_t)t->n * 2)
        cap *= 2;
    x->mask = cap - 1;
    x->slot = calloc(cap, sizeof(uint32_t));
    if (x->slot == NULL)
        abort();
    for (uint32_t i = 0; i < t->n; i++) {
        size_t len;
        const char *s = pulse_strtab_get(t, i, &len);
        size_t h = hash_str(s, len) & x->mask;
        while (x->slot[h])
            h = (h + 1) & x->mask;
        x->slot[h] = i + 1;
    }
}

static uint32_t ref_index_find(const ref_index_t *x, const pulse_strtab_t *t, const char *s, size_t n)
{
    for (size_t h = hash_str(s, n) & x->mask; x->slot[h]; h = (h + 1) & x->mask) {
        size_t len;
        const char *k = pulse_strtab_get(t, x->slot[h] - 1, &len);
        if (len == n && memcmp(k, s, n) == 0)
            return x->slot[h] - 1;
    }
    return UINT32_MAX;
}

/* Per store customer: the customer id (0: no customers row, so no result row) and what the stored
 * row has that this run does not compute (the churn probability a model wrote, the CLV, the cluster
 * label): the replacement keeps them, as the upsert it replaced did. */
typedef struct carried_t {
    int64_t *id;
    int64_t epoch;         /* pulse_derived_epoch, read before the ids */
    float *churn;          /* NaN: none */
    double *clv;           /* NaN: none */
    int16_t *cluster;      /* -1: none */
    uint16_t *cluster_run; /* 1 + index into runs, 0: none */
    unsigned char (*runs)[16];
    size_t nruns, nchurn, nids;
} carried_t;

static void carried_init(carried_t *k, uint32_t n)
{
    size_t m = (size_t)n + 1;
    k->id = calloc(m, sizeof(int64_t));
    k->churn = pulse_xmalloc(m * sizeof(float));
    k->clv = pulse_xmalloc(m * sizeof(double));
    k->cluster = pulse_xmalloc(m * sizeof(int16_t));
    k->cluster_run = calloc(m, sizeof(uint16_t));
    if (k->id == NULL || k->cluster_run == NULL)
        abort();
    for (size_t i = 0; i < m; i++) {
        k->churn[i] = NAN;
        k->clv[i] = NAN;
        k->cluster[i] = -1;
    }
    k->runs = NULL;
    k->nruns = k->nchurn = k->nids = 0;
}

static void carried_free(carried_t *k)
{
    free(k->id);
    free(k->churn);
    free(k->clv);
    free(k->cluster);
    free(k->cluster_run);
    free(k->runs);
}

static uint16_t cluster_run_of(carried_t *k, const unsigned char *uuid)
{
    for (size_t r = 0; r < k->nruns; r++)
        if (memcmp(k->runs[r], uuid, 16) == 0)
            return (uint16_t)(r + 1);
    if (k->nruns == UINT16_MAX)
        return 0;
    k->runs = pulse_xrealloc(k->runs, (k->nruns + 1) * sizeof(*k->runs));
    memcpy(k->runs[k->nruns], uuid, 16);
    return (uint16_t)++k->nruns;
}

typedef struct carried_read_t {
    carried_t *k;
    const ref_index_t *x;
    const pulse_strtab_t *refs;
    pulse_id_index_t rows; /* store customer by customer id, once the ids are read */
    int64_t *churn_at;     /* when the analytics' churn was written (microseconds since 2000), per store customer */
} carried_read_t;

/* One customers row: external_id, id. */
static int carried_customer(void *ud, const unsigned char *const *f, const int32_t *len)
{
    carried_read_t *cr = ud;
    if (len[0] < 0 || len[1] != 8)
        return 0;
    uint32_t i = ref_index_find(cr->x, cr->refs, (const char *)f[0], (size_t)len[0]);
    if (i == UINT32_MAX)
        return 0; /* a customer without transactions or events: no result row, as before */
    cr->k->id[i] = (int64_t)pulse_be64(f[1]);
    cr->k->nids++;
    return 0;
}

/* One analytics row: customer_id, churn_probability, computed_at, clv, cluster, cluster_id. */
static int carried_analytics(void *ud, const unsigned char *const *f, const int32_t *len)
{
    carried_read_t *cr = ud;
    carried_t *k = cr->k;
    long i = len[0] == 8 ? pulse_id_index_find(&cr->rows, (int64_t)pulse_be64(f[0])) : -1;
    if (i < 0)
        return 0;
    if (len[1] == 4 && len[2] == 8) {
        k->churn[i] = pulse_be_float4(f[1]);
        cr->churn_at[i] = (int64_t)pulse_be64(f[2]);
    }
    if (len[3] == 8)
        k->clv[i] = pulse_be_float8(f[3]);
    if (len[4] == 2)
        k->cluster[i] = (int16_t)(f[4][0] << 8 | f[4][1]);
    if (len[5] == 16)
        k->cluster_run[i] = cluster_run_of(k, f[5]);
    return 0;
}

/* One prediction: customer_id, churn_probability, scored_at. It is the customer's churn unless
 * the analytics hold a later one (an uploaded score file): pulse_churn_current() of migration 0009,
 * worked out here. */
static int carried_prediction(void *ud, const unsigned char *const *f, const int32_t *len)
{
    carried_read_t *cr = ud;
    long i = len[0] == 8 ? pulse_id_index_find(&cr->rows, (int64_t)pulse_be64(f[0])) : -1;
    if (i < 0 || len[1] != 4 || len[2] != 8)
        return 0;
    if (isnan(cr->k->churn[i]) || (int64_t)pulse_be64(f[2]) >= cr->churn_at[i])
        cr->k->churn[i] = pulse_be_float4(f[1]);
    return 0;
}

/* Reads the tenant's customers (id by external id) and what their stored rows carry over, as three
 * binary COPYs joined here by customer id: the server's hash join of the three tables took 17-19 s
 * on 3.5 M customers, its three scans about half of that. The bigint id travels to the write (no
 * text join there). The churn carried is the current one (see carried_prediction). */
static int carried_load(PGconn *c, const pulse_txstore_t *st, carried_t *k, char *err, size_t errlen)
{
    uint32_t n = pulse_txstore_ncustomers(st);
    carried_init(k, n);
    k->epoch = pulse_derived_epoch(c);
    ref_index_t x;
    ref_index_build(&x, &st->customers);
    carried_read_t cr = {k, &x, &st->customers, {0}, NULL};
    int rc = pulse_copybin_read(c,
                                "COPY (SELECT external_id, id FROM customers WHERE tenant_id = pulse_current_tenant() "
                                "AND external_id IS NOT NULL) TO STDOUT (FORMAT binary)",
                                2, carried_customer, &cr, "customers", err, errlen);
    free(x.slot);
    if (rc == 0) {
        pulse_id_index_build(&cr.rows, k->id, (size_t)n + 1);
        cr.churn_at = pulse_xmalloc(((size_t)n + 1) * sizeof(int64_t));
        rc = pulse_copybin_read(c,
                                "COPY (SELECT customer_id, churn_probability, computed_at, clv, cluster, cluster_id "
                                "FROM customer_analytics WHERE tenant_id = pulse_current_tenant()) TO STDOUT (FORMAT binary)",
                                6, carried_analytics, &cr, "stored analytics", err, errlen);
    }
    if (rc == 0)
        rc = pulse_copybin_read(c,
                                "COPY (SELECT customer_id, churn_probability, scored_at FROM predictions "
                                "WHERE tenant_id = pulse_current_tenant()) TO STDOUT (FORMAT binary)",
                                3, carried_prediction, &cr, "predictions", err, errlen);
    for (uint32_t i = 0; rc == 0 && i <= n; i++)
        k->nchurn += !isnan(k->churn[i]);
    pulse_id_index_free(&cr.rows);
    free(cr.churn_at);
    return rc;
}

/* --- the result rows --- */

static void put_json_str(pulse_buf_t *b, const char *s)
{
    pulse_buf_putc(b, '"');
    pulse_buf_json_escape(b, s, strlen(s));
    pulse_buf_putc(b, '"');
}

static void put_opt_float4(pulse_derived_t *w, double v)
{
    if (isnan(v))
        pulse_derived_null(w);
    else
        pulse_derived_float4(w, (float)v);
}

static void put_opt_text(pulse_derived_t *w, const char *s)
{
    if (s)
        pulse_derived_text(w, s, strlen(s));
    else
        pulse_derived_null(w);
}

/* The customer's risk signals and recommendations as JSON arrays. */
static void signals_json(const pulse_segment_result_t *r, const pulse_behaviour_t *bh, uint32_t i, pulse_buf_t *sig,
                         pulse_buf_t *rec)
{
    char msg[600], val[96];
    pulse_buf_reset(sig);
    pulse_buf_reset(rec);
    pulse_buf_putc(sig, '[');
    pulse_buf_putc(rec, '[');
    for (size_t s = 0; s < bh->nsignals; s++) {
        if (!(r->signals[i] >> s & 1))
            continue;
        const pulse_signal_t *sg = &bh->signals[s];
        int col = r->sig_col[s];
        double v = r->features[(size_t)col * r->n + i];
        pulse_segment_signal_message(sg, v, r->info[col].unit, msg, sizeof(msg));
        pulse_buf_puts(sig, sig->len > 1 ? ",{\"name\":" : "{\"name\":");
        put_json_str(sig, sg->name);
        pulse_buf_puts(sig, ",\"feature\":");
        put_json_str(sig, sg->feature);
        snprintf(val, sizeof(val), ",\"value\":%.6g,\"threshold\":%.6g,\"message\":", v, sg->threshold);
        pulse_buf_puts(sig, val);
        put_json_str(sig, msg);
        pulse_buf_putc(sig, '}');
        if (sg->recommendation) {
            if (rec->len > 1)
                pulse_buf_putc(rec, ',');
            put_json_str(rec, sg->recommendation);
        }
    }
    pulse_buf_putc(sig, ']');
    pulse_buf_putc(rec, ']');
}

#define SEG_COLUMNS                                                                                                                \
    "customer_id, run_id, recency_days, frequency, monetary, r, f, m, features, segment, segment_score, churn_probability, "       \
    "churn_band, clv, behavior_score, trend, risk_signals, recommendations, cluster, cluster_id"
#define SEG_NCOLUMNS 20

static void write_row(pulse_derived_t *w, const pulse_segment_result_t *r, const pulse_segment_spec_t *spec, const carried_t *k,
                      const unsigned char run[16], uint32_t i, pulse_buf_t *sig, pulse_buf_t *rec)
{
    pulse_derived_row(w, SEG_NCOLUMNS);
    pulse_derived_int8(w, k->id[i]);
    pulse_derived_uuid(w, run);
    int seg = !isnan(r->recency[i]);
    if (seg) {
        pulse_derived_int4(w, (int32_t)lround(r->recency[i]));
        pulse_derived_int4(w, (int32_t)lround(r->frequency[i]));
    } else {
        pulse_derived_null(w);
        pulse_derived_null(w);
    }
    if (isnan(r->monetary[i]))
        pulse_derived_null(w);
    else
        pulse_derived_float8(w, r->monetary[i]);
    if (seg && r->r[i]) {
        pulse_derived_int2(w, (int16_t)r->r[i]);
        pulse_derived_int2(w, (int16_t)r->f[i]);
        pulse_derived_int2(w, (int16_t)r->m[i]);
    } else {
        for (int q = 0; q < 3; q++)
            pulse_derived_null(w);
    }
    pulse_derived_float4_array(w, r->features + i, r->ncols, r->n);
    if (r->segment[i]) {
        put_opt_text(w, spec->table.names[r->segment[i] - 1]);
        put_opt_float4(w, r->segment_score[i]);
    } else {
        pulse_derived_null(w);
        pulse_derived_null(w);
    }
    put_opt_float4(w, k->churn[i]);
    put_opt_text(w, pulse_segment_band_name(r->band[i]));
    if (isnan(k->clv[i]))
        pulse_derived_null(w);
    else
        pulse_derived_float8(w, k->clv[i]);
    put_opt_float4(w, r->behaviour_score[i]);
    put_opt_text(w, pulse_segment_trend_name(r->trend[i]));
    signals_json(r, &spec->behaviour, i, sig, rec);
    pulse_derived_jsonb(w, sig->data, sig->len);
    pulse_derived_jsonb(w, rec->data, rec->len);
    if (k->cluster[i] >= 0)
        pulse_derived_int2(w, k->cluster[i]);
    else
        pulse_derived_null(w);
    if (k->cluster_run[i])
        pulse_derived_uuid(w, k->runs[k->cluster_run[i] - 1]);
    else
        pulse_derived_null(w);
}

/* Writes one row per store customer that is a customer of the tenant, replacing the tenant's rows. */
static int write_results(PGconn *c, const pulse_segment_result_t *r, const pulse_segment_spec_t *spec, const carried_t *k,
                         const char *run_id, pulse_jobrun_t *j, uint64_t *stored, char *err, size_t errlen)
{
    unsigned char run[16];
    if (pulse_derived_parse_uuid(run_id, run) != 0)
        return pulse_fail(err, errlen, "the run id '%s' is not a uuid", run_id);
    pulse_derived_t w;
    if (pulse_derived_open(&w, c, "customer_analytics", SEG_COLUMNS, k->epoch, err, errlen) != 0)
        return -1;
    pulse_buf_t sig = PULSE_BUF_INIT, rec = PULSE_BUF_INIT;
    int rc = 0;
    for (uint32_t i = 0; i < r->n && rc == 0; i++) {
        if (k->id[i] == 0)
            continue;
        write_row(&w, r, spec, k, run, i, &sig, &rec);
        rc = pulse_derived_flush(&w, 0, err, errlen);
        if (rc == 0 && (i & 0xffff) == 0 && pulse_jobrun_step(j, "writing", 70 + 20.0 * i / (r->n ? r->n : 1), i, 0) != 0)
            rc = 1;
    }
    pulse_buf_free(&sig);
    pulse_buf_free(&rec);
    if (rc != 0) {
        pulse_derived_abort(&w);
        return rc;
    }
    return pulse_derived_commit_rows(&w, 0, stored, err, errlen);
}

static void day_to_date(int32_t day, char out[32])
{
    /* civil_from_days (H. Hinnant) */
    int32_t z = day + 719468;
    int32_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int32_t y = (int32_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    snprintf(out, 32, "%04d-%02u-%02u", (int)(y + (m <= 2)), m, d);
}

static int parse_date(const char *s, int32_t *day)
{
    int y, m, d;
    char tail;
    if (s == NULL || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || m < 1 || m > 12 || d < 1 || d > 31)
        return -1;
    *day = pulse_txstore_days_from_civil(y, (unsigned)m, (unsigned)d);
    return 0;
}

typedef struct load_ctx_t {
    pulse_jobrun_t *j;
} load_ctx_t;

static int on_rows(void *ud, uint64_t rows)
{
    load_ctx_t *c = ud;
    return pulse_jobrun_step(c->j, "loading rows", 5, rows, 0);
}

/* --- an uploaded churn-score file (params.churn_scores: {file, id_column, score_column}) --- */

typedef struct uploaded_scores_t {
    int64_t rows;     /* scores in the file */
    uint32_t matched; /* of the segmented customers, how many the file scored */
    uint32_t scored;  /* distinct customer ids in the file */
} uploaded_scores_t;

typedef struct uploaded_read_t {
    uploaded_scores_t *u;
    carried_t *k;
    ref_index_t x;
    const pulse_strtab_t *refs;
    unsigned char *seen;       /* per store customer: the file scored them */
    pulse_txstore_t unmatched; /* ids the store does not have, each once (in its customers table) */
} uploaded_read_t;

/* One score of the file: it replaces the stored churn probability of that store customer. */
static int put_uploaded(void *ud, const char *ref, size_t len, float p)
{
    uploaded_read_t *ur = ud;
    uint32_t i = ref_index_find(&ur->x, ur->refs, ref, len);
    if (i == UINT32_MAX) {
        uint32_t before = ur->unmatched.customers.n;
        pulse_strtab_intern(&ur->unmatched.customers, ref, len);
        ur->u->scored += ur->unmatched.customers.n != before;
        return 0;
    }
    if (!ur->seen[i]) {
        ur->seen[i] = 1;
        ur->u->matched++;
        ur->u->scored++;
        if (isnan(ur->k->churn[i]))
            ur->k->nchurn++;
    }
    ur->k->churn[i] = p;
    return 0;
}

/* Reads the upload the route stored (if any) over the carried churn probabilities. Returns 0, or
 * -1 with err (a bad file fails the job). */
static int read_uploaded_scores(lua_State *L, int params, const pulse_txstore_t *st, carried_t *k, uploaded_scores_t *u, char *err,
                                size_t errlen)
{
    u->rows = -1;
    lua_getfield(L, params, "churn_scores");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    lua_getfield(L, -1, "file");
    lua_getfield(L, -2, "id_column");
    lua_getfield(L, -3, "score_column");
    const char *file = lua_tostring(L, -3), *id = lua_tostring(L, -2), *score = lua_tostring(L, -1);
    int rc = 0;
    if (file == NULL || id == NULL || score == NULL) {
        snprintf(err, errlen, "churn_scores: needs file, id_column and score_column");
        rc = -1;
    } else {
        uploaded_read_t ur;
        memset(&ur, 0, sizeof(ur));
        ur.u = u, ur.k = k, ur.refs = &st->customers;
        ref_index_build(&ur.x, &st->customers);
        ur.seen = calloc((size_t)st->customers.n + 1, 1);
        if (ur.seen == NULL)
            abort();
        pulse_txstore_init(&ur.unmatched);
        u->rows = pulse_churn_scores_read(file, id, score, put_uploaded, &ur, err, errlen);
        rc = u->rows < 0 ? -1 : 0;
        pulse_txstore_free(&ur.unmatched);
        free(ur.seen);
        free(ur.x.slot);
    }
    lua_pop(L, 4);
    return rc;
}

/* The upload serves one run: removed once the job has ended, kept when it goes back to the queue. */
static void forget_uploaded_scores(lua_State *L, const pulse_job_outcome_t *out)
{
    if (strcmp(out->state, "queued") == 0 || !lua_istable(L, 1))
        return;
    lua_getfield(L, 1, "churn_scores");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "file");
        if (lua_type(L, -1) == LUA_TSTRING)
            remove(lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static void rollback(PGconn *c)
{
    PGresult *x = PQexec(c, "ROLLBACK");
    PQclear(x);
}

int pulse_segment_job_run(const pulse_config_t *cfg, PGconn *ctl, PGconn *work, const char *job_id, const char *tenant_id,
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
    pulse_segment_spec_t *spec = pulse_xmalloc(sizeof(*spec));
    int32_t as_of = 0;
    if (pulse_ajob_params(L, params_json, err, sizeof(err)) != 0) {
        pulse_jobrun_finish(&j, out, "failed", "bad_params", err, NULL, NULL);
        goto out_lua;
    }
    int p = lua_gettop(L);
    lua_getfield(L, p, "segments");
    lua_getfield(L, p, "behaviour");
    if (pulse_segment_spec_from_lua(L, p + 1, lua_istable(L, p + 2) ? p + 2 : 0, spec, err, sizeof(err)) != 0) {
        pulse_jobrun_finish(&j, out, "failed", "bad_params", err, NULL, NULL);
        goto out_lua;
    }
    lua_getfield(L, p, "as_of");
    if (lua_type(L, -1) == LUA_TSTRING && parse_date(lua_tostring(L, -1), &as_of) != 0) {
        snprintf(err, sizeof(err), "as_of: not a date (YYYY-MM-DD): '%s'", lua_tostring(L, -1));
        pulse_jobrun_finish(&j, out, "failed", "bad_params", err, NULL, NULL);
        goto out_lua;
    }
    pulse_job_beat_t *beat = pulse_job_beat_start(cfg, ctl, job_id, tenant_id);
    pulse_jobrun_step(&j, "loading rows", 0, 0, 1);

    double t0 = pulse_jobrun_now();
    pulse_txstore_t st;
    pulse_txstore_init(&st);
    pulse_segment_result_t res;
    memset(&res, 0, sizeof(res));
    carried_t carried;
    memset(&carried, 0, sizeof(carried));
    uploaded_scores_t uploaded = {-1, 0, 0};
    pulse_buf_t result = PULSE_BUF_INIT;
    const char *state = "failed", *code = "database";
    pulse_pgload_stats_t ls;
    load_ctx_t lc = {&j};
    if (pulse_ajob_begin(work, tenant_id, err, sizeof(err)) != 0)
        goto end;
    int rc = pulse_pgload_tenant(work, tenant_id, &st, on_rows, &lc, &ls, err, sizeof(err));
    if (rc != 0) {
        rollback(work);
        if (rc > 0)
            goto interrupted;
        goto end;
    }
    if (ls.transactions == 0 && ls.events == 0) {
        rollback(work);
        code = "nothing_to_segment";
        snprintf(err, sizeof(err), "nothing to segment: import transactions or events first");
        goto end;
    }
    pulse_txstore_finish(&st);
    /* the customer ids, and what the stored rows carry over (churn probabilities a model wrote
     * survive re-segmentation) */
    if (carried_load(work, &st, &carried, err, sizeof(err)) != 0) {
        rollback(work);
        goto end;
    }
    /* The reads end here: a transaction that read customer_analytics or predictions holds a lock
     * that every tenant's swap must wait for (ACCESS EXCLUSIVE on the shared parent), so it must not
     * stay open through the computation, nor through parsing an uploaded file. The write below is a
     * transaction of its own, whole or not at all. */
    rollback(work);
    if (read_uploaded_scores(L, p, &st, &carried, &uploaded, err, sizeof(err)) != 0) {
        code = "bad_churn_scores";
        goto end;
    }
    double t1 = pulse_jobrun_now();
    if (pulse_jobrun_step(&j, "computing", 40, ls.transactions + ls.events, 1) != 0) {
        rollback(work);
        goto interrupted;
    }
    pulse_segment_opts_t so;
    memset(&so, 0, sizeof(so));
    so.as_of = as_of;
    so.table = &spec->table;
    so.behaviour = &spec->behaviour;
    so.churn = carried.nchurn > 0 ? carried.churn : NULL;
    so.keep_features = 1;
    if (pulse_segment_run(&st, &so, &res, err, sizeof(err)) != 0) {
        rollback(work);
        code = "bad_rule";
        goto end;
    }
    double t2 = pulse_jobrun_now();
    if (pulse_jobrun_step(&j, "writing", 70, ls.transactions + ls.events, 1) != 0) {
        rollback(work);
        goto interrupted;
    }

    /* the run row first: its id goes on every customer row */
    if (pulse_ajob_begin(work, tenant_id, err, sizeof(err)) != 0)
        goto end;
    char as_of_s[32], ntx[32], nev[32], ver[32];
    day_to_date(res.as_of, as_of_s);
    snprintf(ntx, sizeof(ntx), "%llu", (unsigned long long)ls.transactions);
    snprintf(nev, sizeof(nev), "%llu", (unsigned long long)ls.events);
    snprintf(ver, sizeof(ver), "%d", spec->table.version);
    pulse_buf_t names = PULSE_BUF_INIT, info = PULSE_BUF_INIT;
    pulse_buf_putc(&names, '{');
    pulse_buf_putc(&info, '[');
    for (size_t k = 0; k < res.ncols; k++) {
        pulse_buf_printf(&names, "%s\"%s\"", k ? "," : "", res.info[k].name);
        pulse_buf_printf(&info, "%s{\"name\":\"", k ? "," : "");
        pulse_buf_json_escape(&info, res.info[k].name, strlen(res.info[k].name));
        pulse_buf_puts(&info, "\",\"description\":\"");
        const char *d = res.info[k].description ? res.info[k].description : "";
        pulse_buf_json_escape(&info, d, strlen(d));
        pulse_buf_puts(&info, "\",\"unit\":\"");
        const char *u = res.info[k].unit ? res.info[k].unit : "";
        pulse_buf_json_escape(&info, u, strlen(u));
        pulse_buf_puts(&info, "\"}");
    }
    pulse_buf_putc(&names, '}');
    pulse_buf_putc(&info, ']');
    const char *rp[] = {tenant_id, job_id, as_of_s, ntx, nev, names.data, info.data, ver};
    PGresult *x =
        pulse_ajob_exec(work,
                        "INSERT INTO analytics_runs (tenant_id, job_id, as_of, transactions, events, feature_names, feature_info, "
                        "segments_rule, snapshot) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, "
                        "jsonb_build_object('transactions', $4::bigint, 'events', $5::bigint, 'last_import_id', "
                        "(SELECT id FROM imports WHERE state = 'done' ORDER BY finished_at DESC NULLS LAST LIMIT 1))) RETURNING id",
                        8, rp, err, sizeof(err));
    pulse_buf_free(&names);
    pulse_buf_free(&info);
    if (x == NULL) {
        rollback(work);
        goto end;
    }
    char run_id[40];
    snprintf(run_id, sizeof(run_id), "%s", PQgetvalue(x, 0, 0));
    PQclear(x);
    uint64_t stored = 0;
    rc = write_results(work, &res, spec, &carried, run_id, &j, &stored, err, sizeof(err));
    if (rc != 0) {
        rollback(work);
        if (rc > 0)
            goto interrupted;
        goto end;
    }
    char written[32];
    snprintf(written, sizeof(written), "%llu", (unsigned long long)stored);
    const char *up[] = {run_id, written};
    x = pulse_ajob_exec(work, "UPDATE analytics_runs SET customers = $2 WHERE id = $1", 2, up, err, sizeof(err));
    if (x == NULL) {
        rollback(work);
        goto end;
    }
    PQclear(x);
    double t3 = pulse_jobrun_now();
    pulse_buf_printf(&result, "{\"run_id\":\"%s\",\"customers\":%s,\"store_customers\":%u,\"segmented\":%u,\"as_of\":\"%s\",",
                     run_id, up[1], res.n, res.segmented, as_of_s);
    pulse_buf_printf(&result, "\"transactions\":%llu,\"events\":%llu,\"segments\":{", (unsigned long long)ls.transactions,
                     (unsigned long long)ls.events);
    for (size_t k = 0; k < spec->table.nnames; k++) {
        pulse_buf_printf(&result, "%s\"", k ? "," : "");
        pulse_buf_json_escape(&result, spec->table.names[k], strlen(spec->table.names[k]));
        pulse_buf_printf(&result, "\":%zu", res.counts[k + 1]);
    }
    pulse_buf_putc(&result, '}');
    if (uploaded.rows >= 0)
        pulse_buf_printf(&result, ",\"churn_scores\":{\"rows\":%lld,\"matched\":%u,\"not_matched\":%u}", (long long)uploaded.rows,
                         uploaded.matched, uploaded.scored - uploaded.matched);
    pulse_buf_printf(&result, ",\"timings_ms\":{\"load\":%.0f,\"compute\":%.0f,\"write\":%.0f}}", (t1 - t0) * 1e3, (t2 - t1) * 1e3,
                     (t3 - t2) * 1e3);
    char timings[200];
    snprintf(timings, sizeof(timings), "{\"load_ms\":%.0f,\"compute_ms\":%.0f,\"write_ms\":%.0f}", (t1 - t0) * 1e3, (t2 - t1) * 1e3,
             (t3 - t2) * 1e3);
    const char *tp[] = {run_id, timings};
    x = pulse_ajob_exec(work, "UPDATE analytics_runs SET timings = $2::jsonb WHERE id = $1", 2, tp, err, sizeof(err));
    PQclear(x);
    x = PQexec(work, "COMMIT");
    if (PQresultStatus(x) != PGRES_COMMAND_OK) {
        snprintf(err, sizeof(err), "%s", PQerrorMessage(work));
        PQclear(x);
        rollback(work);
        goto end;
    }
    PQclear(x);
    out->rows_read = out->rows_accepted = ls.transactions + ls.events;
    state = "done";
    code = NULL;
    goto end;
interrupted:
    if (j.stopping && !j.cancelled) {
        state = "queued";
        snprintf(err, sizeof(err), "handed back to the queue: the server is stopping");
    } else {
        state = "cancelled";
        code = "cancelled";
        snprintf(err, sizeof(err), "cancelled by a user; nothing was stored");
    }
end:
    pulse_jobrun_finish(&j, out, state, code, code ? err : NULL, strcmp(state, "done") == 0 ? result.data : NULL, NULL);
    pulse_job_beat_stop(beat);
    pulse_buf_free(&result);
    pulse_segment_result_free(&res);
    carried_free(&carried);
    pulse_txstore_free(&st);
out_lua:
    forget_uploaded_scores(L, out);
    lua_close(L);
    free(spec);
    return strcmp(out->state, "done") == 0 ? 0 : -1;
}
