/* Churn training job (see train_job.h). Two label paths: explicit (customers with a churned label
 * from a customers file's churn column; their attributes plus stored features) and behavioural
 * (transaction tenants without labels, or params "label": "behavioural": the tenant's transactions
 * loaded into memory, labels and features split at a cutoff by ml/churnlabel.c). The version
 * and the activation are written in one transaction so that two concurrent runs cannot both
 * become active (the partial unique index would refuse the second anyway). */
#include "jobs/train_job.h"

#include "core/buf.h"
#include "core/log.h"
#include "analytics/pgload.h"
#include "jobs/analytics_job.h"
#include "jobs/ml_rows.h"
#include "ml/churnlabel.h"
#include "ml/clv.h"
#include "ml/clvsum.h"
#include "ml/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void outcome(pulse_job_outcome_t *out, const char *state, const char *code, const char *msg)
{
    snprintf(out->state, sizeof(out->state), "%s", state);
    snprintf(out->error_code, sizeof(out->error_code), "%s", code ? code : "");
    snprintf(out->error, sizeof(out->error), "%s", msg ? msg : "");
}

static int fail(PGconn *ctl, const char *tenant, const char *job_id, pulse_job_outcome_t *out, const char *code, const char *msg)
{
    outcome(out, "failed", code, msg);
    pulse_mljob_finish(ctl, tenant, job_id, "failed", code, msg, NULL);
    return -1;
}

/* A PostgreSQL text[] literal of the model's feature names. */
static void names_literal(const pulse_ml_model_t *m, pulse_buf_t *b)
{
    pulse_buf_putc(b, '{');
    for (size_t j = 0; j < m->n_features; j++) {
        if (j)
            pulse_buf_putc(b, ',');
        pulse_buf_putc(b, '"');
        for (const char *p = m->features[j].name; *p; p++) {
            if (*p == '"' || *p == '\\')
                pulse_buf_putc(b, '\\');
            pulse_buf_putc(b, *p);
        }
        pulse_buf_putc(b, '"');
    }
    pulse_buf_putc(b, '}');
}

static int exec_ok(PGconn *c, PGresult *r, char *err, size_t errlen)
{
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, errlen, "%s", PQerrorMessage(c));
    return ok;
}

/* Inserts the run as the next version and activates it when asked (or when it is the first).
 * Fills id[40], *version and *active. */
static int store_model(PGconn *c, const char *tenant, const char *kind, const char *job_id, const char *created_by,
                       const char *params, const char *snapshot, const char *features, const char *report, const char *metrics,
                       const unsigned char *bytes, size_t len, const char *algorithm, int activate, char id[40], int *version,
                       int *active, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, "BEGIN");
    int ok = exec_ok(c, r, err, errlen);
    PQclear(r);
    const char *t[] = {tenant};
    if (ok) {
        r = PQexecParams(c, "SELECT set_config('pulse.tenant_id', $1, true)", 1, NULL, t, NULL, NULL, 0);
        ok = exec_ok(c, r, err, errlen);
        PQclear(r);
    }
    if (ok) {
        /* serialises concurrent trainings of one tenant: versions stay dense and unique */
        r = PQexecParams(c, "SELECT pg_advisory_xact_lock(hashtext('pulse.models.' || $1))", 1, NULL, t, NULL, NULL, 0);
        ok = exec_ok(c, r, err, errlen);
        PQclear(r);
    }
    if (ok) {
        const char *p[] = {
            tenant, algorithm, params, snapshot, features, report, (const char *)bytes, job_id, created_by, activate ? "t" : "f",
            kind,   metrics};
        int lens[12] = {0, 0, 0, 0, 0, 0, (int)len, 0, 0, 0, 0, 0};
        int fmts[12] = {0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0};
        r = PQexecParams(c,
                         "INSERT INTO models (tenant_id, kind, algorithm, version, active, params, data_snapshot, features, "
                         "metrics, report, model, job_id, created_by) "
                         "SELECT $1, $11, $2, coalesce((SELECT max(version) FROM models WHERE tenant_id = $1 AND kind = "
                         "$11), 0) + 1, false, $3::jsonb, $4::jsonb, $5::text[], "
                         "coalesce($12::jsonb, $6::jsonb -> 'models' -> ($6::jsonb ->> 'chosen') -> 'metrics', '{}'), $6::jsonb, "
                         "$7, $8, $9 RETURNING id, version, (SELECT (SELECT count(*) FROM models WHERE tenant_id = $1 AND kind = "
                         "$11 AND active) = 0 OR $10 = 't')",
                         12, NULL, p, lens, fmts, 0);
        ok = exec_ok(c, r, err, errlen) && PQntuples(r) == 1;
        if (ok) {
            snprintf(id, 40, "%s", PQgetvalue(r, 0, 0));
            *version = atoi(PQgetvalue(r, 0, 1));
            *active = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
        }
        PQclear(r);
    }
    if (ok && *active) {
        const char *p[] = {tenant, id, kind};
        r = PQexecParams(c, "UPDATE models SET active = false WHERE tenant_id = $1 AND kind = $3 AND active AND id <> $2", 3, NULL,
                         p, NULL, NULL, 0);
        ok = exec_ok(c, r, err, errlen);
        PQclear(r);
        if (ok) {
            r = PQexecParams(c, "UPDATE models SET active = true WHERE tenant_id = $1 AND id = $2", 2, NULL, p, NULL, NULL, 0);
            ok = exec_ok(c, r, err, errlen);
            PQclear(r);
        }
    }
    r = PQexec(c, ok ? "COMMIT" : "ROLLBACK");
    if (ok)
        ok = exec_ok(c, r, err, errlen);
    PQclear(r);
    return ok ? 0 : -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double param_num(PGconn *ctl, const char *params, const char *path, double dflt)
{
    char *v = pulse_mljob_param(ctl, params, path);
    double x = v ? strtod(v, NULL) : dflt;
    free(v);
    return x;
}

