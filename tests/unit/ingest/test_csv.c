/* Unit tests for src/ingest/csv.c: sniffing, streaming parse across every chunk boundary, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "ingest/csv.h"
#include "ingest/csv_blocks.h"

/* Rows rendered as text: "<record>:" then per field "[" ("q" if quoted) ("!" if bad UTF-8) bytes "]". */
typedef struct {
    pulse_buf_t out;
    size_t rows;
    size_t stop_after; /* 0: never stop */
} collect_t;

static int collect_row(void *ud, size_t row, const pulse_csv_field_t *f, size_t n)
{
    collect_t *c = ud;
    pulse_buf_printf(&c->out, "%zu:", row);
    for (size_t i = 0; i < n; i++) {
        pulse_buf_putc(&c->out, '[');
        if (f[i].quoted)
            pulse_buf_putc(&c->out, 'q');
        if (f[i].bad_utf8)
            pulse_buf_putc(&c->out, '!');
        pulse_buf_append(&c->out, f[i].ptr, f[i].len);
        pulse_buf_putc(&c->out, ']');
    }
    pulse_buf_putc(&c->out, '\n');
    c->rows++;
    return c->stop_after && c->rows >= c->stop_after;
}

/* Parses s split at the given cut points (ncuts of them, ascending); returns the rendering
 * (caller frees) and the final status in *rc; the error message goes in err. */
static char *parse_cuts(const pulse_csv_dialect_t *d, const char *s, size_t len, const size_t *cuts, size_t ncuts, int *rc,
                        char *err, size_t errlen)
{
    collect_t c = {PULSE_BUF_INIT, 0, 0};
    pulse_csv_parser_t *p = pulse_csv_parser_new(d, collect_row, &c);
    size_t pos = 0;
    int r = 0;
    for (size_t i = 0; i <= ncuts && r == 0; i++) {
        size_t next = i < ncuts ? cuts[i] : len;
        r = pulse_csv_feed(p, s + pos, next - pos);
        pos = next;
    }
    if (r == 0)
        r = pulse_csv_finish(p);
    *rc = r;
    if (err)
        snprintf(err, errlen, "%s", pulse_csv_error(p));
    pulse_csv_free(p);
    pulse_buf_putc(&c.out, '\0');
    return c.out.data;
}

static char *parse_all(const pulse_csv_dialect_t *d, const char *s, int *rc)
{
    return parse_cuts(d, s, strlen(s), NULL, 0, rc, NULL, 0);
}

