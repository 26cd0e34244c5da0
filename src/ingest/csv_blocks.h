/* Structural bit masks of delimited text, 64 bytes at a time: where the separators, newlines,
 * carriage returns, quotes, control bytes and non-ASCII bytes are, one bit per byte. The CSV
 * parser's fast path and the analytics file reader read fields off these bits instead of looking
 * at every byte. AVX2 where the CPU has it (chosen at run time), SSE2 otherwise on x86-64, portable
 * C elsewhere; all three give the same masks. */
#ifndef PULSE_INGEST_CSV_BLOCKS_H
#define PULSE_INGEST_CSV_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

/* Bit i describes byte i of the block. */
typedef struct pulse_csv_masks_t {
    uint64_t sep;   /* the separator; whitespace layouts (PULSE_CSV_SEP_WHITESPACE): ' ' or '\t' */
    uint64_t nl;    /* '\n' */
    uint64_t cr;    /* '\r' */
    uint64_t quote; /* the quote byte (always 0 without one) */
    uint64_t ctl;   /* bytes up to 0x20: blanks, newlines and other control bytes */
    uint64_t high;  /* bytes from 0x80: parts of multi-byte UTF-8 (or invalid) */
} pulse_csv_masks_t;

typedef void (*pulse_csv_block_fn)(const char *p, char sep, char quote, pulse_csv_masks_t *m);

typedef struct pulse_csv_scanner_t {
    char sep, quote; /* quote 0: none */
    pulse_csv_block_fn block;
} pulse_csv_scanner_t;

/* sep: ',' ';' '\t' '|' or PULSE_CSV_SEP_WHITESPACE; quote: the quote byte or 0. */
void pulse_csv_scanner_init(pulse_csv_scanner_t *s, char sep, char quote);

/* The masks of the n bytes at p (n <= 64; bits from n up are 0). Reads only those n bytes. */
static inline void pulse_csv_scan(const pulse_csv_scanner_t *s, const char *p, size_t n, pulse_csv_masks_t *m)
{
    if (n == 64) {
        s->block(p, s->sep, s->quote, m);
        return;
    }
    char pad[64];
    __builtin_memcpy(pad, p, n);
    __builtin_memset(pad + n, 'a', 64 - n);
    s->block(pad, s->sep, s->quote, m);
    uint64_t keep = n ? ~UINT64_C(0) >> (64 - n) : 0;
    m->sep &= keep;
    m->nl &= keep;
    m->cr &= keep;
    m->quote &= keep;
    m->ctl &= keep;
    m->high &= keep;
}

/* For tests and benchmarks: the implementation scanners initialised from now on use. 0 portable
 * C, 1 SSE2, 2 AVX2, -1 the best the CPU has (the default). Returns the level then in effect (a
 * level the CPU or the build lacks falls back to the next lower one). */
int pulse_csv_scan_level(int level);

#endif
