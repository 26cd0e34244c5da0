/* The "segment" job (see jobs.h): the tenant's rows loaded with COPY (analytics/pgload), the churn
 * probabilities a model wrote kept, the pipeline (analytics/segment) and the results written back
 * through a TEMP staging table (COPY FROM is refused on RLS tables) in one transaction: a run
 * fails or is cancelled as a whole, and readers see the previous run until it commits. */
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/pgload.h"
#include "analytics/segment.h"
#include "core/buf.h"
#include "jobs/analytics_job.h"
#include "jobs/churn_scores.h"
#include "jobs/jobs.h"

/* --- the churn probabilities already stored, by customer ref --- */

typedef struct churn_map_t {
    char **keys;
    float *vals;
    size_t mask, n;
} churn_map_t;

static uint64_t hash_str(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static void churn_put(churn_map_t *m, const char *k, float v)
{
    if ((m->n + 1) * 2 > m->mask + 1) {
        churn_map_t g = {NULL, NULL, m->mask ? m->mask * 2 + 1 : 1023, 0};
        g.keys = calloc(g.mask + 1, sizeof(char *));
        g.vals = pulse_xmalloc((g.mask + 1) * sizeof(float));
        if (g.keys == NULL)
            abort();
        for (size_t i = 0; m->keys && i <= m->mask; i++)
            if (m->keys[i]) {
                size_t h = hash_str(m->keys[i], strlen(m->keys[i])) & g.mask;
                while (g.keys[h])
                    h = (h + 1) & g.mask;
                g.keys[h] = m->keys[i];
                g.vals[h] = m->vals[i];
                g.n++;
            }
        free(m->keys);
        free(m->vals);
        *m = g;
    }
    size_t h = hash_str(k, strlen(k)) & m->mask;
    while (m->keys[h] && strcmp(m->keys[h], k) != 0)
        h = (h + 1) & m->mask;
    if (!m->keys[h]) {
        m->keys[h] = pulse_xstrdup(k);
        m->n++;
    }
    m->vals[h] = v;
}

static float churn_get(const churn_map_t *m, const char *k, size_t n)
{
    if (m->n == 0)
        return NAN;
    size_t h = hash_str(k, n) & m->mask;
    while (m->keys[h]) {
        if (strlen(m->keys[h]) == n && memcmp(m->keys[h], k, n) == 0)
            return m->vals[h];
        h = (h + 1) & m->mask;
    }
    return NAN;
}

static void churn_free(churn_map_t *m)
{
    for (size_t i = 0; m->keys && i <= m->mask; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
}

/* --- COPY text output --- */

/* Appends s as a COPY text field (backslash, tab, newline and CR escaped). */
static void copy_text(pulse_buf_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' || c == '\t' || c == '\n' || c == '\r') {
            pulse_buf_putc(b, '\\');
            c = c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : c;
        }
        pulse_buf_putc(b, c);
    }
}

static void put_float(pulse_buf_t *b, double v, const char *nan_text)
{
    if (isnan(v))
        pulse_buf_puts(b, nan_text);
    else if (isinf(v))
        pulse_buf_puts(b, v > 0 ? "Infinity" : "-Infinity");
    else
        pulse_buf_printf(b, "%.7g", v);
}

/* JSON text of a string, then escaped for COPY. */
static void copy_json_str(pulse_buf_t *b, pulse_buf_t *tmp, const char *s)
{
    pulse_buf_reset(tmp);
    pulse_buf_putc(tmp, '"');
    pulse_buf_json_escape(tmp, s, strlen(s));
    pulse_buf_putc(tmp, '"');
    copy_text(b, tmp->data, tmp->len);
}

static int flush_copy(PGconn *c, pulse_buf_t *b, char *err, size_t errlen)
{
    if (b->len > 0 && PQputCopyData(c, b->data, (int)b->len) != 1)
        return pulse_fail(err, errlen, "writing the results failed: %s", PQerrorMessage(c));
    pulse_buf_reset(b);
    return 0;
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
    pulse_ajob_t *j;
} load_ctx_t;

static int on_rows(void *ud, uint64_t rows)
{
    load_ctx_t *c = ud;
    return pulse_ajob_progress(c->j, "loading rows", 5, rows, 0);
}

