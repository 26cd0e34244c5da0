/* Unit tests for the import loader's per-row engine (src/ingest/load_map.c): plan checks, cleaning
 * decisions, the natural key, the COPY text and the report. No database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "ingest/load.h"

#define NOW 1735689600 /* 2025-01-01 */

static void add_field(pulse_import_plan_t *p, const char *name, int col, pulse_date_format_t fmt)
{
    pulse_import_field_t *f = &p->fields[p->n_fields++];
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->column = col;
    f->date_format = fmt;
}

/* customer_id, transaction_date (ISO), amount, quantity, invoice_no */
static void tx_plan(pulse_import_plan_t *p)
{
    pulse_import_plan_init(p);
    p->now_epoch = NOW;
    add_field(p, "customer_id", 0, PULSE_DATE_NONE);
    add_field(p, "transaction_date", 1, PULSE_DATE_ISO);
    add_field(p, "amount", 2, PULSE_DATE_NONE);
    add_field(p, "quantity", 3, PULSE_DATE_NONE);
    add_field(p, "invoice_no", 4, PULSE_DATE_NONE);
    snprintf(p->cancellation_field, sizeof(p->cancellation_field), "invoice_no");
    snprintf(p->cancellation_prefix, sizeof(p->cancellation_prefix), "C");
}

/* Splits a '|'-separated row into cells (bytes point into s, which must stay alive). */
static size_t cells_of(const char *s, pulse_import_cell_t *cells)
{
    size_t n = 0;
    const char *p = s;
    for (;;) {
        const char *e = strchr(p, '|');
        cells[n].p = p;
        cells[n].n = e ? (size_t)(e - p) : strlen(p);
        cells[n].bad_utf8 = 0;
        n++;
        if (!e)
            break;
        p = e + 1;
    }
    return n;
}

static int map(pulse_import_mapper_t *m, uint64_t line, const char *row, pulse_buf_t *copy)
{
    pulse_import_cell_t cells[32];
    size_t n = cells_of(row, cells);
    return pulse_import_map_row(m, line, cells, n, copy);
}

static char *report_of(pulse_import_mapper_t *m)
{
    pulse_import_result_t r;
    memset(&r, 0, sizeof(r));
    pulse_buf_t b = PULSE_BUF_INIT;
    pulse_import_report(m, &r, 0, 0.5, &b);
    return b.data;
}

