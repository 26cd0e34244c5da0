/* Unit tests for src/ingest/multipart.c: the boundary parameter, splitting parts (binary bodies,
 * preamble/epilogue, empty parts, header parameters), and every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "ingest/multipart.h"

/* Parts rendered as text: "<name>|<filename or ->|<content type>|<len>:<data>\n". */
static int collect(void *ud, size_t index, const pulse_multipart_part_t *p)
{
    pulse_buf_t *b = ud;
    pulse_buf_printf(b, "%s|%s|%s|%zu:", p->name, p->filename ? p->filename : "-", p->content_type, p->len);
    pulse_buf_append(b, p->data, p->len);
    pulse_buf_putc(b, '\n');
    return 0;
}

static int parse(const char *body, size_t len, const char *boundary, char **out, char *err, size_t errlen)
{
    pulse_buf_t b = PULSE_BUF_INIT;
    int rc = pulse_multipart_parse(body, len, boundary, strlen(boundary), collect, &b, err, errlen);
    pulse_buf_putc(&b, '\0');
    *out = b.data;
    return rc;
}

static void assert_parts(const char *body, const char *boundary, const char *want)
{
    char *got, err[256] = "";
    int rc = parse(body, strlen(body), boundary, &got, err, sizeof(err));
    if (rc != 0)
        fail_msg("parse failed: %s", err);
    assert_string_equal(got, want);
    free(got);
}

