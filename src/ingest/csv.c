/* CSV sniffing and streaming parsing (see csv.h).
 *
 * The parser is one resumable state machine. An unquoted field read whole from the chunk being parsed
 * is delivered in place (a pointer into the chunk: no copy); quoted fields, and fields of a record
 * that straddles chunks, are copied into one growing buffer (at a chunk's end, the in-place fields of
 * an unfinished record are copied there too). Unquoted runs are found with a 256-entry table,
 * quoted runs with memchr. In front of it, at each record start, a fast path takes the plain
 * records that follow (no quote, no CR but in a CRLF, whole in the chunk, within max_row) off
 * 64-byte bit masks (csv_blocks.h): their fields are the spans between separator bits, delivered in
 * place, exactly as the state machine would; at the first record it cannot take it hands over (and
 * after a record that it could not take at all it waits a few records before trying again).
 * Decisions:
 * - a quote opens a quoted field only at the start of a field; elsewhere it is data. Lenient mode
 *   (the default) keeps it and counts it in stats.stray_quotes, as it does for text after a closing
 *   quote ("ab"c gives abc); strict mode makes both a fatal error;
 * - a record over max_row, and an unterminated quote at the end, are fatal;
 * - invalid UTF-8 is not fatal: the field is flagged bad_utf8 and the record counted, so the caller
 *   decides (reject the row, or fail the upload);
 * - blank lines are skipped but keep their record number; LF, CRLF and lone CR all end a record. */
#include "ingest/csv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "ingest/csv_blocks.h"

void pulse_csv_dialect_init(pulse_csv_dialect_t *d)
{
    memset(d, 0, sizeof(*d));
    d->sep = ',';
    d->quote = '"';
    d->max_row = PULSE_CSV_DEFAULT_MAX_ROW;
}

/* ---------------------------------------------------------------------------------------------- */
/* Parser                                                                                          */

enum { ST_REC_START, ST_FIELD_START, ST_UNQUOTED, ST_QUOTED, ST_QUOTE_SEEN };

#define BOM_DONE 4

struct pulse_csv_parser_t {
    pulse_csv_dialect_t d;
    pulse_csv_row_cb cb;
    void *ud;
    unsigned char special[256]; /* bytes that end an unquoted run */
    pulse_csv_scanner_t scan;   /* the fast path's structural bits */
    unsigned fast_skip;         /* records left to the state machine before the fast path is tried again */
    int ws;
    int state;
    int skip_lf;
    int status; /* 0, 1 (stopped by the callback), -1 (error) */
    unsigned bom;
    char *buf; /* copied field bytes of the current record */
    size_t len, cap, fstart;
    size_t dlen;               /* bytes of the record's in-place fields (with len: the record's size) */
    const unsigned char *zc;   /* the current field's start in the chunk while it is read in place; NULL: copied */
    pulse_csv_field_t *fields; /* ptr NULL while building: copied, at buf + foff[i] */
    size_t *foff;
    size_t nfields, fcap;
    unsigned char cur_quoted;
    uint64_t base; /* absolute offset of the chunk being parsed */
    uint64_t line, rec_line, rec_off, quote_off, quote_rec;
    pulse_csv_stats_t stats;
    char err[256];
};

pulse_csv_parser_t *pulse_csv_parser_new(const pulse_csv_dialect_t *d, pulse_csv_row_cb cb, void *ud)
{
    pulse_csv_parser_t *p = pulse_xmalloc(sizeof(*p));
    memset(p, 0, sizeof(*p));
    p->d = *d;
    if (p->d.max_row == 0)
        p->d.max_row = PULSE_CSV_DEFAULT_MAX_ROW;
    p->cb = cb;
    p->ud = ud;
    p->ws = d->sep == PULSE_CSV_SEP_WHITESPACE;
    p->special['\n'] = p->special['\r'] = 1;
    if (p->ws)
        p->special[' '] = p->special['\t'] = 1;
    else
        p->special[(unsigned char)d->sep] = 1;
    if (d->quote)
        p->special[(unsigned char)d->quote] = 1;
    pulse_csv_scanner_init(&p->scan, d->sep, d->quote);
    p->line = 1;
    p->cap = 256; /* never NULL: empty fields point into it too */
    p->buf = pulse_xmalloc(p->cap);
    return p;
}

void pulse_csv_free(pulse_csv_parser_t *p)
{
    if (p == NULL)
        return;
    free(p->buf);
    free(p->fields);
    free(p->foff);
    free(p);
}

