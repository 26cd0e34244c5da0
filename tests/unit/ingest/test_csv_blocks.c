/* Unit tests for src/ingest/csv_blocks.c: every implementation (portable C, SSE2, AVX2 where the
 * CPU has them) gives the masks a byte-by-byte reference gives, for every separator, with and
 * without a quote, on blocks holding every byte value and on short (padded) tails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "ingest/csv.h"
#include "ingest/csv_blocks.h"

static void reference(const unsigned char *p, size_t n, char sep, char quote, pulse_csv_masks_t *m)
{
    memset(m, 0, sizeof(*m));
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        uint64_t bit = UINT64_C(1) << i;
        int is_sep = sep == PULSE_CSV_SEP_WHITESPACE ? c == ' ' || c == '\t' : c == (unsigned char)sep;
        m->sep |= is_sep ? bit : 0;
        m->nl |= c == '\n' ? bit : 0;
        m->cr |= c == '\r' ? bit : 0;
        m->quote |= quote && c == (unsigned char)quote ? bit : 0;
        m->ctl |= c <= 0x20 ? bit : 0;
        m->high |= c >= 0x80 ? bit : 0;
    }
}

static void assert_masks(const pulse_csv_masks_t *a, const pulse_csv_masks_t *b)
{
    assert_true(a->sep == b->sep);
    assert_true(a->nl == b->nl);
    assert_true(a->cr == b->cr);
    assert_true(a->quote == b->quote);
    assert_true(a->ctl == b->ctl);
    assert_true(a->high == b->high);
}

static uint64_t rng = 88172645463325252ull;
static unsigned char next_byte(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned char)rng;
}

static void test_levels_agree_with_reference(void **state)
{
    static const char seps[] = {',', ';', '\t', '|', PULSE_CSV_SEP_WHITESPACE};
    unsigned char buf[256 + 64];
    for (int level = 0; level <= 2; level++) {
        int used = pulse_csv_scan_level(level);
        assert_true(used <= level);
        for (size_t si = 0; si < sizeof(seps); si++) {
            for (int q = 0; q < 2; q++) {
                pulse_csv_scanner_t sc;
                pulse_csv_scanner_init(&sc, seps[si], q ? '"' : 0);
                /* every byte value at every position: blocks of consecutive values, then random
                 * blocks weighted to the structural bytes */
                for (int i = 0; i < 256 + 64; i++)
                    buf[i] = (unsigned char)i;
                for (size_t off = 0; off <= 256; off++) {
                    for (size_t n = 0; n <= 64; n += off % 7 == 0 ? 1 : 63) {
                        pulse_csv_masks_t got, want;
                        pulse_csv_scan(&sc, (const char *)buf + off, n, &got);
                        reference(buf + off, n, seps[si], q ? '"' : 0, &want);
                        assert_masks(&got, &want);
                    }
                }
                static const char structural[] = ",;\t| \n\r\"a\x80\xff\x1f";
                for (int round = 0; round < 2000; round++) {
                    for (int i = 0; i < 64; i++) {
                        unsigned char r = next_byte();
                        buf[i] = r & 1 ? (unsigned char)structural[(r >> 1) % (sizeof(structural) - 1)] : next_byte();
                    }
                    pulse_csv_masks_t got, want;
                    size_t n = round % 3 ? 64 : (size_t)(round % 65);
                    pulse_csv_scan(&sc, (const char *)buf, n, &got);
                    reference(buf, n, seps[si], q ? '"' : 0, &want);
                    assert_masks(&got, &want);
                }
            }
        }
    }
    pulse_csv_scan_level(-1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels_agree_with_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