static void test_plan_checks(void **state)
{
    (void)state;
    pulse_import_plan_t p;
    char err[256];
    tx_plan(&p);
    assert_int_equal(pulse_import_plan_check(&p, err, sizeof(err)), 0);

    add_field(&p, "colour", 6, PULSE_DATE_NONE);
    add_field(&p, "size", 7, PULSE_DATE_NONE);
    assert_int_equal(pulse_import_plan_check(&p, err, sizeof(err)), -1);
    assert_string_equal(err, "unknown fields for transactions: colour, size");

    tx_plan(&p);
    p.n_fields = 1; /* customer_id only */
    assert_int_equal(pulse_import_plan_check(&p, err, sizeof(err)), -1);
    assert_string_equal(err, "required field transaction_date is not mapped");

    pulse_import_plan_init(&p);
    add_field(&p, "customer_id", 0, PULSE_DATE_NONE);
    add_field(&p, "transaction_date", 1, PULSE_DATE_NONE);
    add_field(&p, "amount", 2, PULSE_DATE_NONE);
    assert_int_equal(pulse_import_plan_check(&p, err, sizeof(err)), -1);
    assert_string_equal(err, "field transaction_date needs a date_format");

    /* amount derived from quantity x unit_price */
    pulse_import_plan_init(&p);
    add_field(&p, "customer_id", 0, PULSE_DATE_NONE);
    add_field(&p, "transaction_date", 1, PULSE_DATE_ISO);
    add_field(&p, "quantity", 2, PULSE_DATE_NONE);
    assert_int_equal(pulse_import_plan_check(&p, err, sizeof(err)), -1);
    assert_string_equal(err, "required field amount is not mapped");
    p.derive_amount_from_qty_price = 1;
    assert_int_equal(pulse_import_plan_check(&p, err, sizeof(err)), -1);
    assert_string_equal(err, "a derived amount needs quantity and unit_price mapped");
    add_field(&p, "unit_price", 3, PULSE_DATE_NONE);
    assert_int_equal(pulse_import_plan_check(&p, err, sizeof(err)), 0);

    /* events: event_type required; transactions' names are unknown there */
    pulse_import_plan_init(&p);
    p.kind = PULSE_IMPORT_EVENTS;
    add_field(&p, "customer_id", 0, PULSE_DATE_NONE);
    add_field(&p, "event_date", 1, PULSE_DATE_ISO);
    assert_int_equal(pulse_import_plan_check(&p, err, sizeof(err)), -1);
    assert_string_equal(err, "required field event_type is not mapped");
    add_field(&p, "amount", 2, PULSE_DATE_NONE);
    assert_int_equal(pulse_import_plan_check(&p, err, sizeof(err)), -1);
    assert_string_equal(err, "unknown field for events: amount");

    /* attributes: customers only, not on a mapped column */
    tx_plan(&p);
    p.n_attrs = 1;
    p.attrs[0].column = 9;
    snprintf(p.attrs[0].name, sizeof(p.attrs[0].name), "tenure");
    assert_int_equal(pulse_import_plan_check(&p, err, sizeof(err)), -1);
    assert_string_equal(err, "attributes are only for customers");
    pulse_import_plan_init(&p);
    p.kind = PULSE_IMPORT_CUSTOMERS;
    add_field(&p, "customer_id", 0, PULSE_DATE_NONE);
    p.n_attrs = 1;
    p.attrs[0].column = 0;
    snprintf(p.attrs[0].name, sizeof(p.attrs[0].name), "tenure");
    assert_int_equal(pulse_import_plan_check(&p, err, sizeof(err)), -1);
    assert_string_equal(err, "attribute tenure: column 0 is already mapped to customer_id");

    /* cancellation on an unmapped field; a field mapped twice */
    tx_plan(&p);
    p.n_fields = 3;
    assert_int_equal(pulse_import_plan_check(&p, err, sizeof(err)), -1);
    assert_string_equal(err, "cancellation field invoice_no is not a mapped text field");
    tx_plan(&p);
    add_field(&p, "amount", 7, PULSE_DATE_NONE);
    assert_int_equal(pulse_import_plan_check(&p, err, sizeof(err)), -1);
    assert_string_equal(err, "field amount is mapped twice");
    assert_null(pulse_import_mapper_new(&p, err, sizeof(err)));
}