static void assert_parses(const pulse_csv_dialect_t *d, const char *s, const char *want)
{
    int rc;
    char *got = parse_all(d, s, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(got, want);
    free(got);
}

/* One-shot, one byte at a time, and every 2-way and 3-way (sampled) split agree. */
static void assert_chunking_invariant(const pulse_csv_dialect_t *d, const char *s, size_t len)
{
    int rc0, rc;
    char e0[256], e[256];
    char *want = parse_cuts(d, s, len, NULL, 0, &rc0, e0, sizeof(e0));
    size_t *cuts = malloc((len + 1) * sizeof(size_t));
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    char *got = parse_cuts(d, s, len, cuts, len > 0 ? len - 1 : 0, &rc, e, sizeof(e));
    assert_int_equal(rc, rc0);
    assert_string_equal(got, want);
    assert_string_equal(e, e0);
    free(got);
    for (size_t i = 0; i <= len; i++) {
        got = parse_cuts(d, s, len, &i, 1, &rc, e, sizeof(e));
        assert_int_equal(rc, rc0);
        assert_string_equal(got, want);
        assert_string_equal(e, e0);
        free(got);
        for (size_t j = i; j <= len; j += 7) {
            size_t two[2] = {i, j};
            got = parse_cuts(d, s, len, two, 2, &rc, e, sizeof(e));
            assert_int_equal(rc, rc0);
            assert_string_equal(got, want);
            free(got);
        }
    }
    free(cuts);
    free(want);
}

static pulse_csv_dialect_t dialect(char sep, char quote)
{
    pulse_csv_dialect_t d;
    pulse_csv_dialect_init(&d);
    d.sep = sep;
    d.quote = quote;
    return d;
}

static pulse_csv_dialect_t sniffed(const char *s)
{
    pulse_csv_dialect_t d;
    char err[256];
    int rc = pulse_csv_sniff(s, strlen(s), &d, err, sizeof(err));
    if (rc != 0)
        fail_msg("sniff failed: %s", err);
    return d;
}

/* ---- sniffing ---- */

static void test_sniff_separators(void **state)
{
    pulse_csv_dialect_t d = sniffed("id,name,amount\n1,Ann,10.5\n2,Bob,3\n3,\"Lee, Jr\",7\n");
    assert_int_equal(d.sep, ',');
    assert_int_equal(d.quote, '"');
    assert_int_equal(d.nfields, 3);
    assert_true(d.has_header);
    assert_false(d.ambiguous);
    assert_true(d.confidence > 0.9);

    d = sniffed("id;name;amount\n1;Ann;10\n2;Bob;3\n");
    assert_int_equal(d.sep, ';');
    assert_int_equal(d.nfields, 3);

    d = sniffed("id\tname\tcity\n1\tAnn\tNew York\n2\tBob\tLos Angeles\n");
    assert_int_equal(d.sep, '\t');
    assert_int_equal(d.nfields, 3);

    d = sniffed("id|name|amount\n1|Ann|10\n2|Bob|3\n");
    assert_int_equal(d.sep, '|');
    assert_false(d.decimal_comma);
}

static const char cdnow_sample[] = " customer_id  date number_of_cds  dollar_value\r\n"
                                   " 00001 19970101  1   11.77\r\n"
                                   " 00002 19970112  1   12.00\r\n"
                                   " 00002 19970112  5   77.00\r\n"
                                   " 00003 19970102  2   20.76\r\n"
                                   " 00003 19970330  2   20.76\r\n";

static void test_sniff_whitespace_runs(void **state)
{
    pulse_csv_dialect_t d = sniffed(cdnow_sample);
    assert_int_equal(d.sep, PULSE_CSV_SEP_WHITESPACE);
    assert_int_equal(d.quote, 0);
    assert_int_equal(d.nfields, 4);
    assert_true(d.has_header);
    assert_true(d.crlf);
    assert_false(d.ambiguous);
    assert_parses(&d, cdnow_sample,
                  "1:[customer_id][date][number_of_cds][dollar_value]\n2:[00001][19970101][1][11.77]\n"
                  "3:[00002][19970112][1][12.00]\n4:[00002][19970112][5][77.00]\n5:[00003][19970102][2][20.76]\n"
                  "6:[00003][19970330][2][20.76]\n");
}

static void test_sniff_header(void **state)
{
    pulse_csv_dialect_t d = sniffed("1,2,3\n4,5,6\n7,8,9\n");
    assert_false(d.has_header);
    d = sniffed("a,b,c\nx,y,z\nu,v,w\n");
    assert_true(d.has_header); /* unique names, none recurs */
    d = sniffed("a,b,a\nx,y,z\nu,v,w\n");
    assert_false(d.has_header);
    d = sniffed("CustomerID,TransactionDate,TransactionAmount\nC1,2024-01-02,10.00\nC2,2024-01-03,5\n");
    assert_true(d.has_header);
    d = sniffed("C1,2024-01-02,10.00\nC2,2024-01-03,5\n");
    assert_false(d.has_header);
    d = sniffed("name,city\n"); /* header only */
    assert_true(d.has_header);
    assert_true(d.ambiguous);
}

static void test_sniff_decimal_comma(void **state)
{
    pulse_csv_dialect_t d = sniffed("Kunde;Datum;Betrag\nK1;01.02.2024;10,50\nK2;02.02.2024;1.234,99\nK3;03.02.2024;7,00\n");
    assert_int_equal(d.sep, ';');
    assert_true(d.decimal_comma);
    assert_true(d.has_header);
    assert_int_equal(d.nfields, 3);
    /* no header: commas in every row, same count as semicolons */
    d = sniffed("1,5;2,5;x\n3,5;4,5;y\n");
    assert_int_equal(d.sep, ';');
    assert_true(d.decimal_comma);
    d = sniffed("a;b\n1.5;2.5\n");
    assert_false(d.decimal_comma);
}

static void test_sniff_bom_crlf_quoted_newlines(void **state)
{
    pulse_csv_dialect_t d = sniffed("\xEF\xBB\xBFid,note\r\n1,\"two\r\nlines, and a comma\"\r\n2,plain\r\n3,x\r\n");
    assert_true(d.has_bom);
    assert_true(d.crlf);
    assert_int_equal(d.sep, ',');
    assert_int_equal(d.nfields, 2);
    assert_true(d.confidence > 0.99);
    d = sniffed("a,b\n1,2\n");
    assert_false(d.has_bom);
    assert_false(d.crlf);
}

static void test_sniff_ambiguous_and_errors(void **state)
{
    pulse_csv_dialect_t d = sniffed("alpha\nbeta\ngamma\n");
    assert_true(d.ambiguous);
    assert_int_equal(d.nfields, 1);
    assert_non_null(strstr(d.reason, "single column"));
    char err[128];
    assert_int_equal(pulse_csv_sniff("", 0, &d, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "empty"));
    assert_int_equal(pulse_csv_sniff(" \r\n\n", 4, &d, err, sizeof(err)), -1);
    assert_int_equal(pulse_csv_sniff("PK\x03\x04\x00\x00zz", 8, &d, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "binary"));
}

/* ---- parsing ---- */

static const char quoted_sample[] = "\xEF\xBB\xBF"
                                    "id,text,n\r\n"
                                    "1,\"a,b\",2\r\n"
                                    "2,\"say \"\"hi\"\"\",3\r\n"
                                    "3,\"multi\r\nline\nfield\",4\r\n"
                                    "\r\n"
                                    "4,,\"\"\r\n"
                                    "5,caf\xC3\xA9,\xE2\x82\xAC\r"
                                    "6,last,x";

static const char quoted_want[] = "1:[id][text][n]\n"
                                  "2:[1][qa,b][2]\n"
                                  "3:[2][qsay \"hi\"][3]\n"
                                  "4:[3][qmulti\r\nline\nfield][4]\n"
                                  "6:[4][][q]\n"
                                  "7:[5][caf\xC3\xA9][\xE2\x82\xAC]\n"
                                  "8:[6][last][x]\n";

static void test_parse_quoted(void **state)
{
    pulse_csv_dialect_t d = dialect(',', '"');
    assert_parses(&d, quoted_sample, quoted_want);
}

static void test_parse_every_chunk_boundary(void **state)
{
    pulse_csv_dialect_t d = dialect(',', '"');
    assert_chunking_invariant(&d, quoted_sample, sizeof(quoted_sample) - 1);
    pulse_csv_dialect_t w = dialect(PULSE_CSV_SEP_WHITESPACE, 0);
    assert_chunking_invariant(&w, cdnow_sample, sizeof(cdnow_sample) - 1);
    static const char errs[] = "a,b\n\"x\"\"y\" ,z\n\"open,";
    assert_chunking_invariant(&d, errs, sizeof(errs) - 1);
    pulse_csv_dialect_t s = d;
    s.strict = 1;
    assert_chunking_invariant(&s, errs, sizeof(errs) - 1);
    static const char bad[] = "\xEF\xBB"
                              "a;\xC3\xA9;\xC3\n\xE2\x82;\"\xE2\x82\xAC\"\n";
    pulse_csv_dialect_t sc = dialect(';', '"');
    assert_chunking_invariant(&sc, bad, sizeof(bad) - 1);
}

static void test_parse_whitespace_mode(void **state)
{
    pulse_csv_dialect_t d = dialect(PULSE_CSV_SEP_WHITESPACE, 0);
    assert_parses(&d, "  a \t b  c  \n\n   \n d\te\n", "1:[a][b][c]\n4:[d][e]\n");
    pulse_csv_dialect_t q = dialect(PULSE_CSV_SEP_WHITESPACE, '"');
    assert_parses(&q, "x \"New York\"  3\n", "1:[x][qNew York][3]\n");
}

static void test_parse_bom_only_partial(void **state)
{
    pulse_csv_dialect_t d = dialect(',', '"');
    assert_parses(&d, "\xEF\xBB\xBF", "");
    assert_parses(&d, "\xEF\xBBx,y", "1:[!\xEF\xBBx][y]\n");
    assert_parses(&d, "\xEF", "1:[!\xEF]\n");
}

static void test_parse_empty_and_no_trailing_newline(void **state)
{
    pulse_csv_dialect_t d = dialect(',', '"');
    assert_parses(&d, "", "");
    assert_parses(&d, "\n\n", "");
    assert_parses(&d, "a,b", "1:[a][b]\n");
    assert_parses(&d, "a,b,", "1:[a][b][]\n");
    assert_parses(&d, "a,\"b\"", "1:[a][qb]\n");
    assert_parses(&d, ",\n", "1:[][]\n");
}

static void test_parse_stray_quotes(void **state)
{
    pulse_csv_dialect_t d = dialect(',', '"');
    collect_t c = {PULSE_BUF_INIT, 0, 0};
    pulse_csv_parser_t *p = pulse_csv_parser_new(&d, collect_row, &c);
    const char *s = "a,b\n12\" pipe,\"x\"y\n";
    assert_int_equal(pulse_csv_feed(p, s, strlen(s)), 0);
    assert_int_equal(pulse_csv_finish(p), 0);
    assert_string_equal(c.out.data, "1:[a][b]\n2:[12\" pipe][qxy]\n");
    assert_int_equal(pulse_csv_stats(p)->stray_quotes, 2);
    assert_int_equal(pulse_csv_stats(p)->first_stray_quote, 2);
    assert_int_equal(pulse_csv_stats(p)->records, 2);
    pulse_csv_free(p);
    pulse_buf_free(&c.out);

    d.strict = 1;
    int rc;
    char err[256];
    char *got = parse_cuts(&d, s, strlen(s), NULL, 0, &rc, err, sizeof(err));
    assert_int_equal(rc, -1);
    assert_string_equal(err, "record 2 (line 2), byte 6: quote inside an unquoted field");
    free(got);
}

static void test_parse_errors_carry_record_and_offset(void **state)
{
    pulse_csv_dialect_t d = dialect(',', '"');
    int rc;
    char err[256];
    const char *s = "a,b\nc,d\n\"e\nf,g\n";
    char *got = parse_cuts(&d, s, strlen(s), NULL, 0, &rc, err, sizeof(err));
    assert_int_equal(rc, -1);
    assert_string_equal(got, "1:[a][b]\n2:[c][d]\n");
    assert_string_equal(err, "record 3 (line 3), byte 15: unterminated quote (opened at byte 8)");
    free(got);

    /* no quoting: quotes are data */
    pulse_csv_dialect_t n = dialect(',', 0);
    assert_parses(&n, "\"e\nf,g\"\n", "1:[\"e]\n2:[f][g\"]\n");
}

/* Unquoted fields are delivered in place when their record is whole in the chunk; a record cut by
 * a chunk's end has them copied, before the quoted field still being read (which keeps growing).
 * Every cut gives the same rows; the record size limit counts in-place bytes like copied ones. */
static void test_parse_in_place_fields(void **state)
{
    (void)state;
    pulse_csv_dialect_t d = dialect(',', '"');
    static const char mixed[] = "id,amount,\"note, long\",tail\nC001,12.5,\"say \"\"hi\"\"\",x\"y\n,,\"\",\nlast,1";
    assert_parses(&d, mixed, "1:[id][amount][qnote, long][tail]\n2:[C001][12.5][qsay \"hi\"][x\"y]\n3:[][][q][]\n4:[last][1]\n");
    assert_chunking_invariant(&d, mixed, sizeof(mixed) - 1);
    static const char after_quote[] = "\"a\"b,cd,\"e\nf\"g,h\n";
    assert_parses(&d, after_quote, "1:[qab][cd][qe\nfg][h]\n");
    assert_chunking_invariant(&d, after_quote, sizeof(after_quote) - 1);
    /* "ab,cdef\n" is 6 field bytes + 2 fields = 8: at max_row 8 it passes, at 7 it fails */
    static const char rec[] = "ab,cdef\nx\n";
    for (size_t limit = 7; limit <= 8; limit++) {
        pulse_csv_dialect_t m = d;
        m.max_row = limit;
        int rc;
        char *got = parse_all(&m, rec, &rc);
        assert_int_equal(rc, limit == 8 ? 0 : -1);
        assert_string_equal(got, limit == 8 ? "1:[ab][cdef]\n2:[x]\n" : "");
        free(got);
        assert_chunking_invariant(&m, rec, sizeof(rec) - 1);
        static const char stray[] = "ab,c\"ef\n";
        got = parse_all(&m, stray, &rc);
        assert_int_equal(rc, limit == 8 ? 0 : -1);
        free(got);
        assert_chunking_invariant(&m, stray, sizeof(stray) - 1);
    }
}

static void test_parse_row_limit(void **state)
{
    pulse_csv_dialect_t d = dialect(',', '"');
    d.max_row = 1000;
    size_t n = 5000;
    char *s = malloc(n + 16);
    memcpy(s, "a,b\n", 4);
    memset(s + 4, 'x', n);
    memcpy(s + 4 + n, "\nc,d\n", 6);
    int rc;
    char err[256];
    char *got = parse_cuts(&d, s, strlen(s), NULL, 0, &rc, err, sizeof(err));
    assert_int_equal(rc, -1);
    assert_string_equal(got, "1:[a][b]\n");
    assert_non_null(strstr(err, "record 2 (line 2), byte 4: record longer than 1000 bytes"));
    free(got);
    /* in chunks of 100: same error, fed chunk by chunk */
    size_t cuts[60];
    for (size_t i = 0; i < 60; i++)
        cuts[i] = (i + 1) * 80;
    got = parse_cuts(&d, s, strlen(s), cuts, 60, &rc, err, sizeof(err));
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "record 2 (line 2)"));
    free(got);
    /* many empty fields count too */
    memset(s, ',', n);
    s[n] = '\0';
    got = parse_cuts(&d, s, n, NULL, 0, &rc, err, sizeof(err));
    assert_int_equal(rc, -1);
    free(got);
    /* exactly at the limit is fine: 999 bytes + 1 field */
    memset(s, 'y', 999);
    s[999] = '\0';
    got = parse_cuts(&d, s, 999, NULL, 0, &rc, err, sizeof(err));
    assert_int_equal(rc, 0);
    free(got);
    free(s);
}

