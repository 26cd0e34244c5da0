/* Unit tests for src/jobs/derived_write.c, the encoding only (no database): each value in
 * PostgreSQL's binary COPY layout (length, then network byte order), NULL, real[] and jsonb, and
 * uuid text parsing. The writer is used without a connection: nothing is flushed below 1 MiB. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "jobs/derived_write.h"

static void expect_bytes(const pulse_derived_t *w, size_t at, const unsigned char *want, size_t n)
{
    assert_true(w->buf.len >= at + n);
    assert_memory_equal((const unsigned char *)w->buf.data + at, want, n);
}

static void test_scalars(void **state)
{
    (void)state;
    pulse_derived_t w;
    memset(&w, 0, sizeof(w));
    pulse_derived_row(&w, 5);
    pulse_derived_int8(&w, -2);
    pulse_derived_int4(&w, 258);
    pulse_derived_int2(&w, 3);
    pulse_derived_null(&w);
    pulse_derived_float4(&w, 1.0f);
    static const unsigned char want[] = {
        0,    5,                                                                /* fields */
        0,    0,    0,    8,    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, /* int8 -2 */
        0,    0,    0,    4,    0,    0,    1,    2,                            /* int4 258 */
        0,    0,    0,    2,    0,    3,                                        /* int2 3 */
        0xff, 0xff, 0xff, 0xff,                                                 /* NULL */
        0,    0,    0,    4,    0x3f, 0x80, 0,    0,                            /* float4 1.0 */
    };
    assert_int_equal(w.buf.len, sizeof(want));
    expect_bytes(&w, 0, want, sizeof(want));
    assert_int_equal(w.rows, 1);
    pulse_derived_abort(&w);
}

static void test_array_json_text(void **state)
{
    (void)state;
    pulse_derived_t w;
    memset(&w, 0, sizeof(w));
    const float v[] = {2.0f, 99.0f, NAN, 99.0f}; /* stride 2: 2.0 and NaN */
    pulse_derived_float4_array(&w, v, 2, 2);
    static const unsigned char arr[] = {
        0, 0, 0,    36,                  /* 20 + 2 x 8 */
        0, 0, 0,    1,                   /* one dimension */
        0, 0, 0,    0,                   /* no NULL elements */
        0, 0, 0x02, 0xbc,                /* float4's type oid, 700 */
        0, 0, 0,    2,    0,    0, 0, 1, /* two values from 1 */
        0, 0, 0,    4,    0x40, 0, 0, 0,
    };
    expect_bytes(&w, 0, arr, sizeof(arr));
    const unsigned char *nan = (const unsigned char *)w.buf.data + sizeof(arr) + 4;
    assert_int_equal(nan[0] & 0x7f, 0x7f); /* a NaN's exponent bits */
    assert_int_equal(w.buf.len, 4 + 36);
    size_t at = w.buf.len;
    pulse_derived_jsonb(&w, "[]", 2);
    static const unsigned char js[] = {0, 0, 0, 3, 1, '[', ']'};
    expect_bytes(&w, at, js, sizeof(js));
    at = w.buf.len;
    pulse_derived_text(&w, "low", 3);
    static const unsigned char tx[] = {0, 0, 0, 3, 'l', 'o', 'w'};
    expect_bytes(&w, at, tx, sizeof(tx));
    pulse_derived_abort(&w);
}

static void test_uuid(void **state)
{
    (void)state;
    unsigned char b[16];
    assert_int_equal(pulse_derived_parse_uuid("00112233-4455-6677-8899-aabbccddeeff", b), 0);
    assert_int_equal(b[0], 0x00);
    assert_int_equal(b[9], 0x99);
    assert_int_equal(b[15], 0xff);
    assert_int_equal(pulse_derived_parse_uuid("00112233-4455-6677-8899-aabbccddee", b), -1);
    assert_int_equal(pulse_derived_parse_uuid("00112233-4455-6677-8899-aabbccddeeff00", b), -1);
    assert_int_equal(pulse_derived_parse_uuid("0011zz33-4455-6677-8899-aabbccddeeff", b), -1);
    assert_int_equal(pulse_derived_parse_uuid(NULL, b), -1);
    pulse_derived_t w;
    memset(&w, 0, sizeof(w));
    assert_int_equal(pulse_derived_parse_uuid("00112233-4455-6677-8899-aabbccddeeff", b), 0);
    pulse_derived_uuid(&w, b);
    static const unsigned char want[] = {0, 0, 0, 16, 0x00, 0x11, 0x22, 0x33};
    expect_bytes(&w, 0, want, sizeof(want));
    assert_int_equal(w.buf.len, 20);
    pulse_derived_abort(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_array_json_text),
        cmocka_unit_test(test_uuid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