/* The same record from two differently laid out files has the same key. */
static void test_row_key_stability(void **state)
{
    (void)state;
    pulse_import_plan_t a, b;
    char err[256];
    pulse_import_plan_init(&a);
    a.now_epoch = NOW;
    add_field(&a, "customer_id", 0, PULSE_DATE_NONE);
    add_field(&a, "transaction_date", 1, PULSE_DATE_ISO);
    add_field(&a, "amount", 2, PULSE_DATE_NONE);
    add_field(&a, "product_category", 3, PULSE_DATE_NONE);
    pulse_import_plan_init(&b);
    b.now_epoch = NOW;
    add_field(&b, "product_category", 0, PULSE_DATE_NONE);
    add_field(&b, "amount", 1, PULSE_DATE_NONE);
    add_field(&b, "transaction_date", 2, PULSE_DATE_DMY_SLASH);
    add_field(&b, "customer_id", 3, PULSE_DATE_NONE);
    pulse_import_mapper_t *ma = pulse_import_mapper_new(&a, err, sizeof(err)), *mb = pulse_import_mapper_new(&b, err, sizeof(err));
    assert_non_null(ma);
    assert_non_null(mb);
    uint64_t ka[2], kb[2], kc[2];
    assert_int_equal(map(ma, 2, "C001|2024-03-05|12.5|Books", NULL), 1);
    pulse_import_last_key(ma, ka);
    assert_int_equal(map(mb, 2, " Books |$12.50|05/03/2024| C001", NULL), 1);
    pulse_import_last_key(mb, kb);
    assert_memory_equal(ka, kb, sizeof(ka));
    /* any mapped value changes it */
    assert_int_equal(map(mb, 3, "Books|12.51|05/03/2024|C001", NULL), 1);
    pulse_import_last_key(mb, kc);
    assert_memory_not_equal(ka, kc, sizeof(ka));
    assert_int_equal(map(mb, 4, "Books|12.5|06/03/2024|C001", NULL), 1);
    pulse_import_last_key(mb, kc);
    assert_memory_not_equal(ka, kc, sizeof(ka));
    assert_int_equal(map(mb, 5, "Book|12.5|05/03/2024|C001", NULL), 1);
    pulse_import_last_key(mb, kc);
    assert_memory_not_equal(ka, kc, sizeof(ka));
    char uuid[37];
    pulse_import_key_uuid(ka, uuid);
    assert_int_equal(strlen(uuid), 36);
    assert_true(uuid[8] == '-' && uuid[13] == '-' && uuid[18] == '-' && uuid[23] == '-');
    pulse_import_mapper_free(ma);
    pulse_import_mapper_free(mb);
}

/* The key as a uuid: its 32 hex digits, most significant first, dashes 8-4-4-4-12. */
static void test_key_uuid_text(void **state)
{
    (void)state;
    static const uint64_t keys[][2] = {{UINT64_C(0x0123456789abcdef), UINT64_C(0xfedcba9876543210)},
                                       {0, 0},
                                       {UINT64_MAX, UINT64_MAX},
                                       {UINT64_C(0xa0a0a0a0a0a0a0a0), UINT64_C(0x0909090909090909)}};
    char uuid[37], hex[40], want[37];
    pulse_import_key_uuid(keys[0], uuid);
    assert_string_equal(uuid, "01234567-89ab-cdef-fedc-ba9876543210");
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        snprintf(hex, sizeof(hex), "%016llx%016llx", (unsigned long long)keys[i][0], (unsigned long long)keys[i][1]);
        snprintf(want, sizeof(want), "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
        pulse_import_key_uuid(keys[i], uuid);
        assert_string_equal(uuid, want);
    }
}

static void test_copy_text(void **state)
{
    (void)state;
    pulse_import_plan_t p;
    char err[256];
    tx_plan(&p);
    add_field(&p, "description", 5, PULSE_DATE_NONE);
    pulse_import_mapper_t *m = pulse_import_mapper_new(&p, err, sizeof(err));
    assert_non_null(m);
    assert_string_equal(pulse_import_stage_columns(m),
                        "row_key, customer_ref, occurred_at, amount, quantity, invoice_no, description, is_return");
    assert_string_equal(
        pulse_import_stage_copy_columns(m),
        "line, row_key, customer_ref, occurred_at, amount, quantity, invoice_no, description, is_return, maybe_dup");
    pulse_buf_t copy = PULSE_BUF_INIT;
    assert_int_equal(map(m, 7, "C1|2024-03-05|1,234.5|3|536365|tab\there \\ back", &copy), 1);
    uint64_t k[2];
    char uuid[37], want[256];
    pulse_import_last_key(m, k);
    pulse_import_key_uuid(k, uuid);
    snprintf(want, sizeof(want), "7\t%s\tC1\t1709596800\t1234.5\t3\t536365\ttab\\there \\\\ back\tf\tf\n", uuid);
    assert_string_equal(copy.data, want);
    /* a cancellation: negative amount, is_return; an empty optional text is NULL; same key again */
    pulse_buf_reset(&copy);
    assert_int_equal(map(m, 8, "C1|2024-03-05|10|1|C536365|", &copy), 1);
    pulse_import_last_key(m, k);
    pulse_import_key_uuid(k, uuid);
    snprintf(want, sizeof(want), "8\t%s\tC1\t1709596800\t-10\t1\tC536365\t\\N\tt\tf\n", uuid);
    assert_string_equal(copy.data, want);
    pulse_buf_reset(&copy);
    assert_int_equal(map(m, 9, "C1|2024-03-05|10|1|C536365|", &copy), 1);
    assert_non_null(strstr(copy.data, "\tt\tt\n")); /* maybe_dup */
    pulse_buf_free(&copy);
    pulse_import_mapper_free(m);
}