static void test_parse_bad_utf8_flagged(void **state)
{
    pulse_csv_dialect_t d = dialect(',', '"');
    collect_t c = {PULSE_BUF_INIT, 0, 0};
    pulse_csv_parser_t *p = pulse_csv_parser_new(&d, collect_row, &c);
    const char *s = "ok,\xC3\xA9\nbad,\xC0\xAF\nsur,\xED\xA0\x80\nok2,\xF0\x9F\x98\x80\ncut,\xE2\x82\n";
    assert_int_equal(pulse_csv_feed(p, s, strlen(s)), 0);
    assert_int_equal(pulse_csv_finish(p), 0);
    assert_string_equal(c.out.data, "1:[ok][\xC3\xA9]\n2:[bad][!\xC0\xAF]\n3:[sur][!\xED\xA0\x80]\n4:[ok2][\xF0\x9F\x98\x80]\n"
                                    "5:[cut][!\xE2\x82]\n");
    assert_int_equal(pulse_csv_stats(p)->bad_utf8_rows, 3);
    assert_int_equal(pulse_csv_stats(p)->first_bad_utf8, 2);
    pulse_csv_free(p);
    pulse_buf_free(&c.out);
}

static void test_parse_callback_stops(void **state)
{
    pulse_csv_dialect_t d = dialect(',', '"');
    collect_t c = {PULSE_BUF_INIT, 0, 2};
    pulse_csv_parser_t *p = pulse_csv_parser_new(&d, collect_row, &c);
    const char *s = "1\n2\n3\n4\n";
    assert_int_equal(pulse_csv_feed(p, s, strlen(s)), 1);
    assert_int_equal(pulse_csv_feed(p, s, strlen(s)), 1);
    assert_int_equal(pulse_csv_finish(p), 1);
    assert_string_equal(c.out.data, "1:[1]\n2:[2]\n");
    pulse_csv_free(p);
    pulse_buf_free(&c.out);
}