static void assert_refused(const char *body, const char *boundary, const char *needle)
{
    char *got, err[256] = "";
    int rc = parse(body, strlen(body), boundary, &got, err, sizeof(err));
    free(got);
    assert_int_equal(rc, -1);
    if (strstr(err, needle) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static void test_boundary(void **state)
{
    char b[PULSE_MULTIPART_MAX_BOUNDARY + 1], err[128];
    const char *ct = "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW";
    assert_int_equal(pulse_multipart_boundary(ct, strlen(ct), b, sizeof(b), err, sizeof(err)), 37);
    assert_string_equal(b, "----WebKitFormBoundary7MA4YWxkTrZu0gW");
    ct = "Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a b:c\" ";
    assert_int_equal(pulse_multipart_boundary(ct, strlen(ct), b, sizeof(b), err, sizeof(err)), 5);
    assert_string_equal(b, "a b:c");
    ct = "multipart/form-data";
    assert_int_equal(pulse_multipart_boundary(ct, strlen(ct), b, sizeof(b), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "missing boundary"));
    ct = "text/plain; boundary=x";
    assert_int_equal(pulse_multipart_boundary(ct, strlen(ct), b, sizeof(b), err, sizeof(err)), -1);
    ct = "multipart/form-data; boundary=\"\"";
    assert_int_equal(pulse_multipart_boundary(ct, strlen(ct), b, sizeof(b), err, sizeof(err)), -1);
    char longct[200];
    snprintf(longct, sizeof(longct), "multipart/form-data; boundary=%071d", 0);
    assert_int_equal(pulse_multipart_boundary(longct, strlen(longct), b, sizeof(b), err, sizeof(err)), -1);
}

static void test_fields_and_files(void **state)
{
    assert_parts("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue 1\r\n"
                 "--b\r\ncontent-disposition: form-data; name=f; filename=\"x.csv\"\r\nContent-Type:  text/csv \r\n\r\n"
                 "x,y\r\n1,2\r\n\r\n--b--\r\n",
                 "b", "a|-||7:value 1\nf|x.csv|text/csv|10:x,y\r\n1,2\r\n\n");
}

static void test_preamble_epilogue_padding(void **state)
{
    assert_parts(
        "This is the preamble.\r\n--b \t\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b--  epilogue\r\nmore", "b",
        "a|-||1:1\n");
    /* a boundary-looking line inside data that is not followed by CRLF or "--" is data */
    assert_parts("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--bx\r\ny\r\n--b--", "b",
                 "a|-||10:x\r\n--bx\r\ny\n");
    /* no parts at all */
    assert_parts("--b--\r\n", "b", "");
}

static void test_binary_and_empty_bodies(void **state)
{
    static const char body[] = "--zz\r\nContent-Disposition: form-data; name=\"bin\"; filename=\"b.bin\"\r\n\r\n"
                               "\0\1\2\r\n\r--z\0\xff"
                               "\r\n--zz\r\nContent-Disposition: form-data; name=\"empty\"\r\n\r\n\r\n--zz\r\n"
                               "Content-Disposition: form-data; name=\"nobody\"\r\n\r\n--zz--";
    char *got, err[256];
    assert_int_equal(parse(body, sizeof(body) - 1, "zz", &got, err, sizeof(err)), 0);
    static const char want[] = "bin|b.bin||11:\0\1\2\r\n\r--z\0\xff\nempty|-||0:\nnobody|-||0:\n";
    assert_memory_equal(got, want, sizeof(want));
    free(got);
}

static void test_filename_forms(void **state)
{
    assert_parts(
        "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"C:\\\\Users\\\\me\\\\r.csv\"\r\n\r\n1\r\n"
        "--b\r\nContent-Disposition: form-data; name=\"g\"; filename=\"a \\\"q\\\".csv\"\r\n\r\n2\r\n"
        "--b\r\nContent-Disposition: form-data; name=\"h\"; filename=\"../../etc/passwd\"\r\n\r\n3\r\n"
        "--b\r\nContent-Disposition: form-data; name=\"i\"; filename=\"fallback\"; "
        "filename*=UTF-8''%E2%82%AC%20rates.csv\r\n\r\n4\r\n"
        "--b\r\nContent-Disposition: form-data; name=\"j\"; filename*=iso-8859-1'fr'caf%E9.csv\r\n\r\n5\r\n"
        "--b\r\nContent-Disposition: form-data; name=\"k\"; filename=\"\"\r\n\r\n\r\n--b--",
        "b", "f|r.csv||1:1\ng|a \"q\".csv||1:2\nh|passwd||1:3\ni|\xE2\x82\xAC rates.csv||1:4\nj|caf\xC3\xA9.csv||1:5\nk|||0:\n");
}

static void test_refusals(void **state)
{
    assert_refused("no delimiter here", "b", "no multipart boundary");
    assert_refused("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated", "b", "no closing");
    assert_refused("--b\r\nContent-Disposition: form-data; name=\"a\"", "b", "unterminated header");
    assert_refused("--b\r\nno colon\r\n\r\nx\r\n--b--", "b", "malformed header");
    pulse_buf_t big = PULSE_BUF_INIT;
    pulse_buf_puts(&big, "--b\r\nContent-Disposition: form-data; name=\"");
    for (int i = 0; i < PULSE_MULTIPART_MAX_HEADER; i++)
        pulse_buf_putc(&big, 'x');
    pulse_buf_puts(&big, "\"\r\n\r\nx\r\n--b--");
    pulse_buf_putc(&big, '\0');
    assert_refused(big.data, "b", "longer than");
    pulse_buf_reset(&big);
    for (int i = 0; i <= PULSE_MULTIPART_MAX_PARTS; i++)
        pulse_buf_printf(&big, "--b\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nv\r\n", i);
    pulse_buf_puts(&big, "--b--");
    pulse_buf_putc(&big, '\0');
    assert_refused(big.data, "b", "more than 100 parts");
    pulse_buf_reset(&big);
    for (int i = 0; i <= PULSE_MULTIPART_MAX_HEADERS; i++)
        pulse_buf_puts(&big, i == 0 ? "--b\r\nX-A: 1\r\n" : "X-A: 1\r\n");
    pulse_buf_puts(&big, "\r\nv\r\n--b--");
    pulse_buf_putc(&big, '\0');
    assert_refused(big.data, "b", "header lines");
    pulse_buf_free(&big);
    char err[64];
    assert_int_equal(pulse_multipart_parse("x", 1, "", 0, collect, NULL, err, sizeof(err)), -1);
}

static int stop_first(void *ud, size_t index, const pulse_multipart_part_t *p)
{
    (*(int *)ud)++;
    return 7;
}

static void test_callback_stops(void **state)
{
    const char *body = "--b\r\n\r\n1\r\n--b\r\n\r\n2\r\n--b--";
    int calls = 0;
    char err[64];
    assert_int_equal(pulse_multipart_parse(body, strlen(body), "b", 1, stop_first, &calls, err, sizeof(err)), 7);
    assert_int_equal(calls, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boundary),
        cmocka_unit_test(test_fields_and_files),
        cmocka_unit_test(test_preamble_epilogue_padding),
        cmocka_unit_test(test_binary_and_empty_bodies),
        cmocka_unit_test(test_filename_forms),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_callback_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