static void test_cleaning(void **state)
{
    (void)state;
    pulse_import_plan_t p;
    char err[256];
    tx_plan(&p);
    pulse_import_mapper_t *m = pulse_import_mapper_new(&p, err, sizeof(err));
    assert_non_null(m);
    pulse_buf_t copy = PULSE_BUF_INIT;
    assert_int_equal(map(m, 2, "C1|2024-01-31|5.00|1|A1", &copy), 1);
    assert_int_equal(map(m, 3, "|2024-01-31|5.00|1|A1", &copy), 0);     /* missing id */
    assert_int_equal(map(m, 4, " NA |2024-01-31|5.00|1|A1", &copy), 0); /* null-like id */
    assert_int_equal(map(m, 5, "C1|31/01/2024|5.00|1|A1", &copy), 0);   /* not the plan's format */
    assert_int_equal(map(m, 6, "C1|2024-01-31|five|1|A1", &copy), 0);   /* bad amount */
    assert_int_equal(map(m, 7, "C1|2024-01-31|5.00|x|A1", &copy), 0);   /* bad quantity */
    assert_int_equal(map(m, 8, "C1|2024-01-31|5.00|1", &copy), 0);      /* ragged */
    assert_int_equal(map(m, 9, "C1|2024-01-31|5.00|1|A1|extra", &copy), 1);
    assert_int_equal(map(m, 10, "C1|2030-01-01|5.00|1|A1", &copy), 0);  /* future */
    assert_int_equal(map(m, 11, "C1|2025-01-01|5.00|1|A1", &copy), 1);  /* today is fine */
    assert_int_equal(map(m, 12, "C1|2024-01-31|-5.00|1|A1", &copy), 1); /* a return */
    assert_int_equal(map(m, 13, "C1|2024-01-31||1|A1", &copy), 0);      /* no amount */
    assert_int_equal(map(m, 14, "C1|2024-01-31|5|N/A|", &copy), 1);     /* optional values absent */
    assert_int_equal(map(m, 15, "C1|2024-01-31|1e13|1|A1", &copy), 0);  /* over numeric(16,4) */
    char longid[260];
    memset(longid, 'x', 201);
    snprintf(longid + 201, sizeof(longid) - 201, "|2024-01-31|5|1|A1");
    assert_int_equal(map(m, 16, longid, &copy), 0);
    /* invalid UTF-8 (as the CSV parser flags it) and NUL bytes */
    pulse_import_cell_t cells[5];
    cells_of("C1|2024-01-31|5|1|A1", cells);
    cells[4].bad_utf8 = 1;
    assert_int_equal(pulse_import_map_row(m, 17, cells, 5, &copy), 0);
    static const char nul_id[] = {'C', '\0', '1'};
    cells_of("C1|2024-01-31|5|1|A1", cells);
    cells[0].p = nul_id;
    cells[0].n = 3;
    assert_int_equal(pulse_import_map_row(m, 18, cells, 5, &copy), 0);

    pulse_import_counts_t c;
    pulse_import_counts(m, &c);
    assert_int_equal(c.rows_read, 17);
    assert_int_equal(c.rows_accepted, 5);
    assert_int_equal(c.rows_rejected, 12);
    assert_int_equal(c.returns, 1);

    char *rep = report_of(m);
    assert_non_null(strstr(rep, "{\"code\":\"missing_customer_id\",\"action\":\"rejected\",\"count\":2,\"first_lines\":[3,4],"));
    assert_non_null(strstr(rep, "{\"code\":\"bad_date\",\"field\":\"transaction_date\",\"action\":\"rejected\",\"count\":1,"
                                "\"first_lines\":[5],"));
    assert_non_null(
        strstr(rep, "{\"code\":\"bad_number\",\"field\":\"amount\",\"action\":\"rejected\",\"count\":2,\"first_lines\":[6,15]"));
    assert_non_null(
        strstr(rep, "{\"code\":\"bad_number\",\"field\":\"quantity\",\"action\":\"rejected\",\"count\":1,\"first_lines\":[7]"));
    assert_non_null(strstr(rep, "{\"code\":\"ragged_row\",\"action\":\"rejected\",\"count\":1,\"first_lines\":[8]"));
    assert_non_null(strstr(rep, "{\"code\":\"future_date\",\"field\":\"transaction_date\",\"action\":\"rejected\",\"count\":1,"));
    assert_non_null(strstr(rep, "{\"code\":\"returns\",\"action\":\"kept\",\"count\":1,\"first_lines\":[12]"));
    assert_non_null(
        strstr(rep, "{\"code\":\"missing_value\",\"field\":\"amount\",\"action\":\"rejected\",\"count\":1,\"first_lines\":[13]"));
    assert_non_null(
        strstr(rep, "{\"code\":\"too_long\",\"field\":\"customer_id\",\"action\":\"rejected\",\"count\":1,\"first_lines\":[16]"));
    assert_non_null(strstr(
        rep, "{\"code\":\"bad_encoding\",\"field\":\"invoice_no\",\"action\":\"rejected\",\"count\":1,\"first_lines\":[17]"));
    assert_non_null(strstr(
        rep, "{\"code\":\"bad_encoding\",\"field\":\"customer_id\",\"action\":\"rejected\",\"count\":1,\"first_lines\":[18]"));
    free(rep);
    pulse_buf_free(&copy);
    pulse_import_mapper_free(m);
}