typedef struct {
    pulse_buf_t b;
    pulse_csv_parser_t *p;
} lines_t;

static int line_row(void *ud, size_t row, const pulse_csv_field_t *f, size_t n)
{
    lines_t *l = ud;
    pulse_buf_printf(&l->b, "%zu@%llu ", row, (unsigned long long)pulse_csv_line(l->p));
    return 0;
}

static void test_parse_line_numbers(void **state)
{
    pulse_csv_dialect_t d = dialect(',', '"');
    lines_t l = {PULSE_BUF_INIT, NULL};
    l.p = pulse_csv_parser_new(&d, line_row, &l);
    const char *s = "a\n\"b\nc\"\r\nd\re\n";
    assert_int_equal(pulse_csv_feed(l.p, s, strlen(s)), 0);
    assert_int_equal(pulse_csv_finish(l.p), 0);
    assert_string_equal(l.b.data, "1@1 2@2 3@4 4@5 ");
    pulse_csv_free(l.p);
    pulse_buf_free(&l.b);
}

static void test_sniff_then_parse_large_generated(void **state)
{
    pulse_buf_t b = PULSE_BUF_INIT;
    pulse_buf_puts(&b, "CustomerID;EventDate;EventType;RevenueImpact\r\n");
    for (int i = 0; i < 5000; i++)
        pulse_buf_printf(&b, "C%05d;2024-%02d-%02d;\"call; long\";%d,%02d\r\n", i, i % 12 + 1, i % 28 + 1, i, i % 100);
    pulse_csv_dialect_t d;
    char err[128];
    assert_int_equal(pulse_csv_sniff(b.data, b.len < 65536 ? b.len : 65536, &d, err, sizeof(err)), 0);
    assert_int_equal(d.sep, ';');
    assert_true(d.has_header);
    assert_true(d.decimal_comma);
    assert_true(d.crlf);
    assert_int_equal(d.nfields, 4);
    collect_t c = {PULSE_BUF_INIT, 0, 0};
    pulse_csv_parser_t *p = pulse_csv_parser_new(&d, collect_row, &c);
    for (size_t off = 0; off < b.len; off += 4093)
        assert_int_equal(pulse_csv_feed(p, b.data + off, b.len - off < 4093 ? b.len - off : 4093), 0);
    assert_int_equal(pulse_csv_finish(p), 0);
    assert_int_equal(c.rows, 5001);
    assert_int_equal(pulse_csv_stats(p)->bytes, b.len);
    assert_non_null(strstr(c.out.data, "5001:[C04999][2024-08-16][qcall; long][4999,99]\n"));
    pulse_csv_free(p);
    pulse_buf_free(&c.out);
    pulse_buf_free(&b);
}

