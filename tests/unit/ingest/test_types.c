/* Unit tests for src/ingest/types.c: date formats, numbers, booleans, nulls, column decisions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "ingest/types.h"

#define S(x) (x), strlen(x)

static int64_t date_ok(const char *s, pulse_date_format_t f, int want_time)
{
    int64_t ep = 0;
    int t = -1;
    if (pulse_date_parse(S(s), f, &ep, &t) != 0)
        fail_msg("'%s' should parse as %s", s, pulse_date_format_name(f));
    if (t != want_time)
        fail_msg("'%s' has_time %d, want %d", s, t, want_time);
    return ep;
}

static void date_bad(const char *s, pulse_date_format_t f)
{
    int64_t ep;
    if (pulse_date_parse(S(s), f, &ep, NULL) == 0)
        fail_msg("'%s' should not parse as %s", s, pulse_date_format_name(f));
}

#define D20230105 1672876800LL /* 2023-01-05T00:00:00Z */

static void test_every_format_valid(void **state)
{
    assert_int_equal(date_ok("1970-01-01", PULSE_DATE_ISO, 0), 0);
    assert_int_equal(date_ok("2023-01-05", PULSE_DATE_ISO, 0), D20230105);
    assert_int_equal(date_ok("  2023-01-05\t", PULSE_DATE_ISO, 0), D20230105);
    assert_int_equal(date_ok("2023-01-05", PULSE_DATE_ISO_DATETIME, 0), D20230105);
    assert_int_equal(date_ok("2023-01-05T10:20:30", PULSE_DATE_ISO_DATETIME, 1), D20230105 + 37230);
    assert_int_equal(date_ok("2023-01-05 10:20", PULSE_DATE_ISO_DATETIME, 1), D20230105 + 37200);
    assert_int_equal(date_ok("20230105", PULSE_DATE_YMD_COMPACT, 0), D20230105);
    assert_int_equal(date_ok("2023/01/05", PULSE_DATE_YMD_SLASH, 0), D20230105);
    assert_int_equal(date_ok("2023/1/5", PULSE_DATE_YMD_SLASH, 0), D20230105);
    assert_int_equal(date_ok("05-01-2023", PULSE_DATE_DMY_DASH, 0), D20230105);
    assert_int_equal(date_ok("01-05-2023", PULSE_DATE_MDY_DASH, 0), D20230105);
    assert_int_equal(date_ok("05/01/2023", PULSE_DATE_DMY_SLASH, 0), D20230105);
    assert_int_equal(date_ok("5/1/2023", PULSE_DATE_DMY_SLASH, 0), D20230105);
    assert_int_equal(date_ok("01/05/2023", PULSE_DATE_MDY_SLASH, 0), D20230105);
    assert_int_equal(date_ok("05.01.2023", PULSE_DATE_DMY_DOT, 0), D20230105);
    assert_int_equal(date_ok("05-01-23", PULSE_DATE_DMY_DASH_YY, 0), D20230105);
    assert_int_equal(date_ok("01-05-23", PULSE_DATE_MDY_DASH_YY, 0), D20230105);
    assert_int_equal(date_ok("05/01/23", PULSE_DATE_DMY_SLASH_YY, 0), D20230105);
    assert_int_equal(date_ok("1/5/23", PULSE_DATE_MDY_SLASH_YY, 0), D20230105);
    assert_int_equal(date_ok("5.1.23", PULSE_DATE_DMY_DOT_YY, 0), D20230105);
    assert_int_equal(date_ok("1/5/2023 8:26", PULSE_DATE_MDY_SLASH_TIME, 1), D20230105 + 8 * 3600 + 26 * 60);
    assert_int_equal(date_ok("1/5/2023 08:26:07", PULSE_DATE_MDY_SLASH_TIME, 1), D20230105 + 8 * 3600 + 26 * 60 + 7);
    assert_int_equal(date_ok("1/5/2023", PULSE_DATE_MDY_SLASH_TIME, 0), D20230105);
    assert_int_equal(date_ok("1/5/2023 12:00 AM", PULSE_DATE_MDY_SLASH_TIME, 1), D20230105);
    assert_int_equal(date_ok("1/5/2023 12:30 pm", PULSE_DATE_MDY_SLASH_TIME, 1), D20230105 + 12 * 3600 + 1800);
    assert_int_equal(date_ok("1/5/2023 1:00 PM", PULSE_DATE_MDY_SLASH_TIME, 1), D20230105 + 13 * 3600);
    assert_int_equal(date_ok("5/1/2023 23:59:59", PULSE_DATE_DMY_SLASH_TIME, 1), D20230105 + 86399);
    assert_int_equal(date_ok("5.1.2023 7:05", PULSE_DATE_DMY_DOT_TIME, 1), D20230105 + 7 * 3600 + 300);
    /* before the epoch */
    assert_int_equal(date_ok("1969-12-31", PULSE_DATE_ISO, 0), -86400);
    assert_int_equal(date_ok("1900-03-01", PULSE_DATE_ISO, 0), -2203891200LL);
}