static void test_derived_and_first_lines(void **state)
{
    (void)state;
    pulse_import_plan_t p;
    char err[256];
    pulse_import_plan_init(&p);
    p.now_epoch = NOW;
    p.dialect.sep = ';';
    p.dialect.decimal_comma = 1;
    add_field(&p, "customer_id", 0, PULSE_DATE_NONE);
    add_field(&p, "transaction_date", 1, PULSE_DATE_DMY_DOT);
    add_field(&p, "quantity", 2, PULSE_DATE_NONE);
    add_field(&p, "unit_price", 3, PULSE_DATE_NONE);
    p.derive_amount_from_qty_price = 1;
    pulse_import_mapper_t *m = pulse_import_mapper_new(&p, err, sizeof(err));
    assert_non_null(m);
    assert_string_equal(pulse_import_stage_columns(m),
                        "row_key, customer_ref, occurred_at, amount, quantity, unit_price, is_return");
    pulse_buf_t copy = PULSE_BUF_INIT;
    assert_int_equal(map(m, 2, "17850|01.12.2010|6|2,55", &copy), 1);
    assert_non_null(strstr(copy.data, "\t17850\t1291161600\t15.3\t6\t2.55\tf\t"));
    pulse_buf_reset(&copy);
    assert_int_equal(map(m, 3, "17850|01.12.2010|-2|1.234,5", &copy), 1); /* negative quantity: a return */
    assert_non_null(strstr(copy.data, "\t-2469\t-2\t1234.5\tt\t"));
    assert_int_equal(map(m, 4, "17850|01.12.2010||2,55", &copy), 0);
    /* only the first 10 lines of an issue are listed, every one is counted */
    for (int i = 0; i < 25; i++)
        map(m, (uint64_t)(100 + i), "|01.12.2010|1|1", &copy);
    char *rep = report_of(m);
    assert_non_null(strstr(rep, "\"code\":\"missing_customer_id\",\"action\":\"rejected\",\"count\":25,"
                                "\"first_lines\":[100,101,102,103,104,105,106,107,108,109],"));
    assert_non_null(strstr(rep, "\"code\":\"missing_value\",\"field\":\"amount\""));
    assert_non_null(strstr(rep, "\"date_range\":{\"first\":\"2010-12-01\",\"last\":\"2010-12-01\"}"));
    assert_non_null(strstr(rep, "\"rows_read\":28,"));
    assert_non_null(strstr(rep, "\"rows_rejected\":26,"));
    assert_non_null(strstr(rep, "\"elapsed_ms\":500,\"rows_per_second\":56}"));
    free(rep);
    pulse_buf_free(&copy);
    pulse_import_mapper_free(m);
}