/* Writes the staging rows: one per store customer. */
static int write_staging(PGconn *c, const pulse_txstore_t *st, const pulse_segment_result_t *r, const float *churn,
                         const pulse_segment_spec_t *spec, pulse_ajob_t *j, char *err, size_t errlen)
{
    PGresult *x = PQexec(c, "COPY seg_stage FROM STDIN");
    if (PQresultStatus(x) != PGRES_COPY_IN) {
        pulse_fail(err, errlen, "cannot write the results: %s", PQerrorMessage(c));
        PQclear(x);
        return -1;
    }
    PQclear(x);
    pulse_buf_t b = PULSE_BUF_INIT, tmp = PULSE_BUF_INIT;
    const pulse_behaviour_t *bh = &spec->behaviour;
    char msg[600], val[96];
    int rc = 0;
    for (uint32_t i = 0; i < r->n && rc == 0; i++) {
        size_t len;
        const char *ref = pulse_strtab_get(&st->customers, i, &len);
        copy_text(&b, ref, len);
        pulse_buf_putc(&b, '\t');
        int seg = !isnan(r->recency[i]);
        if (seg)
            pulse_buf_printf(&b, "%.0f\t%.0f\t", r->recency[i], r->frequency[i]);
        else
            pulse_buf_puts(&b, "\\N\t\\N\t");
        put_float(&b, r->monetary[i], "\\N");
        if (seg && r->r[i])
            pulse_buf_printf(&b, "\t%u\t%u\t%u\t", r->r[i], r->f[i], r->m[i]);
        else
            pulse_buf_puts(&b, "\t\\N\t\\N\t\\N\t");
        pulse_buf_putc(&b, '{');
        for (size_t k = 0; k < r->ncols; k++) {
            if (k)
                pulse_buf_putc(&b, ',');
            put_float(&b, r->features[k * r->n + i], "NaN");
        }
        pulse_buf_puts(&b, "}\t");
        if (r->segment[i]) {
            const char *name = spec->table.names[r->segment[i] - 1];
            copy_text(&b, name, strlen(name));
            pulse_buf_putc(&b, '\t');
            put_float(&b, r->segment_score[i], "\\N");
        } else {
            pulse_buf_puts(&b, "\\N\t\\N");
        }
        pulse_buf_putc(&b, '\t');
        const char *band = pulse_segment_band_name(r->band[i]);
        pulse_buf_puts(&b, band ? band : "\\N");
        pulse_buf_putc(&b, '\t');
        put_float(&b, churn ? churn[i] : NAN, "\\N");
        pulse_buf_putc(&b, '\t');
        put_float(&b, r->behaviour_score[i], "\\N");
        pulse_buf_putc(&b, '\t');
        const char *trend = pulse_segment_trend_name(r->trend[i]);
        pulse_buf_puts(&b, trend ? trend : "\\N");
        pulse_buf_puts(&b, "\t[");
        int first = 1;
        for (size_t s = 0; s < bh->nsignals; s++) {
            if (!(r->signals[i] >> s & 1))
                continue;
            const pulse_signal_t *sg = &bh->signals[s];
            int col = r->sig_col[s];
            double v = r->features[(size_t)col * r->n + i];
            pulse_segment_signal_message(sg, v, r->info[col].unit, msg, sizeof(msg));
            pulse_buf_puts(&b, first ? "{\"name\":" : ",{\"name\":");
            first = 0;
            copy_json_str(&b, &tmp, sg->name);
            pulse_buf_puts(&b, ",\"feature\":");
            copy_json_str(&b, &tmp, sg->feature);
            snprintf(val, sizeof(val), ",\"value\":%.6g,\"threshold\":%.6g,\"message\":", v, sg->threshold);
            pulse_buf_puts(&b, val);
            copy_json_str(&b, &tmp, msg);
            pulse_buf_putc(&b, '}');
        }
        pulse_buf_puts(&b, "]\t[");
        first = 1;
        for (size_t s = 0; s < bh->nsignals; s++) {
            if (!(r->signals[i] >> s & 1) || bh->signals[s].recommendation == NULL)
                continue;
            if (!first)
                pulse_buf_putc(&b, ',');
            first = 0;
            copy_json_str(&b, &tmp, bh->signals[s].recommendation);
        }
        pulse_buf_puts(&b, "]\n");
        if (b.len > (1u << 20)) {
            rc = flush_copy(c, &b, err, errlen);
            if (rc == 0 && pulse_ajob_progress(j, "writing", 70 + 25.0 * i / (r->n ? r->n : 1), i, 0) != 0)
                rc = 1;
        }
    }
    if (rc == 0)
        rc = flush_copy(c, &b, err, errlen);
    pulse_buf_free(&b);
    pulse_buf_free(&tmp);
    if (PQputCopyEnd(c, rc == 0 ? NULL : "cancelled") != 1 && rc == 0)
        rc = pulse_fail(err, errlen, "writing the results failed: %s", PQerrorMessage(c));
    while ((x = PQgetResult(c)) != NULL) {
        if (PQresultStatus(x) != PGRES_COMMAND_OK && rc == 0)
            rc = pulse_fail(err, errlen, "writing the results failed: %s", PQerrorMessage(c));
        PQclear(x);
    }
    return rc;
}

