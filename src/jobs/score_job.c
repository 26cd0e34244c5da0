/* Churn scoring job (see score_job.h). The scores replace the tenant's predictions through
 * jobs/derived_write (binary COPY into a fresh table swapped in; a run over a list of customers
 * keeps the others' rows) in one tenant transaction: a failed run leaves the previous scores as
 * they were. The rows are narrow (the reasons as codes, worded when read), and nothing else is
 * rewritten: whoever shows a customer's churn reads the current prediction (see migration 0009). */
#include "jobs/score_job.h"

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "jobs/analytics_job.h"
#include "jobs/clv_values.h"
#include "jobs/derived_write.h"
#include "jobs/jobrun.h"
#include "jobs/ml_rows.h"
#include "ml/churn.h"
#include "ml/reason_codes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The customer ids of the params, or none for "all" (or no list). *all is set for "all". */
static int64_t *requested_ids(PGconn *ctl, const char *params, size_t *n, int *all)
{
    const char *p[] = {params && params[0] ? params : "{}"};
    PGresult *r = PQexecParams(ctl,
                               "SELECT x FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof($1::jsonb -> 'customer_ids') = "
                               "'array' THEN $1::jsonb -> 'customer_ids' ELSE '[\"all\"]' END) x",
                               1, NULL, p, NULL, NULL, 0);
    *n = 0;
    *all = 0;
    int64_t *ids = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        int nt = PQntuples(r);
        ids = pulse_xmalloc((size_t)(nt ? nt : 1) * sizeof(int64_t));
        for (int i = 0; i < nt; i++) {
            const char *v = PQgetvalue(r, i, 0);
            if (strcmp(v, "all") == 0)
                *all = 1;
            else
                ids[(*n)++] = strtoll(v, NULL, 10);
        }
        if (nt == 0)
            *all = 1;
    } else
        *all = 1;
    PQclear(r);
    return ids;
}

static const char *band_of(double p, double medium, double high)
{
    return p >= high ? "high" : p >= medium ? "medium" : "low";
}

/* What a scoring run writes, and what it counted. */
typedef struct scores_t {
    const pulse_ml_churn_t *churn;
    const pulse_mlrows_t *rows;
    float *x;            /* the scoring matrix, column-major */
    const double *prob;  /* the model's raw probabilities */
    double medium, high; /* the band cut-offs */
    unsigned char model[16];
    size_t bands[3];
    pulse_jobrun_t *run; /* asked between chunks of rows and before the commit */
} scores_t;

/* Customer i's prediction row: the calibrated probability, its band, the reasons as codes. */
static void put_prediction(pulse_derived_t *w, scores_t *s, size_t i, const pulse_buf_t *codes)
{
    const pulse_ml_model_t *m = s->churn->model;
    double p = pulse_ml_calibration_apply(&m->calibration, s->prob[i]);
    if (!(p >= 0))
        p = 0;
    if (p > 1)
        p = 1;
    const char *band = band_of(p, s->medium, s->high);
    s->bands[band[0] == 'h' ? 2 : band[0] == 'm' ? 1 : 0]++;
    pulse_derived_row(w, 6);
    pulse_derived_int8(w, s->rows->ids[i]);
    pulse_derived_uuid(w, s->model);
    pulse_derived_float4(w, (float)p);
    pulse_derived_text(w, band, strlen(band));
    if (isnan(s->rows->clv[i]))
        pulse_derived_null(w);
    else
        pulse_derived_float8(w, s->rows->clv[i]);
    pulse_derived_bytea(w, codes->data, codes->len);
}

/* Rows explained at a time: 4 Ki rows of pushes stay in the cache (~100 bytes a feature). */
#define EXPLAIN_BLOCK 4096

/* Each customer's prediction row, with the reasons as codes (the per-feature pushes on this
 * customer's log-odds, strongest first, worded when read: see ml/reason_codes.h). 1 when the job
 * must end (cancelled, or the server is stopping), asked every 16 blocks (64 Ki rows). */