const char *pulse_csv_error(const pulse_csv_parser_t *p)
{
    return p->err;
}

const pulse_csv_stats_t *pulse_csv_stats(const pulse_csv_parser_t *p)
{
    return &p->stats;
}

uint64_t pulse_csv_line(const pulse_csv_parser_t *p)
{
    return p->rec_line;
}

static int csv_fail(pulse_csv_parser_t *p, uint64_t off, const char *what)
{
    snprintf(p->err, sizeof(p->err), "record %llu (line %llu), byte %llu: %s", (unsigned long long)(p->stats.records + 1),
             (unsigned long long)p->rec_line, (unsigned long long)off, what);
    p->status = -1;
    return -1;
}

static int row_too_long(pulse_csv_parser_t *p, uint64_t off)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "record longer than %zu bytes", p->d.max_row);
    return csv_fail(p, p->rec_off, msg); /* where the record starts: the same whatever the chunking */
}

/* The record's size so far plus n more bytes is over max_row (the same test wherever the bytes are). */
static inline int too_long(const pulse_csv_parser_t *p, size_t n)
{
    return p->len + p->dlen + n + p->nfields > p->d.max_row;
}

static void buf_grow(pulse_csv_parser_t *p, size_t need)
{
    if (need <= p->cap)
        return;
    size_t cap = p->cap ? p->cap : 256;
    while (cap < need)
        cap *= 2;
    p->buf = pulse_xrealloc(p->buf, cap);
    p->cap = cap;
}

/* Copies n field bytes; -1 when the record would exceed max_row (nothing copied). */
static inline int csv_append(pulse_csv_parser_t *p, const unsigned char *s, size_t n, uint64_t off)
{
    if (too_long(p, n))
        return row_too_long(p, off);
    buf_grow(p, p->len + n);
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    return 0;
}

/* Ends the current field; one read in place ends at zend. */
static inline int csv_push(pulse_csv_parser_t *p, uint64_t off, const unsigned char *zend)
{
    size_t zn = p->zc ? (size_t)(zend - p->zc) : 0;
    if (too_long(p, zn + 1))
        return row_too_long(p, off);
    if (p->nfields == p->fcap) {
        p->fcap = p->fcap ? p->fcap * 2 : 32;
        p->fields = pulse_xrealloc(p->fields, p->fcap * sizeof(*p->fields));
        p->foff = pulse_xrealloc(p->foff, p->fcap * sizeof(*p->foff));
    }
    size_t i = p->nfields++;
    pulse_csv_field_t *f = &p->fields[i];
    if (p->zc) {
        f->ptr = (const char *)p->zc;
        f->len = zn;
        p->dlen += zn;
        p->zc = NULL;
    } else {
        f->ptr = NULL;
        f->len = p->len - p->fstart;
        p->foff[i] = p->fstart;
        p->fstart = p->len;
    }
    f->quoted = p->cur_quoted;
    f->bad_utf8 = 0;
    p->cur_quoted = 0;
    return 0;
}

/* At a chunk's end, inside a record: its in-place fields (and the current field's bytes so far) are
 * copied into the buffer, since the chunk is gone once the feed returns. They go before the
 * current field's copied bytes, which stay last so that field can keep growing. */
static void csv_detach(pulse_csv_parser_t *p, const unsigned char *end)
{
    size_t moved = 0;
    for (size_t i = 0; i < p->nfields; i++)
        if (p->fields[i].ptr != NULL)
            moved += p->fields[i].len;
    if (moved > 0) {
        buf_grow(p, p->len + moved);
        memmove(p->buf + p->fstart + moved, p->buf + p->fstart, p->len - p->fstart);
        size_t o = p->fstart;
        for (size_t i = 0; i < p->nfields; i++) {
            pulse_csv_field_t *f = &p->fields[i];
            if (f->ptr == NULL)
                continue;
            memcpy(p->buf + o, f->ptr, f->len);
            p->foff[i] = o;
            f->ptr = NULL;
            o += f->len;
        }
        p->fstart += moved;
        p->len += moved;
        p->dlen -= moved;
    }
    if (p->zc != NULL) { /* checked against max_row as it was read */
        size_t n = (size_t)(end - p->zc);
        buf_grow(p, p->len + n);
        memcpy(p->buf + p->len, p->zc, n);
        p->len += n;
        p->zc = NULL;
    }
}

