/* Unit tests for src/core/buf.c: growth, printf and JSON escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/buf.h"

static void test_append_grows_and_terminates(void **state)
{
    pulse_buf_t b = PULSE_BUF_INIT;
    for (int i = 0; i < 1000; i++)
        pulse_buf_append(&b, "abc", 3);
    assert_int_equal(b.len, 3000);
    assert_int_equal(b.data[b.len], '\0');
    assert_memory_equal(b.data + 2997, "abc", 3);
    pulse_buf_free(&b);
}

static void test_printf_long_output(void **state)
{
    pulse_buf_t b = PULSE_BUF_INIT;
    char big[500];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    pulse_buf_printf(&b, "<%s>%d", big, 42);
    assert_int_equal(b.len, 499 + 2 + 2);
    assert_string_equal(b.data + b.len - 3, ">42");
    pulse_buf_free(&b);
}

static void test_json_escape(void **state)
{
    pulse_buf_t b = PULSE_BUF_INIT;
    const char in[] = "a\"b\\c\n\x01";
    pulse_buf_json_escape(&b, in, sizeof(in) - 1);
    assert_string_equal(b.data, "a\\\"b\\\\c\\n\\u0001");
    pulse_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_grows_and_terminates),
        cmocka_unit_test(test_printf_long_output),
        cmocka_unit_test(test_json_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