static void test_iso_zones_to_utc(void **state)
{
    int64_t base = D20230105 + 10 * 3600;
    assert_int_equal(date_ok("2023-01-05T10:00:00Z", PULSE_DATE_ISO_DATETIME, 1), base);
    assert_int_equal(date_ok("2023-01-05t10:00:00z", PULSE_DATE_ISO_DATETIME, 1), base);
    assert_int_equal(date_ok("2023-01-05T10:00:00.123456Z", PULSE_DATE_ISO_DATETIME, 1), base);
    assert_int_equal(date_ok("2023-01-05T10:00:00,5Z", PULSE_DATE_ISO_DATETIME, 1), base);
    assert_int_equal(date_ok("2023-01-05T10:00:00+02:00", PULSE_DATE_ISO_DATETIME, 1), base - 7200);
    assert_int_equal(date_ok("2023-01-05T10:00:00-0530", PULSE_DATE_ISO_DATETIME, 1), base + 5 * 3600 + 1800);
    assert_int_equal(date_ok("2023-01-05T10:00+01", PULSE_DATE_ISO_DATETIME, 1), base - 3600);
    assert_int_equal(date_ok("2023-01-05 10:00:00 +01:00", PULSE_DATE_ISO_DATETIME, 1), base - 3600);
    assert_int_equal(date_ok("2023-01-01T00:30:00+01:00", PULSE_DATE_ISO_DATETIME, 1), 1672529400LL);
    date_bad("2023-01-05T10:00:00+2:00", PULSE_DATE_ISO_DATETIME);
    date_bad("2023-01-05T10:00:00+24:00", PULSE_DATE_ISO_DATETIME);
    date_bad("2023-01-05T10:00:00.Z", PULSE_DATE_ISO_DATETIME);
    date_bad("2023-01-05T10:00:00.1234567890Z", PULSE_DATE_ISO_DATETIME);
    date_bad("2023-01-05T10:00:00ZZ", PULSE_DATE_ISO_DATETIME);
    date_bad("2023-01-05T10", PULSE_DATE_ISO_DATETIME);
    date_bad("2023-01-05T", PULSE_DATE_ISO_DATETIME);
    date_bad("2023-01-05T10:00:00Z", PULSE_DATE_ISO); /* the date-only format takes no time */
}

static void test_calendar_and_time_ranges(void **state)
{
    assert_int_equal(date_ok("2024-02-29", PULSE_DATE_ISO, 0), 1709164800LL);
    assert_int_equal(date_ok("2000-02-29", PULSE_DATE_ISO, 0), 951782400LL);
    date_bad("2023-02-29", PULSE_DATE_ISO);
    date_bad("1900-02-29", PULSE_DATE_ISO);
    date_bad("29/02/2023", PULSE_DATE_DMY_SLASH);
    date_ok("29/02/2024", PULSE_DATE_DMY_SLASH, 0);
    date_bad("20230229", PULSE_DATE_YMD_COMPACT);
    date_bad("2023-04-31", PULSE_DATE_ISO);
    date_bad("31.04.2023", PULSE_DATE_DMY_DOT);
    date_bad("2023-13-01", PULSE_DATE_ISO);
    date_bad("13/13/2023", PULSE_DATE_DMY_SLASH);
    date_bad("2023-00-10", PULSE_DATE_ISO);
    date_bad("2023-01-00", PULSE_DATE_ISO);
    date_bad("2023-01-32", PULSE_DATE_ISO);
    date_bad("2023-01-05T24:00:00", PULSE_DATE_ISO_DATETIME);
    date_bad("2023-01-05T23:60:00", PULSE_DATE_ISO_DATETIME);
    date_bad("2023-01-05T23:59:60", PULSE_DATE_ISO_DATETIME);
    date_bad("1/5/2023 24:00", PULSE_DATE_MDY_SLASH_TIME);
    date_bad("1/5/2023 13:00 PM", PULSE_DATE_MDY_SLASH_TIME);
    date_bad("1/5/2023 0:00 AM", PULSE_DATE_MDY_SLASH_TIME);
    date_bad("1/5/2023 8:6", PULSE_DATE_MDY_SLASH_TIME);
    date_bad("1/5/2023 8:", PULSE_DATE_MDY_SLASH_TIME);
}

