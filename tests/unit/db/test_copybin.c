/* Decoding PostgreSQL's binary send formats of timestamptz and numeric (db/copybin.h) exactly as the
 * server's own casts would: the analytics loader relies on it to skip those casts. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/copybin.h"

/* numeric's send format of a decimal written as digits with an optional '.' and sign, built as the
 * server builds it: base-10000 groups aligned on the decimal point, zero groups at both ends dropped. */
static int32_t encode_numeric(const char *text, unsigned char *out)
{
    int negative = text[0] == '-';
    const char *s = negative ? text + 1 : text;
    const char *dot = strchr(s, '.');
    size_t int_len = dot ? (size_t)(dot - s) : strlen(s), frac_len = dot ? strlen(dot + 1) : 0;
    size_t int_groups = (int_len + 3) / 4, frac_groups = (frac_len + 3) / 4;
    int groups[64], n = 0;
    char padded[300];
    snprintf(padded, sizeof(padded), "%0*d%.*s%s%0*d", (int)(int_groups * 4 - int_len), 0, (int)int_len, s, dot ? dot + 1 : "",
             (int)(frac_groups * 4 - frac_len), 0);
    /* the %0*d with width 0 still prints a "0": skip those */
    const char *q = padded + (int_groups * 4 == int_len ? 1 : 0);
    size_t total = (int_groups + frac_groups) * 4;
    for (size_t g = 0; g < total / 4; g++) {
        char four[5] = {0};
        memcpy(four, q + 4 * g, 4);
        groups[n++] = atoi(four);
    }
    int weight = (int)int_groups - 1, first = 0, last = n - 1;
    while (first < n && groups[first] == 0)
        first++, weight--;
    while (last >= first && groups[last] == 0)
        last--;
    int ndigits = last >= first ? last - first + 1 : 0;
    if (ndigits == 0)
        weight = 0;
    out[0] = (unsigned char)(ndigits >> 8), out[1] = (unsigned char)ndigits;
    out[2] = (unsigned char)((unsigned)weight >> 8), out[3] = (unsigned char)weight;
    out[4] = negative ? 0x40 : 0, out[5] = 0;
    out[6] = 0, out[7] = (unsigned char)frac_len;
    for (int i = 0; i < ndigits; i++) {
        out[8 + 2 * i] = (unsigned char)(groups[first + i] >> 8);
        out[9 + 2 * i] = (unsigned char)groups[first + i];
    }
    return 8 + 2 * ndigits;
}

static void assert_decodes_like_strtod(const char *text)
{
    unsigned char buf[300];
    int32_t len = encode_numeric(text, buf);
    double got = pulse_be_numeric_float8(buf, len), want = strtod(text, NULL);
    if (memcmp(&got, &want, sizeof(got)) != 0 && !(got == 0 && want == 0))
        fail_msg("%s decoded as %.17g, strtod gives %.17g", text, got, want);
}

static void numeric_hand_picked(void **state)
{
    (void)state;
    const char *cases[] = {"0",
                           "12.3400",
                           "-0.0001",
                           "123456789012.3456",
                           "9999999999999999",
                           "1",
                           "10000",
                           "0.5",
                           "-2.25",
                           "99999999.9999",
                           "1e0",
                           "900719925474.0993",
                           "900719925474.0992",
                           "1234567890123456789.0123",
                           "0.0000000001",
                           "100000000000000000000000000000",
                           "3.1416"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (strchr(cases[i], 'e') == NULL)
            assert_decodes_like_strtod(cases[i]);
}

/* Random numeric(16,4)-like values, as stored amounts are, and some wider. */
static void numeric_random(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int int_digits = (int)(x % 16), frac_digits = (int)((x >> 8) % 6);
        char text[64];
        size_t n = 0;
        if ((x >> 20) & 1)
            text[n++] = '-';
        uint64_t y = x;
        for (int d = 0; d < (int_digits ? int_digits : 1); d++, y = y * 6364136223846793005u + 1)
            text[n++] = (char)('0' + (y >> 33) % 10);
        if (frac_digits) {
            text[n++] = '.';
            for (int d = 0; d < frac_digits; d++, y = y * 6364136223846793005u + 1)
                text[n++] = (char)('0' + (y >> 33) % 10);
        }
        text[n] = 0;
        assert_decodes_like_strtod(text);
    }
}

static void numeric_special_and_malformed(void **state)
{
    (void)state;
    unsigned char nan_value[8] = {0, 0, 0, 0, 0xC0, 0, 0, 0}, infinity[8] = {0, 0, 0, 0, 0xD0, 0, 0, 0};
    assert_true(isnan(pulse_be_numeric_float8(nan_value, 8)));
    assert_true(isnan(pulse_be_numeric_float8(infinity, 8)));
    unsigned char one[10] = {0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_true(pulse_be_numeric_float8(one, 10) == 1.0);
    assert_true(isnan(pulse_be_numeric_float8(one, 9))); /* digit count and length disagree */
    assert_true(isnan(pulse_be_numeric_float8(one, 4))); /* shorter than the header */
    unsigned char negative_count[8] = {0xff, 0xff, 0, 0, 0, 0, 0, 0};
    assert_true(isnan(pulse_be_numeric_float8(negative_count, 8)));
}

static int32_t days_of(int64_t microseconds)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)microseconds >> (56 - 8 * i));
    return pulse_be_timestamptz_days(b);
}

static void timestamptz_days(void **state)
{
    (void)state;
    const int64_t day = 86400000000LL;
    assert_int_equal(days_of(0), 10957);                         /* 2000-01-01 */
    assert_int_equal(days_of(day - 1), 10957);                   /* its last microsecond */
    assert_int_equal(days_of(-1), 10956);                        /* 1999-12-31 23:59:59.999999: down, not toward 0 */
    assert_int_equal(days_of(-10957 * day), 0);                  /* 1970-01-01 */
    assert_int_equal(days_of(-10957 * day - 1), -1);             /* 1969-12-31 */
    assert_int_equal(days_of(9862 * day + 3600000000LL), 20819); /* 2027-01-01 01:00 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(numeric_hand_picked),
        cmocka_unit_test(numeric_random),
        cmocka_unit_test(numeric_special_and_malformed),
        cmocka_unit_test(timestamptz_days),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