/* The tenant's transactions in a finished store (read in a tenant transaction that is rolled back:
 * nothing is written). *ntx: transactions read. -1 with err (st is freed then). */
static int load_store(PGconn *work, const char *tenant, pulse_txstore_t *st, uint64_t *ntx, char *err, size_t errlen)
{
    pulse_txstore_init(st);
    if (pulse_ajob_begin(work, tenant, err, errlen) != 0)
        return -1;
    pulse_pgload_stats_t ls;
    int rc = pulse_pgload_tenant(work, tenant, st, NULL, NULL, &ls, err, errlen);
    PGresult *r = PQexec(work, "ROLLBACK");
    PQclear(r);
    if (rc != 0) {
        pulse_txstore_free(st);
        return -1;
    }
    *ntx = ls.transactions;
    pulse_txstore_finish(st);
    return 0;
}

/* The user who queued the job (NULL for the CLI's jobs); malloc'd. */
static char *job_creator(PGconn *ctl, const char *tenant, const char *job_id)
{
    char err[256];
    char *created_by = NULL;
    const char *p[] = {job_id};
    PGresult *r = pulse_jobs_tenant_exec(ctl, tenant, "SELECT created_by FROM jobs WHERE id = $1", 1, p, err, sizeof(err));
    if (r != NULL && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        created_by = pulse_xstrdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return created_by;
}

/* The behavioural path's table: the tenant's transactions (read in a tenant transaction that is
 * rolled back: nothing is written) turned into cutoff features and window labels. -1 with *code. */
static int behavioural_table(PGconn *work, const char *tenant, int32_t horizon, pulse_ml_table_t **t, pulse_churnlabel_info_t *info,
                             const char **code, char *err, size_t errlen)
{
    *code = "database";
    pulse_txstore_t st;
    uint64_t ntx = 0;
    if (load_store(work, tenant, &st, &ntx, err, errlen) != 0)
        return -1;
    if (ntx == 0) {
        pulse_txstore_free(&st);
        *code = "no_labels";
        return pulse_fail(err, errlen,
                          "no customer has a churn label and there are no transactions to derive one from: upload a "
                          "customers file with a churn column (for example Churn with Yes/No), or transactions, then train again");
    }
    int rc = pulse_churnlabel_table(&st, horizon, t, info, err, errlen);
    pulse_txstore_free(&st);
    if (rc != 0)
        *code = strstr(err, "history") ? "insufficient_history" : "bad_data";
    return rc;
}

static void date_of(int32_t day, char out[16])
{
    time_t s = (time_t)day * 86400;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

/* COPY text format of one field: backslash, tab and line breaks escaped. */
static void copy_field(pulse_buf_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '\\' || ch == '\t' || ch == '\n' || ch == '\r') {
            pulse_buf_putc(b, '\\');
            ch = ch == '\t' ? 't' : ch == '\n' ? 'n' : ch == '\r' ? 'r' : ch;
        }
        pulse_buf_putc(b, ch);
    }
}