/* --- an uploaded churn-score file (params.churn_scores: {file, id_column, score_column}) --- */

typedef struct uploaded_scores_t {
    int64_t rows;     /* scores in the file */
    uint32_t matched; /* of the segmented customers, how many the file scored */
} uploaded_scores_t;

static int put_uploaded(void *ud, const char *ref, size_t len, float p)
{
    char key[512];
    if (len >= sizeof(key))
        return 0; /* longer than any stored customer id: it cannot match */
    memcpy(key, ref, len);
    key[len] = '\0';
    churn_put(ud, key, p);
    return 0;
}

/* Reads the upload the route stored (if any) into m. Returns 0, or -1 with err (a bad file fails
 * the job). */
static int read_uploaded_scores(lua_State *L, int params, churn_map_t *m, uploaded_scores_t *u, char *err, size_t errlen)
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
        u->rows = pulse_churn_scores_read(file, id, score, put_uploaded, m, err, errlen);
        rc = u->rows < 0 ? -1 : 0;
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
    pulse_ajob_t j = {cfg, ctl, job_id, tenant_id, stop, observer, ud, pulse_ajob_now(), 0, 0, 0};
    char err[512];
    lua_State *L = luaL_newstate();
    if (L == NULL)
        abort();
    pulse_segment_spec_t *spec = pulse_xmalloc(sizeof(*spec));
    int32_t as_of = 0;
    if (pulse_ajob_params(L, params_json, err, sizeof(err)) != 0) {
        pulse_ajob_finish(&j, out, "failed", "bad_params", err, NULL);
        goto out_lua;
    }
    int p = lua_gettop(L);
    lua_getfield(L, p, "segments");
    lua_getfield(L, p, "behaviour");
    if (pulse_segment_spec_from_lua(L, p + 1, lua_istable(L, p + 2) ? p + 2 : 0, spec, err, sizeof(err)) != 0) {
        pulse_ajob_finish(&j, out, "failed", "bad_params", err, NULL);
        goto out_lua;
    }
    lua_getfield(L, p, "as_of");
    if (lua_type(L, -1) == LUA_TSTRING && parse_date(lua_tostring(L, -1), &as_of) != 0) {
        snprintf(err, sizeof(err), "as_of: not a date (YYYY-MM-DD): '%s'", lua_tostring(L, -1));
        pulse_ajob_finish(&j, out, "failed", "bad_params", err, NULL);
        goto out_lua;
    }
    pulse_job_beat_t *beat = pulse_job_beat_start(cfg, ctl, job_id, tenant_id);
    pulse_ajob_progress(&j, "loading rows", 0, 0, 1);

    double t0 = pulse_ajob_now();
    pulse_txstore_t st;
    pulse_txstore_init(&st);
    pulse_segment_result_t res;
    memset(&res, 0, sizeof(res));
    churn_map_t churn = {NULL, NULL, 0, 0}, uploaded_churn = {NULL, NULL, 0, 0};
    uploaded_scores_t uploaded = {-1, 0};
    float *churn_arr = NULL;
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
    /* churn probabilities a model wrote survive re-segmentation */
    PGresult *x = pulse_ajob_exec(work,
                                  "SELECT c.external_id, ca.churn_probability FROM customer_analytics ca JOIN customers c "
                                  "ON c.id = ca.customer_id WHERE ca.churn_probability IS NOT NULL AND c.external_id IS NOT NULL",
                                  0, NULL, err, sizeof(err));
    if (x == NULL) {
        rollback(work);
        goto end;
    }
    for (int i = 0; i < PQntuples(x); i++)
        churn_put(&churn, PQgetvalue(x, i, 0), (float)strtod(PQgetvalue(x, i, 1), NULL));
    PQclear(x);
    if (read_uploaded_scores(L, p, &uploaded_churn, &uploaded, err, sizeof(err)) != 0) {
        rollback(work);
        code = "bad_churn_scores";
        goto end;
    }
    uint32_t n = pulse_txstore_ncustomers(&st);
    if (churn.n > 0 || uploaded_churn.n > 0) {
        churn_arr = pulse_xmalloc(((size_t)n + 1) * sizeof(float));
        for (uint32_t i = 0; i < n; i++) {
            size_t len;
            const char *ref = pulse_strtab_get(&st.customers, i, &len);
            float v = churn_get(&uploaded_churn, ref, len);
            if (isnan(v))
                v = churn_get(&churn, ref, len);
            else
                uploaded.matched++;
            churn_arr[i] = v;
        }
    }
    double t1 = pulse_ajob_now();
    if (pulse_ajob_progress(&j, "computing", 40, ls.transactions + ls.events, 1) != 0) {
        rollback(work);
        goto interrupted;
    }
    pulse_segment_opts_t so;
    memset(&so, 0, sizeof(so));
    so.as_of = as_of;
    so.table = &spec->table;
    so.behaviour = &spec->behaviour;
    so.churn = churn_arr;
    so.keep_features = 1;
    if (pulse_segment_run(&st, &so, &res, err, sizeof(err)) != 0) {
        rollback(work);
        code = "bad_rule";
        goto end;
    }
    double t2 = pulse_ajob_now();
    if (pulse_ajob_progress(&j, "writing", 70, ls.transactions + ls.events, 1) != 0) {
        rollback(work);
        goto interrupted;
    }

    /* the run row first: its id goes on every customer row */
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
    x = pulse_ajob_exec(work,
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
    x = pulse_ajob_exec(
        work,
        "CREATE TEMP TABLE seg_stage (ref text, recency_days integer, frequency integer, monetary double precision, "
        "r smallint, f smallint, m smallint, features real[], segment text, segment_score real, churn_band text, "
        "churn_probability real, behavior_score real, trend text, risk_signals jsonb, recommendations jsonb) ON COMMIT DROP",
        0, NULL, err, sizeof(err));
    if (x == NULL) {
        rollback(work);
        goto end;
    }
    PQclear(x);
    rc = write_staging(work, &st, &res, churn_arr, spec, &j, err, sizeof(err));
    if (rc != 0) {
        rollback(work);
        if (rc > 0)
            goto interrupted;
        goto end;
    }
    const char *ip[] = {tenant_id, run_id};
    x = pulse_ajob_exec(
        work,
        "INSERT INTO customer_analytics (tenant_id, customer_id, run_id, computed_at, recency_days, frequency, "
        "monetary, r, f, m, features, segment, segment_score, churn_band, churn_probability, behavior_score, trend, "
        "risk_signals, "
        "recommendations) SELECT $1, c.id, $2, now(), s.recency_days, s.frequency, s.monetary, s.r, s.f, s.m, "
        "s.features, s.segment, s.segment_score, s.churn_band, s.churn_probability, s.behavior_score, s.trend, "
        "s.risk_signals, "
        "s.recommendations FROM seg_stage s JOIN customers c ON c.tenant_id = $1 AND c.external_id = s.ref "
        "ON CONFLICT (tenant_id, customer_id) DO UPDATE SET run_id = EXCLUDED.run_id, computed_at = now(), "
        "recency_days = EXCLUDED.recency_days, frequency = EXCLUDED.frequency, monetary = EXCLUDED.monetary, "
        "r = EXCLUDED.r, f = EXCLUDED.f, m = EXCLUDED.m, features = EXCLUDED.features, segment = EXCLUDED.segment, "
        "segment_score = EXCLUDED.segment_score, churn_band = EXCLUDED.churn_band, "
        "churn_probability = EXCLUDED.churn_probability, "
        "behavior_score = EXCLUDED.behavior_score, trend = EXCLUDED.trend, risk_signals = EXCLUDED.risk_signals, "
        "recommendations = EXCLUDED.recommendations",
        2, ip, err, sizeof(err));
    if (x == NULL) {
        rollback(work);
        goto end;
    }
    char written[32]; /* the count outlives x */
    snprintf(written, sizeof(written), "%s", PQcmdTuples(x));
    PQclear(x);
    const char *up[] = {run_id, written};
    x = pulse_ajob_exec(work, "UPDATE analytics_runs SET customers = $2 WHERE id = $1", 2, up, err, sizeof(err));
    if (x == NULL) {
        rollback(work);
        goto end;
    }
    PQclear(x);
    double t3 = pulse_ajob_now();
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
        pulse_buf_printf(&result, ",\"churn_scores\":{\"rows\":%lld,\"matched\":%u,\"not_matched\":%lld}", (long long)uploaded.rows,
                         uploaded.matched, (long long)(uploaded_churn.n - uploaded.matched));
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
    pulse_ajob_finish(&j, out, state, code, code ? err : NULL, strcmp(state, "done") == 0 ? result.data : NULL);
    pulse_job_beat_stop(beat);
    pulse_buf_free(&result);
    pulse_segment_result_free(&res);
    free(churn_arr);
    churn_free(&churn);
    churn_free(&uploaded_churn);
    pulse_txstore_free(&st);
out_lua:
    forget_uploaded_scores(L, out);
    lua_close(L);
    free(spec);
    return strcmp(out->state, "done") == 0 ? 0 : -1;
}