static int has_high_bit(const char *s, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull)
            return 1;
    }
    for (; i < n; i++)
        if ((unsigned char)s[i] & 0x80)
            return 1;
    return 0;
}

/* Whether any field byte has its high bit set. A record read wholly in place is one span of the
 * chunk (fields and the separators between them, which are ASCII): one scan, as for a copied
 * record's buffer. */
static int has_high_bit_fields(const pulse_csv_parser_t *p, int copied)
{
    const pulse_csv_field_t *first = &p->fields[0], *last = &p->fields[p->nfields - 1];
    if (!copied && (unsigned char)p->d.sep < 0x80)
        return has_high_bit(first->ptr, (size_t)(last->ptr + last->len - first->ptr));
    if (!copied || p->len == 0 || p->dlen != 0) {
        for (size_t i = 0; i < p->nfields; i++)
            if (has_high_bit(p->fields[i].ptr, p->fields[i].len))
                return 1;
        return 0;
    }
    return has_high_bit(p->buf, p->len); /* all copied: the buffer holds every field byte */
}

static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            k = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else
            return 0;
        if (i + k >= n)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t j = 2; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
        i += k + 1;
    }
    return 1;
}

/* Counts a record that has ended (blank when it has no field) and hands its fields, all pointing
 * at their bytes, to the callback; -> 0 or 1 (stop). may_be_utf8: 0 when the caller knows every
 * field byte is ASCII; copied: some field lies in the buffer. */
static int csv_deliver(pulse_csv_parser_t *p, int may_be_utf8, int copied)
{
    p->stats.records++;
    p->line++;
    p->state = ST_REC_START;
    if (p->nfields == 0)
        return 0;
    if (may_be_utf8 && has_high_bit_fields(p, copied)) {
        int bad = 0;
        for (size_t i = 0; i < p->nfields; i++)
            if (!utf8_valid((const unsigned char *)p->fields[i].ptr, p->fields[i].len))
                p->fields[i].bad_utf8 = bad = 1;
        if (bad && p->stats.bad_utf8_rows++ == 0)
            p->stats.first_bad_utf8 = p->stats.records;
    }
    p->stats.rows++;
    int r = p->cb(p->ud, (size_t)p->stats.records, p->fields, p->nfields);
    p->len = p->fstart = p->dlen = 0;
    p->nfields = 0;
    if (r != 0) {
        p->status = 1;
        return 1;
    }
    return 0;
}

/* Ends the current record of the state machine: copied fields get their pointers. */
static int csv_end_record(pulse_csv_parser_t *p)
{
    int copied = 0;
    for (size_t i = 0; i < p->nfields; i++) {
        pulse_csv_field_t *f = &p->fields[i];
        if (f->ptr == NULL) {
            f->ptr = p->buf + p->foff[i];
            copied = 1;
        }
    }
    return csv_deliver(p, 1, copied);
}

static void fields_reserve(pulse_csv_parser_t *p, size_t n)
{
    if (n <= p->fcap)
        return;
    while (p->fcap < n)
        p->fcap = p->fcap ? p->fcap * 2 : 32;
    p->fields = pulse_xrealloc(p->fields, p->fcap * sizeof(*p->fields));
    p->foff = pulse_xrealloc(p->foff, p->fcap * sizeof(*p->foff));
}

/* After this many records the state machine had to take, the fast path waits as many again. */
#define FAST_BACKOFF 64

/* The fast path: the records from s (a record start) that need none of the state machine — no
 * quote, no '\r' but in a CRLF, ending with '\n' or CRLF inside the chunk, within max_row — are
 * split on the bits of csv_blocks (separator, or runs of blanks) and delivered in place, as the
 * state machine would deliver them. Returns the start of the first record left to the state
 * machine (or end); *rc is 1 when the callback stopped the parse (the return is then just past
 * its record). ws (p->ws) is a constant in each of the two copies below. */
