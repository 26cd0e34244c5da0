/* The import loader's run (see load.h): file -> mapper -> COPY into a temporary staging table ->
 * INSERT ... SELECT into the tenant's tables, all in one transaction. */
#include "ingest/load.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ingest/xlsx.h"
#include "core/clock.h"

#define READ_CHUNK ((size_t)256 << 10)
#define COPY_FLUSH ((size_t)256 << 10)
#define PROGRESS_ROWS 65536

typedef struct run_t {
    PGconn *conn;
    pulse_import_mapper_t *m;
    const pulse_import_plan_t *plan;
    pulse_buf_t copy;
    pulse_import_cell_t *cells;
    size_t capcells;
    size_t pad_to; /* xlsx: rows are padded with empty cells up to this many */
    int header_pending;
    pulse_csv_parser_t *csv;
    pulse_import_progress_cb cb;
    void *ud;
    pulse_import_progress_t prog;
    uint64_t rows_seen, next_progress;
    int cancelled, copy_failed;
    char copy_err[256];
} run_t;

static void set_error(pulse_import_result_t *out, pulse_import_status_t st, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_error(pulse_import_result_t *out, pulse_import_status_t st, const char *code, const char *fmt, ...)
{
    out->status = st;
    snprintf(out->error_code, sizeof(out->error_code), "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof(out->error), fmt, ap);
    va_end(ap);
}

static int progress(run_t *r, const char *phase)
{
    if (r->cb == NULL || r->cancelled)
        return r->cancelled;
    pulse_import_counts_t c;
    pulse_import_counts(r->m, &c);
    r->prog.phase = phase;
    r->prog.rows_read = c.rows_read;
    r->prog.rows_accepted = c.rows_accepted;
    r->prog.rows_rejected = c.rows_rejected;
    if (r->cb(r->ud, &r->prog) != 0)
        r->cancelled = 1;
    return r->cancelled;
}

static int flush_copy(run_t *r)
{
    pulse_import_map_settle(r->m);
    if (r->copy.len == 0 || r->conn == NULL) {
        pulse_buf_reset(&r->copy);
        return 0;
    }
    if (PQputCopyData(r->conn, r->copy.data, (int)r->copy.len) != 1) {
        snprintf(r->copy_err, sizeof(r->copy_err), "%s", PQerrorMessage(r->conn));
        r->copy_failed = 1;
        return -1;
    }
    pulse_buf_reset(&r->copy);
    return 0;
}

/* One row from either reader. Returns non-zero to stop reading. */
static int take_row(run_t *r, uint64_t line, size_t n)
{
    if (r->header_pending) {
        r->header_pending = 0;
        return 0;
    }
    pulse_import_map_row(r->m, line, r->cells, n, &r->copy);
    if (r->copy.len >= COPY_FLUSH && flush_copy(r) != 0)
        return 1;
    if (++r->rows_seen >= r->next_progress) {
        r->next_progress = r->rows_seen + PROGRESS_ROWS;
        if (r->csv != NULL)
            r->prog.bytes_done = pulse_csv_stats(r->csv)->bytes;
        if (progress(r, "reading"))
            return 1;
    }
    return 0;
}

static void cells_reserve(run_t *r, size_t n)
{
    if (n <= r->capcells)
        return;
    size_t cap = r->capcells ? r->capcells : 64;
    while (cap < n)
        cap *= 2;
    r->cells = pulse_xrealloc(r->cells, cap * sizeof(*r->cells));
    r->capcells = cap;
}

static int csv_row(void *ud, size_t row, const pulse_csv_field_t *f, size_t n)
{
    run_t *r = ud;
    cells_reserve(r, n);
    for (size_t i = 0; i < n; i++) {
        r->cells[i].p = f[i].ptr;
        r->cells[i].n = f[i].len;
        r->cells[i].bad_utf8 = f[i].bad_utf8;
    }
    return take_row(r, pulse_csv_line(r->csv), n);
}

static int xlsx_row(void *ud, uint32_t row, const pulse_xlsx_cell_t *c, size_t n)
{
    run_t *r = ud;
    size_t width = n < r->pad_to ? r->pad_to : n;
    cells_reserve(r, width);
    for (size_t i = 0; i < width; i++) {
        r->cells[i].p = i < n ? c[i].p : "";
        r->cells[i].n = i < n ? c[i].len : 0;
        r->cells[i].bad_utf8 = 0;
    }
    return take_row(r, row, width);
}

/* Reads the whole CSV file. 0, or -1 with out set (malformed, io). Stops early on cancel or
 * COPY failure (returns 0; the caller checks r). */
static int read_csv(run_t *r, int fd, pulse_import_result_t *out)
{
    pulse_csv_dialect_t d = r->plan->dialect;
    d.has_header = 0; /* the header is skipped here, not by the parser */
    r->csv = pulse_csv_parser_new(&d, csv_row, r);
    char *buf = pulse_xmalloc(READ_CHUNK);
    int rc = 0, first = 1;
    for (;;) {
        ssize_t got = read(fd, buf, READ_CHUNK);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            set_error(out, PULSE_IMPORT_FAILED, "io", "cannot read the file: %s", strerror(errno));
            rc = -1;
            break;
        }
        if (got == 0) {
            if (pulse_csv_finish(r->csv) < 0) {
                set_error(out, PULSE_IMPORT_FAILED, "malformed", "%s", pulse_csv_error(r->csv));
                rc = -1;
            }
            break;
        }
        if (first) {
            first = 0;
            const char *nul = memchr(buf, '\0', (size_t)got < 65536 ? (size_t)got : 65536);
            if (nul != NULL) {
                set_error(out, PULSE_IMPORT_FAILED, "malformed", "binary data (NUL byte at offset %zu), not a text file",
                          (size_t)(nul - buf));
                rc = -1;
                break;
            }
        }
        int f = pulse_csv_feed(r->csv, buf, (size_t)got);
        if (f < 0) {
            set_error(out, PULSE_IMPORT_FAILED, "malformed", "%s", pulse_csv_error(r->csv));
            rc = -1;
            break;
        }
        if (f > 0)
            break; /* cancelled or COPY failed */
    }
    r->prog.bytes_done = pulse_csv_stats(r->csv)->bytes;
    free(buf);
    pulse_csv_free(r->csv);
    r->csv = NULL;
    return rc;
}

static int read_xlsx(run_t *r, const char *path, pulse_import_result_t *out)
{
    char err[512];
    pulse_xlsx_t *x = pulse_xlsx_open(path, err, sizeof(err));
    if (x == NULL) {
        set_error(out, PULSE_IMPORT_FAILED, "malformed", "%s", err);
        return -1;
    }
    int rc = pulse_xlsx_read(x, r->plan->sheet[0] ? r->plan->sheet : NULL, xlsx_row, r, err, sizeof(err));
    pulse_xlsx_close(x);
    if (rc < 0) {
        set_error(out, PULSE_IMPORT_FAILED, "malformed", "%s", err);
        return -1;
    }
    r->prog.bytes_done = r->prog.bytes_total;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * SQL helpers. */

/* Runs sql with text params; returns the result (caller clears) or NULL with out set. */
static PGresult *q(PGconn *c, pulse_import_result_t *out, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    const char *msg = PQresultErrorMessage(res);
    set_error(out, PULSE_IMPORT_FAILED, "database", "%s", msg && *msg ? msg : PQerrorMessage(c));
    size_t len = strlen(out->error);
    while (len > 0 && (out->error[len - 1] == '\n' || out->error[len - 1] == ' '))
        out->error[--len] = '\0';
    PQclear(res);
    return NULL;
}

static int exec_ok(PGconn *c, pulse_import_result_t *out, const char *sql, int n, const char *const *params)
{
    PGresult *res = q(c, out, sql, n, params);
    if (res == NULL)
        return -1;
    PQclear(res);
    return 0;
}

static uint64_t cmd_tuples(PGresult *res)
{
    return strtoull(PQcmdTuples(res), NULL, 10);
}

static uint64_t val_u64(PGresult *res, int row, int col)
{
    return PQntuples(res) > row && !PQgetisnull(res, row, col) ? strtoull(PQgetvalue(res, row, col), NULL, 10) : 0;
}

/* Ends a COPY in progress (with an error, so the server discards it) and drains its results. */
static void copy_abort(PGconn *c, const char *why)
{
    if (PQputCopyEnd(c, why) == 1) {
        PGresult *res;
        while ((res = PQgetResult(c)) != NULL)
            PQclear(res);
    }
}

static void rollback(PGconn *c)
{
    PGresult *res;
    for (int i = 0; i < 100 && (res = PQgetResult(c)) != NULL; i++) { /* a COPY or query still in flight */
        ExecStatusType st = PQresultStatus(res);
        PQclear(res);
        if (st == PGRES_COPY_IN)
            PQputCopyEnd(c, "import aborted");
        else if (st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH)
            break;
    }
    PQclear(PQexec(c, "ROLLBACK"));
}

/* Lines (first 10) and total of a "SELECT line, count(*) OVER () ..." result. */
static uint64_t lines_of(PGresult *res, uint64_t *lines, size_t *n)
{
    *n = 0;
    for (int i = 0; i < PQntuples(res) && *n < 10; i++)
        lines[(*n)++] = strtoull(PQgetvalue(res, i, 0), NULL, 10);
    return val_u64(res, 0, 1);
}

/* "a, occurred_at, b" -> "a, to_timestamp(occurred_at), b" */
static void select_list(const char *cols, pulse_buf_t *out)
{
    const char *p = cols;
    while (*p) {
        const char *e = strstr(p, ", ");
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 11 && memcmp(p, "occurred_at", 11) == 0)
            pulse_buf_puts(out, "to_timestamp(occurred_at)");
        else
            pulse_buf_append(out, p, n);
        if (!e)
            break;
        pulse_buf_puts(out, ", ");
        p = e + 2;
    }
}

/* The storing and merging steps for transactions and events. */
static int store_records(run_t *r, const char *import_id, uint64_t staged, pulse_import_result_t *out, double *t_insert,
                         double *t_customers)
{
    PGconn *c = r->conn;
    const char *table = pulse_import_kind_name(r->plan->kind);
    const char *params[2] = {import_id, NULL};
    char sql[2048];
    pulse_buf_t b = PULSE_BUF_INIT;
    int rc = -1;
    double t0 = pulse_now_s();
    PGresult *res;

    /* records this tenant already has (RLS scopes the probe to the tenant) */
    snprintf(sql, sizeof(sql), "SELECT EXISTS (SELECT 1 FROM %s)", table);
    if ((res = q(c, out, sql, 0, NULL)) == NULL)
        goto done;
    int has_rows = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (has_rows) {
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM pulse_import_stage s WHERE EXISTS (SELECT 1 FROM %s t "
                 "WHERE t.tenant_id = pulse_current_tenant() AND t.row_key = s.row_key)",
                 table);
        if ((res = q(c, out, sql, 0, NULL)) == NULL)
            goto done;
        out->rows_existing = val_u64(res, 0, 0);
        PQclear(res);
    }
    /* Rows whose key is new to the file go in with a plain INSERT when the tenant has no records
     * yet (a third cheaper than ON CONFLICT's speculative insertion); the rest (maybe seen before
     * in the file, by the Bloom filter) with ON CONFLICT DO NOTHING: the first line of a key is
     * always in the first group or earlier in the second, so the first line wins. */
    const char *cols = pulse_import_stage_columns(r->m);
    out->rows_inserted = 0;
    for (int pass = has_rows ? 1 : 0; pass < 2; pass++) {
        pulse_buf_reset(&b);
        pulse_buf_printf(&b, "INSERT INTO %s (tenant_id, import_id, %s) SELECT pulse_current_tenant(), $1::uuid, ", table, cols);
        select_list(cols, &b);
        pulse_buf_puts(&b, " FROM pulse_import_stage");
        /* in key order: the primary key's B-tree then fills page after page instead of touching a
         * random leaf per row, which is what costs most once the index outgrows shared_buffers */
        if (pass == 0)
            pulse_buf_puts(&b, " WHERE NOT maybe_dup ORDER BY row_key");
        else
            pulse_buf_printf(&b, "%s ORDER BY row_key, line ON CONFLICT (tenant_id, row_key) DO NOTHING",
                             has_rows ? "" : " WHERE maybe_dup");
        if ((res = q(c, out, b.data, 1, params)) == NULL)
            goto done;
        out->rows_inserted += cmd_tuples(res);
        PQclear(res);
    }
    if (out->rows_existing > staged - out->rows_inserted) /* cannot happen; keep the sums honest */
        out->rows_existing = staged - out->rows_inserted;
    out->rows_duplicate = staged - out->rows_inserted - out->rows_existing;
    out->rows_accepted = out->rows_inserted + out->rows_existing;
    if (out->rows_duplicate > 0) {
        uint64_t lines[10];
        size_t n;
        if ((res = q(c, out,
                     /* only keys the Bloom filter saw twice can repeat: a small set */
                     "SELECT line, count(*) OVER () FROM (SELECT line, row_number() OVER (PARTITION BY row_key ORDER BY line) rn "
                     "FROM pulse_import_stage WHERE row_key IN (SELECT row_key FROM pulse_import_stage WHERE maybe_dup)) x "
                     "WHERE rn > 1 ORDER BY line LIMIT 10",
                     0, NULL)) == NULL)
            goto done;
        lines_of(res, lines, &n);
        PQclear(res);
        pulse_import_note(r->m, "duplicates", out->rows_duplicate, lines, n);
    }
    if (out->rows_existing > 0)
        pulse_import_note(r->m, "existing", out->rows_existing, NULL, 0);
    double lo, hi;
    if (pulse_import_outlier_bounds(r->m, &lo, &hi) == 0) {
        char slo[64], shi[64];
        snprintf(slo, sizeof(slo), "%.6f", lo);
        snprintf(shi, sizeof(shi), "%.6f", hi);
        const char *bp[2] = {slo, shi};
        const char *col = r->plan->kind == PULSE_IMPORT_TRANSACTIONS ? "amount" : "revenue_impact";
        snprintf(sql, sizeof(sql),
                 "SELECT line, count(*) OVER () FROM pulse_import_stage WHERE %s < $1::numeric OR %s > $2::numeric "
                 "ORDER BY line LIMIT 10",
                 col, col);
        if ((res = q(c, out, sql, 2, bp)) == NULL)
            goto done;
        uint64_t lines[10];
        size_t n;
        uint64_t count = lines_of(res, lines, &n);
        PQclear(res);
        pulse_import_note(r->m, "outliers", count, lines, n);
    }
    *t_insert = pulse_now_s() - t0;

    t0 = pulse_now_s();
    if (progress(r, "merging customers"))
        goto done;
    if ((res = q(c, out,
                 "INSERT INTO customers (tenant_id, external_id, import_id) SELECT DISTINCT pulse_current_tenant(), customer_ref, "
                 "$1::uuid FROM pulse_import_stage ON CONFLICT (tenant_id, external_id) DO NOTHING",
                 1, params)) == NULL)
        goto done;
    out->customers_created = cmd_tuples(res);
    PQclear(res);
    *t_customers = pulse_now_s() - t0;
    rc = 0;
done:
    pulse_buf_free(&b);
    return rc;
}

static int store_customers(run_t *r, const char *import_id, uint64_t staged, pulse_import_result_t *out, double *t_insert)
{
    PGconn *c = r->conn;
    const char *params[1] = {import_id};
    double t0 = pulse_now_s();
    if (progress(r, "merging customers"))
        return -1;
    PGresult *res =
        q(c, out,
          "WITH up AS (INSERT INTO customers AS c (tenant_id, external_id, email, name, churned, attributes, import_id) "
          "SELECT pulse_current_tenant(), external_id, email, name, churned, attributes, $1::uuid FROM "
          "(SELECT DISTINCT ON (external_id) * FROM pulse_import_stage ORDER BY external_id, line DESC) s ORDER BY line "
          "ON CONFLICT (tenant_id, external_id) DO UPDATE SET attributes = c.attributes || EXCLUDED.attributes, "
          "email = coalesce(EXCLUDED.email, c.email), name = coalesce(EXCLUDED.name, c.name), "
          "churned = coalesce(EXCLUDED.churned, c.churned), updated_at = now(), import_id = EXCLUDED.import_id "
          "RETURNING (xmax = 0) AS created) "
          "SELECT count(*) FILTER (WHERE created), count(*) FROM up",
          1, params);
    if (res == NULL)
        return -1;
    out->customers_created = val_u64(res, 0, 0);
    uint64_t distinct = val_u64(res, 0, 1);
    PQclear(res);
    out->rows_inserted = out->customers_created;
    out->rows_existing = distinct - out->customers_created;
    out->rows_duplicate = staged > distinct ? staged - distinct : 0;
    out->rows_accepted = distinct;
    if (out->rows_duplicate > 0) {
        res =
            q(c, out,
              "SELECT line, count(*) OVER () FROM (SELECT line, row_number() OVER (PARTITION BY external_id ORDER BY line DESC) rn "
              "FROM pulse_import_stage) x WHERE rn > 1 ORDER BY line LIMIT 10",
              0, NULL);
        if (res == NULL)
            return -1;
        uint64_t lines[10];
        size_t n;
        lines_of(res, lines, &n);
        PQclear(res);
        pulse_import_note(r->m, "duplicates", out->rows_duplicate, lines, n);
    }
    if (out->rows_existing > 0)
        pulse_import_note(r->m, "existing", out->rows_existing, NULL, 0);
    *t_insert = pulse_now_s() - t0;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The run. */

int pulse_import_run(PGconn *conn, const char *tenant_id, const char *import_id, const pulse_import_plan_t *plan, const char *path,
                     pulse_import_progress_cb cb, void *ud, pulse_import_result_t *out)
{
    memset(out, 0, sizeof(*out));
    double t_start = pulse_now_s(), t_read = 0, t_insert = 0, t_customers = 0, t_commit = 0;
    run_t r;
    memset(&r, 0, sizeof(r));
    r.conn = conn;
    r.plan = plan;
    r.cb = cb;
    r.ud = ud;
    r.header_pending = plan->has_header;
    r.next_progress = PROGRESS_ROWS;
    int in_tx = 0, in_copy = 0, fd = -1;

    char err[512];
    r.m = pulse_import_mapper_new(plan, err, sizeof(err));
    if (r.m == NULL) {
        set_error(out, PULSE_IMPORT_FAILED, "bad_plan", "%s", err);
        return out->status;
    }
    pulse_import_map_defer(r.m); /* flags settled in flush_copy */
    for (int i = 0; i < plan->n_fields; i++)
        if ((size_t)plan->fields[i].column + 1 > r.pad_to)
            r.pad_to = (size_t)plan->fields[i].column + 1;
    for (int i = 0; i < plan->n_attrs; i++)
        if ((size_t)plan->attrs[i].column + 1 > r.pad_to)
            r.pad_to = (size_t)plan->attrs[i].column + 1;

    struct stat st;
    if (!plan->xlsx) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) != 0) {
            set_error(out, PULSE_IMPORT_FAILED, "io", "cannot open the file: %s", strerror(errno));
            goto finish;
        }
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    } else if (stat(path, &st) != 0) {
        set_error(out, PULSE_IMPORT_FAILED, "io", "cannot open the file: %s", strerror(errno));
        goto finish;
    }
    r.prog.bytes_total = (uint64_t)st.st_size;

    const char *tp[1] = {tenant_id};
    if (exec_ok(conn, out, "BEGIN", 0, NULL) != 0)
        goto finish;
    in_tx = 1;
    /* One upload of a kind per tenant at a time: the "already stored" probe and the plain INSERT of
     * first-seen keys below rely on it. work_mem: the DISTINCT and duplicate queries stay in memory. */
    char lockkey[128];
    snprintf(lockkey, sizeof(lockkey), "pulse.import:%s:%s", tenant_id, pulse_import_kind_name(plan->kind));
    const char *lp[1] = {lockkey};
    if (exec_ok(conn, out, "SELECT set_config('pulse.tenant_id', $1, true)", 1, tp) != 0 ||
        exec_ok(conn, out, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", 1, lp) != 0 ||
        exec_ok(conn, out, "SET LOCAL work_mem = '64MB'", 0, NULL) != 0 ||
        exec_ok(conn, out, pulse_import_stage_ddl(r.m), 0, NULL) != 0)
        goto finish;
    {
        char sql[1024];
        snprintf(sql, sizeof(sql), "COPY pulse_import_stage (%s) FROM STDIN", pulse_import_stage_copy_columns(r.m));
        PGresult *res = PQexec(conn, sql);
        if (PQresultStatus(res) != PGRES_COPY_IN) {
            set_error(out, PULSE_IMPORT_FAILED, "database", "%s", PQresultErrorMessage(res));
            PQclear(res);
            goto finish;
        }
        PQclear(res);
        in_copy = 1;
    }

    if (progress(&r, "reading"))
        goto finish;
    int rd = plan->xlsx ? read_xlsx(&r, path, out) : read_csv(&r, fd, out);
    if (rd != 0 || r.cancelled)
        goto finish;
    if (r.copy_failed || flush_copy(&r) != 0) {
        in_copy = 0; /* the connection reported the failure; the result drains in rollback */
        set_error(out, PULSE_IMPORT_FAILED, "database", "COPY failed: %s", r.copy_err);
        goto finish;
    }
    in_copy = 0;
    if (PQputCopyEnd(conn, NULL) != 1) {
        set_error(out, PULSE_IMPORT_FAILED, "database", "COPY failed: %s", PQerrorMessage(conn));
        goto finish;
    }
    {
        PGresult *res = PQgetResult(conn);
        int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            set_error(out, PULSE_IMPORT_FAILED, "database", "COPY failed: %s", PQresultErrorMessage(res));
        PQclear(res);
        while ((res = PQgetResult(conn)) != NULL)
            PQclear(res);
        if (!ok)
            goto finish;
    }
    t_read = pulse_now_s() - t_start;

    pulse_import_counts_t c;
    pulse_import_counts(r.m, &c);
    out->rows_read = c.rows_read;
    out->rows_rejected = c.rows_rejected;
    if (c.rows_read == 0) {
        set_error(out, PULSE_IMPORT_FAILED, "empty_file", "the file has no data rows");
        goto finish;
    }
    double rate = (double)c.rows_rejected / (double)c.rows_read;
    if (rate > plan->max_error_rate) {
        set_error(out, PULSE_IMPORT_REJECTED, "too_many_bad_rows",
                  "%llu of %llu rows (%.2f%%) were rejected, above the limit of %.2f%%: nothing was stored",
                  (unsigned long long)c.rows_rejected, (unsigned long long)c.rows_read, rate * 100, plan->max_error_rate * 100);
        goto finish;
    }
    if (progress(&r, "storing"))
        goto finish;
    if (plan->kind == PULSE_IMPORT_CUSTOMERS) {
        if (store_customers(&r, import_id, c.rows_accepted, out, &t_insert) != 0)
            goto finish;
    } else if (store_records(&r, import_id, c.rows_accepted, out, &t_insert, &t_customers) != 0)
        goto finish;
    if (r.cancelled)
        goto finish;
    double t0 = pulse_now_s();
    if (exec_ok(conn, out, "COMMIT", 0, NULL) != 0)
        goto finish;
    t_commit = pulse_now_s() - t0;
    in_tx = 0;
    out->status = PULSE_IMPORT_OK;
    progress(&r, "done");

finish:
    if (r.cancelled && out->status == PULSE_IMPORT_OK && in_tx)
        set_error(out, PULSE_IMPORT_CANCELLED, "cancelled", "the import was cancelled");
    if (in_copy)
        copy_abort(conn, out->error[0] ? out->error : "import aborted");
    if (in_tx)
        rollback(conn);
    if (fd >= 0)
        close(fd);
    if (out->status != PULSE_IMPORT_OK) {
        /* nothing stored: the counts say what was read, nothing was accepted */
        out->rows_accepted = out->rows_inserted = out->rows_existing = out->rows_duplicate = out->customers_created = 0;
    }
    {
        pulse_import_counts_t c;
        pulse_import_counts(r.m, &c);
        out->rows_read = c.rows_read;
        out->rows_rejected = c.rows_rejected;
        pulse_buf_t rep = PULSE_BUF_INIT;
        pulse_import_report(r.m, out, out->status != PULSE_IMPORT_OK, pulse_now_s() - t_start, &rep);
        /* where the time went, for the benchmark and the logs */
        rep.len--; /* drop the closing brace */
        pulse_buf_printf(&rep, ",\"timings_ms\":{\"read_and_copy\":%.0f,\"insert\":%.0f,\"customers\":%.0f,\"commit\":%.0f}}",
                         t_read * 1e3, t_insert * 1e3, t_customers * 1e3, t_commit * 1e3);
        out->report_json = rep.data;
    }
    pulse_import_mapper_free(r.m);
    pulse_buf_free(&r.copy);
    free(r.cells);
    return out->status;
}
