/* Unit tests for src/analytics/txfile.c: both layouts of the shipped fixture, plan guessing, CRLF,
 * bad rows, quoted files through the CSV parser, and the same store whatever the thread count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/txfile.h"
#include "core/buf.h"
#include "ingest/csv.h"

#define FIXTURE_ROWS 359
#define FIXTURE_CUSTOMERS 47

static pulse_buf_t slurp(const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", PULSE_TEST_DATA_DIR, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    pulse_buf_t b = PULSE_BUF_INIT;
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        pulse_buf_append(&b, tmp, n);
    fclose(f);
    return b;
}

static void read_ok(const char *buf, size_t len, const pulse_txfile_plan_t *plan, pulse_txstore_t *st, pulse_txfile_stats_t *stats)
{
    char err[256] = "";
    pulse_txstore_init(st);
    if (pulse_txfile_read_buffer(buf, len, plan, st, stats, err, sizeof(err)) != 0)
        fail_msg("read: %s", err);
}

static void guess_ok(const pulse_buf_t *b, pulse_txfile_plan_t *plan)
{
    char err[256] = "";
    if (pulse_txfile_plan_guess(b->data, b->len, plan, err, sizeof(err)) != 0)
        fail_msg("guess: %s", err);
}

static void assert_str(const pulse_strtab_t *a, uint32_t i, const pulse_strtab_t *b, uint32_t j)
{
    size_t la, lb;
    const char *sa = pulse_strtab_get(a, i, &la), *sb = pulse_strtab_get(b, j, &lb);
    if (la != lb || memcmp(sa, sb, la) != 0)
        fail_msg("'%.*s' != '%.*s'", (int)la, sa, (int)lb, sb);
}

/* Same rows in the same order with the same indexes (categories and quantities when both have them). */
static void assert_same_store(const pulse_txstore_t *a, const pulse_txstore_t *b)
{
    assert_int_equal(a->ntx, b->ntx);
    assert_int_equal(a->customers.n, b->customers.n);
    for (uint32_t c = 0; c < a->customers.n; c++)
        assert_str(&a->customers, c, &b->customers, c);
    assert_memory_equal(a->tx_customer, b->tx_customer, a->ntx * sizeof(uint32_t));
    assert_memory_equal(a->tx_day, b->tx_day, a->ntx * sizeof(int32_t));
    assert_memory_equal(a->tx_amount, b->tx_amount, a->ntx * sizeof(float));
    if (a->tx_quantity && b->tx_quantity)
        assert_memory_equal(a->tx_quantity, b->tx_quantity, a->ntx * sizeof(float));
    if (a->tx_category && b->tx_category) {
        assert_memory_equal(a->tx_category, b->tx_category, a->ntx * sizeof(uint32_t));
        for (uint32_t k = 0; k < a->categories.n; k++)
            assert_str(&a->categories, k, &b->categories, k);
    }
    assert_int_equal(a->tx_flags != NULL, b->tx_flags != NULL);
    if (a->tx_flags)
        assert_memory_equal(a->tx_flags, b->tx_flags, a->ntx);
}