__attribute__((always_inline)) static inline const unsigned char *fast_records(pulse_csv_parser_t *p, const unsigned char *s,
                                                                               const unsigned char *end, int *rc, const int ws)
{
    const unsigned char *rec = s, *fstart = s;
    size_t nf = 0, bytes = 0;
    int rec_high = 0;
    uint64_t prev_blank = 1; /* whitespace layouts: a record starts as if after a blank */
    uint64_t lf_carry = 0;   /* the block starts with the '\n' of a CRLF */
    for (const unsigned char *b = s; b < end; b += 64) {
        size_t n = (size_t)(end - b) < 64 ? (size_t)(end - b) : 64;
        pulse_csv_masks_t m;
        pulse_csv_scan(&p->scan, (const char *)b, n, &m);
        const uint64_t keep = n == 64 ? ~UINT64_C(0) : (UINT64_C(1) << n) - 1;
        /* a '\r' ends a record when a '\n' follows (that '\n' is then no event); a lone one, or
         * one whose next byte is not in the chunk, goes to the state machine */
        uint64_t crlf = m.cr & (m.nl >> 1);
        if ((m.cr >> 63) && n == 64 && b + 64 < end && b[64] == '\n')
            crlf |= UINT64_C(1) << 63;
        const uint64_t lf_skip = (crlf << 1) | lf_carry, eol = (m.nl & ~lf_skip) | crlf;
        const uint64_t stop = m.quote | (m.cr & ~crlf);
        lf_carry = crlf >> 63;
        rec_high |= m.high != 0;
        uint64_t ev, starts = 0, ends = 0;
        if (ws) {
            uint64_t blank = m.sep | m.nl | m.cr, after = (blank << 1) | prev_blank;
            starts = ~blank & after & keep;
            ends = blank & ~after;
            prev_blank = blank >> 63;
            ev = starts | ends | eol | stop;
        } else
            ev = m.sep | eol | stop;
        while (ev) {
            int i = __builtin_ctzll(ev);
            uint64_t bit = UINT64_C(1) << i;
            const unsigned char *at = b + i;
            ev &= ev - 1;
            if (stop & bit)
                return rec;
            if (starts & bit) {
                fstart = at;
                continue;
            }
            if ((!ws || (ends & bit)) && !(at == rec && (eol & bit))) {
                fields_reserve(p, nf + 1);
                pulse_csv_field_t *f = &p->fields[nf++];
                f->ptr = (const char *)fstart;
                f->len = (size_t)(at - fstart);
                f->quoted = f->bad_utf8 = 0;
                bytes += f->len;
            }
            fstart = at + 1;
            if (!(eol & bit))
                continue;
            if (bytes + nf > p->d.max_row)
                return rec; /* the state machine reports it */
            p->rec_line = p->line;
            p->nfields = nf;
            const unsigned char *next = at + 1 + ((crlf & bit) != 0);
            if (csv_deliver(p, rec_high, 0) != 0) {
                *rc = 1;
                return next;
            }
            rec = fstart = next;
            nf = bytes = 0;
            int past = (int)(next - b); /* 1..65 */
            rec_high = past < 64 && (m.high >> past) != 0;
        }
    }
    return rec;
}

__attribute__((noinline)) static const unsigned char *fast_records_sep(pulse_csv_parser_t *p, const unsigned char *s,
                                                                       const unsigned char *end, int *rc)
{
    return fast_records(p, s, end, rc, 0);
}

__attribute__((noinline)) static const unsigned char *fast_records_ws(pulse_csv_parser_t *p, const unsigned char *s,
                                                                      const unsigned char *end, int *rc)
{
    return fast_records(p, s, end, rc, 1);
}

static void stray_quote(pulse_csv_parser_t *p)
{
    if (p->stats.stray_quotes++ == 0)
        p->stats.first_stray_quote = p->stats.records + 1;
}

