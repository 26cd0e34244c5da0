/* Churn training job (see train_job.h). Two label paths: explicit (customers with a churned label
 * from a customers file's churn column; their attributes plus stored features) and behavioural
 * (transaction tenants without labels, or params "label": "behavioural": the tenant's transactions
 * loaded into memory, labels and features split at a cutoff by ml/churnlabel.c). The version
 * and the activation are written in one transaction so that two concurrent runs cannot both
 * become active (the partial unique index would refuse the second anyway). */
#include "jobs/train_job.h"

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "jobs/clv_values.h"
#include "jobs/jobrun.h"
#include "jobs/ml_rows.h"
#include "ml/churnlabel.h"
#include "ml/clvtrain.h"
#include "ml/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
 * Fills id[40], *version and *active. The job is asked once more before the commit (the advisory
 * lock may have made it wait): 1 when it must end, the insert rolled back. */
static int store_model(pulse_jobrun_t *run, PGconn *c, const char *tenant, const char *kind, const char *job_id,
                       const char *created_by, const char *params, const char *snapshot, const char *features, const char *report,
                       const char *metrics, const unsigned char *bytes, size_t len, const char *algorithm, int activate,
                       char id[40], int *version, int *active, char *err, size_t errlen)
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
    int interrupted = ok && pulse_jobrun_check(run) != 0;
    r = PQexec(c, ok && !interrupted ? "COMMIT" : "ROLLBACK");
    if (ok && !interrupted)
        ok = exec_ok(c, r, err, errlen);
    PQclear(r);
    return interrupted ? 1 : ok ? 0 : -1;
}