static void test_both_layouts(void **state)
{
    pulse_buf_t csv = slurp("analytics_tx.csv"), cd = slurp("analytics_tx_cdnow.txt");
    pulse_txfile_plan_t pc, pd;
    guess_ok(&csv, &pc);
    guess_ok(&cd, &pd);
    assert_int_equal(pc.sep, ',');
    assert_true(pc.has_header);
    assert_int_equal(pc.col_customer, 0);
    assert_int_equal(pc.col_date, 1);
    assert_int_equal(pc.col_amount, 2);
    assert_int_equal(pc.col_category, 3);
    assert_int_equal(pc.col_quantity, 4);
    assert_int_equal(pc.date_format, PULSE_DATE_ISO);
    assert_int_equal(pd.sep, PULSE_CSV_SEP_WHITESPACE);
    assert_false(pd.has_header);
    assert_int_equal(pd.col_quantity, 2);
    assert_int_equal(pd.col_amount, 3);
    assert_int_equal(pd.date_format, PULSE_DATE_YMD_COMPACT);

    pulse_txstore_t a, b;
    pulse_txfile_stats_t sa, sb;
    read_ok(csv.data, csv.len, &pc, &a, &sa);
    read_ok(cd.data, cd.len, &pd, &b, &sb);
    assert_int_equal(sa.rows, FIXTURE_ROWS);
    assert_int_equal(sb.rows, FIXTURE_ROWS);
    assert_int_equal(sa.bad_rows, 0);
    assert_int_equal(sb.bad_rows, 0);
    assert_int_equal(a.customers.n, FIXTURE_CUSTOMERS);
    assert_non_null(a.tx_category);
    assert_null(b.tx_category);
    assert_non_null(a.tx_flags); /* negative amounts are returns */
    assert_same_store(&a, &b);
    /* first row: C0021,2023-05-14,100.80,Music,2 */
    size_t len;
    const char *s = pulse_strtab_get(&a.customers, 0, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(s, "C0021", 5);
    assert_int_equal(a.tx_day[0], pulse_txstore_days_from_civil(2023, 5, 14));
    assert_float_equal(a.tx_amount[0], 100.80f, 1e-4);
    assert_float_equal(a.tx_quantity[0], 2.0f, 0);
    pulse_txstore_free(&a);
    pulse_txstore_free(&b);
    pulse_buf_free(&csv);
    pulse_buf_free(&cd);
}

static void test_crlf_and_bom(void **state)
{
    pulse_buf_t csv = slurp("analytics_tx.csv"), crlf = PULSE_BUF_INIT;
    pulse_buf_append(&crlf, "\xEF\xBB\xBF", 3);
    for (size_t i = 0; i < csv.len; i++) {
        if (csv.data[i] == '\n')
            pulse_buf_putc(&crlf, '\r');
        pulse_buf_putc(&crlf, csv.data[i]);
    }
    pulse_txfile_plan_t plan;
    guess_ok(&csv, &plan);
    pulse_txstore_t a, b;
    pulse_txfile_stats_t sa, sb;
    read_ok(csv.data, csv.len, &plan, &a, &sa);
    read_ok(crlf.data, crlf.len, &plan, &b, &sb);
    assert_int_equal(sb.rows, FIXTURE_ROWS);
    assert_int_equal(sb.bad_rows, 0);
    assert_same_store(&a, &b);
    pulse_txstore_free(&a);
    pulse_txstore_free(&b);
    pulse_buf_free(&csv);
    pulse_buf_free(&crlf);
}

static void test_bad_rows_counted(void **state)
{
    const char *text = "CustomerID,TransactionDate,TransactionAmount,ProductCategory,Quantity\n"
                       "A,2024-01-02,10.50,Books,1\n"
                       "B,2024-13-02,3,Books,1\n"   /* line 3: month 13 */
                       "\n"                         /* blank: not a row, not bad */
                       "C,2024-01-03,ten,Books,1\n" /* line 5 */
                       "onlyone\n"                  /* line 6 */
                       ",2024-01-03,1,Books,1\n"    /* line 7: no customer */
                       "D,2024-01-04,-4.25,,\n"     /* a return, no category, no quantity */
                       "E,2024-01-05,1,Toys,x\n"    /* line 9: bad quantity */
                       "A,2024-01-06,1e2,Toys,2";   /* no final newline; exponent through the strict parser */
    pulse_txfile_plan_t plan;
    pulse_buf_t b = PULSE_BUF_INIT;
    pulse_buf_puts(&b, text);
    guess_ok(&b, &plan);
    pulse_txstore_t st;
    pulse_txfile_stats_t stats;
    read_ok(text, strlen(text), &plan, &st, &stats);
    assert_int_equal(stats.rows, 3);
    assert_int_equal(stats.bad_rows, 5);
    assert_int_equal(stats.nbad, 5);
    const uint64_t lines[5] = {3, 5, 6, 7, 9};
    for (int k = 0; k < 5; k++)
        assert_int_equal(stats.bad[k].line, lines[k]);
    assert_string_equal(stats.bad[0].reason, "unreadable date");
    assert_string_equal(stats.bad[0].text, "B,2024-13-02,3,Books,1");
    assert_string_equal(stats.bad[1].reason, "unreadable amount");
    assert_string_equal(stats.bad[2].reason, "missing fields");
    assert_string_equal(stats.bad[3].reason, "no customer");
    assert_string_equal(stats.bad[4].reason, "unreadable quantity");
    assert_int_equal(st.ntx, 3);
    assert_int_equal(st.tx_flags[1], PULSE_TX_RETURN);
    assert_int_equal(st.tx_category[1], PULSE_TXSTORE_NONE);
    assert_true(isnan(st.tx_quantity[1]));
    assert_float_equal(st.tx_amount[2], 100.0f, 0);
    pulse_txstore_free(&st);
    pulse_buf_free(&b);
}

static void test_quotes_use_csv_parser(void **state)
{
    const char *text = "CustomerID,TransactionDate,TransactionAmount,ProductCategory,Quantity\n"
                       "A,2024-01-02,10.50,\"Books, used\",1\n"
                       "B,2024-01-02,3,Toys,1\n"
                       "B,bad,3,Toys,1\n"
                       "\"C\",2024-01-03,7,\"multi\nline\",2\n";
    pulse_txfile_plan_t plan;
    pulse_buf_t b = PULSE_BUF_INIT;
    pulse_buf_puts(&b, text);
    guess_ok(&b, &plan);
    pulse_txstore_t st;
    pulse_txfile_stats_t stats;
    read_ok(text, strlen(text), &plan, &st, &stats);
    assert_true(stats.csv_fallback);
    assert_int_equal(stats.rows, 3);
    assert_int_equal(stats.bad_rows, 1);
    assert_int_equal(stats.bad[0].line, 4);
    size_t len;
    const char *s = pulse_strtab_get(&st.categories, st.tx_category[0], &len);
    assert_int_equal(len, 11);
    assert_memory_equal(s, "Books, used", 11);
    s = pulse_strtab_get(&st.customers, st.tx_customer[2], &len);
    assert_int_equal(len, 1);
    assert_memory_equal(s, "C", 1);
    pulse_txstore_free(&st);
    pulse_buf_free(&b);
}

/* The tokenizer spots quotes itself (64-byte blocks, the padded tail too): one quote anywhere in a
 * 2-thread, multi-chunk file, here in the last few bytes of the last range, sends the whole file
 * to the CSV parser, and the quoted value is read unquoted. */
static void test_late_quote_uses_csv_parser(void **state)
{
    (void)state;
    pulse_buf_t b = PULSE_BUF_INIT;
    pulse_buf_puts(&b, "CustomerID,TransactionDate,TransactionAmount,ProductCategory,Quantity\n");
    const int rows = 150000;
    for (int i = 0; i < rows - 1; i++)
        pulse_buf_printf(&b, "C%06d,2024-01-%02d,%d.25,Books,1\n", i % 5000, 1 + i % 28, i % 90);
    pulse_buf_puts(&b, "C000001,2024-02-01,5,\"Toys\",2\n");
    for (int with_quote = 0; with_quote < 2; with_quote++) {
        if (!with_quote) /* the same file without the quotes: the fast path */
            memcpy(strstr(b.data, "\"Toys\""), " Toys ", 6);
        else
            memcpy(strstr(b.data, " Toys "), "\"Toys\"", 6);
        pulse_txfile_plan_t plan;
        guess_ok(&b, &plan);
        plan.threads = 2;
        pulse_txstore_t st;
        pulse_txfile_stats_t stats;
        read_ok(b.data, b.len, &plan, &st, &stats);
        assert_int_equal(stats.csv_fallback, with_quote);
        assert_int_equal(stats.rows, rows);
        assert_int_equal(stats.bad_rows, 0);
        size_t len;
        const char *c = pulse_strtab_get(&st.categories, st.tx_category[rows - 1], &len);
        assert_int_equal(len, 4);
        assert_memory_equal(c, "Toys", 4);
        assert_float_equal(st.tx_amount[rows - 1], 5.0f, 0);
        pulse_txstore_free(&st);
    }
    pulse_buf_free(&b);
}

/* A bigger file where customers come back across the thread ranges: the same store for 1, 2, 3, 7. */
static void test_threads_identical(void **state)
{
    pulse_buf_t cd = slurp("analytics_tx_cdnow.txt"), big = PULSE_BUF_INIT;
    for (int k = 0; k < 60; k++) {
        pulse_buf_append(&big, cd.data, cd.len);
        if (k % 7 == 3)
            pulse_buf_puts(&big, " X1 20240101 1 notanumber\n");
        if (k % 10 == 9) {
            for (size_t i = 0; i < cd.len; i++) /* a copy with other customers: "C" -> "D" */
                pulse_buf_putc(&big, cd.data[i] == 'C' ? 'D' : cd.data[i]);
        }
    }
    pulse_txfile_plan_t plan;
    guess_ok(&cd, &plan);
    pulse_txstore_t ref;
    pulse_txfile_stats_t rs;
    plan.threads = 1;
    read_ok(big.data, big.len, &plan, &ref, &rs);
    assert_int_equal(rs.rows, 66 * FIXTURE_ROWS);
    assert_int_equal(rs.bad_rows, 9);
    assert_int_equal(ref.customers.n, 2 * FIXTURE_CUSTOMERS);
    const int counts[] = {2, 3, 7};
    for (size_t k = 0; k < 3; k++) {
        plan.threads = counts[k];
        pulse_txstore_t st;
        pulse_txfile_stats_t ss;
        read_ok(big.data, big.len, &plan, &st, &ss);
        assert_int_equal(ss.threads, counts[k]);
        assert_int_equal(ss.rows, rs.rows);
        assert_int_equal(ss.bad_rows, rs.bad_rows);
        assert_int_equal(ss.nbad, rs.nbad);
        for (size_t i = 0; i < rs.nbad; i++)
            assert_int_equal(ss.bad[i].line, rs.bad[i].line);
        assert_same_store(&ref, &st);
        pulse_txstore_free(&st);
    }
    pulse_txstore_free(&ref);
    pulse_buf_free(&cd);
    pulse_buf_free(&big);
}

/* The tokenizer reads 64-byte blocks: files ending at every offset of a block, with and without a
 * final newline, in both layouts, keep every row and the last row's amount. */
static void test_every_block_alignment(void **state)
{
    pulse_buf_t cd = slurp("analytics_tx_cdnow.txt"), csv = slurp("analytics_tx.csv");
    pulse_txfile_plan_t pd, pc;
    guess_ok(&cd, &pd);
    guess_ok(&csv, &pc);
    pc.has_header = 0;
    const char *body = strchr(csv.data, '\n') + 1;
    for (int layout = 0; layout < 2; layout++) {
        const char *text = layout ? body : cd.data;
        for (int pad = 0; pad < 70; pad++) {
            for (int nl = 0; nl < 2; nl++) {
                pulse_buf_t b = PULSE_BUF_INIT;
                for (int k = 0; k < pad; k++) /* shifts every line against the blocks */
                    pulse_buf_puts(&b, layout ? "\n" : " \n");
                const char *end = text;
                for (int lines = 0; lines < 3 + pad % 5; lines++)
                    end = strchr(end, '\n') + 1;
                pulse_buf_append(&b, text, (size_t)(end - text) - (nl ? 0 : 1));
                pulse_txstore_t st;
                pulse_txfile_stats_t stats;
                read_ok(b.data, b.len, layout ? &pc : &pd, &st, &stats);
                assert_int_equal(stats.bad_rows, 0);
                assert_int_equal(stats.rows, 3 + pad % 5);
                const char *last = end - 2;
                while (last > text && last[-1] != '\n')
                    last--;
                double want = layout ? atof(strchr(strchr(last, ',') + 1, ',') + 1) : atof(end - 10);
                assert_float_equal(st.tx_amount[st.ntx - 1], (float)want, 1e-3);
                pulse_txstore_free(&st);
                pulse_buf_free(&b);
            }
        }
    }
    pulse_buf_free(&cd);
    pulse_buf_free(&csv);
}

static void test_plan_errors(void **state)
{
    pulse_txfile_plan_t plan;
    pulse_txfile_plan_init(&plan);
    pulse_txstore_t st;
    pulse_txstore_init(&st);
    char err[256];
    assert_int_equal(pulse_txfile_read_buffer("a,b\n", 4, &plan, &st, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "required"));
    assert_int_equal(pulse_txfile_plan_guess("x;y\n1;2\n", 8, &plan, err, sizeof(err)), -1);
    assert_int_equal(pulse_txfile_read("/nonexistent/file", &plan, &st, NULL, err, sizeof(err)), -1);
    pulse_txstore_free(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_both_layouts),
        cmocka_unit_test(test_crlf_and_bom),
        cmocka_unit_test(test_bad_rows_counted),
        cmocka_unit_test(test_quotes_use_csv_parser),
        cmocka_unit_test(test_late_quote_uses_csv_parser),
        cmocka_unit_test(test_threads_identical),
        cmocka_unit_test(test_every_block_alignment),
        cmocka_unit_test(test_plan_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