static int write_predictions(pulse_derived_t *w, scores_t *s, char *err, size_t errlen)
{
    const pulse_ml_model_t *m = s->churn->model;
    size_t n = s->rows->n_rows, nf = m->n_features;
    pulse_ml_data_t d = {n, nf, s->x, NULL, NULL, NULL, NULL, NULL};
    pulse_ml_explainer_t *ex = pulse_ml_explainer_new(s->churn);
    pulse_buf_t codes = PULSE_BUF_INIT;
    double *contrib = pulse_xmalloc(EXPLAIN_BLOCK * (nf + 1) * sizeof(double));
    float *row = pulse_xmalloc((nf ? nf : 1) * sizeof(float));
    pulse_ml_push_t *rk = pulse_xmalloc((nf ? nf : 1) * sizeof(*rk));
    int rc = 0;
    for (size_t i0 = 0; i0 < n && rc == 0; i0 += EXPLAIN_BLOCK) {
        size_t nb = n - i0 < EXPLAIN_BLOCK ? n - i0 : EXPLAIN_BLOCK;
        pulse_ml_explain_block(ex, &d, i0, nb, contrib);
        for (size_t r = 0; r < nb && rc == 0; r++) {
            size_t i = i0 + r;
            size_t nr = pulse_ml_reasons(contrib + r * (nf + 1), nf, rk);
            for (size_t k = 0; k < nf; k++) /* the values the codes keep: the reasons' and their context */
                row[k] = s->x[k * n + i];
            pulse_buf_reset(&codes);
            pulse_ml_reason_codes_pack(&codes, m, row, rk, nr);
            put_prediction(w, s, i, &codes);
            rc = pulse_derived_flush(w, 0, err, errlen);
        }
        if (rc == 0 && (i0 / EXPLAIN_BLOCK) % 16 == 15 && pulse_jobrun_step(s->run, "storing predictions", 80, n, 0) != 0)
            rc = 1;
    }
    pulse_ml_explainer_free(ex);
    free(rk), free(row), free(contrib);
    pulse_buf_free(&codes);
    return rc;
}

/* The whole write in one tenant transaction on c: a failure rolls all of it back, and so does a job
 * that must end (1). */
static int write_scores(PGconn *c, const char *tenant, scores_t *s, int keep_others, double *t_streamed, char *err, size_t errlen)
{
    if (pulse_ajob_begin(c, tenant, err, errlen) != 0)
        return -1;
    pulse_derived_t w;
    int rc = pulse_derived_open(&w, c, "predictions", "customer_id, model_id, churn_probability, risk_band, clv, reason_codes",
                                s->rows->n_rows ? s->rows->epoch : -1, err, errlen);
    if (rc == 0) {
        rc = write_predictions(&w, s, err, errlen);
        *t_streamed = pulse_now_s();
        if (rc != 0)
            pulse_derived_abort(&w);
        else
            rc = pulse_derived_commit_rows(&w, keep_others, NULL, err, errlen);
    }
    if (rc == 0 && pulse_jobrun_check(s->run) != 0)
        rc = 1;
    if (rc == 0) {
        PGresult *r = PQexec(c, "COMMIT");
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = pulse_fail(err, errlen, "%s", PQerrorMessage(c));
        PQclear(r);
    }
    if (rc != 0) {
        PGresult *r = PQexec(c, "ROLLBACK");
        PQclear(r);
    }
    return rc;
}

/* A model trained on Pulse's computed features (analytics.*) reads them from the last segmentation
 * run: with none, every such feature would be scored as missing and the probabilities would mean
 * nothing. Returns 0 when the features are there (or not needed), else -1 with what to do. */
static int needs_segmentation(PGconn *c, const char *tenant, const pulse_ml_model_t *m, char *err, size_t errlen)
{
    int uses_computed = 0;
    for (size_t j = 0; j < m->n_features && !uses_computed; j++)
        uses_computed = strncmp(m->features[j].name, "analytics.", 10) == 0;
    if (!uses_computed)
        return 0;
    const char *p[] = {tenant};
    PGresult *r =
        pulse_jobs_tenant_exec(c, tenant, "SELECT EXISTS (SELECT 1 FROM analytics_runs WHERE tenant_id = $1)", 1, p, err, errlen);
    if (r == NULL)
        return -1;
    int have = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!have)
        pulse_fail(err, errlen,
                   "the active churn model uses the computed features (recency, frequency, trends...), and none are computed "
                   "yet: run the segmentation first (POST /api/v1/segmentation/organizations/{id}/segment or pulse segment "
                   "--tenant), then score");
    return have ? 0 : -1;
}

/* The lifetime values from the active CLV model, if any: a model that fails is reported, the churn
 * scores stand. */