static int csv_parse(pulse_csv_parser_t *p, const char *chunk, size_t n)
{
    const unsigned char *start = (const unsigned char *)chunk, *s = start, *end = start + n;
    const unsigned char *special = p->special;
    const unsigned sep = (unsigned char)p->d.sep, quote = (unsigned char)p->d.quote;
    const int ws = p->ws;
    int rc = 0;
#define OFF(ptr) (p->base + (uint64_t)((ptr)-start))
#define IS_SEP(c) (ws ? ((c) == ' ' || (c) == '\t') : (c) == sep)
#define CHECK(expr)                                                                                                                \
    do {                                                                                                                           \
        if ((rc = (expr)) != 0)                                                                                                    \
            goto out;                                                                                                              \
    } while (0)

    while (s < end) {
        unsigned c;
        switch (p->state) {
        case ST_REC_START:
            if (p->skip_lf) {
                p->skip_lf = 0;
                if (*s == '\n') {
                    s++;
                    continue;
                }
            }
            if (p->fast_skip > 0) {
                p->fast_skip--;
            } else {
                const unsigned char *f = ws ? fast_records_ws(p, s, end, &rc) : fast_records_sep(p, s, end, &rc);
                if (f == s)
                    p->fast_skip = FAST_BACKOFF;
                s = f;
                if (rc != 0)
                    goto out;
                if (s == end)
                    continue;
            }
            p->rec_line = p->line;
            p->rec_off = OFF(s);
            p->state = ST_FIELD_START;
            /* fallthrough */
        case ST_FIELD_START:
            c = *s;
            if (ws && (c == ' ' || c == '\t')) {
                s++;
                continue;
            }
            if (c == '\n' || c == '\r') {
                if (!ws && p->nfields > 0)
                    CHECK(csv_push(p, OFF(s), s));
                p->skip_lf = c == '\r';
                s++;
                CHECK(csv_end_record(p));
                continue;
            }
            if (quote && c == quote) {
                p->cur_quoted = 1;
                p->quote_off = OFF(s);
                p->state = ST_QUOTED;
                s++;
                continue;
            }
            if (!ws && c == sep) {
                CHECK(csv_push(p, OFF(s), s));
                s++;
                continue;
            }
            p->state = ST_UNQUOTED;
            p->zc = s; /* read in place */
            /* fallthrough */
        case ST_UNQUOTED: {
            const unsigned char *q = s;
            while (q < end && !special[*q])
                q++;
            if (p->zc != NULL) {
                if (q > s && too_long(p, (size_t)(q - p->zc)))
                    CHECK(row_too_long(p, OFF(s)));
            } else if (q > s) {
                CHECK(csv_append(p, s, (size_t)(q - s), OFF(s)));
            }
            s = q;
            if (s == end)
                continue;
            c = *s;
            if (c == '\n' || c == '\r') {
                CHECK(csv_push(p, OFF(s), s));
                p->skip_lf = c == '\r';
                s++;
                CHECK(csv_end_record(p));
                continue;
            }
            if (IS_SEP(c)) {
                CHECK(csv_push(p, OFF(s), s));
                p->state = ST_FIELD_START;
                s++;
                continue;
            }
            /* a quote inside an unquoted field */
            if (p->d.strict)
                CHECK(csv_fail(p, OFF(s), "quote inside an unquoted field"));
            stray_quote(p);
            if (p->zc == NULL)
                CHECK(csv_append(p, s, 1, OFF(s)));
            else if (too_long(p, (size_t)(s + 1 - p->zc))) /* the quote stays in place, as data */
                CHECK(row_too_long(p, OFF(s)));
            s++;
            continue;
        }
        case ST_QUOTED: {
            const unsigned char *q = memchr(s, (int)quote, (size_t)(end - s));
            const unsigned char *e = q ? q : end;
            for (const unsigned char *t = s; (t = memchr(t, '\n', (size_t)(e - t))) != NULL; t++)
                p->line++;
            if (e > s)
                CHECK(csv_append(p, s, (size_t)(e - s), OFF(s)));
            if (q == NULL) {
                s = end;
                continue;
            }
            s = q + 1;
            p->state = ST_QUOTE_SEEN;
            continue;
        }
        case ST_QUOTE_SEEN:
            c = *s;
            if (c == quote) {
                CHECK(csv_append(p, s, 1, OFF(s)));
                p->state = ST_QUOTED;
                s++;
                continue;
            }
            if (c == '\n' || c == '\r') {
                CHECK(csv_push(p, OFF(s), s));
                p->skip_lf = c == '\r';
                s++;
                CHECK(csv_end_record(p));
                continue;
            }
            if (IS_SEP(c)) {
                CHECK(csv_push(p, OFF(s), s));
                p->state = ST_FIELD_START;
                s++;
                continue;
            }
            if (p->d.strict)
                CHECK(csv_fail(p, OFF(s), "text after a closing quote"));
            stray_quote(p);
            p->state = ST_UNQUOTED;
            continue;
        }
    }
    csv_detach(p, end);
out:
#undef OFF
#undef IS_SEP
#undef CHECK
    p->base += n;
    p->stats.bytes = p->base;
    return rc;
}

static const unsigned char utf8_bom[3] = {0xEF, 0xBB, 0xBF};

int pulse_csv_feed(pulse_csv_parser_t *p, const char *chunk, size_t len)
{
    if (p->status != 0)
        return p->status;
    if (p->bom != BOM_DONE) {
        while (len > 0 && p->bom < 3 && (unsigned char)*chunk == utf8_bom[p->bom]) {
            p->bom++;
            chunk++;
            len--;
        }
        if (p->bom == 3) {
            p->base += 3;
            p->bom = BOM_DONE;
        } else if (len == 0) {
            return 0; /* a BOM prefix so far: wait for more */
        } else {
            unsigned held = p->bom;
            p->bom = BOM_DONE;
            if (held > 0 && csv_parse(p, (const char *)utf8_bom, held) != 0)
                return p->status;
        }
    }
    if (len > 0)
        csv_parse(p, chunk, len);
    return p->status;
}