/* Writes each customer's CLV (COPY data: external id, clv or \N) to customer_analytics and to the
 * predictions already there, in one tenant transaction. *written: customer_analytics rows. */
static int write_clv(PGconn *c, const char *tenant, const pulse_buf_t *copy, long *written, char *err, size_t errlen)
{
    const char *p[] = {tenant};
    int ok = pulse_ajob_begin(c, tenant, err, errlen) == 0;
    if (!ok)
        return -1;
    PGresult *r = PQexec(c, "CREATE TEMP TABLE pulse_clv_stage (ref text, clv double precision) ON COMMIT DROP");
    ok = exec_ok(c, r, err, errlen);
    PQclear(r);
    if (ok) {
        r = PQexec(c, "COPY pulse_clv_stage FROM STDIN");
        ok = PQresultStatus(r) == PGRES_COPY_IN;
        PQclear(r);
        ok = ok && PQputCopyData(c, copy->data ? copy->data : "", (int)copy->len) == 1 && PQputCopyEnd(c, NULL) == 1;
        while ((r = PQgetResult(c)) != NULL) {
            ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
            PQclear(r);
        }
        if (!ok)
            snprintf(err, errlen, "%s", PQerrorMessage(c));
    }
    if (ok) {
        r = PQexecParams(c,
                         "UPDATE customer_analytics a SET clv = s.clv FROM pulse_clv_stage s JOIN customers c ON c.tenant_id = $1 "
                         "AND c.external_id = s.ref WHERE a.tenant_id = $1 AND a.customer_id = c.id",
                         1, NULL, p, NULL, NULL, 0);
        ok = exec_ok(c, r, err, errlen);
        if (ok)
            *written = atol(PQcmdTuples(r));
        PQclear(r);
    }
    if (ok) {
        r = PQexecParams(c,
                         "UPDATE predictions x SET clv = s.clv FROM pulse_clv_stage s JOIN customers c ON c.tenant_id = $1 "
                         "AND c.external_id = s.ref WHERE x.tenant_id = $1 AND x.customer_id = c.id",
                         1, NULL, p, NULL, NULL, 0);
        ok = exec_ok(c, r, err, errlen);
        PQclear(r);
    }
    r = PQexec(c, ok ? "COMMIT" : "ROLLBACK");
    if (ok)
        ok = exec_ok(c, r, err, errlen);
    PQclear(r);
    return ok ? 0 : -1;
}

/* The lifetime-value path (params "kind": "clv"): BG/NBD and Gamma-Gamma fitted on the tenant's
 * transactions in days, stored as a 'clv' model (the fitted parameters are its metrics and, as JSON,
 * its bytes), and when active every customer's CLV written. */