/* ---------------------------------------------------------------------------------------------
 * The fast path (plain records read off 64-byte bit masks) against the state machine: a document
 * parsed in one piece takes the fast path for its plain records; fed one byte at a time, no record
 * is ever whole in a chunk and the state machine reads everything. Both must give the same rows,
 * line numbers, flags, stats, status and error, with every scanner implementation. */

typedef struct {
    pulse_buf_t b;
    pulse_csv_parser_t *p;
    size_t stop_after, rows;
} trace_t;

static int trace_row(void *ud, size_t row, const pulse_csv_field_t *f, size_t n)
{
    trace_t *t = ud;
    pulse_buf_printf(&t->b, "%zu@%llu:", row, (unsigned long long)pulse_csv_line(t->p));
    for (size_t i = 0; i < n; i++) {
        pulse_buf_printf(&t->b, "[%s%s", f[i].quoted ? "q" : "", f[i].bad_utf8 ? "!" : "");
        pulse_buf_append(&t->b, f[i].ptr, f[i].len);
        pulse_buf_putc(&t->b, ']');
    }
    pulse_buf_putc(&t->b, '\n');
    return t->stop_after && ++t->rows >= t->stop_after;
}

/* The trace of a parse fed in chunks of `step` bytes (0: one piece). Caller frees. */
static char *trace_parse(const pulse_csv_dialect_t *d, const char *s, size_t len, size_t step, size_t stop_after)
{
    trace_t t = {PULSE_BUF_INIT, NULL, stop_after, 0};
    t.p = pulse_csv_parser_new(d, trace_row, &t);
    int rc = 0;
    for (size_t pos = 0; rc == 0 && pos < len;) {
        size_t n = step == 0 || len - pos < step ? len - pos : step;
        rc = pulse_csv_feed(t.p, s + pos, n);
        pos += n;
    }
    if (rc == 0)
        rc = pulse_csv_finish(t.p);
    const pulse_csv_stats_t *st = pulse_csv_stats(t.p);
    /* bytes: a stopped or failed parse counts the whole chunk it stopped in, whatever the path */
    pulse_buf_printf(&t.b, "rc %d err '%s' bytes %llu records %llu rows %llu stray %llu@%llu bad %llu@%llu\n", rc,
                     pulse_csv_error(t.p), rc != 0 ? 0ull : (unsigned long long)st->bytes, (unsigned long long)st->records,
                     (unsigned long long)st->rows, (unsigned long long)st->stray_quotes, (unsigned long long)st->first_stray_quote,
                     (unsigned long long)st->bad_utf8_rows, (unsigned long long)st->first_bad_utf8);
    pulse_csv_free(t.p);
    pulse_buf_putc(&t.b, '\0');
    return t.b.data;
}

