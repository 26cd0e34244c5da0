/* Churn scoring job (see score_job.h). Scores go to a TEMP staging table by COPY (COPY into the
 * RLS tables is refused), then one upsert into predictions and one update of customer_analytics,
 * all in the tenant's transaction: a failed run leaves the previous scores as they were. */
#include "jobs/score_job.h"

#include "core/buf.h"
#include "core/log.h"
#include "jobs/clv_values.h"
#include "jobs/ml_rows.h"
#include "ml/churn.h"
#include "ml/reason_text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fail(PGconn *ctl, const char *tenant, const char *job_id, pulse_job_outcome_t *out, const char *code, const char *msg)
{
    snprintf(out->state, sizeof(out->state), "failed");
    snprintf(out->error_code, sizeof(out->error_code), "%s", code);
    size_t l = strnlen(msg, sizeof(out->error) - 1);
    memcpy(out->error, msg, l);
    out->error[l] = '\0';
    pulse_mljob_finish(ctl, tenant, job_id, "failed", code, msg, NULL);
    return -1;
}

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

/* COPY text format: backslash escapes for the characters it treats specially. */
static void copy_text(pulse_buf_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\')
            pulse_buf_puts(b, "\\\\");
        else if (c == '\t')
            pulse_buf_puts(b, "\\t");
        else if (c == '\n')
            pulse_buf_puts(b, "\\n");
        else if (c == '\r')
            pulse_buf_puts(b, "\\r");
        else
            pulse_buf_putc(b, c);
    }
}

/* The feature's name as a marketer reads it: the stored features lose their "analytics." prefix. */
static const char *plain_name(const char *name)
{
    return strncmp(name, "analytics.", 10) == 0 ? name + 10 : name;
}

/* One reason object: {feature, value, effect, direction, text} for feature j of row. */
static void reason_json(pulse_buf_t *b, const pulse_ml_model_t *m, const float *row, size_t j, double effect)
{
    const pulse_ml_feature_t *f = &m->features[j];
    const char *name = plain_name(f->name);
    float x = row[j];
    char text[400];
    pulse_ml_reason_text(m, row, j, effect, text, sizeof(text));
    pulse_buf_puts(b, "{\"feature\":\"");
    pulse_buf_json_escape(b, name, strlen(name));
    pulse_buf_puts(b, "\",\"value\":");
    if (isnan(x)) {
        pulse_buf_puts(b, "null");
    } else if (f->categorical && (int)x >= 0 && (int)x < f->n_levels) {
        pulse_buf_putc(b, '"');
        pulse_buf_json_escape(b, f->levels[(int)x], strlen(f->levels[(int)x]));
        pulse_buf_putc(b, '"');
    } else {
        pulse_buf_printf(b, "%.7g", (double)x);
    }
    pulse_buf_printf(b, ",\"effect\":%.4f,\"direction\":\"%s\",\"text\":\"", effect, effect > 0 ? "raises" : "lowers");
    pulse_buf_json_escape(b, text, strlen(text));
    pulse_buf_puts(b, "\"}");
}

static const char *band_of(double p, double medium, double high)
{
    return p >= high ? "high" : p >= medium ? "medium" : "low";
}

