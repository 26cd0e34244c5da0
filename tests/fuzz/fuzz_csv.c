/* libFuzzer target for src/ingest/csv.c: sniff the input, then parse it one-shot and in chunks cut
 * at fuzzer-chosen points; both parses must give the same rows, status and error. One-shot, plain
 * records take the fast path (64-byte bit masks), in short chunks the state machine: a third
 * one-shot parse with the portable scanner must agree too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "ingest/csv.h"
#include "ingest/csv_blocks.h"

static int fuzz_row(void *ud, size_t row, const pulse_csv_field_t *f, size_t n)
{
    pulse_buf_t *b = ud;
    pulse_buf_put_uint(b, row);
    for (size_t i = 0; i < n; i++) {
        pulse_buf_putc(b, f[i].quoted ? 'q' : 'u');
        pulse_buf_putc(b, f[i].bad_utf8 ? '!' : '.');
        pulse_buf_put_uint(b, f[i].len);
        pulse_buf_putc(b, ':');
        pulse_buf_append(b, f[i].ptr, f[i].len);
    }
    pulse_buf_putc(b, '\n');
    return 0;
}

/* cuts: byte values of the first bytes give chunk lengths (0 = 1 byte); NULL = one shot. */
static int fuzz_parse(const pulse_csv_dialect_t *d, const uint8_t *data, size_t len, const uint8_t *cuts, size_t ncuts,
                      pulse_buf_t *out, pulse_buf_t *err)
{
    pulse_csv_parser_t *p = pulse_csv_parser_new(d, fuzz_row, out);
    int rc = 0;
    size_t pos = 0, k = 0;
    while (rc == 0 && pos < len) {
        size_t n = cuts ? (size_t)cuts[k++ % ncuts] % 17 + 1 : len;
        if (n > len - pos)
            n = len - pos;
        rc = pulse_csv_feed(p, (const char *)data + pos, n);
        pos += n;
    }
    if (rc == 0)
        rc = pulse_csv_finish(p);
    pulse_buf_puts(err, pulse_csv_error(p));
    pulse_buf_put_uint(err, pulse_csv_stats(p)->rows);
    pulse_buf_put_uint(err, pulse_csv_stats(p)->stray_quotes);
    pulse_buf_put_uint(err, pulse_csv_stats(p)->bad_utf8_rows);
    pulse_csv_free(p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    /* first byte: parser options; then the document */
    uint8_t opt = data[0];
    data++, size--;
    pulse_csv_dialect_t d;
    char msg[256];
    if (pulse_csv_sniff((const char *)data, size, &d, msg, sizeof(msg)) != 0)
        pulse_csv_dialect_init(&d);
    if (opt & 1)
        d.strict = 1;
    if (opt & 2)
        d.max_row = 64;
    if (opt & 4) {
        static const char seps[] = {',', ';', '\t', '|', PULSE_CSV_SEP_WHITESPACE};
        d.sep = seps[(opt >> 3) % 5];
        d.quote = (opt & 0x80) ? 0 : '"';
    }
    pulse_buf_t a = PULSE_BUF_INIT, ae = PULSE_BUF_INIT, b = PULSE_BUF_INIT, be = PULSE_BUF_INIT;
    int ra = fuzz_parse(&d, data, size, NULL, 0, &a, &ae);
    int rb = fuzz_parse(&d, data, size, data, size, &b, &be);
    if (ra != rb || a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0) || ae.len != be.len ||
        (ae.len && memcmp(ae.data, be.data, ae.len) != 0))
        abort();
    pulse_buf_reset(&b);
    pulse_buf_reset(&be);
    pulse_csv_scan_level(0);
    rb = fuzz_parse(&d, data, size, NULL, 0, &b, &be);
    pulse_csv_scan_level(-1);
    if (ra != rb || a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0) || ae.len != be.len ||
        (ae.len && memcmp(ae.data, be.data, ae.len) != 0))
        abort();
    pulse_buf_free(&a);
    pulse_buf_free(&ae);
    pulse_buf_free(&b);
    pulse_buf_free(&be);
    return 0;
}