static int run_clv(PGconn *ctl, PGconn *work, const char *job_id, const char *tenant_id, const char *params_json,
                   pulse_job_outcome_t *out)
{
    double t0 = now_s();
    char err[512];
    pulse_mljob_progress(ctl, tenant_id, job_id, "reading transactions", 5, 0);
    pulse_txstore_t st;
    uint64_t ntx = 0;
    if (load_store(work, tenant_id, &st, &ntx, err, sizeof(err)) != 0)
        return fail(ctl, tenant_id, job_id, out, "database", err);
    if (ntx == 0) {
        pulse_txstore_free(&st);
        return fail(ctl, tenant_id, job_id, out, "no_transactions",
                    "lifetime-value models are fitted on transactions: import a transactions file first");
    }
    pulse_clvsum_t sum;
    pulse_clvsum_build(&st, &sum);
    out->rows_read = sum.n;
    int months = (int)param_num(ctl, params_json, "{clv_months}", 12);
    double discount = param_num(ctl, params_json, "{discount}", 0.01);
    char *act = pulse_mljob_param(ctl, params_json, "{activate}");
    int activate = act != NULL && strcmp(act, "true") == 0;
    free(act);
    pulse_mljob_progress(ctl, tenant_id, job_id, "fitting", 30, sum.n);
    double t1 = now_s();
    pulse_bgnbd_t bg;
    pulse_gamma_gamma_t gg;
    int rc = -1;
    const char *code = "requirements";
    /* Gamma-Gamma needs a positive mean spend: a repeat customer who spent nothing counts as one-off */
    double *gx = pulse_xmalloc((sum.n + 1) * sizeof(double));
    size_t repeat = 0;
    for (size_t i = 0; i < sum.n; i++) {
        gx[i] = sum.zbar[i] > 0 ? sum.x[i] : 0;
        repeat += gx[i] > 0;
    }
    if (months < 1 || months > 120 || !(discount >= 0 && discount < 1))
        snprintf(err, sizeof(err), "clv_months must be 1 to 120 and discount in [0, 1)"), code = "bad_params";
    else if (sum.n < 4 || repeat < 3)
        snprintf(err, sizeof(err),
                 "lifetime-value models need at least 4 customers with a purchase and 3 with repeat purchases; there are %zu "
                 "and %zu",
                 sum.n, repeat);
    else if (pulse_clv_bgnbd_fit(sum.x, sum.t_x, sum.T, sum.n, &bg, err, sizeof(err)) == 0 &&
             pulse_clv_gamma_gamma_fit(gx, sum.zbar, sum.n, &gg, err, sizeof(err)) == 0)
        rc = 0;
    double fit_s = now_s() - t1;
    if (rc != 0) {
        free(gx);
        pulse_clvsum_free(&sum);
        pulse_txstore_free(&st);
        return fail(ctl, tenant_id, job_id, out, code, err);
    }
    pulse_buf_t copy = PULSE_BUF_INIT;
    double total = 0;
    size_t valued = 0;
    for (size_t i = 0; i < sum.n; i++) {
        double v = pulse_clv_value(&bg, &gg, sum.x[i], sum.t_x[i], sum.T[i], gx[i] > 0 ? sum.zbar[i] : 0, months, discount, 30.0);
        size_t len;
        const char *ref = pulse_strtab_get(&st.customers, sum.customer[i], &len);
        copy_field(&copy, ref, len);
        if (isfinite(v)) {
            pulse_buf_printf(&copy, "\t%.6f\n", v);
            total += v, valued++;
        } else
            pulse_buf_puts(&copy, "\t\\N\n");
    }
    pulse_buf_t metrics = PULSE_BUF_INIT, params = PULSE_BUF_INIT, snap = PULSE_BUF_INIT;
    pulse_buf_printf(
        &metrics,
        "{\"r\":%.9g,\"alpha\":%.9g,\"a\":%.9g,\"b\":%.9g,\"p\":%.9g,\"q\":%.9g,\"gamma\":%.9g,\"log_likelihood\":%.9g,"
        "\"gamma_gamma_log_likelihood\":%.9g,\"time_unit\":\"day\",\"customers\":%zu,\"repeat_customers\":%zu,"
        "\"mean_clv\":%.6g}",
        bg.r, bg.alpha, bg.a, bg.b, gg.p, gg.q, gg.gamma, bg.log_likelihood, gg.log_likelihood, sum.n, repeat,
        valued ? total / (double)valued : 0.0);
    pulse_buf_printf(&params, "{\"kind\":\"clv\",\"clv_months\":%d,\"discount\":%g,\"units_per_month\":30,\"activate\":%s}", months,
                     discount, activate ? "true" : "false");
    char d1[16];
    date_of(sum.end_day - 1, d1);
    pulse_buf_printf(&snap, "{\"customers\":%zu,\"transactions\":%llu,\"data_to\":\"%s\",\"fit_seconds\":%.4f}", sum.n,
                     (unsigned long long)ntx, d1, fit_s);
    char *created_by = job_creator(ctl, tenant_id, job_id);
    char id[40] = "";
    int version = 0, active = 0;
    long written = 0;
    pulse_mljob_progress(ctl, tenant_id, job_id, "storing the model", 80, sum.n);
    rc = store_model(work, tenant_id, "clv", job_id, created_by, params.data, snap.data, "{x,t_x,T,zbar}", metrics.data,
                     metrics.data, (const unsigned char *)metrics.data, metrics.len, "bgnbd", activate, id, &version, &active, err,
                     sizeof(err));
    free(created_by);
    if (rc == 0 && active)
        rc = write_clv(work, tenant_id, &copy, &written, err, sizeof(err));
    if (rc == 0) {
        pulse_buf_t result = PULSE_BUF_INIT;
        pulse_buf_printf(&result,
                         "{\"model_id\":\"%s\",\"version\":%d,\"active\":%s,\"algorithm\":\"bgnbd\",\"kind\":\"clv\",\"rows\":%zu,"
                         "\"clv_written\":%ld,\"fit_seconds\":%.4f,\"seconds\":%.4f,\"metrics\":%s}",
                         id, version, active ? "true" : "false", sum.n, written, fit_s, now_s() - t0, metrics.data);
        outcome(out, "done", NULL, NULL);
        out->rows_accepted = sum.n;
        pulse_mljob_finish(ctl, tenant_id, job_id, "done", NULL, NULL, result.data);
        pulse_log(PULSE_LOG_INFO, "jobs.train", "job %s: clv model v%d on %zu customers (r %.3g alpha %.3g a %.3g b %.3g), %.3f s",
                  job_id, version, sum.n, bg.r, bg.alpha, bg.a, bg.b, fit_s);
        pulse_buf_free(&result);
    }
    pulse_buf_free(&copy), pulse_buf_free(&metrics), pulse_buf_free(&params), pulse_buf_free(&snap);
    free(gx);
    pulse_clvsum_free(&sum);
    pulse_txstore_free(&st);
    return rc == 0 ? 0 : fail(ctl, tenant_id, job_id, out, "database", err);
}

