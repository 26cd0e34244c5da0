/* Benchmark of the import loader (see load_bench.h). */
#include "ingest/load_bench.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/procstat.h"
#include "ingest/csv.h"
#include "ingest/load.h"
#include "script/json.h"
#include "script/script.h"

#define CHUNK ((size_t)256 << 10)

static int slurp(const char *path, pulse_buf_t *b, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    char tmp[65536];
    size_t n;
    while (b->len < max && (n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        pulse_buf_append(b, tmp, n);
    fclose(f);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The plan: a JSON file (read through the embedded Lua VM's json), or guessed for Pulse's own
 * transactions format and the CDNOW layout. */

static int plan_from_json(const char *path, pulse_import_plan_t *plan, char *err, size_t errlen)
{
    pulse_buf_t b = PULSE_BUF_INIT;
    if (slurp(path, &b, (size_t)1 << 20) != 0)
        return pulse_fail(err, errlen, "cannot read %s: %s", path, strerror(errno));
    lua_State *L = luaL_newstate();
    int rc = pulse_json_decode_push(L, b.data ? b.data : "", b.len, err, errlen);
    if (rc == 0)
        rc = pulse_import_plan_from_lua(L, -1, plan, err, errlen);
    lua_close(L);
    pulse_buf_free(&b);
    return rc;
}

typedef struct guess_t {
    char names[16][64];  /* the first record */
    char values[16][64]; /* the second */
    size_t n, rows;
} guess_t;

static int first_record(void *ud, size_t row, const pulse_csv_field_t *f, size_t n)
{
    guess_t *g = ud;
    for (size_t i = 0; i < n && i < 16; i++)
        snprintf(g->rows ? g->values[i] : g->names[i], 64, "%.*s", (int)(f[i].len < 63 ? f[i].len : 63), f[i].ptr);
    if (g->rows == 0)
        g->n = n < 16 ? n : 16;
    return ++g->rows == 2;
}

/* The first date format the first data row's value reads in. */
static pulse_date_format_t guess_date(const char *v)
{
    for (int k = PULSE_DATE_NONE + 1; k < PULSE_DATE_FORMAT_COUNT; k++)
        if (pulse_date_parse(v, strlen(v), (pulse_date_format_t)k, NULL, NULL) == 0)
            return (pulse_date_format_t)k;
    return PULSE_DATE_ISO;
}

static void add_field(pulse_import_plan_t *p, const char *name, int col, pulse_date_format_t fmt)
{
    pulse_import_field_t *f = &p->fields[p->n_fields++];
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->column = col;
    f->date_format = fmt;
}

static int plan_guess(const char *path, pulse_import_plan_t *plan, char *err, size_t errlen)
{
    pulse_buf_t b = PULSE_BUF_INIT;
    if (slurp(path, &b, 65536) != 0)
        return pulse_fail(err, errlen, "cannot read %s: %s", path, strerror(errno));
    pulse_csv_dialect_t d;
    if (pulse_csv_sniff(b.data ? b.data : "", b.len < 65536 ? b.len : 65536, &d, err, errlen) != 0) {
        pulse_buf_free(&b);
        return -1;
    }
    guess_t g = {0};
    pulse_csv_dialect_t d0 = d;
    d0.has_header = 0;
    pulse_csv_parser_t *p = pulse_csv_parser_new(&d0, first_record, &g);
    if (pulse_csv_feed(p, b.data, b.len) == 0)
        pulse_csv_finish(p);
    pulse_csv_free(p);
    pulse_buf_free(&b);
    pulse_import_plan_init(plan);
    plan->dialect = d;
    plan->kind = PULSE_IMPORT_TRANSACTIONS;
    if (d.has_header) {
        static const struct {
            const char *header, *field;
        } known[] = {{"CustomerID", "customer_id"},      {"TransactionDate", "transaction_date"},
                     {"TransactionAmount", "amount"},    {"ProductCategory", "product_category"},
                     {"Quantity", "quantity"},           {"InvoiceNo", "invoice_no"},
                     {"StockCode", "product"},           {"Description", "description"},
                     {"UnitPrice", "unit_price"},        {"Country", "country"},
                     {"customer_id", "customer_id"},     {"date", "transaction_date"},
                     {"number_of_cds", "quantity"},      {"dollar_value", "amount"},
                     {"InvoiceDate", "transaction_date"}};
        for (size_t i = 0; i < g.n; i++)
            for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
                if (strcmp(g.names[i], known[k].header) == 0)
                    add_field(plan, known[k].field, (int)i,
                              strcmp(known[k].field, "transaction_date") == 0 ? guess_date(g.values[i]) : PULSE_DATE_NONE);
        plan->has_header = 1;
    } else if (d.sep == PULSE_CSV_SEP_WHITESPACE && g.n == 4) { /* CDNOW: id YYYYMMDD cds dollars */
        add_field(plan, "customer_id", 0, PULSE_DATE_NONE);
        add_field(plan, "transaction_date", 1, PULSE_DATE_YMD_COMPACT);
        add_field(plan, "quantity", 2, PULSE_DATE_NONE);
        add_field(plan, "amount", 3, PULSE_DATE_NONE);
        plan->has_header = 0;
    } else
        return pulse_fail(err, errlen, "cannot guess a plan for this file: pass --plan PLAN.json");
    return pulse_import_plan_check(plan, err, errlen);
}

/* ---------------------------------------------------------------------------------------------
 * In memory: the CSV parser alone, then parse + clean + map + COPY text (discarded). */

typedef struct mem_t {
    pulse_import_mapper_t *m; /* NULL: parse only */
    pulse_csv_parser_t *csv;
    pulse_import_cell_t *cells;
    size_t capcells;
    pulse_buf_t copy;
    int header_pending;
    uint64_t rows, copy_bytes;
    double cpu_seconds; /* of the pass: steadier than wall time on a shared machine */
    FILE *copy_out;     /* NULL, or where the COPY text goes (--copy-out: to compare two builds) */
} mem_t;

static void mem_flush(mem_t *s)
{
    if (s->m != NULL)
        pulse_import_map_settle(s->m);
    s->copy_bytes += s->copy.len;
    if (s->copy_out != NULL)
        fwrite(s->copy.data, 1, s->copy.len, s->copy_out);
    pulse_buf_reset(&s->copy);
}

static int mem_row(void *ud, size_t row, const pulse_csv_field_t *f, size_t n)
{
    mem_t *s = ud;
    if (s->header_pending) {
        s->header_pending = 0;
        return 0;
    }
    s->rows++;
    if (s->m == NULL)
        return 0;
    if (n > s->capcells) {
        s->capcells = n * 2;
        s->cells = pulse_xrealloc(s->cells, s->capcells * sizeof(*s->cells));
    }
    for (size_t i = 0; i < n; i++) {
        s->cells[i].p = f[i].ptr;
        s->cells[i].n = f[i].len;
        s->cells[i].bad_utf8 = f[i].bad_utf8;
    }
    pulse_import_map_row(s->m, pulse_csv_line(s->csv), s->cells, n, &s->copy);
    if (s->copy.len >= CHUNK)
        mem_flush(s);
    return 0;
}

/* One pass over the file (read() in 256 KiB chunks from the page cache). Seconds, or -1. */
static double mem_pass(const char *path, const pulse_import_plan_t *plan, int map, mem_t *s, FILE *copy_out, FILE *out)
{
    memset(s, 0, sizeof(*s));
    s->copy_out = copy_out;
    char err[256];
    if (map && (s->m = pulse_import_mapper_new(plan, err, sizeof(err))) == NULL) {
        fprintf(out, "import bench: %s\n", err);
        return -1;
    }
    if (map)
        pulse_import_map_defer(s->m); /* as pulse_import_run does; settled in mem_flush */
    pulse_csv_dialect_t d = plan->dialect;
    d.has_header = 0;
    s->header_pending = plan->has_header;
    s->csv = pulse_csv_parser_new(&d, mem_row, s);
    int fd = open(path, O_RDONLY);
    char *buf = pulse_xmalloc(CHUNK);
    double t0 = pulse_now_s(), c0 = pulse_cpu_s();
    int rc = 0;
    ssize_t got;
    while (rc == 0 && (got = read(fd, buf, CHUNK)) > 0)
        rc = pulse_csv_feed(s->csv, buf, (size_t)got);
    if (rc == 0)
        rc = pulse_csv_finish(s->csv);
    mem_flush(s);
    double t = pulse_now_s() - t0;
    s->cpu_seconds = pulse_cpu_s() - c0;
    if (rc != 0)
        fprintf(out, "import bench: parse failed: %s\n", pulse_csv_error(s->csv));
    close(fd);
    free(buf);
    pulse_csv_free(s->csv);
    free(s->cells);
    pulse_buf_free(&s->copy);
    return rc != 0 ? -1 : t;
}

/* ---------------------------------------------------------------------------------------------
 * Database. */

static PGresult *run_sql(PGconn *c, const char *sql, FILE *out)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(out, "import bench: %s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    return r;
}

static int run_ok(PGconn *c, const char *sql, FILE *out)
{
    PGresult *r = run_sql(c, sql, out);
    PQclear(r);
    return r ? 0 : -1;
}

/* The first value of a one-row query into buf (empty on failure). */
static void one_value(PGconn *c, const char *sql, char *buf, size_t cap, FILE *out)
{
    buf[0] = '\0';
    PGresult *r = run_sql(c, sql, out);
    if (r && PQntuples(r) > 0)
        snprintf(buf, cap, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

static int bench_progress(void *ud, const pulse_import_progress_t *p)
{
    FILE *out = ud;
    static double t0;
    static const char *last;
    double t = pulse_now_s();
    if (last == NULL || strcmp(last, p->phase) != 0) {
        if (last != NULL)
            fprintf(out, "  phase %-18s %.2f s\n", last, t - t0);
        t0 = t;
        last = strcmp(p->phase, "done") == 0 ? NULL : p->phase;
    }
    return 0;
}

/* Rows of a tenant written out as COPY text by the owner, deleted, and loaded back with a plain
 * COPY FROM STDIN into another tenant: what `psql \copy` of the same rows costs. Seconds, or -1. */
static double baseline_copy(PGconn *own, const char *table, const char *from_tenant, const char *to_tenant, const char *tmpfile,
                            FILE *out)
{
    char sql[1024];
    PGresult *r;
    /* column list of the table, with the tenant replaced */
    snprintf(
        sql, sizeof(sql),
        "SELECT string_agg(CASE WHEN attname = 'tenant_id' THEN '''%s''::uuid' ELSE quote_ident(attname) END, ', ' ORDER BY "
        "attnum), "
        "string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = '%s'::regclass AND attnum > 0 "
        "AND NOT attisdropped",
        to_tenant, table);
    if ((r = run_sql(own, sql, out)) == NULL)
        return -1;
    char *sel = pulse_xstrdup(PQgetvalue(r, 0, 0)), *cols = pulse_xstrdup(PQgetvalue(r, 0, 1));
    PQclear(r);
    FILE *f = fopen(tmpfile, "wb");
    double t = -1;
    if (f == NULL)
        goto done;
    pulse_buf_t q = PULSE_BUF_INIT;
    /* in an order unrelated to the key, as rows come in a user's file */
    pulse_buf_printf(&q, "COPY (SELECT %s FROM %s WHERE tenant_id = '%s' ORDER BY md5(row_key::text)) TO STDOUT", sel, table,
                     from_tenant);
    r = PQexec(own, q.data);
    pulse_buf_free(&q);
    if (PQresultStatus(r) != PGRES_COPY_OUT) {
        fprintf(out, "import bench: COPY TO: %s", PQresultErrorMessage(r));
        PQclear(r);
        fclose(f);
        goto done;
    }
    PQclear(r);
    char *line;
    int n;
    while ((n = PQgetCopyData(own, &line, 0)) > 0) {
        fwrite(line, 1, (size_t)n, f);
        PQfreemem(line);
    }
    while ((r = PQgetResult(own)) != NULL)
        PQclear(r);
    fclose(f);
    snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE tenant_id = '%s'", table, from_tenant);
    if (run_ok(own, sql, out) != 0)
        goto done;
    snprintf(sql, sizeof(sql), "VACUUM %s", table);
    run_ok(own, sql, out);
    run_ok(own, "CHECKPOINT", out);

    int fd = open(tmpfile, O_RDONLY);
    char *buf = pulse_xmalloc(CHUNK);
    pulse_buf_t c = PULSE_BUF_INIT;
    pulse_buf_printf(&c, "COPY %s (%s) FROM STDIN", table, cols);
    double t0 = pulse_now_s();
    r = PQexec(own, c.data);
    pulse_buf_free(&c);
    int ok = PQresultStatus(r) == PGRES_COPY_IN;
    PQclear(r);
    ssize_t got;
    while (ok && (got = read(fd, buf, CHUNK)) > 0)
        ok = PQputCopyData(own, buf, (int)got) == 1;
    ok = PQputCopyEnd(own, ok ? NULL : "aborted") == 1 && ok;
    while ((r = PQgetResult(own)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            fprintf(out, "import bench: COPY FROM: %s", PQresultErrorMessage(r));
            ok = 0;
        }
        PQclear(r);
    }
    if (ok)
        t = pulse_now_s() - t0;
    close(fd);
    free(buf);
done:
    unlink(tmpfile);
    free(sel);
    free(cols);
    return t;
}

static int bench_db(const char *conninfo, const char *path, const pulse_import_plan_t *plan, uint64_t bytes, FILE *out)
{
    PGconn *own = PQconnectdb(conninfo), *app = PQconnectdb(conninfo);
    int rc = 1;
    char tenant[64] = "", tenant2[64] = "", import_id[64], sql[512];
    if (PQstatus(own) != CONNECTION_OK || PQstatus(app) != CONNECTION_OK) {
        fprintf(out, "database: not reachable (%s), end-to-end skipped\n", PQerrorMessage(own));
        rc = 0;
        goto done;
    }
    PQclear(PQexec(own, "SET client_min_messages = warning"));
    if (run_ok(app, "SET ROLE pulse_app", out) != 0)
        goto done;
    one_value(own, "INSERT INTO organizations (name, industry) VALUES ('pulse bench import', 'ecommerce') RETURNING id", tenant,
              sizeof(tenant), out);
    one_value(own, "INSERT INTO organizations (name, industry) VALUES ('pulse bench import baseline', 'ecommerce') RETURNING id",
              tenant2, sizeof(tenant2), out);
    one_value(own, "SELECT gen_random_uuid()", import_id, sizeof(import_id), out);
    if (!tenant[0] || !tenant2[0] || !import_id[0])
        goto done;
    const char *table = pulse_import_kind_name(plan->kind);

    pulse_import_result_t res;
    double t0 = pulse_now_s();
    pulse_import_run(app, tenant, import_id, plan, path, bench_progress, out, &res);
    double t = pulse_now_s() - t0;
    if (res.status != PULSE_IMPORT_OK) {
        fprintf(out, "import: %s: %s\n", res.error_code, res.error);
        if (res.report_json)
            fprintf(out, "report: %s\n", res.report_json);
        free(res.report_json);
        goto cleanup;
    }
    fprintf(out,
            "import end to end: %.2f s, %.0f rows/s, %.1f MB/s (%llu read, %llu inserted, %llu rejected, %llu duplicate, "
            "%llu customers created)\n",
            t, (double)res.rows_read / t, (double)bytes / 1e6 / t, (unsigned long long)res.rows_read,
            (unsigned long long)res.rows_inserted, (unsigned long long)res.rows_rejected, (unsigned long long)res.rows_duplicate,
            (unsigned long long)res.customers_created);
    fprintf(out, "report: %.*s%s\n", 1500, res.report_json, strlen(res.report_json) > 1500 ? "..." : "");
    uint64_t inserted = res.rows_inserted;
    free(res.report_json);

    if (plan->kind != PULSE_IMPORT_CUSTOMERS && res.rows_read <= 2000000) {
        /* the same file again: every record is already there */
        one_value(own, "SELECT gen_random_uuid()", import_id, sizeof(import_id), out);
        t0 = pulse_now_s();
        pulse_import_run(app, tenant, import_id, plan, path, NULL, NULL, &res);
        t = pulse_now_s() - t0;
        fprintf(out, "re-upload of the same file: %.2f s, status %d, %llu inserted, %llu already stored\n", t, (int)res.status,
                (unsigned long long)res.rows_inserted, (unsigned long long)res.rows_existing);
        free(res.report_json);
    }

    if (plan->kind != PULSE_IMPORT_CUSTOMERS) {
        char tmp[] = "/tmp/pulse-bench-copy-XXXXXX";
        int fd = mkstemp(tmp);
        if (fd >= 0) {
            close(fd);
            double tb = baseline_copy(own, table, tenant, tenant2, tmp, out);
            if (tb > 0) {
                /* our import again into the emptied table, for a like-for-like comparison */
                one_value(own, "SELECT gen_random_uuid()", import_id, sizeof(import_id), out);
                snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE tenant_id = '%s'", table, tenant2);
                run_ok(own, sql, out);
                snprintf(sql, sizeof(sql), "VACUUM %s", table);
                run_ok(own, sql, out);
                run_ok(own, "CHECKPOINT", out);
                t0 = pulse_now_s();
                pulse_import_run(app, tenant, import_id, plan, path, NULL, NULL, &res);
                double t2 = pulse_now_s() - t0;
                free(res.report_json);
                fprintf(out, "plain COPY of the same %llu rows into %s (as owner, like psql \\copy): %.2f s, %.0f rows/s\n",
                        (unsigned long long)inserted, table, tb, (double)inserted / tb);
                fprintf(out, "import again into the emptied table: %.2f s -> ratio import / COPY = %.2f\n", t2, t2 / tb);
            }
        }
    }
    rc = 0;
cleanup:
    for (int i = 0; i < 2; i++) {
        const char *tn = i ? tenant2 : tenant;
        snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE tenant_id = '%s'", table, tn);
        run_ok(own, sql, out);
        snprintf(sql, sizeof(sql), "DELETE FROM organizations WHERE id = '%s'", tn); /* customers cascade */
        run_ok(own, sql, out);
    }
    snprintf(sql, sizeof(sql), "VACUUM %s", table);
    run_ok(own, sql, out);
done:
    PQfinish(own);
    PQfinish(app);
    return rc;
}

int pulse_import_bench(int argc, char **argv, const char *conninfo, FILE *out)
{
    const char *file = NULL, *plan_path = NULL, *kind = NULL, *copy_path = NULL;
    int memory_only = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--plan") == 0 && i + 1 < argc)
            plan_path = argv[++i];
        else if (strcmp(argv[i], "--copy-out") == 0 && i + 1 < argc)
            copy_path = argv[++i];
        else if (strcmp(argv[i], "--memory-only") == 0)
            memory_only = 1;
        else if (strcmp(argv[i], "--kind") == 0 && i + 1 < argc)
            kind = argv[++i];
        else if (argv[i][0] != '-' && file == NULL)
            file = argv[i];
        else {
            fprintf(stderr, "pulse bench import: unexpected argument %s\n", argv[i]);
            return 2;
        }
    }
    if (file == NULL) {
        fprintf(stderr, "Usage: pulse bench import FILE [--plan PLAN.json] [--kind transactions|events|customers] [--memory-only]\n"
                        "                         [--copy-out FILE (the COPY text of the last in-memory pass)]\n");
        return 2;
    }
    pulse_import_plan_t plan;
    char err[512];
    if ((plan_path ? plan_from_json(plan_path, &plan, err, sizeof(err)) : plan_guess(file, &plan, err, sizeof(err))) != 0) {
        fprintf(stderr, "pulse bench import: %s\n", err);
        return 1;
    }
    if (kind != NULL && strcmp(kind, pulse_import_kind_name(plan.kind)) != 0) {
        fprintf(stderr, "pulse bench import: the plan is for %s, not %s\n", pulse_import_kind_name(plan.kind), kind);
        return 2;
    }
    struct stat st;
    if (stat(file, &st) != 0) {
        fprintf(stderr, "pulse bench import: %s: %s\n", file, strerror(errno));
        return 1;
    }
    uint64_t bytes = (uint64_t)st.st_size;
    fprintf(out, "file %s: %.1f MB, plan: %s, %d fields, %s\n", file, (double)bytes / 1e6, pulse_import_kind_name(plan.kind),
            plan.n_fields, plan.xlsx ? "xlsx" : "csv");
    if (!plan.xlsx) {
        mem_t s;
        double best_parse = -1, best_map = -1, cpu_parse = -1, cpu_map = -1;
        for (int i = 0; i < 3; i++) {
            double t = mem_pass(file, &plan, 0, &s, NULL, out);
            if (t < 0)
                return 1;
            if (best_parse < 0 || t < best_parse)
                best_parse = t;
            if (cpu_parse < 0 || s.cpu_seconds < cpu_parse)
                cpu_parse = s.cpu_seconds;
        }
        uint64_t rows = s.rows, copy_bytes = 0;
        pulse_import_counts_t c = {0};
        FILE *copy_out = NULL;
        if (copy_path != NULL && (copy_out = fopen(copy_path, "wb")) == NULL) {
            fprintf(stderr, "pulse bench import: cannot write %s: %s\n", copy_path, strerror(errno));
            return 1;
        }
        for (int i = 0; i < 3; i++) {
            double t = mem_pass(file, &plan, 1, &s, i == 2 ? copy_out : NULL, out);
            if (t < 0)
                return 1;
            if (best_map < 0 || t < best_map)
                best_map = t;
            if (cpu_map < 0 || s.cpu_seconds < cpu_map)
                cpu_map = s.cpu_seconds;
            pulse_import_counts(s.m, &c);
            copy_bytes = s.copy_bytes;
            pulse_import_mapper_free(s.m);
        }
        if (copy_out != NULL)
            fclose(copy_out);
        fprintf(out, "rows: %llu (accepted %llu, rejected %llu)\n", (unsigned long long)rows, (unsigned long long)c.rows_accepted,
                (unsigned long long)c.rows_rejected);
        fprintf(out, "in memory, CSV parse only:            %7.1f MB/s, %.2f M rows/s; per CPU second %.1f MB/s\n",
                (double)bytes / 1e6 / best_parse, (double)rows / 1e6 / best_parse, (double)bytes / 1e6 / cpu_parse);
        fprintf(out,
                "in memory, parse+validate+map+COPY text: %7.1f MB/s, %.2f M rows/s (%.1f MB of COPY text), best of 3; per CPU "
                "second %.1f MB/s\n",
                (double)bytes / 1e6 / best_map, (double)rows / 1e6 / best_map, (double)copy_bytes / 1e6,
                (double)bytes / 1e6 / cpu_map);
    }
    int rc = 0;
    if (memory_only)
        fprintf(out, "database: --memory-only, end-to-end skipped\n");
    else if (conninfo != NULL)
        rc = bench_db(conninfo, file, &plan, bytes, out);
    else
        fprintf(out, "database: none, end-to-end skipped\n");
    fprintf(out, "peak RSS: %.1f MB\n", pulse_peak_rss_mb());
    return rc;
}