static void assert_fast_matches_slow(const pulse_csv_dialect_t *d, const char *s, size_t len)
{
    for (size_t stop = 0; stop <= 3; stop += 3) {
        char *fast = trace_parse(d, s, len, 0, stop), *slow = trace_parse(d, s, len, 1, stop);
        if (strcmp(fast, slow) != 0)
            fail_msg("sep %d quote %d strict %d max_row %zu, input:\n%.*s\nfast:\n%s\nslow:\n%s", d->sep, d->quote, d->strict,
                     d->max_row, (int)len, s, fast, slow);
        /* chunks that cut records at every place relative to the 64-byte blocks */
        char *mid = trace_parse(d, s, len, 61, stop);
        assert_string_equal(mid, slow);
        free(mid);
        free(fast);
        free(slow);
    }
}

static void test_fast_path_matches_state_machine(void **state)
{
    /* each snippet lands at every offset around a 64-byte block boundary, between plain rows */
    static const char *snippets[] = {
        "\"q,uo\"\"te\nd\",x\n",                   /* separator, doubled quote and newline inside quotes */
        "a,b\r\nc,d\r\ne,f\r\n",                   /* CRLF: the CR may be a block's last byte, the LF the next's first */
        "a,b\rc,d\n",                              /* a lone CR ends a record too */
        "\n\n,\n,,\n",                             /* blank lines, empty fields */
        "\xc3\xa9t\xc3\xa9,\xff\xfe,z\n",          /* valid and invalid UTF-8 */
        "a\"b,c\"d\"\n",                           /* stray quotes */
        "  a \t b  \n\t\n  \n c\n",                /* blanks around fields, blank-only lines */
        "0123456789abcdefghij,klmnopqrstuvwxyz\n", /* longer than the small max_row */
        "x;y|z\tw v\n",                            /* the other separators as data */
    };
    static const struct {
        char sep, quote;
    } dialects[] = {
        {',', '"'}, {',', 0}, {';', '"'}, {'\t', '"'}, {'|', 0}, {PULSE_CSV_SEP_WHITESPACE, 0}, {PULSE_CSV_SEP_WHITESPACE, '"'}};
    char doc[512];
    for (int level = 0; level <= 2; level++) {
        pulse_csv_scan_level(level);
        for (size_t k = 0; k < sizeof(snippets) / sizeof(snippets[0]); k++) {
            for (size_t off = 40; off <= 72; off++) {
                /* plain rows up to off, the snippet, plain rows, a last row without a newline */
                size_t n = 0;
                while (n < off) {
                    const char *row = n % 3 ? "1,22 2,333\n" : "ab,c d\n";
                    size_t rl = strlen(row) < off - n ? strlen(row) : off - n;
                    memcpy(doc + n, row, rl);
                    n += rl;
                }
                doc[n - 1] = '\n';
                n += (size_t)sprintf(doc + n, "%s%s", snippets[k], "p,q\nr,s\n\"t\",u\nlast,row");
                for (size_t di = 0; di < sizeof(dialects) / sizeof(dialects[0]); di++) {
                    for (int variant = 0; variant < 3; variant++) {
                        pulse_csv_dialect_t d = dialect(dialects[di].sep, dialects[di].quote);
                        d.strict = variant == 1;
                        d.max_row = variant == 2 ? 24 : 0;
                        assert_fast_matches_slow(&d, doc, n);
                    }
                }
            }
        }
    }
    pulse_csv_scan_level(-1);
}