/* Writes the staged COPY data and merges it, in one tenant transaction on c. */
static int write_scores(PGconn *c, const char *tenant, const char *model_id, const pulse_buf_t *copy, char *err, size_t errlen)
{
    const char *steps[] = {
        "BEGIN",
        NULL, /* set_config */
        "CREATE TEMP TABLE pulse_score_stage (customer_id bigint, p real, band text, reasons jsonb) ON COMMIT DROP",
        NULL, /* COPY */
        NULL, /* upsert */
        NULL, /* analytics */
        "COMMIT",
    };
    int ok = 1;
    for (size_t s = 0; ok && s < sizeof(steps) / sizeof(steps[0]); s++) {
        PGresult *r = NULL;
        if (s == 1) {
            const char *p[] = {tenant};
            r = PQexecParams(c, "SELECT set_config('pulse.tenant_id', $1, true)", 1, NULL, p, NULL, NULL, 0);
        } else if (s == 3) {
            r = PQexec(c, "COPY pulse_score_stage FROM STDIN");
            ok = PQresultStatus(r) == PGRES_COPY_IN;
            PQclear(r);
            if (!ok)
                break;
            ok = PQputCopyData(c, copy->data ? copy->data : "", (int)copy->len) == 1 && PQputCopyEnd(c, NULL) == 1;
            r = PQgetResult(c);
            ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
            PQclear(r);
            while ((r = PQgetResult(c)) != NULL)
                PQclear(r);
            continue;
        } else if (s == 4) {
            const char *p[] = {tenant, model_id};
            r = PQexecParams(c,
                             "INSERT INTO predictions AS x (tenant_id, customer_id, model_id, churn_probability, risk_band, clv, "
                             "reasons, scored_at) SELECT $1, s.customer_id, $2, s.p, s.band, a.clv, s.reasons, now() "
                             "FROM pulse_score_stage s LEFT JOIN customer_analytics a ON a.tenant_id = $1 AND a.customer_id = "
                             "s.customer_id ON CONFLICT (tenant_id, customer_id) DO UPDATE SET model_id = EXCLUDED.model_id, "
                             "churn_probability = EXCLUDED.churn_probability, risk_band = EXCLUDED.risk_band, clv = EXCLUDED.clv, "
                             "reasons = EXCLUDED.reasons, scored_at = EXCLUDED.scored_at",
                             2, NULL, p, NULL, NULL, 0);
        } else if (s == 5) {
            const char *p[] = {tenant};
            r = PQexecParams(c,
                             "UPDATE customer_analytics a SET churn_probability = s.p, churn_band = s.band "
                             "FROM pulse_score_stage s WHERE a.tenant_id = $1 AND a.customer_id = s.customer_id",
                             1, NULL, p, NULL, NULL, 0);
        } else
            r = PQexec(c, steps[s]);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
    }
    if (!ok) {
        snprintf(err, errlen, "%s", PQerrorMessage(c));
        PGresult *r = PQexec(c, "ROLLBACK");
        PQclear(r);
        return -1;
    }
    return 0;
}

