/* Customers' lifetime values written by the jobs (see clv_values.h). The values go to a TEMP
 * staging table by COPY (COPY into the RLS tables is refused), then one update of each table. */
#include "jobs/clv_values.h"

#include "analytics/pgload.h"
#include "core/buf.h"
#include "jobs/analytics_job.h"
#include "jobs/jobs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pulse_jobs_load_store(PGconn *work, const char *tenant, pulse_txstore_t *st, uint64_t *ntx, char *err, size_t errlen)
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

static int exec_ok(PGconn *c, PGresult *r, char *err, size_t errlen)
{
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, errlen, "%s", PQerrorMessage(c));
    return ok;
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

/* Writes the COPY data (external id, clv or \N) to customer_analytics and to the predictions
 * already there, in one tenant transaction. *written: customer_analytics rows. */
static int write_copy(PGconn *c, const char *tenant, const pulse_buf_t *copy, int with_predictions, long *written, char *err,
                      size_t errlen)
{
    const char *p[] = {tenant};
    if (pulse_ajob_begin(c, tenant, err, errlen) != 0)
        return -1;
    PGresult *r = PQexec(c, "CREATE TEMP TABLE pulse_clv_stage (ref text, clv double precision) ON COMMIT DROP");
    int ok = exec_ok(c, r, err, errlen);
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
    if (ok && with_predictions) {
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

int pulse_clv_values_write(PGconn *work, const char *tenant, const pulse_ml_clv_t *c, const pulse_txstore_t *st,
                           int with_predictions, long *written, char *err, size_t errlen)
{
    *written = 0;
    pulse_txstore_t own;
    uint64_t ntx = 0;
    if (st == NULL) {
        if (pulse_jobs_load_store(work, tenant, &own, &ntx, err, errlen) != 0)
            return -1;
        st = &own;
    }
    uint32_t *customer = NULL;
    double *value = NULL;
    size_t n = 0;
    int rc = pulse_ml_clv_value_store(c, st, &customer, &value, &n, err, errlen);
    pulse_buf_t copy = PULSE_BUF_INIT;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t len;
        const char *ref = pulse_strtab_get(&st->customers, customer[i], &len);
        copy_field(&copy, ref, len);
        if (isfinite(value[i]))
            pulse_buf_printf(&copy, "\t%.6f\n", value[i]);
        else
            pulse_buf_puts(&copy, "\t\\N\n");
    }
    if (rc == 0)
        rc = write_copy(work, tenant, &copy, with_predictions, written, err, errlen);
    pulse_buf_free(&copy);
    free(customer), free(value);
    if (st == &own)
        pulse_txstore_free(&own);
    return rc;
}

int pulse_clv_values_refresh(PGconn *work, const char *tenant, int with_predictions, int *version, long *written, char *err,
                             size_t errlen)
{
    *written = 0;
    const char *p[] = {tenant};
    PGresult *r = pulse_jobs_tenant_exec(
        work, tenant, "SELECT version, model FROM models WHERE tenant_id = $1 AND kind = 'clv' AND active", 1, p, err, errlen);
    if (r == NULL)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 1;
    }
    *version = atoi(PQgetvalue(r, 0, 0));
    size_t blen = 0;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 1), &blen);
    PQclear(r);
    pulse_ml_clv_t c;
    char why[256] = "out of memory";
    int opened = bytes ? pulse_ml_clv_open(&c, bytes, blen, why, sizeof(why)) : -1;
    PQfreemem(bytes);
    if (opened != 0)
        return pulse_fail(err, errlen,
                          "the active CLV model (version %d) cannot be loaded: %s; train again or activate another version",
                          *version, why);
    int rc = pulse_clv_values_write(work, tenant, &c, NULL, with_predictions, written, err, errlen);
    pulse_ml_clv_close(&c);
    return rc;
}