static void test_shape_rejects(void **state)
{
    date_bad("", PULSE_DATE_ISO);
    date_bad("2023-1-5", PULSE_DATE_ISO); /* ISO wants two digits */
    date_bad("23-01-05", PULSE_DATE_ISO);
    date_bad("2023-01-05x", PULSE_DATE_ISO);
    date_bad("2023-01-05 ", PULSE_DATE_YMD_COMPACT);
    date_bad("2023/01-05", PULSE_DATE_YMD_SLASH);
    date_bad("05/01/23", PULSE_DATE_DMY_SLASH); /* 4-digit year format */
    date_bad("05/01/2023", PULSE_DATE_DMY_SLASH_YY);
    date_bad("005/01/2023", PULSE_DATE_DMY_SLASH);
    date_bad("05-01-2023", PULSE_DATE_DMY_SLASH);
    date_bad("05/01/2023 8:26", PULSE_DATE_DMY_SLASH); /* time only in the _TIME formats */
    date_bad("2023010", PULSE_DATE_YMD_COMPACT);
    date_bad("202301050", PULSE_DATE_YMD_COMPACT);
    date_bad("18991231", PULSE_DATE_YMD_COMPACT); /* 8-digit ids are not dates */
    date_bad("22000101", PULSE_DATE_YMD_COMPACT);
    date_bad("2023-01-05", PULSE_DATE_NONE);
    date_bad("2023-01-05", PULSE_DATE_FORMAT_COUNT);
    assert_int_equal(pulse_date_parse(NULL, 0, PULSE_DATE_ISO, NULL, NULL), -1);
}

static void test_two_digit_pivot(void **state)
{
    assert_int_equal(date_ok("01/01/00", PULSE_DATE_DMY_SLASH_YY, 0), 946684800LL);  /* 2000 */
    assert_int_equal(date_ok("31/12/68", PULSE_DATE_DMY_SLASH_YY, 0), 3124137600LL); /* 2068 */
    assert_int_equal(date_ok("01/01/69", PULSE_DATE_DMY_SLASH_YY, 0), -31536000LL);  /* 1969 */
    assert_int_equal(date_ok("31.12.99", PULSE_DATE_DMY_DOT_YY, 0), 946598400LL);    /* 1999 */
    date_ok("29-02-00", PULSE_DATE_DMY_DASH_YY, 0);                                  /* 2000 is a leap year */
    date_bad("29-02-01", PULSE_DATE_DMY_DASH_YY);
}

static void test_format_iso_roundtrip(void **state)
{
    char buf[32];
    assert_int_equal(pulse_date_format_iso(D20230105 + 37230, 1, buf, sizeof(buf)), 20);
    assert_string_equal(buf, "2023-01-05T10:20:30Z");
    assert_int_equal(pulse_date_format_iso(-1, 0, buf, sizeof(buf)), 10);
    assert_string_equal(buf, "1969-12-31");
    assert_int_equal(pulse_date_format_iso(-62167219200LL, 1, buf, sizeof(buf)), 20);
    assert_string_equal(buf, "0000-01-01T00:00:00Z");
    assert_int_equal(pulse_date_format_iso(-62167219201LL, 1, buf, sizeof(buf)), -1);
    assert_int_equal(pulse_date_format_iso(253402300799LL, 1, buf, sizeof(buf)), 20);
    assert_string_equal(buf, "9999-12-31T23:59:59Z");
    assert_int_equal(pulse_date_format_iso(253402300800LL, 1, buf, sizeof(buf)), -1);
    assert_int_equal(pulse_date_format_iso(0, 1, buf, 20), -1);
    for (int64_t e = -5000000000LL; e < 5000000000LL; e += 86399 * 37) {
        int64_t back;
        assert_true(pulse_date_format_iso(e, 1, buf, sizeof(buf)) > 0);
        assert_int_equal(pulse_date_parse(S(buf), PULSE_DATE_ISO_DATETIME, &back, NULL), 0);
        assert_int_equal(back, e);
    }
}

static double num_ok(const char *s, int dc)
{
    double d = NAN;
    if (pulse_number_parse(S(s), dc, &d) != 0)
        fail_msg("'%s' should be a number (decimal_comma=%d)", s, dc);
    return d;
}

static void num_bad(const char *s, int dc)
{
    double d;
    if (pulse_number_parse(S(s), dc, &d) == 0)
        fail_msg("'%s' should not be a number (decimal_comma=%d), got %g", s, dc, d);
}