int pulse_csv_finish(pulse_csv_parser_t *p)
{
    if (p->status != 0)
        return p->status;
    if (p->bom != BOM_DONE) {
        unsigned held = p->bom;
        p->bom = BOM_DONE;
        if (held > 0 && csv_parse(p, (const char *)utf8_bom, held) != 0)
            return p->status;
    }
    switch (p->state) {
    case ST_REC_START:
        return 0;
    case ST_QUOTED: {
        char msg[96];
        snprintf(msg, sizeof(msg), "unterminated quote (opened at byte %llu)", (unsigned long long)p->quote_off);
        return csv_fail(p, p->base, msg);
    }
    case ST_FIELD_START:
        if (p->nfields == 0) /* only blanks since the last record */
            break;
        if (!p->ws && csv_push(p, p->base, NULL) != 0)
            return -1;
        break;
    default:
        if (csv_push(p, p->base, NULL) != 0)
            return -1;
    }
    if (p->nfields == 0) {
        p->state = ST_REC_START;
        return 0;
    }
    p->line--; /* no terminator was read */
    csv_end_record(p);
    return p->status;
}

/* ---------------------------------------------------------------------------------------------- */
/* Sniffing                                                                                        */

#define SNIFF_ROWS 256
#define SNIFF_TYPED 64
#define SNIFF_COLS 64

enum { T_EMPTY, T_INT, T_DEC_DOT, T_DEC_COMMA, T_DATE, T_TEXT };

static int is_numeric(int t)
{
    return t == T_INT || t == T_DEC_DOT || t == T_DEC_COMMA || t == T_DATE;
}

static int classify(const char *s, size_t n)
{
    while (n > 0 && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0)
        return T_EMPTY;
    size_t i = 0, digits = 0, dots = 0, commas = 0, dashes = 0, slashes = 0, colons = 0;
    int last_punct = 0;
    if (s[0] == '-' || s[0] == '+')
        i = 1;
    for (; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9')
            digits++;
        else if (c == '.')
            dots++, last_punct = '.';
        else if (c == ',')
            commas++, last_punct = ',';
        else if (c == '-')
            dashes++;
        else if (c == '/')
            slashes++;
        else if (c == ':' || c == ' ' || c == 'T')
            colons++;
        else
            return T_TEXT;
    }
    if (digits == 0)
        return T_TEXT;
    if (dashes + slashes >= 2 || (dots == 2 && commas == 0 && n <= 10 && s[0] != '-'))
        return T_DATE;
    if (dashes || slashes || colons)
        return T_TEXT;
    if (dots == 0 && commas == 0)
        return T_INT;
    if (commas == 0)
        return dots == 1 ? T_DEC_DOT : T_TEXT;
    if (dots == 0)
        return commas == 1 ? T_DEC_COMMA : T_TEXT;      /* 1,5 or 1,234 (read as a decimal comma) */
    return last_punct == ',' ? T_DEC_COMMA : T_DEC_DOT; /* 1.234,56 vs 1,234.56 */
}

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

typedef struct {
    size_t nrows;
    size_t counts[SNIFF_ROWS];
    unsigned char types[SNIFF_TYPED][SNIFF_COLS];
    size_t typed_cols[SNIFF_TYPED];
    uint64_t head_hash[SNIFF_COLS];
    size_t head_n;
    int head_unique;
    size_t head_repeats;
    size_t fields, numeric, dec_dot, dec_comma, quoted, foreign;
    char sep;
} sniff_acc_t;

/* An unquoted, non-numeric field holding another candidate separator hints at a wrong split. */
static int has_foreign_sep(const pulse_csv_field_t *f, char sep)
{
    for (size_t i = 0; i < f->len; i++) {
        char c = f->ptr[i];
        if (c != sep && (c == ',' || c == ';' || c == '\t' || c == '|'))
            return 1;
    }
    return 0;
}