static void test_customers(void **state)
{
    (void)state;
    pulse_import_plan_t p;
    char err[256];
    pulse_import_plan_init(&p);
    p.kind = PULSE_IMPORT_CUSTOMERS;
    add_field(&p, "customer_id", 0, PULSE_DATE_NONE);
    add_field(&p, "churned", 1, PULSE_DATE_NONE);
    static const struct {
        const char *name;
        pulse_import_attr_type_t type;
    } attrs[] = {{"tenure", PULSE_ATTR_INTEGER},
                 {"charges", PULSE_ATTR_DECIMAL},
                 {"senior", PULSE_ATTR_BOOLEAN},
                 {"since", PULSE_ATTR_DATE},
                 {"plan \"x\"", PULSE_ATTR_TEXT}};
    for (int i = 0; i < 5; i++) {
        p.attrs[i].column = 2 + i;
        snprintf(p.attrs[i].name, sizeof(p.attrs[i].name), "%s", attrs[i].name);
        p.attrs[i].type = attrs[i].type;
    }
    p.n_attrs = 5;
    pulse_import_mapper_t *m = pulse_import_mapper_new(&p, err, sizeof(err));
    assert_non_null(m);
    assert_string_equal(pulse_import_stage_columns(m), "external_id, email, name, churned, attributes");
    pulse_buf_t copy = PULSE_BUF_INIT;
    assert_int_equal(map(m, 2, "7590-VHVEG|Yes|1|29.85|0|2024-02-29|Month\\to\"month", &copy), 1);
    assert_string_equal(copy.data, "2\t7590-VHVEG\t\\N\t\\N\tt\t{\"tenure\":1,\"charges\":29.85,\"senior\":false,"
                                   "\"since\":\"2024-02-29\",\"plan \\\\\"x\\\\\"\":\"Month\\\\\\\\to\\\\\"month\"}\n");
    pulse_buf_reset(&copy);
    /* null-like values are left out; an unreadable one too (counted), the row is kept */
    assert_int_equal(map(m, 3, "C2|no|NA|n/a|maybe|2024-13-01|", &copy), 1);
    assert_string_equal(copy.data, "3\tC2\t\\N\t\\N\tf\t{}\n");
    assert_int_equal(map(m, 4, "C3|perhaps|1|1|1|2024-01-01|x", &copy), 0);
    char *rep = report_of(m);
    assert_non_null(
        strstr(rep, "\"code\":\"bad_attribute\",\"field\":\"senior\",\"action\":\"omitted\",\"count\":1,\"first_lines\":[3]"));
    assert_non_null(
        strstr(rep, "\"code\":\"bad_label\",\"field\":\"churned\",\"action\":\"rejected\",\"count\":1,\"first_lines\":[4]"));
    free(rep);
    pulse_buf_free(&copy);
    pulse_import_mapper_free(m);
}