static double param_num(PGconn *ctl, const char *params, const char *path, double dflt)
{
    char *v = pulse_mljob_param(ctl, params, path);
    double x = v ? strtod(v, NULL) : dflt;
    free(v);
    return x;
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
    if (pulse_jobs_load_store(work, tenant, &st, &ntx, err, errlen) != 0)
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

/* The clv params: horizon_days (or, from older callers, clv_months of 30 days), discount, seed. */
static void clv_options(PGconn *ctl, const char *params_json, pulse_ml_clv_options_t *o)
{
    pulse_ml_clv_options_init(o);
    double months = param_num(ctl, params_json, "{clv_months}", 0);
    o->terms.horizon = (int32_t)param_num(ctl, params_json, "{horizon_days}", months > 0 ? months * 30 : o->terms.horizon);
    o->terms.discount = param_num(ctl, params_json, "{discount}", o->terms.discount);
    o->seed = (uint64_t)param_num(ctl, params_json, "{seed}", (double)o->seed);
}

/* "name": {"mae": m, "rmse": r} of a candidate (nulls when it was not trained). */
static void candidate_errors(const char *name, const pulse_ml_clv_candidate_t *c, pulse_buf_t *b)
{
    if (c->trained)
        pulse_buf_printf(b, "\"%s\":{\"mae\":%.6g,\"rmse\":%.6g}", name, c->mae, c->rmse);
    else
        pulse_buf_printf(b, "\"%s\":{\"mae\":null,\"rmse\":null}", name);
}

/* The params and snapshot stored with the model. */
static void clv_documents(const pulse_ml_clv_result_t *res, const pulse_ml_clv_options_t *o, int activate, uint64_t ntx,
                          pulse_buf_t *params, pulse_buf_t *snap)
{
    pulse_buf_printf(params, "{\"kind\":\"clv\",\"horizon_days\":%d,\"discount\":%g,\"seed\":%llu,\"activate\":%s}",
                     (int)o->terms.horizon, o->terms.discount, (unsigned long long)o->seed, activate ? "true" : "false");
    char d0[16], c0[16], d1[16];
    date_of(res->first_day, d0), date_of(res->cutoff, c0), date_of(res->end_day - 1, d1);
    pulse_buf_printf(snap,
                     "{\"customers\":%zu,\"transactions\":%llu,\"data_from\":\"%s\",\"cutoff\":\"%s\",\"data_to\":\"%s\","
                     "\"horizon_days\":%d,\"train_seconds\":%.4f}",
                     res->n_full, (unsigned long long)ntx, d0, c0, d1, (int)o->terms.horizon, res->seconds);
}

/* The lifetime-value path (params "kind": "clv"): BG/NBD + Gamma-Gamma against boosted trees of
 * holdout spend on a time split (ml/clvtrain.h), the better refitted and stored as a 'clv' model,
 * and when it is active every customer's CLV written. */
static int run_clv(pulse_jobrun_t *run, PGconn *ctl, PGconn *work, const char *job_id, const char *tenant_id,
                   const char *params_json, pulse_job_outcome_t *out)
{
    double t0 = pulse_now_s();
    char err[512];
    pulse_jobrun_step(run, "reading transactions", 5, 0, 1);
    pulse_txstore_t st;
    uint64_t ntx = 0;
    if (pulse_jobs_load_store(work, tenant_id, &st, &ntx, err, sizeof(err)) != 0)
        return pulse_jobrun_fail(run, out, "database", err);
    if (ntx == 0) {
        pulse_txstore_free(&st);
        return pulse_jobrun_fail(run, out, "no_transactions",
                                 "lifetime-value models are fitted on transactions: import a transactions file first");
    }
    out->rows_read = pulse_txstore_ncustomers(&st);
    pulse_ml_clv_options_t o;
    clv_options(ctl, params_json, &o);
    char *act = pulse_mljob_param(ctl, params_json, "{activate}");
    int activate = act != NULL && strcmp(act, "true") == 0;
    free(act);
    if (pulse_jobrun_step(run, "fitting", 30, out->rows_read, 1) != 0) {
        pulse_txstore_free(&st);
        return pulse_jobrun_interrupted(run, out);
    }
    pulse_ml_clv_result_t res;
    if (pulse_ml_clv_train(&st, &o, &res, err, sizeof(err)) != 0) {
        pulse_txstore_free(&st);
        const char *code = strstr(err, "history") ? "insufficient_history" : strstr(err, "must be") ? "bad_params" : "requirements";
        return pulse_jobrun_fail(run, out, code, err);
    }
    if (pulse_jobrun_step(run, "storing the model", 80, res.n_full, 1) != 0) {
        pulse_ml_clv_result_free(&res);
        pulse_txstore_free(&st);
        return pulse_jobrun_interrupted(run, out);
    }
    unsigned char *bytes = NULL;
    size_t len = 0;
    pulse_ml_model_save(res.model, &bytes, &len);
    pulse_buf_t metrics = PULSE_BUF_INIT, params = PULSE_BUF_INIT, snap = PULSE_BUF_INIT, feats = PULSE_BUF_INIT;
    pulse_ml_clv_metrics_json(&res, &metrics);
    clv_documents(&res, &o, activate, ntx, &params, &snap);
    names_literal(res.model, &feats);
    const char *algorithm = pulse_ml_model_kind_name(res.model->kind);
    char *created_by = job_creator(ctl, tenant_id, job_id);
    char id[40] = "";
    int version = 0, active = 0;
    long written = 0;
    int rc = store_model(run, work, tenant_id, "clv", job_id, created_by, params.data, snap.data, feats.data, res.model->meta,
                         metrics.data, bytes, len, algorithm, activate, id, &version, &active, err, sizeof(err));
    free(created_by);
    if (rc == 0 && active) {
        /* opened from the stored bytes, as the scoring job will; the model is stored now, so the
         * job goes on to its end */
        pulse_jobrun_step(run, "writing customer values", 90, res.n_full, 1);
        pulse_ml_clv_t c;
        rc = pulse_ml_clv_open(&c, bytes, len, err, sizeof(err));
        if (rc == 0) {
            rc = pulse_clv_values_write(work, tenant_id, &c, &st, 1, &written, err, sizeof(err));
            pulse_ml_clv_close(&c);
        }
    }
    free(bytes);
    if (rc == 0) {
        pulse_buf_t result = PULSE_BUF_INIT;
        pulse_buf_printf(&result,
                         "{\"model_id\":\"%s\",\"version\":%d,\"active\":%s,\"algorithm\":\"%s\",\"kind\":\"clv\",\"rows\":%zu,"
                         "\"clv_written\":%ld,\"fit_seconds\":%.4f,\"seconds\":%.4f,\"metrics\":%s,\"candidates\":{",
                         id, version, active ? "true" : "false", algorithm, res.n_full, written, res.seconds, pulse_now_s() - t0,
                         metrics.data);
        candidate_errors("bgnbd", &res.bgnbd, &result);
        pulse_buf_putc(&result, ',');
        candidate_errors("clv_gbdt", &res.gbdt, &result);
        pulse_buf_puts(&result, "}}");
        out->rows_accepted = res.n_full;
        pulse_jobrun_finish(run, out, "done", NULL, NULL, result.data, NULL);
        pulse_log(PULSE_LOG_INFO, "jobs.train",
                  "job %s: clv model v%d (%s) on %zu customers, holdout MAE bgnbd %.4g clv_gbdt %.4g, %.3f s", job_id, version,
                  algorithm, res.n_full, res.bgnbd.mae, res.gbdt.mae, res.seconds);
        pulse_buf_free(&result);
    }
    pulse_buf_free(&metrics), pulse_buf_free(&params), pulse_buf_free(&snap), pulse_buf_free(&feats);
    pulse_ml_clv_result_free(&res);
    pulse_txstore_free(&st);
    return rc == 0 ? 0 : rc > 0 ? pulse_jobrun_interrupted(run, out) : pulse_jobrun_fail(run, out, "database", err);
}

/* Asked by the training between its candidates. */
typedef struct training_t {
    pulse_jobrun_t *run;
    uint64_t rows;
} training_t;

static int between_candidates(void *ud, const char *candidate)
{
    (void)candidate;
    training_t *tr = ud;
    return pulse_jobrun_step(tr->run, "training", 20, tr->rows, 1);
}

static int run_train(const pulse_config_t *cfg, PGconn *ctl, PGconn *work, const char *job_id, const char *tenant_id,
                     const char *params_json, volatile int *stop, pulse_job_observer observer, void *ud, pulse_job_outcome_t *out)
{
    (void)cfg;
    memset(out, 0, sizeof(*out));
    pulse_jobrun_t jr, *run = &jr;
    pulse_jobrun_init(run, ctl, job_id, tenant_id, stop, observer, ud);
    char *kind = pulse_mljob_param(ctl, params_json, "{kind}");
    int is_clv = kind != NULL && strcmp(kind, "clv") == 0;
    free(kind);
    if (is_clv)
        return run_clv(run, ctl, work, job_id, tenant_id, params_json, out);
    double t0 = pulse_now_s();
    char err[512];
    char *label_mode = pulse_mljob_param(ctl, params_json, "{label}");
    int behavioural = label_mode != NULL && strcmp(label_mode, "behavioural") == 0;
    free(label_mode);
    int32_t horizon = (int32_t)param_num(ctl, params_json, "{horizon_days}", 90);
    pulse_churnlabel_info_t info;
    memset(&info, 0, sizeof(info));
    pulse_ml_table_t *t = NULL;
    if (!behavioural) {
        pulse_jobrun_step(run, "reading customers", 5, 0, 1);
        pulse_mlrows_t rows;
        if (pulse_mlrows_load(work, tenant_id, 1, NULL, 0, NULL, &rows, err, sizeof(err)) != 0)
            return pulse_jobrun_fail(run, out, "database", err);
        out->rows_read = rows.n_rows;
        /* no explicit label: a transaction tenant gets behavioural ones */
        behavioural = rows.n_rows == 0;
        if (!behavioural && pulse_mlrows_table(&rows, &t, err, sizeof(err)) != 0) {
            pulse_mlrows_free(&rows);
            return pulse_jobrun_fail(run, out, "bad_data", err);
        }
        pulse_mlrows_free(&rows);
    }
    if (behavioural) {
        pulse_jobrun_step(run, "reading transactions", 5, 0, 1);
        const char *code;
        if (behavioural_table(work, tenant_id, horizon, &t, &info, &code, err, sizeof(err)) != 0)
            return pulse_jobrun_fail(run, out, code, err);
        free(info.customer); /* the rows' owners are not needed: the model is stored, not the scores */
        info.customer = NULL;
        out->rows_read = info.n_customers;
    }
    double read_s = pulse_now_s() - t0;

    pulse_ml_train_options_t o;
    pulse_ml_train_options_init(&o);
    o.seed = (uint64_t)param_num(ctl, params_json, "{seed}", 42);
    o.test_fraction = param_num(ctl, params_json, "{test_fraction}", o.test_fraction);
    o.valid_fraction = param_num(ctl, params_json, "{valid_fraction}", o.valid_fraction);
    char *act = pulse_mljob_param(ctl, params_json, "{activate}");
    int activate = act != NULL && strcmp(act, "true") == 0;
    free(act);
    training_t training = {run, t->data.n_rows};
    o.interrupt = between_candidates;
    o.interrupt_ud = &training;
    pulse_ml_train_result_t res;
    memset(&res, 0, sizeof(res));
    double t1 = pulse_now_s();
    int trained =
        pulse_jobrun_step(run, "training", 20, t->data.n_rows, 1) != 0 ? 1 : pulse_ml_train_churn(t, &o, &res, err, sizeof(err));
    if (trained != 0) {
        pulse_ml_table_free(t);
        return trained > 0 ? pulse_jobrun_interrupted(run, out) : pulse_jobrun_fail(run, out, "requirements", err);
    }
    double train_s = pulse_now_s() - t1;
    if (pulse_jobrun_step(run, "storing the model", 90, t->data.n_rows, 1) != 0) {
        pulse_ml_train_result_free(&res);
        pulse_ml_table_free(t);
        return pulse_jobrun_interrupted(run, out);
    }

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
    int rc = store_model(run, work, tenant_id, "churn", job_id, created_by, params.data, snap.data, feats.data, res.model->meta,
                         NULL, bytes, len, algorithm, activate, id, &version, &active, err, sizeof(err));
    free(created_by);
    free(bytes);
    if (rc != 0) {
        pulse_buf_free(&params), pulse_buf_free(&snap), pulse_buf_free(&feats);
        pulse_ml_train_result_free(&res);
        pulse_ml_table_free(t);
        return rc > 0 ? pulse_jobrun_interrupted(run, out) : pulse_jobrun_fail(run, out, "database", err);
    }
    pulse_buf_t result = PULSE_BUF_INIT;
    pulse_buf_printf(&result, "{\"model_id\":\"%s\",\"version\":%d,\"active\":%s,\"algorithm\":\"%s\",\"rows\":%zu,", id, version,
                     active ? "true" : "false", algorithm, res.n_rows);
    pulse_buf_printf(&result, "\"label\":\"%s\",\"train_seconds\":%.4f,\"seconds\":%.4f,\"metrics\":",
                     behavioural ? "behavioural" : "explicit", train_s, pulse_now_s() - t0);
    pulse_ml_metrics_json(&res.cand[res.chosen].test, &result);
    pulse_buf_putc(&result, '}');
    out->rows_accepted = res.n_rows;
    pulse_jobrun_finish(run, out, "done", NULL, NULL, result.data, NULL);
    pulse_log(PULSE_LOG_INFO, "jobs.train", "job %s: churn model v%d (%s) on %zu customers, test roc_auc %.4f, %.3f s", job_id,
              version, algorithm, res.n_rows, res.cand[res.chosen].test.roc_auc, train_s);
    pulse_buf_free(&result);
    pulse_buf_free(&params), pulse_buf_free(&snap), pulse_buf_free(&feats);
    pulse_ml_train_result_free(&res);
    pulse_ml_table_free(t);
    return 0;
}

/* The job with a heartbeat on its own connection, as the other kinds have: a training run waiting on a
 * lock or a long statement must not look like a dead worker's job to the next claim. */
int pulse_train_job_run(const pulse_config_t *cfg, PGconn *ctl, PGconn *work, const char *job_id, const char *tenant_id,
                        const char *params_json, volatile int *stop, pulse_job_observer observer, void *ud,
                        pulse_job_outcome_t *out)
{
    pulse_job_beat_t *beat = pulse_job_beat_start(cfg, ctl, job_id, tenant_id);
    int rc = run_train(cfg, ctl, work, job_id, tenant_id, params_json, stop, observer, ud, out);
    pulse_job_beat_stop(beat);
    return rc;
}