static void test_numbers(void **state)
{
    assert_true(num_ok("0", 0) == 0.0);
    assert_true(num_ok("42", 0) == 42.0);
    assert_true(num_ok("-42", 0) == -42.0);
    assert_true(num_ok("+42", 0) == 42.0);
    assert_true(num_ok("12.5", 0) == 12.5);
    assert_true(num_ok(".5", 0) == 0.5);
    assert_true(num_ok("0.1", 0) == 0.1);
    assert_true(num_ok("0.0001234", 0) == 0.0001234);
    assert_true(num_ok("1,234.56", 0) == 1234.56);
    assert_true(num_ok("1,234,567.5", 0) == 1234567.5);
    assert_true(num_ok("1 234 567.5", 0) == 1234567.5);
    assert_true(num_ok("1\xc2\xa0"
                       "234.5",
                       0) == 1234.5);
    assert_true(num_ok("1\xe2\x80\xaf"
                       "234.5",
                       0) == 1234.5);
    assert_true(num_ok("1'234'567.25", 0) == 1234567.25);
    assert_true(num_ok("1.234,56", 1) == 1234.56);
    assert_true(num_ok("12,5", 1) == 12.5);
    assert_true(num_ok("1 234,50", 1) == 1234.5);
    assert_true(num_ok("1e5", 0) == 1e5);
    assert_true(num_ok("1.5E-3", 0) == 1.5e-3);
    assert_true(num_ok("2.5e+2", 0) == 250.0);
    assert_true(num_ok("1.7976931348623157e308", 0) == 1.7976931348623157e308);
    assert_true(num_ok("123456789012345678901234567890", 0) == 123456789012345678901234567890.0);
    assert_true(num_ok("0.30000000000000004441", 0) == 0.30000000000000004441);
    assert_true(num_ok("3.141592653589793238", 0) == 3.141592653589793238);
    assert_true(num_ok("  7  ", 0) == 7.0);
}

static void test_currencies_and_negatives(void **state)
{
    assert_true(num_ok("$1,234.50", 0) == 1234.5);
    assert_true(num_ok("-$1,234.50", 0) == -1234.5);
    assert_true(num_ok("$-1,234.50", 0) == -1234.5);
    assert_true(num_ok("($1,234.50)", 0) == -1234.5);
    assert_true(num_ok("(12.5)", 0) == -12.5);
    assert_true(num_ok("1 234,50 \xe2\x82\xac", 1) == 1234.5);
    assert_true(num_ok("1\xc2\xa0"
                       "234,50\xc2\xa0\xe2\x82\xac",
                       1) == 1234.5);
    assert_true(num_ok("\xe2\x82\xac"
                       "12,50",
                       1) == 12.5);
    assert_true(num_ok("\xc2\xa3"
                       "99.99",
                       0) == 99.99);
    assert_true(num_ok("USD 1,000", 0) == 1000.0);
    assert_true(num_ok("1000 EUR", 0) == 1000.0);
    assert_true(num_ok("1000EUR", 0) == 1000.0);
    assert_true(num_ok("US$5", 0) == 5.0);
    assert_true(num_ok("5 US$", 0) == 5.0);
    assert_true(num_ok("-5 CHF", 0) == -5.0);
    num_bad("$", 0);
    num_bad("$$5", 0);
    num_bad("$5$", 0);
    num_bad("USD 5 EUR", 0);
    num_bad("USDX5", 0);
    num_bad("5 XUSD", 0);
    num_bad("5 ABC", 0);
    num_bad("(-5)", 0);
    num_bad("-(5)", 0);
    num_bad("(5", 0);
    num_bad("-$-5", 0);
}

static void test_number_rejects(void **state)
{
    num_bad("", 0);
    num_bad("   ", 0);
    num_bad("-", 0);
    num_bad("--5", 0);
    num_bad("+-5", 0);
    num_bad("- 5", 0);
    num_bad("1,23,456", 0); /* lakh grouping is not groups of three */
    num_bad("12.34.56", 0);
    num_bad("12.34.56", 1);
    num_bad("1,2345", 0);
    num_bad("1234,567", 0); /* first group longer than 3 */
    num_bad(",123", 0);
    num_bad("1,", 0);
    num_bad("1,,234", 0);
    num_bad("1,234 567", 0); /* mixed separators */
    num_bad("0,123", 0);
    num_bad("1.234,56", 0);
    num_bad("1,234.56", 1);
    num_bad("12,5", 0);
    num_bad("5.", 0);
    num_bad(".", 0);
    num_bad("1e309", 0);
    num_bad("-1e309", 0);
    num_bad("1e", 0);
    num_bad("1e+", 0);
    num_bad("1e12345", 0);
    num_bad("e5", 0);
    num_bad("1.5.", 0);
    num_bad("0x10", 0);
    num_bad("inf", 0);
    num_bad("nan", 0);
    num_bad("1 2", 0);
    num_bad("12a", 0);
    num_bad("1.234,5 6", 1);
}