int pulse_score_job_run(const pulse_config_t *cfg, PGconn *ctl, PGconn *work, const char *job_id, const char *tenant_id,
                        const char *params_json, pulse_job_outcome_t *out)
{
    memset(out, 0, sizeof(*out));
    double t0 = now_s();
    char err[512], msg[700];
    pulse_mljob_progress(ctl, tenant_id, job_id, "loading the model", 2, 0);
    const char *p1[] = {tenant_id};
    PGresult *r = pulse_jobs_tenant_exec(work, tenant_id,
                                         "SELECT id, version, model FROM models WHERE tenant_id = $1 AND kind = 'churn' AND active",
                                         1, p1, err, sizeof(err));
    if (r == NULL)
        return fail(ctl, tenant_id, job_id, out, "database", err);
    if (PQntuples(r) == 0) {
        PQclear(r);
        return fail(ctl, tenant_id, job_id, out, "no_model",
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
        return fail(ctl, tenant_id, job_id, out, "model_invalid", msg);
    }

    size_t n_ids;
    int all;
    int64_t *ids = requested_ids(ctl, params_json, &n_ids, &all);
    char *medium_s = pulse_mljob_param(ctl, params_json, "{churn_bands,medium}");
    char *high_s = pulse_mljob_param(ctl, params_json, "{churn_bands,high}");
    double medium = medium_s ? atof(medium_s) : 0.4, high = high_s ? atof(high_s) : 0.7;
    free(medium_s), free(high_s);
    pulse_mljob_progress(ctl, tenant_id, job_id, "reading customers", 5, 0);
    pulse_mlrows_t rows;
    int rc = (!all && n_ids == 0)
                 ? (memset(&rows, 0, sizeof(rows)), 0)
                 : pulse_mlrows_load(work, tenant_id, 0, all ? NULL : ids, all ? 0 : n_ids, &rows, err, sizeof(err));
    free(ids);
    if (rc != 0) {
        pulse_ml_churn_close(&churn);
        return fail(ctl, tenant_id, job_id, out, "database", err);
    }
    const pulse_ml_model_t *m = churn.model;
    size_t n = rows.n_rows, nf = m->n_features;
    out->rows_read = n;
    double t_read = now_s();
    pulse_mljob_progress(ctl, tenant_id, job_id, "scoring", 40, n);
    float *x = pulse_mlrows_matrix(&rows, m);
    pulse_ml_data_t d = {n, nf, x, NULL, NULL, NULL, NULL, NULL};
    double *prob = pulse_xmalloc((n ? n : 1) * sizeof(double));
    pulse_ml_churn_predict(&churn, &d, prob, cfg->threads > 1 ? 2 : 1);
    double t_pred = now_s();
    size_t bands[3] = {0, 0, 0};
    /* reasons: the per-feature pushes on this customer's log-odds, strongest first */
    pulse_buf_t copy = PULSE_BUF_INIT, js = PULSE_BUF_INIT;
    double *contrib = pulse_xmalloc((nf + 1) * sizeof(double));
    float *row = pulse_xmalloc((nf ? nf : 1) * sizeof(float));
    pulse_ml_push_t *rk = pulse_xmalloc((nf ? nf : 1) * sizeof(*rk));
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < nf; j++)
            row[j] = x[j * n + i];
        pulse_ml_churn_contributions(&churn, row, contrib);
        size_t nr = pulse_ml_reasons(contrib, nf, rk);
        pulse_buf_reset(&js);
        pulse_buf_putc(&js, '[');
        for (size_t k = 0; k < nr; k++) {
            if (k > 0)
                pulse_buf_putc(&js, ',');
            reason_json(&js, m, row, rk[k].j, rk[k].v);
        }
        pulse_buf_putc(&js, ']');
        double p = pulse_ml_calibration_apply(&m->calibration, prob[i]);
        if (!(p >= 0))
            p = 0;
        if (p > 1)
            p = 1;
        const char *band = band_of(p, medium, high);
        bands[band[0] == 'h' ? 2 : band[0] == 'm' ? 1 : 0]++;
        pulse_buf_printf(&copy, "%lld\t%.6f\t%s\t", (long long)rows.ids[i], p, band);
        copy_text(&copy, js.data, js.len);
        pulse_buf_putc(&copy, '\n');
    }
    double t_reasons = now_s();
    free(rk), free(row), free(contrib), free(prob), free(x);
    pulse_buf_free(&js);
    pulse_ml_churn_close(&churn);
    pulse_mlrows_free(&rows);
    if (pulse_mljob_progress(ctl, tenant_id, job_id, "storing predictions", 80, n)) {
        pulse_buf_free(&copy);
        snprintf(out->state, sizeof(out->state), "cancelled");
        pulse_mljob_finish(ctl, tenant_id, job_id, "cancelled", "cancelled", "cancelled by a user; nothing was stored", NULL);
        return -1;
    }
    rc = write_scores(work, tenant_id, model_id, &copy, err, sizeof(err));
    pulse_buf_free(&copy);
    if (rc != 0)
        return fail(ctl, tenant_id, job_id, out, "database", err);
    /* lifetime values from the active CLV model, if any: a model that fails is reported, the churn
     * scores stand */
    int clv_version = 0;
    long clv_written = 0;
    char clv_err[512] = "";
    int clv_rc = pulse_clv_values_refresh(work, tenant_id, &clv_version, &clv_written, clv_err, sizeof(clv_err));
    if (clv_rc < 0)
        pulse_log(PULSE_LOG_WARN, "jobs.score", "job %s: no CLV written: %s", job_id, clv_err);
    double t_end = now_s();
    pulse_buf_t result = PULSE_BUF_INIT;
    pulse_buf_printf(&result,
                     "{\"model_id\":\"%s\",\"version\":%d,\"scored\":%zu,\"bands\":{\"low\":%zu,\"medium\":%zu,\"high\":%zu},"
                     "\"seconds\":%.4f,\"seconds_read\":%.4f,\"seconds_predict\":%.4f,\"seconds_reasons\":%.4f,"
                     "\"seconds_write\":%.4f,\"rows_per_second\":%.0f,\"clv\":",
                     model_id, version, n, bands[0], bands[1], bands[2], t_end - t0, t_read - t0, t_pred - t_read,
                     t_reasons - t_pred, t_end - t_reasons, t_end > t0 ? (double)n / (t_end - t0) : 0.0);
    if (clv_rc == 0)
        pulse_buf_printf(&result, "{\"model_version\":%d,\"written\":%ld}}", clv_version, clv_written);
    else if (clv_rc > 0)
        pulse_buf_puts(&result, "null}");
    else {
        pulse_buf_puts(&result, "{\"error\":\"");
        pulse_buf_json_escape(&result, clv_err, strlen(clv_err));
        pulse_buf_puts(&result, "\"}}");
    }
    snprintf(out->state, sizeof(out->state), "done");
    out->rows_accepted = n;
    pulse_mljob_finish(ctl, tenant_id, job_id, "done", NULL, NULL, result.data);
    pulse_log(PULSE_LOG_INFO, "jobs.score", "job %s: %zu customers scored with churn model v%d in %.3f s", job_id, n, version,
              t_end - t0);
    pulse_buf_free(&result);
    return 0;
}