/* A record whose CR ends one chunk and whose LF starts the next, and a document of only plain
 * CRLF records: the same rows whatever the chunking. */
static void test_fast_path_crlf_across_chunks(void **state)
{
    pulse_csv_dialect_t d = dialect(',', '"');
    char doc[4096];
    size_t n = 0;
    for (int i = 0; n < sizeof(doc) - 64; i++)
        n += (size_t)sprintf(doc + n, "%d,row %d,%d.%02d\r\n", i, i * 7, i, i % 100);
    char *want = trace_parse(&d, doc, n, 1, 0);
    for (size_t step = 2; step <= 130; step++) {
        char *got = trace_parse(&d, doc, n, step, 0);
        assert_string_equal(got, want);
        free(got);
    }
    char *whole = trace_parse(&d, doc, n, 0, 0);
    assert_string_equal(whole, want);
    free(whole);
    assert_non_null(strstr(want, "\n2@2:[1][row 7][1.01]\n"));
    free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sniff_separators),
        cmocka_unit_test(test_sniff_whitespace_runs),
        cmocka_unit_test(test_sniff_header),
        cmocka_unit_test(test_sniff_decimal_comma),
        cmocka_unit_test(test_sniff_bom_crlf_quoted_newlines),
        cmocka_unit_test(test_sniff_ambiguous_and_errors),
        cmocka_unit_test(test_parse_quoted),
        cmocka_unit_test(test_parse_every_chunk_boundary),
        cmocka_unit_test(test_parse_whitespace_mode),
        cmocka_unit_test(test_parse_bom_only_partial),
        cmocka_unit_test(test_parse_empty_and_no_trailing_newline),
        cmocka_unit_test(test_parse_stray_quotes),
        cmocka_unit_test(test_parse_errors_carry_record_and_offset),
        cmocka_unit_test(test_parse_in_place_fields),
        cmocka_unit_test(test_parse_row_limit),
        cmocka_unit_test(test_parse_bad_utf8_flagged),
        cmocka_unit_test(test_parse_callback_stops),
        cmocka_unit_test(test_parse_line_numbers),
        cmocka_unit_test(test_fast_path_matches_state_machine),
        cmocka_unit_test(test_fast_path_crlf_across_chunks),
        cmocka_unit_test(test_sniff_then_parse_large_generated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