static void test_outliers_and_notes(void **state)
{
    (void)state;
    pulse_import_plan_t p;
    char err[256];
    tx_plan(&p);
    pulse_import_mapper_t *m = pulse_import_mapper_new(&p, err, sizeof(err));
    char row[128];
    for (int i = 0; i < 1000; i++) {
        snprintf(row, sizeof(row), "C%d|2024-01-01|%d|1|A", i, 90 + i % 21); /* 90..110 */
        assert_int_equal(map(m, (uint64_t)i + 2, row, NULL), 1);
    }
    double lo, hi;
    assert_int_equal(pulse_import_outlier_bounds(m, &lo, &hi), 0);
    assert_true(lo > 49.999 && lo < 50.001); /* median 100, MAD 5 */
    assert_true(hi > 149.999 && hi < 150.001);
    uint64_t lines[2] = {40, 41};
    pulse_import_note(m, "outliers", 2, lines, 2);
    pulse_import_note(m, "duplicates", 3, lines, 1);
    pulse_import_result_t r;
    memset(&r, 0, sizeof(r));
    r.rows_accepted = 997;
    r.rows_duplicate = 3;
    r.rows_inserted = 997;
    pulse_buf_t b = PULSE_BUF_INIT;
    pulse_import_report(m, &r, 0, 1.0, &b);
    assert_non_null(strstr(b.data, "{\"kind\":\"transactions\",\"rows_read\":1000,\"rows_accepted\":997,\"rows_rejected\":0,"
                                   "\"rows_duplicate\":3,\"rows_existing\":0,\"rows_inserted\":997,\"customers_created\":0,"
                                   "\"error_rate\":0,\"max_error_rate\":0.01,\"aborted\":false,\"issues\":["));
    assert_non_null(strstr(b.data, "{\"code\":\"outliers\",\"action\":\"flagged\",\"count\":2,\"first_lines\":[40,41],"));
    assert_non_null(strstr(b.data, "\"rule\":\"|amount - median| > 10 x MAD (median 100"));
    assert_non_null(strstr(b.data, "{\"code\":\"duplicates\",\"action\":\"dropped\",\"count\":3,\"first_lines\":[40],"));
    pulse_buf_free(&b);
    pulse_import_mapper_free(m);
}

/* Deferred Bloom probes (pulse_import_map_defer): once settled, the COPY text is byte for byte
 * that of immediate probes, keys repeating near and far (inside and beyond the 8 waiting rows),
 * across buffer resets, and with a decide-only call (copy NULL) in between. */
static void test_deferred_flags_match_immediate(void **state)
{
    (void)state;
    pulse_import_plan_t p;
    char err[256];
    tx_plan(&p);
    pulse_import_mapper_t *a = pulse_import_mapper_new(&p, err, sizeof(err)), *b = pulse_import_mapper_new(&p, err, sizeof(err));
    assert_non_null(a);
    assert_non_null(b);
    pulse_import_map_defer(b);
    pulse_buf_t ca = PULSE_BUF_INIT, cb = PULSE_BUF_INIT, all_a = PULSE_BUF_INIT, all_b = PULSE_BUF_INIT;
    char row[128];
    size_t dups = 0, want_dups = 0;
    unsigned char seen[300] = {0};
    for (int i = 0; i < 300; i++) {
        int key = i % 7 == 3 ? i - 3 : i % 11 == 5 ? i - 50 : i; /* repeats 3 and 50 rows back */
        key = key < 0 ? 0 : key;
        snprintf(row, sizeof(row), "C%d|2024-03-%02d|%d.5|%d|%d", key, 1 + key % 28, key, 1 + key % 4, key);
        pulse_buf_t *copy_b = i % 97 == 13 ? NULL : &cb;
        want_dups += copy_b != NULL && seen[key];
        seen[key] = 1;
        assert_int_equal(map(a, (uint64_t)i + 1, row, copy_b ? &ca : NULL), 1);
        assert_int_equal(map(b, (uint64_t)i + 1, row, copy_b), 1);
        if (i % 40 == 39) { /* what the import does at COPY_FLUSH */
            pulse_import_map_settle(b);
            pulse_buf_append(&all_a, ca.data, ca.len);
            pulse_buf_append(&all_b, cb.data, cb.len);
            pulse_buf_reset(&ca);
            pulse_buf_reset(&cb);
        }
    }
    pulse_import_map_settle(b);
    pulse_buf_append(&all_a, ca.data, ca.len);
    pulse_buf_append(&all_b, cb.data, cb.len);
    assert_string_equal(all_b.data, all_a.data);
    for (const char *q = all_a.data; (q = strstr(q, "\tt\n")) != NULL; q++)
        dups++;
    assert_true(want_dups >= 40);
    assert_int_equal(dups, want_dups); /* every repeat flagged (300 keys in the filter: no false positive) */
    pulse_buf_free(&ca);
    pulse_buf_free(&cb);
    pulse_buf_free(&all_a);
    pulse_buf_free(&all_b);
    pulse_import_mapper_free(a);
    pulse_import_mapper_free(b);
}