static int sniff_row(void *ud, size_t row_number, const pulse_csv_field_t *f, size_t n)
{
    sniff_acc_t *a = ud;
    size_t r = a->nrows++;
    a->counts[r] = n;
    if (r < SNIFF_TYPED) {
        size_t m = n < SNIFF_COLS ? n : SNIFF_COLS;
        a->typed_cols[r] = m;
        for (size_t j = 0; j < m; j++) {
            int t = classify(f[j].ptr, f[j].len);
            a->types[r][j] = (unsigned char)t;
            uint64_t h = fnv(f[j].ptr, f[j].len);
            if (r == 0) {
                for (size_t k = 0; k < j; k++)
                    if (a->head_hash[k] == h)
                        a->head_unique = 0;
                a->head_hash[j] = h;
                continue;
            }
            if (j < a->head_n && a->head_hash[j] == h && t != T_EMPTY)
                a->head_repeats++;
            a->fields++;
            a->numeric += is_numeric(t) && t != T_DATE;
            a->dec_dot += t == T_DEC_DOT;
            a->dec_comma += t == T_DEC_COMMA;
            a->foreign += !f[j].quoted && !is_numeric(t) && has_foreign_sep(&f[j], a->sep);
        }
        if (r == 0)
            a->head_n = m;
    }
    for (size_t j = 0; j < n; j++)
        a->quoted += f[j].quoted;
    return a->nrows == SNIFF_ROWS;
}

typedef struct {
    char sep, quote;
    double pref;
    size_t mode, mode_count;
    double consistency, score;
    sniff_acc_t acc;
} sniff_cand_t;

static void sniff_run(sniff_cand_t *c, const char *buf, size_t len)
{
    pulse_csv_dialect_t d;
    pulse_csv_dialect_init(&d);
    d.sep = c->sep;
    d.quote = c->quote;
    memset(&c->acc, 0, sizeof(c->acc));
    c->acc.head_unique = 1;
    c->acc.sep = c->sep;
    pulse_csv_parser_t *p = pulse_csv_parser_new(&d, sniff_row, &c->acc);
    int rc = pulse_csv_feed(p, buf, len);
    if (rc == 0 && c->acc.nrows < 2)
        pulse_csv_finish(p); /* the only record may lack its newline */
    pulse_csv_free(p);
    sniff_acc_t *a = &c->acc;
    c->score = 0;
    if (a->nrows == 0)
        return;
    /* the most common field count (ties: the larger) */
    size_t best = 0, best_n = 0;
    for (size_t i = 0; i < a->nrows; i++) {
        size_t k = a->counts[i], cnt = 0;
        for (size_t j = 0; j < a->nrows; j++)
            cnt += a->counts[j] == k;
        if (cnt > best_n || (cnt == best_n && k > best))
            best = k, best_n = cnt;
    }
    c->mode = best;
    c->mode_count = best_n;
    c->consistency = (double)best_n / (double)a->nrows;
    if (best < 2)
        return;
    double typed = a->fields ? (double)a->numeric / (double)a->fields : 0;
    double foreign = a->fields ? (double)a->foreign / (double)a->fields : 0;
    c->score = c->consistency + 0.05 * typed - 0.1 * foreign + 0.001 * c->pref;
    if (c->score <= 0)
        c->score = 1e-9;
}

static const char *sep_name(char sep)
{
    switch (sep) {
    case ',':
        return "','";
    case ';':
        return "';'";
    case '\t':
        return "tab";
    case '|':
        return "'|'";
    default:
        return "whitespace";
    }
}

static int sniff_header(const sniff_acc_t *a)
{
    if (a->nrows == 0 || a->head_n == 0)
        return 0;
    for (size_t j = 0; j < a->head_n; j++)
        if (is_numeric(a->types[0][j]))
            return 0;
    size_t nonempty = 0;
    for (size_t j = 0; j < a->head_n; j++)
        nonempty += a->types[0][j] != T_EMPTY;
    if (nonempty == 0)
        return 0;
    if (a->nrows == 1)
        return 1; /* a lone all-text record: most likely a header without data */
    size_t typed_rows = a->nrows < SNIFF_TYPED ? a->nrows : SNIFF_TYPED;
    for (size_t j = 0; j < a->head_n; j++) {
        if (a->types[0][j] != T_TEXT)
            continue;
        size_t num = 0, seen = 0;
        for (size_t r = 1; r < typed_rows; r++) {
            if (j >= a->typed_cols[r] || a->types[r][j] == T_EMPTY)
                continue;
            seen++;
            num += is_numeric(a->types[r][j]);
        }
        if (seen > 0 && num * 2 > seen)
            return 1; /* a text name over a numeric column */
    }
    /* all-text data: names are unique and none recurs below in its column */
    return a->head_unique && a->head_repeats == 0 && nonempty == a->head_n;
}