int pulse_train_job_run(const pulse_config_t *cfg, PGconn *ctl, PGconn *work, const char *job_id, const char *tenant_id,
                        const char *params_json, pulse_job_outcome_t *out)
{
    (void)cfg;
    memset(out, 0, sizeof(*out));
    char *kind = pulse_mljob_param(ctl, params_json, "{kind}");
    int is_clv = kind != NULL && strcmp(kind, "clv") == 0;
    free(kind);
    if (is_clv)
        return run_clv(ctl, work, job_id, tenant_id, params_json, out);
    double t0 = now_s();
    char err[512];
    char *label_mode = pulse_mljob_param(ctl, params_json, "{label}");
    int behavioural = label_mode != NULL && strcmp(label_mode, "behavioural") == 0;
    free(label_mode);
    int32_t horizon = (int32_t)param_num(ctl, params_json, "{horizon_days}", 90);
    pulse_churnlabel_info_t info;
    memset(&info, 0, sizeof(info));
    pulse_ml_table_t *t = NULL;
    if (!behavioural) {
        pulse_mljob_progress(ctl, tenant_id, job_id, "reading customers", 5, 0);
        pulse_mlrows_t rows;
        if (pulse_mlrows_load(work, tenant_id, 1, NULL, 0, &rows, err, sizeof(err)) != 0)
            return fail(ctl, tenant_id, job_id, out, "database", err);
        out->rows_read = rows.n_rows;
        /* no explicit label: a transaction tenant gets behavioural ones */
        behavioural = rows.n_rows == 0;
        if (!behavioural && pulse_mlrows_table(&rows, &t, err, sizeof(err)) != 0) {
            pulse_mlrows_free(&rows);
            return fail(ctl, tenant_id, job_id, out, "bad_data", err);
        }
        pulse_mlrows_free(&rows);
    }
    if (behavioural) {
        pulse_mljob_progress(ctl, tenant_id, job_id, "reading transactions", 5, 0);
        const char *code;
        if (behavioural_table(work, tenant_id, horizon, &t, &info, &code, err, sizeof(err)) != 0)
            return fail(ctl, tenant_id, job_id, out, code, err);
        free(info.customer); /* the rows' owners are not needed: the model is stored, not the scores */
        info.customer = NULL;
        out->rows_read = info.n_customers;
    }
    double read_s = now_s() - t0;

    pulse_ml_train_options_t o;
    pulse_ml_train_options_init(&o);
    o.seed = (uint64_t)param_num(ctl, params_json, "{seed}", 42);
    o.test_fraction = param_num(ctl, params_json, "{test_fraction}", o.test_fraction);
    o.valid_fraction = param_num(ctl, params_json, "{valid_fraction}", o.valid_fraction);
    char *act = pulse_mljob_param(ctl, params_json, "{activate}");
    int activate = act != NULL && strcmp(act, "true") == 0;
    free(act);
    if (pulse_mljob_progress(ctl, tenant_id, job_id, "training", 20, t->data.n_rows)) {
        pulse_ml_table_free(t);
        outcome(out, "cancelled", "cancelled", "cancelled by a user; nothing was stored");
        pulse_mljob_finish(ctl, tenant_id, job_id, "cancelled", "cancelled", out->error, NULL);
        return -1;
    }
    pulse_ml_train_result_t res;
    memset(&res, 0, sizeof(res));
    double t1 = now_s();
    if (pulse_ml_train_churn(t, &o, &res, err, sizeof(err)) != 0) {
        pulse_ml_table_free(t);
        return fail(ctl, tenant_id, job_id, out, "requirements", err);
    }
    double train_s = now_s() - t1;
    pulse_mljob_progress(ctl, tenant_id, job_id, "storing the model", 90, t->data.n_rows);

    unsigned char *bytes = NULL;
    size_t len = 0;
    pulse_ml_model_save(res.model, &bytes, &len);
    pulse_buf_t params = PULSE_BUF_INIT, snap = PULSE_BUF_INIT, feats = PULSE_BUF_INIT;
    char *dtype = pulse_mljob_param(ctl, params_json, "{dataset_type}");
    pulse_buf_printf(&params, "{\"seed\":%llu,\"test_fraction\":%g,\"valid_fraction\":%g,\"activate\":%s,\"dataset_type\":",
                     (unsigned long long)o.seed, o.test_fraction, o.valid_fraction, activate ? "true" : "false");
    if (dtype) {
        pulse_buf_putc(&params, '"');
        pulse_buf_json_escape(&params, dtype, strlen(dtype));
        pulse_buf_putc(&params, '"');
    } else
        pulse_buf_puts(&params, "null");
    pulse_buf_printf(&params, ",\"gbdt\":%s,\"logreg_lambda\":%g,\"label\":\"%s\"", o.use_gbdt ? "true" : "false", o.logreg_lambda,
                     behavioural ? "behavioural" : "explicit");
    if (behavioural)
        pulse_buf_printf(&params, ",\"horizon_days\":%d", (int)horizon);
    pulse_buf_putc(&params, '}');
    free(dtype);
    if (behavioural) {
        char c0[16], c1[16], d0[16], d1[16];
        date_of(info.cutoff, c0), date_of(info.cutoff + horizon - 1, c1), date_of(info.first_day, d0),
            date_of(info.end_day - 1, d1);
        pulse_buf_printf(&snap,
                         "{\"label\":\"behavioural\",\"horizon_days\":%d,\"cutoff\":\"%s\",\"label_window\":[\"%s\",\"%s\"],"
                         "\"data_from\":\"%s\",\"data_to\":\"%s\",",
                         (int)horizon, c0, c0, c1, d0, d1);
    } else
        pulse_buf_puts(&snap, "{\"label\":\"customers.churned\",");
    pulse_buf_printf(&snap, "\"customers\":%zu,\"churned\":%zu,\"features\":%zu,\"read_seconds\":%.4f,\"train_seconds\":%.4f}",
                     res.n_rows, res.n_positive, res.n_features, read_s, train_s);
    names_literal(res.model, &feats);
    char *created_by = job_creator(ctl, tenant_id, job_id);
    char id[40] = "";
    int version = 0, active = 0;
    const char *algorithm = pulse_ml_model_kind_name(res.model->kind);
    int rc = store_model(work, tenant_id, "churn", job_id, created_by, params.data, snap.data, feats.data, res.model->meta, NULL,
                         bytes, len, algorithm, activate, id, &version, &active, err, sizeof(err));
    free(created_by);
    free(bytes);
    if (rc != 0) {
        pulse_buf_free(&params), pulse_buf_free(&snap), pulse_buf_free(&feats);
        pulse_ml_train_result_free(&res);
        pulse_ml_table_free(t);
        return fail(ctl, tenant_id, job_id, out, "database", err);
    }
    pulse_buf_t result = PULSE_BUF_INIT;
    pulse_buf_printf(&result, "{\"model_id\":\"%s\",\"version\":%d,\"active\":%s,\"algorithm\":\"%s\",\"rows\":%zu,", id, version,
                     active ? "true" : "false", algorithm, res.n_rows);
    pulse_buf_printf(&result, "\"label\":\"%s\",\"train_seconds\":%.4f,\"seconds\":%.4f,\"metrics\":",
                     behavioural ? "behavioural" : "explicit", train_s, now_s() - t0);
    pulse_ml_metrics_json(&res.cand[res.chosen].test, &result);
    pulse_buf_putc(&result, '}');
    outcome(out, "done", NULL, NULL);
    out->rows_accepted = res.n_rows;
    pulse_mljob_finish(ctl, tenant_id, job_id, "done", NULL, NULL, result.data);
    pulse_log(PULSE_LOG_INFO, "jobs.train", "job %s: churn model v%d (%s) on %zu customers, test roc_auc %.4f, %.3f s", job_id,
              version, algorithm, res.n_rows, res.cand[res.chosen].test.roc_auc, train_s);
    pulse_buf_free(&result);
    pulse_buf_free(&params), pulse_buf_free(&snap), pulse_buf_free(&feats);
    pulse_ml_train_result_free(&res);
    pulse_ml_table_free(t);
    return 0;
}