static void test_int_parse(void **state)
{
    int64_t v;
    assert_int_equal(pulse_int_parse(S("9223372036854775807"), 0, &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(pulse_int_parse(S("-9223372036854775808"), 0, &v), 0);
    assert_true(v == INT64_MIN);
    assert_int_equal(pulse_int_parse(S("9223372036854775808"), 0, &v), -1);
    assert_int_equal(pulse_int_parse(S("-9223372036854775809"), 0, &v), -1);
    assert_int_equal(pulse_int_parse(S("1,234"), 0, &v), 0);
    assert_int_equal(v, 1234);
    assert_int_equal(pulse_int_parse(S("1.234"), 1, &v), 0);
    assert_int_equal(v, 1234);
    assert_int_equal(pulse_int_parse(S("1,234"), 1, &v), -1);
    assert_int_equal(pulse_int_parse(S("12.0"), 0, &v), -1);
    assert_int_equal(pulse_int_parse(S("1e3"), 0, &v), -1);
    assert_int_equal(pulse_int_parse(S("$5"), 0, &v), -1);
    assert_int_equal(pulse_int_parse(S("007"), 0, &v), 0);
    assert_int_equal(v, 7);
}

/* The fast paths give the full parsers' answers: same refusals, bit-identical values (-0.0 too). */
static void num_same(const char *s, size_t n, int dc)
{
    double fast = 12345.0, full = 12345.0;
    int rf = pulse_number_parse_fast(s, n, dc, &fast), rs = pulse_number_parse(s, n, dc, &full);
    if (rf != rs || (rs == 0 && memcmp(&fast, &full, sizeof(double)) != 0))
        fail_msg("'%.*s' (decimal comma %d): fast %d %.17g, full %d %.17g", (int)n, s, dc, rf, fast, rs, full);
}

static void date_same(const char *s, size_t n, pulse_date_format_t f)
{
    int64_t fast = 7, full = 7;
    int rf = pulse_date_parse_fast(s, n, f, &fast), rs = pulse_date_parse(s, n, f, &full, NULL);
    if (rf != rs || (rs == 0 && fast != full))
        fail_msg("'%.*s' as %s: fast %d %lld, full %d %lld", (int)n, s, pulse_date_format_name(f), rf, (long long)fast, rs,
                 (long long)full);
}

static uint64_t lcg(uint64_t *x)
{
    *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
    return *x >> 33;
}

static void test_fast_number_matches_full(void **state)
{
    (void)state;
    static const char *cases[] = {"0",
                                  "-0",
                                  "-0.0",
                                  "42",
                                  "-42",
                                  "007",
                                  "12.5",
                                  "-12.50",
                                  ".5",
                                  "-.5",
                                  "0.05",
                                  "10.50",
                                  "5.",
                                  "-",
                                  ".",
                                  "",
                                  "+5",
                                  "1,234",
                                  "12,5",
                                  "1.234,56",
                                  "1.5e3",
                                  " 7",
                                  "7 ",
                                  "$5",
                                  "(5)",
                                  "abc",
                                  "1.2.3",
                                  "--5",
                                  "5-",
                                  "1..2",
                                  "9007199254740992",
                                  "9007199254740993",
                                  "900719925474099.3",
                                  "900719925474099.5",
                                  "0.9007199254740993",
                                  "1234567890123456789",
                                  "12345678901234567890",
                                  "1234567890.123456789",
                                  "0.0000000000000000001",
                                  "0.00000000000000000001",
                                  "123456789012345678.9",
                                  "99999999999999999999",
                                  "3.141592653589793238",
                                  "0.30000000000000004441",
                                  "0000000000000000000000001",
                                  "17976931348623157"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        for (int dc = 0; dc < 2; dc++)
            num_same(cases[i], strlen(cases[i]), dc);
    assert_int_equal(pulse_number_parse_fast(S("35.18"), 0, NULL), 0); /* out may be NULL */
    double v;
    assert_int_equal(pulse_number_parse_fast(S("35.18"), 0, &v), 0);
    assert_true(v == 35.18);
    assert_int_equal(pulse_number_parse_fast(S("35,18"), 1, &v), 0);
    assert_true(v == 35.18);
    /* random strings over the characters the fast path looks at */
    static const char alphabet[] = "0123456789012345678901234567890123456789.,-e ";
    uint64_t x = 42;
    char buf[32];
    for (int k = 0; k < 200000; k++) {
        size_t n = lcg(&x) % 24;
        for (size_t i = 0; i < n; i++)
            buf[i] = alphabet[lcg(&x) % (sizeof(alphabet) - 1)];
        num_same(buf, n, (int)(k & 1));
    }
}

static void test_fast_date_matches_full(void **state)
{
    (void)state;
    static const char *cases[] = {"2023-01-05",
                                  "2024-02-29",
                                  "2023-02-29",
                                  "2100-02-29",
                                  "2000-02-29",
                                  "0000-01-01",
                                  "9999-12-31",
                                  "2023-13-01",
                                  "2023-00-10",
                                  "2023-01-00",
                                  "2023-01-32",
                                  "2023-04-31",
                                  "2023-1-05",
                                  "2023/01/05",
                                  "2023-01-5",
                                  "20230105",
                                  "18991231",
                                  "19000101",
                                  "21991231",
                                  "22000101",
                                  "20230230",
                                  "2023010a",
                                  " 20230105",
                                  "20230105 ",
                                  "2023-01-05T10:00:00Z",
                                  "2023-01-05 10:00",
                                  "2023-01-05 ",
                                  "05/01/2023",
                                  "2023-0a-05",
                                  "2023-01-05x",
                                  "",
                                  "1",
                                  "2023-01-0\x01"};
    static const pulse_date_format_t fmts_[] = {PULSE_DATE_ISO,       PULSE_DATE_ISO_DATETIME, PULSE_DATE_YMD_COMPACT,
                                                PULSE_DATE_DMY_SLASH, PULSE_DATE_NONE,         PULSE_DATE_FORMAT_COUNT};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        for (size_t f = 0; f < sizeof(fmts_) / sizeof(fmts_[0]); f++)
            date_same(cases[i], strlen(cases[i]), fmts_[f]);
    int64_t ep;
    assert_int_equal(pulse_date_parse_fast(S("2023-01-05"), PULSE_DATE_ISO, &ep), 0);
    assert_int_equal(ep, D20230105);
    assert_int_equal(pulse_date_parse_fast(S("20230105"), PULSE_DATE_YMD_COMPACT, &ep), 0);
    assert_int_equal(ep, D20230105);
    assert_int_equal(pulse_date_parse_fast(S("20230105"), PULSE_DATE_YMD_COMPACT, NULL), 0);
    /* random 8- and 10-byte values over digits and the separators */
    static const char alphabet[] = "0123456789012345678901234567890123-/ :";
    uint64_t x = 7;
    char buf[16];
    for (int k = 0; k < 200000; k++) {
        size_t n = (k & 1) ? 8 : 10;
        for (size_t i = 0; i < n; i++)
            buf[i] = alphabet[lcg(&x) % (sizeof(alphabet) - 1)];
        if (k % 4 == 0 && n == 10) {
            buf[4] = '-';
            buf[7] = '-';
        }
        buf[0] = (k % 3 == 0) ? '2' : buf[0];
        date_same(buf, n, (k & 1) ? PULSE_DATE_YMD_COMPACT : (k & 2) ? PULSE_DATE_ISO : PULSE_DATE_ISO_DATETIME);
    }
}

static void test_bools_and_nulls(void **state)
{
    static const char *const t[] = {"yes", "YES", "y", "Y", "true", "True", "t", "1", " yes "};
    static const char *const f[] = {"no", "No", "n", "N", "false", "FALSE", "f", "0"};
    static const char *const bad[] = {"", "2", "yess", "ja", "oui", "10", "truee", "nope"};
    int v;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        assert_int_equal(pulse_bool_parse(S(t[i]), &v), 0);
        assert_int_equal(v, 1);
    }
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        assert_int_equal(pulse_bool_parse(S(f[i]), &v), 0);
        assert_int_equal(v, 0);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pulse_bool_parse(S(bad[i]), &v), -1);

    static const char *const nulls[] = {"", "  ", "NA", "na", "N/A", "n/a", "null", "NULL", "#N/A", "-", " - "};
    static const char *const notnull[] = {"0", "none", "nan", "--", "NAN", "nul", "n.a."};
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        assert_true(pulse_is_null_like(S(nulls[i])));
    for (size_t i = 0; i < sizeof(notnull) / sizeof(notnull[0]); i++)
        assert_false(pulse_is_null_like(S(notnull[i])));
}

static void decide(const char *const *vals, size_t n, const pulse_type_options_t *opt, pulse_column_type_t *out)
{
    pulse_column_stats_t st;
    pulse_column_init(&st);
    for (size_t i = 0; i < n; i++)
        pulse_column_observe(&st, S(vals[i]));
    pulse_column_decide(&st, opt, out);
}

#define DECIDE(arr, opt, out) decide(arr, sizeof(arr) / sizeof(arr[0]), opt, out)

static void test_column_basic_types(void **state)
{
    pulse_column_type_t ct;
    static const char *const ints[] = {"1", "-20", "NA", "300", "", "1,234", "9223372036854775807"};
    DECIDE(ints, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_INTEGER);
    assert_int_equal(ct.values, 5);
    assert_int_equal(ct.nulls, 2);
    assert_false(ct.looks_boolean);

    static const char *const decs[] = {"1", "2.5", "$3.10", "(4.00)", "null"};
    DECIDE(decs, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_DECIMAL);
    assert_int_equal(ct.nulls, 1);

    static const char *const comma[] = {"12,5", "1.234,56", "7", "1 234,50 \xe2\x82\xac"};
    DECIDE(comma, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_TEXT);
    pulse_type_options_t dc = {.decimal_comma = 1};
    DECIDE(comma, &dc, &ct);
    assert_int_equal(ct.type, PULSE_COL_DECIMAL);

    static const char *const thousands[] = {"1,234", "12,345"};
    DECIDE(thousands, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_INTEGER);
    DECIDE(thousands, &dc, &ct);
    assert_int_equal(ct.type, PULSE_COL_DECIMAL);

    static const char *const bools[] = {"yes", "No", "", "Y", "true", "0", "1"};
    DECIDE(bools, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_BOOLEAN);

    static const char *const zero_one[] = {"0", "1", "1", "0", "N/A"};
    DECIDE(zero_one, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_INTEGER);
    assert_true(ct.looks_boolean);

    static const char *const codes[] = {"007", "012", "123"};
    DECIDE(codes, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_INTEGER);
    assert_int_equal(ct.leading_zeros, 2);

    static const char *const empty[] = {"", "NA", "-"};
    DECIDE(empty, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_EMPTY);
    assert_int_equal(ct.nulls, 3);

    static const char *const compact[] = {"19970101", "19970225", "19980630"};
    DECIDE(compact, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_DATE);
    assert_int_equal(ct.date_format, PULSE_DATE_YMD_COMPACT);

    static const char *const ids[] = {"19970101", "10000000", "19980630"};
    DECIDE(ids, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_INTEGER);
}

static void test_column_dates(void **state)
{
    pulse_column_type_t ct;
    static const char *const iso[] = {"2023-01-05", "2024-02-29", ""};
    DECIDE(iso, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_DATE);
    assert_int_equal(ct.date_format, PULSE_DATE_ISO);

    static const char *const isodt[] = {"2023-01-05", "2023-01-05T10:00:00Z", "2023-01-05 10:00:00+01:00"};
    DECIDE(isodt, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_DATETIME);
    assert_int_equal(ct.date_format, PULSE_DATE_ISO_DATETIME);

    /* a day above 12 settles it, whichever position it is in */
    static const char *const dmy[] = {"01/02/2023", "03/04/2023", "25/12/2023"};
    DECIDE(dmy, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_DATE);
    assert_false(ct.ambiguous);
    assert_int_equal(ct.date_format, PULSE_DATE_DMY_SLASH);
    static const char *const mdy[] = {"01/02/2023", "12/25/2023", "03/04/2023"};
    DECIDE(mdy, NULL, &ct);
    assert_int_equal(ct.date_format, PULSE_DATE_MDY_SLASH);
    assert_false(ct.ambiguous);

    static const char *const amb[] = {"01/02/2023", "03/04/2023", "12/11/2023"};
    DECIDE(amb, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_DATE);
    assert_true(ct.ambiguous);
    assert_int_equal(ct.date_format, PULSE_DATE_DMY_SLASH);
    assert_int_equal(ct.alt_format, PULSE_DATE_MDY_SLASH);
    assert_string_equal(ct.reason, "all values fit both DD/MM/YYYY and MM/DD/YYYY: choose one");
    /* the user's answer */
    pulse_type_options_t o = {.force_date_format = PULSE_DATE_MDY_SLASH};
    DECIDE(amb, &o, &ct);
    assert_int_equal(ct.type, PULSE_COL_DATE);
    assert_false(ct.ambiguous);
    assert_int_equal(ct.date_format, PULSE_DATE_MDY_SLASH);
    assert_int_equal(ct.failures, 0);

    /* one value fits neither reading: both die, the column is text */
    static const char *const neither[] = {"25/12/2023", "12/25/2023"};
    DECIDE(neither, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_TEXT);

    static const char *const retail[] = {"12/1/2010 8:26", "12/1/2010 8:28", "1/12/2011 14:57", "12/19/2010 9:00"};
    DECIDE(retail, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_DATETIME);
    assert_int_equal(ct.date_format, PULSE_DATE_MDY_SLASH_TIME);
    assert_false(ct.ambiguous);

    static const char *const ambtime[] = {"1/2/2010 8:26", "3/4/2010"};
    DECIDE(ambtime, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_DATETIME);
    assert_true(ct.ambiguous);
    assert_int_equal(ct.date_format, PULSE_DATE_DMY_SLASH_TIME);
    assert_int_equal(ct.alt_format, PULSE_DATE_MDY_SLASH_TIME);

    static const char *const dots[] = {"05.01.2023", "31.12.2023"};
    DECIDE(dots, NULL, &ct);
    assert_int_equal(ct.date_format, PULSE_DATE_DMY_DOT);
    static const char *const yy[] = {"05-01-23", "13-01-99"};
    DECIDE(yy, NULL, &ct);
    assert_int_equal(ct.date_format, PULSE_DATE_DMY_DASH_YY);
    static const char *const dash[] = {"05-01-2023", "01-31-2023"};
    DECIDE(dash, NULL, &ct);
    assert_int_equal(ct.date_format, PULSE_DATE_MDY_DASH);
    static const char *const yslash[] = {"2023/01/05", "2023/1/31"};
    DECIDE(yslash, NULL, &ct);
    assert_int_equal(ct.date_format, PULSE_DATE_YMD_SLASH);
}

static void test_column_mixed_and_forced(void **state)
{
    pulse_column_type_t ct;
    static const char *const mixed[] = {"2023-01-05", "2023-01-06", "2023-01-07", "soon"};
    DECIDE(mixed, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_TEXT);
    assert_int_equal(ct.near_type, PULSE_COL_DATE);
    assert_int_equal(ct.near_date_format, PULSE_DATE_ISO);
    assert_int_equal(ct.near_failures, 1);
    assert_string_equal(ct.reason, "1 of 4 values are not YYYY-MM-DD dates");

    pulse_type_options_t o = {.force_type = PULSE_COL_DATE};
    DECIDE(mixed, &o, &ct);
    assert_int_equal(ct.type, PULSE_COL_DATE);
    assert_int_equal(ct.date_format, PULSE_DATE_ISO);
    assert_int_equal(ct.failures, 1);

    static const char *const mixdates[] = {"2023-01-05", "05/01/2023"};
    DECIDE(mixdates, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_TEXT);

    static const char *const nums[] = {"1", "2", "x", "4.5"};
    DECIDE(nums, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_TEXT);
    assert_int_equal(ct.near_type, PULSE_COL_DECIMAL);
    assert_int_equal(ct.near_failures, 1);
    o = (pulse_type_options_t){.force_type = PULSE_COL_INTEGER};
    DECIDE(nums, &o, &ct);
    assert_int_equal(ct.type, PULSE_COL_INTEGER);
    assert_int_equal(ct.failures, 2);
    o = (pulse_type_options_t){.force_type = PULSE_COL_DECIMAL};
    DECIDE(nums, &o, &ct);
    assert_int_equal(ct.failures, 1);
    o = (pulse_type_options_t){.force_type = PULSE_COL_BOOLEAN};
    DECIDE(nums, &o, &ct);
    assert_int_equal(ct.failures, 3);
    o = (pulse_type_options_t){.force_type = PULSE_COL_TEXT};
    DECIDE(nums, &o, &ct);
    assert_int_equal(ct.type, PULSE_COL_TEXT);
    assert_int_equal(ct.failures, 0);
    o = (pulse_type_options_t){.force_date_format = PULSE_DATE_ISO};
    DECIDE(nums, &o, &ct);
    assert_int_equal(ct.type, PULSE_COL_DATE);
    assert_int_equal(ct.failures, 4);

    static const char *const words[] = {"apple", "pear"};
    DECIDE(words, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_TEXT);
    assert_int_equal(ct.near_type, PULSE_COL_AUTO);
    assert_string_equal(ct.reason, "");
}

static void test_column_merge(void **state)
{
    static const char *const a[] = {"01/02/2023", "03/04/2023"}, *const b[] = {"12/25/2023", ""};
    pulse_column_stats_t sa, sb;
    pulse_column_init(&sa);
    pulse_column_init(&sb);
    for (int i = 0; i < 2; i++) {
        pulse_column_observe(&sa, S(a[i]));
        pulse_column_observe(&sb, S(b[i]));
    }
    pulse_column_merge(&sa, &sb);
    pulse_column_type_t ct;
    pulse_column_decide(&sa, NULL, &ct);
    assert_int_equal(ct.type, PULSE_COL_DATE);
    assert_int_equal(ct.date_format, PULSE_DATE_MDY_SLASH);
    assert_int_equal(ct.values, 3);
    assert_int_equal(ct.nulls, 1);
}

static void test_names(void **state)
{
    assert_string_equal(pulse_date_format_name(PULSE_DATE_DMY_SLASH), "DD/MM/YYYY");
    assert_string_equal(pulse_date_format_name(PULSE_DATE_FORMAT_COUNT), "?");
    assert_string_equal(pulse_column_kind_name(PULSE_COL_DATETIME), "datetime");
    assert_true(pulse_date_format_has_time(PULSE_DATE_MDY_SLASH_TIME));
    assert_false(pulse_date_format_has_time(PULSE_DATE_ISO));
    for (int f = PULSE_DATE_NONE + 1; f < PULSE_DATE_FORMAT_COUNT; f++)
        assert_string_not_equal(pulse_date_format_name((pulse_date_format_t)f), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_format_valid),
        cmocka_unit_test(test_iso_zones_to_utc),
        cmocka_unit_test(test_calendar_and_time_ranges),
        cmocka_unit_test(test_shape_rejects),
        cmocka_unit_test(test_two_digit_pivot),
        cmocka_unit_test(test_format_iso_roundtrip),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_currencies_and_negatives),
        cmocka_unit_test(test_number_rejects),
        cmocka_unit_test(test_int_parse),
        cmocka_unit_test(test_fast_number_matches_full),
        cmocka_unit_test(test_fast_date_matches_full),
        cmocka_unit_test(test_bools_and_nulls),
        cmocka_unit_test(test_column_basic_types),
        cmocka_unit_test(test_column_dates),
        cmocka_unit_test(test_column_mixed_and_forced),
        cmocka_unit_test(test_column_merge),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