int pulse_csv_sniff(const char *buf, size_t len, pulse_csv_dialect_t *out, char *err, size_t errlen)
{
    pulse_csv_dialect_init(out);
    if (len >= 3 && memcmp(buf, utf8_bom, 3) == 0) {
        out->has_bom = 1;
        buf += 3;
        len -= 3;
    }
    size_t ctrl = 0, blank = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == 0)
            return pulse_fail(err, errlen, "binary data (NUL byte at offset %zu), not a text file", i + out->has_bom * 3);
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f')
            ctrl++;
        blank += c == ' ' || c == '\t' || c == '\n' || c == '\r';
    }
    if (blank == len)
        return pulse_fail(err, errlen, "empty file");
    if (ctrl * 100 > len)
        return pulse_fail(err, errlen, "binary data (%zu control bytes in the first %zu), not a text file", ctrl, len);
    const char *nl = memchr(buf, '\n', len);
    out->crlf = nl != NULL && nl > buf && nl[-1] == '\r';

    static const struct {
        char sep, quote;
        double pref;
    } spec[] = {{',', '"', 9},
                {',', 0, 4},
                {';', '"', 8},
                {';', 0, 3},
                {'\t', '"', 7},
                {'\t', 0, 2},
                {'|', '"', 6},
                {'|', 0, 1},
                {PULSE_CSV_SEP_WHITESPACE, 0, 0.5},
                {PULSE_CSV_SEP_WHITESPACE, '"', 0}};
    enum { NCAND = sizeof(spec) / sizeof(spec[0]) };
    sniff_cand_t *cand = pulse_xmalloc(NCAND * sizeof(*cand));
    size_t best = 0, second = NCAND;
    for (size_t i = 0; i < NCAND; i++) {
        cand[i].sep = spec[i].sep;
        cand[i].quote = spec[i].quote;
        cand[i].pref = spec[i].pref;
        sniff_run(&cand[i], buf, len);
        if (cand[i].score > cand[best].score)
            best = i;
    }
    for (size_t i = 0; i < NCAND; i++) {
        if (i == best || cand[i].sep == cand[best].sep || cand[i].score == 0)
            continue;
        /* tab and whitespace runs agreeing is no ambiguity */
        int tabws = (cand[i].sep == '\t' || cand[i].sep == PULSE_CSV_SEP_WHITESPACE) &&
                    (cand[best].sep == '\t' || cand[best].sep == PULSE_CSV_SEP_WHITESPACE) && cand[i].mode == cand[best].mode;
        if (tabws)
            continue;
        if (second == NCAND || cand[i].score > cand[second].score)
            second = i;
    }

    sniff_cand_t *b = &cand[best];
    out->sep = b->sep;
    out->quote = b->quote;
    out->rows_sampled = b->acc.nrows;
    if (b->score == 0) {
        out->sep = ',';
        out->quote = '"';
        out->nfields = 1;
        out->rows_sampled = cand[0].acc.nrows;
        out->has_header = sniff_header(&cand[0].acc);
        out->ambiguous = 1;
        out->confidence = 0;
        snprintf(out->reason, sizeof(out->reason), "single column: no separator gives two or more fields per record");
        free(cand);
        return 0;
    }
    out->nfields = b->mode;
    out->confidence = b->consistency;
    out->has_header = sniff_header(&b->acc);
    out->decimal_comma = b->sep != ',' && b->acc.dec_comma > b->acc.dec_dot;
    if (second != NCAND && cand[second].score > b->score - 0.02) {
        out->ambiguous = 1;
        out->confidence *= 0.5;
        snprintf(out->reason, sizeof(out->reason), "%s (%zu fields) and %s (%zu fields) fit about equally well", sep_name(b->sep),
                 b->mode, sep_name(cand[second].sep), cand[second].mode);
    } else if (b->acc.nrows < 2) {
        out->ambiguous = 1;
        out->confidence *= 0.5;
        snprintf(out->reason, sizeof(out->reason), "only one record in the sample");
    } else if (b->consistency < 0.5) {
        out->ambiguous = 1;
        snprintf(out->reason, sizeof(out->reason), "field counts vary: only %zu of %zu records have %zu fields", b->mode_count,
                 b->acc.nrows, b->mode);
    }
    free(cand);
    return 0;
}