/* Line numbers, epoch seconds and amounts as the COPY text writes them: every digit count, the
 * 32-bit boundary, fractions with trailing zeros dropped, negatives. */
static void test_copy_numbers(void **state)
{
    (void)state;
    pulse_import_plan_t p;
    char err[256];
    tx_plan(&p);
    pulse_import_mapper_t *m = pulse_import_mapper_new(&p, err, sizeof(err));
    assert_non_null(m);
    static const struct {
        uint64_t line;
        const char *amount, *want_amount, *qty, *want_qty;
    } cases[] = {
        {1, "0.0001", "0.0001", "0", "0"},
        {9, "1.1", "-1.1", "-1", "-1"}, /* a negative quantity: a return, the amount negated */
        {10, "10.50", "10.5", "2.25", "2.25"},
        {99, "100", "100", "0.001", "0.001"},
        {100, "-0.5", "-0.5", "1e2", "100"},
        {4294967295u, "123456789.1234", "123456789.1234", "007", "7"},
        {4294967296u, "99999999999.99", "99999999999.99", "+3", "3"},
        {18446744073709551615u, "0.12346", "0.1235", "123456789012", "123456789012"},
        {1000000000000000000u, "1,234.5", "1234.5", "0.123456", NULL}, /* more than 4 decimals: %.17g */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char row[128], want[256];
        snprintf(row, sizeof(row), "C|2024-03-05|%s|%s|%zu", cases[i].amount, cases[i].qty, i);
        pulse_buf_t copy = PULSE_BUF_INIT;
        if (map(m, cases[i].line, row, &copy) != 1)
            fail_msg("row %s rejected", row);
        uint64_t k[2];
        char uuid[37];
        pulse_import_last_key(m, k);
        pulse_import_key_uuid(k, uuid);
        char qty[40];
        snprintf(qty, sizeof(qty), "%s", cases[i].want_qty ? cases[i].want_qty : "");
        if (cases[i].want_qty == NULL)
            snprintf(qty, sizeof(qty), "%.17g", strtod(cases[i].qty, NULL));
        int neg = cases[i].want_amount[0] == '-' || qty[0] == '-';
        snprintf(want, sizeof(want), "%llu\t%s\tC\t1709596800\t%s\t%s\t%zu\t%s\tf\n", (unsigned long long)cases[i].line, uuid,
                 cases[i].want_amount, qty, i, neg ? "t" : "f");
        assert_string_equal(copy.data, want);
        pulse_buf_free(&copy);
    }
    pulse_import_mapper_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_checks),
        cmocka_unit_test(test_row_key_stability),
        cmocka_unit_test(test_key_uuid_text),
        cmocka_unit_test(test_copy_text),
        cmocka_unit_test(test_cleaning),
        cmocka_unit_test(test_derived_and_first_lines),
        cmocka_unit_test(test_customers),
        cmocka_unit_test(test_outliers_and_notes),
        cmocka_unit_test(test_deferred_flags_match_immediate),
        cmocka_unit_test(test_copy_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