typedef struct clv_refresh_t {
    int rc, version; /* rc: pulse_clv_values_refresh's; 1 (no model) until it runs */
    long written;
    double seconds;
    char err[512];
} clv_refresh_t;

static void refresh_clv(PGconn *work, const char *tenant, const char *job_id, int with_predictions, clv_refresh_t *v)
{
    double t = pulse_now_s();
    v->rc = pulse_clv_values_refresh(work, tenant, with_predictions, &v->version, &v->written, v->err, sizeof(v->err));
    if (v->rc < 0)
        pulse_log(PULSE_LOG_WARN, "jobs.score", "job %s: no CLV written: %s", job_id, v->err);
    v->seconds = pulse_now_s() - t;
}

static int run_score(const pulse_config_t *cfg, PGconn *ctl, PGconn *work, const char *job_id, const char *tenant_id,
                     const char *params_json, volatile int *stop, pulse_job_observer observer, void *ud, pulse_job_outcome_t *out)
{
    memset(out, 0, sizeof(*out));
    pulse_jobrun_t run;
    pulse_jobrun_init(&run, ctl, job_id, tenant_id, stop, observer, ud);
    double t0 = pulse_now_s();
    char err[512], msg[700];
    pulse_jobrun_step(&run, "loading the model", 2, 0, 1);
    const char *p1[] = {tenant_id};
    PGresult *r = pulse_jobs_tenant_exec(work, tenant_id,
                                         "SELECT id, version, model FROM models WHERE tenant_id = $1 AND kind = 'churn' AND active",
                                         1, p1, err, sizeof(err));
    if (r == NULL)
        return pulse_jobrun_fail(&run, out, "database", err);
    if (PQntuples(r) == 0) {
        PQclear(r);
        return pulse_jobrun_fail(&run, out, "no_model",
                                 "there is no active churn model: train one first (POST /api/v1/ml/train or pulse train)");
    }
    char model_id[40];
    snprintf(model_id, sizeof(model_id), "%s", PQgetvalue(r, 0, 0));
    int version = atoi(PQgetvalue(r, 0, 1));
    size_t blen = 0;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 2), &blen);
    PQclear(r);
    pulse_ml_churn_t churn;
    int opened = bytes ? pulse_ml_churn_open(&churn, bytes, blen, err, sizeof(err)) : -1;
    if (bytes == NULL)
        snprintf(err, sizeof(err), "out of memory");
    PQfreemem(bytes);
    if (opened != 0) {
        snprintf(msg, sizeof(msg),
                 "the active churn model (version %d) cannot be loaded: %s; train again or activate another version", version, err);
        return pulse_jobrun_fail(&run, out, "model_invalid", msg);
    }

    if (needs_segmentation(work, tenant_id, churn.model, err, sizeof(err)) != 0) {
        pulse_ml_churn_close(&churn);
        return pulse_jobrun_fail(&run, out, "needs_segmentation", err);
    }

    size_t n_ids;
    int all;
    int64_t *ids = requested_ids(ctl, params_json, &n_ids, &all);
    char *medium_s = pulse_mljob_param(ctl, params_json, "{churn_bands,medium}");
    char *high_s = pulse_mljob_param(ctl, params_json, "{churn_bands,high}");
    double medium = medium_s ? atof(medium_s) : 0.4, high = high_s ? atof(high_s) : 0.7;
    free(medium_s), free(high_s);
    /* a run over every customer values them first, so that the predictions it writes carry the
     * new values (read with the analytics) and none has to be updated after */
    clv_refresh_t clv = {1, 0, 0, 0, ""};
    if (all && pulse_jobrun_step(&run, "valuing customers", 3, 0, 1) == 0)
        refresh_clv(work, tenant_id, job_id, 0, &clv);
    double t_read0 = pulse_now_s();
    if (pulse_jobrun_step(&run, "reading customers", 5, 0, 1) != 0) {
        free(ids);
        pulse_ml_churn_close(&churn);
        return pulse_jobrun_interrupted(&run, out);
    }
    pulse_mlrows_t rows;
    int rc = (!all && n_ids == 0)
                 ? (memset(&rows, 0, sizeof(rows)), 0)
                 : pulse_mlrows_load(work, tenant_id, 0, all ? NULL : ids, all ? 0 : n_ids, churn.model, &rows, err, sizeof(err));
    if (rc != 0) {
        free(ids);
        pulse_ml_churn_close(&churn);
        return pulse_jobrun_fail(&run, out, "database", err);
    }
    const pulse_ml_model_t *m = churn.model;
    size_t n = rows.n_rows, nf = m->n_features;
    out->rows_read = n;
    double t_read = pulse_now_s();
    if (pulse_jobrun_step(&run, "scoring", 40, n, 1) != 0) {
        free(ids);
        pulse_ml_churn_close(&churn);
        pulse_mlrows_free(&rows);
        return pulse_jobrun_interrupted(&run, out);
    }
    float *x = pulse_mlrows_matrix(&rows, m);
    pulse_ml_data_t d = {n, nf, x, NULL, NULL, NULL, NULL, NULL};
    double *prob = pulse_xmalloc((n ? n : 1) * sizeof(double));
    pulse_ml_churn_predict(&churn, &d, prob, cfg->threads > 1 ? 2 : 1);
    double t_pred = pulse_now_s();
    free(ids);
    if (pulse_jobrun_step(&run, "storing predictions", 80, n, 1) != 0) {
        free(prob), free(x);
        pulse_ml_churn_close(&churn);
        pulse_mlrows_free(&rows);
        return pulse_jobrun_interrupted(&run, out);
    }
    scores_t sc = {&churn, &rows, x, prob, medium, high, {0}, {0, 0, 0}, &run};
    pulse_derived_parse_uuid(model_id, sc.model);
    double t_reasons = t_pred;
    rc = write_scores(work, tenant_id, &sc, !all, &t_reasons, err, sizeof(err));
    free(prob), free(x);
    pulse_ml_churn_close(&churn);
    pulse_mlrows_free(&rows);
    if (rc != 0)
        return rc > 0 ? pulse_jobrun_interrupted(&run, out) : pulse_jobrun_fail(&run, out, "database", err);
    size_t *bands = sc.bands;
    if (!all)
        refresh_clv(work, tenant_id, job_id, 1, &clv);
    double t_end = pulse_now_s();
    pulse_buf_t result = PULSE_BUF_INIT;
    pulse_buf_printf(&result,
                     "{\"model_id\":\"%s\",\"version\":%d,\"scored\":%zu,\"bands\":{\"low\":%zu,\"medium\":%zu,\"high\":%zu},"
                     "\"seconds\":%.4f,\"seconds_read\":%.4f,\"seconds_predict\":%.4f,\"seconds_reasons\":%.4f,"
                     "\"seconds_write\":%.4f,\"seconds_clv\":%.4f,\"rows_per_second\":%.0f,\"clv\":",
                     model_id, version, n, bands[0], bands[1], bands[2], t_end - t0, t_read - t_read0, t_pred - t_read,
                     t_reasons - t_pred, t_end - t_reasons - (all ? 0 : clv.seconds), clv.seconds,
                     t_end > t0 ? (double)n / (t_end - t0) : 0.0);
    if (clv.rc == 0)
        pulse_buf_printf(&result, "{\"model_version\":%d,\"written\":%ld}}", clv.version, clv.written);
    else if (clv.rc > 0)
        pulse_buf_puts(&result, "null}");
    else {
        pulse_buf_puts(&result, "{\"error\":\"");
        pulse_buf_json_escape(&result, clv.err, strlen(clv.err));
        pulse_buf_puts(&result, "\"}}");
    }
    out->rows_accepted = n;
    pulse_jobrun_finish(&run, out, "done", NULL, NULL, result.data, NULL);
    pulse_log(PULSE_LOG_INFO, "jobs.score", "job %s: %zu customers scored with churn model v%d in %.3f s", job_id, n, version,
              t_end - t0);
    pulse_buf_free(&result);
    return 0;
}

/* The job with a heartbeat on its own connection, as the other kinds have: a scoring run waiting on a
 * lock or a long statement must not look like a dead worker's job to the next claim. */
int pulse_score_job_run(const pulse_config_t *cfg, PGconn *ctl, PGconn *work, const char *job_id, const char *tenant_id,
                        const char *params_json, volatile int *stop, pulse_job_observer observer, void *ud,
                        pulse_job_outcome_t *out)
{
    pulse_job_beat_t *beat = pulse_job_beat_start(cfg, ctl, job_id, tenant_id);
    int rc = run_score(cfg, ctl, work, job_id, tenant_id, params_json, stop, observer, ud, out);
    pulse_job_beat_stop(beat);
    return rc;
}
