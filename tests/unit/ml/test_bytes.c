/* Unit tests for src/ml/bytes.c: the CRC-32 check value, round trips, reads past the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "ml/bytes.h"

static void test_crc32(void **state)
{
    (void)state;
    assert_int_equal(pulse_ml_crc32(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(pulse_ml_crc32(0, "", 0), 0);
    /* continuing a CRC over two pieces equals one pass */
    assert_int_equal(pulse_ml_crc32(pulse_ml_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
}

static void test_round_trip(void **state)
{
    (void)state;
    pulse_buf_t b = PULSE_BUF_INIT;
    pulse_ml_put_u8(&b, 200);
    pulse_ml_put_u32(&b, 0xdeadbeef);
    pulse_ml_put_u64(&b, 0x0102030405060708ULL);
    pulse_ml_put_f64(&b, -0.125);
    pulse_ml_put_str(&b, "abc", 3);
    pulse_ml_reader_t r;
    pulse_ml_reader_init(&r, (unsigned char *)b.data, b.len);
    uint8_t u8;
    uint32_t u32;
    uint64_t u64;
    double f;
    const char *s;
    size_t n;
    assert_int_equal(pulse_ml_get_u8(&r, &u8), 0);
    assert_int_equal(pulse_ml_get_u32(&r, &u32), 0);
    assert_int_equal(pulse_ml_get_u64(&r, &u64), 0);
    assert_int_equal(pulse_ml_get_f64(&r, &f), 0);
    assert_int_equal(pulse_ml_get_str(&r, 2, &s, &n), -1); /* longer than allowed */
    assert_true(u8 == 200 && u32 == 0xdeadbeef && u64 == 0x0102030405060708ULL && f == -0.125);
    pulse_ml_reader_init(&r, (unsigned char *)b.data + 21, b.len - 21);
    assert_int_equal(pulse_ml_get_str(&r, 10, &s, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(s, "abc", 3);
    assert_int_equal(pulse_ml_get_u8(&r, &u8), -1);
    assert_true(r.failed);
    pulse_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
