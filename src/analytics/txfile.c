/* Transactions file reader (see txfile.h). */
#include "analytics/txfile.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "ingest/csv.h"
#include "ingest/csv_blocks.h"

#define CHUNK ((size_t)4 << 20) /* parsed between page releases: 4 MiB a thread resident */
#define MAX_THREADS 16
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

typedef struct fld_t {
    const char *p;
    size_t n;
} fld_t;

typedef struct part_t {
    const pulse_txfile_plan_t *plan;
    const char *s, *e; /* line-aligned range */
    const char *base;  /* the mapping, for page releases; NULL: a caller's buffer */
    int skip_header;
    int maxcol;
    int keep_prev; /* field bytes outlive the row (not in the CSV callback) */
    pulse_txstore_t st;
    uint64_t lines, rows, bad;
    size_t nbad;
    pulse_txfile_bad_t kept[PULSE_TXFILE_BAD_KEPT];
    int saw_quote;
    const char *prev;
    size_t prev_len;
    uint32_t prev_idx;
} part_t;

void pulse_txfile_plan_init(pulse_txfile_plan_t *plan)
{
    memset(plan, 0, sizeof(*plan));
    plan->sep = ',';
    plan->col_customer = plan->col_date = plan->col_amount = -1;
    plan->col_quantity = plan->col_category = plan->col_product = plan->col_invoice = -1;
    plan->date_format = PULSE_DATE_ISO;
}

/* ---------------------------------------------------------------------------------------------
 * Values */

/* A day number; the shared fast path reads YYYYMMDD and YYYY-MM-DD inline. */
static int parse_day(const char *s, size_t n, pulse_date_format_t fmt, int32_t *day)
{
    int64_t ep;
    if (pulse_date_parse_fast(s, n, fmt, &ep) != 0)
        return -1;
    int64_t dd = ep >= 0 ? ep / 86400 : -((-ep + 86399) / 86400);
    if (dd < INT32_MIN || dd > INT32_MAX)
        return -1;
    *day = (int32_t)dd;
    return 0;
}

static inline fld_t trim(fld_t f)
{
    while (f.n && (f.p[0] == ' ' || f.p[0] == '\t')) {
        f.p++;
        f.n--;
    }
    while (f.n && (f.p[f.n - 1] == ' ' || f.p[f.n - 1] == '\t'))
        f.n--;
    return f;
}

/* ---------------------------------------------------------------------------------------------
 * Rows */

static void bad_row(part_t *pt, uint64_t line, const char *reason, const char *text, size_t len)
{
    pt->bad++;
    if (pt->nbad >= PULSE_TXFILE_BAD_KEPT)
        return;
    pulse_txfile_bad_t *b = &pt->kept[pt->nbad++];
    b->line = line;
    snprintf(b->reason, sizeof(b->reason), "%s", reason);
    size_t n = len < sizeof(b->text) - 1 ? len : sizeof(b->text) - 1;
    memcpy(b->text, text, n);
    b->text[n] = '\0';
}

/* Short refs: a call to memcmp costs more than the compare. */
static inline int same_bytes(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static void take_row(part_t *pt, const fld_t *f, int nf, uint64_t line, const char *text, size_t len)
{
    const pulse_txfile_plan_t *pl = pt->plan;
    if (nf <= pt->maxcol) {
        bad_row(pt, line, "missing fields", text, len);
        return;
    }
    fld_t cust = trim(f[pl->col_customer]), date = trim(f[pl->col_date]), amount = trim(f[pl->col_amount]);
    if (cust.n == 0) {
        bad_row(pt, line, "no customer", text, len);
        return;
    }
    pulse_tx_row_t r;
    r.customer = cust.p;
    r.customer_len = cust.n;
    r.category = r.product = NULL;
    r.category_len = r.product_len = 0;
    r.flags = 0;
    r.quantity = NAN;
    if (parse_day(date.p, date.n, pl->date_format, &r.day) != 0) {
        bad_row(pt, line, "unreadable date", text, len);
        return;
    }
    if (pulse_number_parse_fast(amount.p, amount.n, pl->decimal_comma, &r.amount) != 0) {
        bad_row(pt, line, "unreadable amount", text, len);
        return;
    }
    if (pl->col_quantity >= 0) {
        fld_t q = trim(f[pl->col_quantity]);
        if (pulse_number_parse_fast(q.p, q.n, pl->decimal_comma, &r.quantity) != 0) {
            if (!pulse_is_null_like(q.p, q.n)) {
                bad_row(pt, line, "unreadable quantity", text, len);
                return;
            }
            r.quantity = NAN;
        }
    }
    if (pl->col_category >= 0) {
        fld_t c = trim(f[pl->col_category]);
        if (c.n) {
            r.category = c.p;
            r.category_len = c.n;
        }
    }
    if (pl->col_product >= 0) {
        fld_t c = trim(f[pl->col_product]);
        if (c.n) {
            r.product = c.p;
            r.product_len = c.n;
        }
    }
    if (pl->col_invoice >= 0 && pl->cancel_prefix[0]) {
        fld_t c = trim(f[pl->col_invoice]);
        size_t k = strlen(pl->cancel_prefix);
        if (c.n >= k && memcmp(c.p, pl->cancel_prefix, k) == 0)
            r.flags |= PULSE_TX_RETURN;
    }
    if (r.amount < 0)
        r.flags |= PULSE_TX_RETURN;
    uint32_t idx;
    if (pt->prev && pt->prev_len == cust.n && same_bytes(pt->prev, cust.p, cust.n)) {
        idx = pt->prev_idx; /* grouped files: most rows repeat the previous customer */
    } else {
        idx = pulse_strtab_intern(&pt->st.customers, cust.p, cust.n);
        if (pt->keep_prev) {
            pt->prev = cust.p;
            pt->prev_len = cust.n;
            pt->prev_idx = idx;
        }
    }
    pulse_txstore_add_transaction_at(&pt->st, idx, &r);
    pt->rows++;
}

/* Bit i of *sepm: byte i of the n (<= 64) bytes at p separates fields (whitespace layouts: any
 * byte up to 0x20, the newline included; otherwise the separator or the newline); of *nlm: it is
 * a newline. Past n, whitespace layouts read blanks, the others nothing. Nonzero when the bytes
 * hold a quote (the file then goes to the CSV parser). */
static inline int block_masks(const pulse_csv_scanner_t *sc, const char *p, size_t n, uint64_t *sepm, uint64_t *nlm)
{
    pulse_csv_masks_t m;
    pulse_csv_scan(sc, p, n, &m);
    uint64_t past = n == 64 ? 0 : ~UINT64_C(0) << n;
    *sepm = sc->sep == PULSE_CSV_SEP_WHITESPACE ? m.ctl | past : m.sep | m.nl;
    *nlm = m.nl;
    return m.quote != 0;
}

typedef struct tok_t {
    fld_t f[64];
    int nf;
    const char *line;  /* start of the current line */
    const char *start; /* start of the current field */
} tok_t;

static inline void end_line(part_t *pt, tok_t *t, const char *nl)
{
    pt->lines++;
    int nf = t->nf;
    const char *line = t->line;
    t->nf = 0;
    t->line = nl + 1;
    t->start = nl + 1;
    if (nf == 0 || (nf == 1 && trim(t->f[0]).n == 0))
        return; /* blank line */
    if (pt->skip_header) {
        pt->skip_header = 0;
        return;
    }
    const char *le = nl;
    if (le > line && le[-1] == '\r')
        le--;
    if (nf <= pt->maxcol + 1 && t->f[nf - 1].n && t->f[nf - 1].p + t->f[nf - 1].n > le)
        t->f[nf - 1].n = (size_t)(le - t->f[nf - 1].p); /* the '\r' of CRLF (separator layouts) */
    take_row(pt, t->f, nf, pt->lines, line, (size_t)(le - line));
}

/* A structural tokenizer: each 64-byte block becomes bit masks of separators and newlines, and
 * the fields are read off the bits (field starts = non-separator after separator, ends = the
 * reverse). The byte-by-byte loop, or even a 16-byte compare per field, is a chain of dependent
 * loads per field; here the only chain is bit arithmetic. Tokenizing went from 0.69 s to ~0.2 s of
 * CPU on the 10.4 M-row CDNOW file. */
static void parse_lines(part_t *pt, const char *p, const char *e)
{
    const int maxf = pt->maxcol + 1;
    const char sep = pt->plan->sep;
    const int ws = sep == PULSE_CSV_SEP_WHITESPACE;
    tok_t t;
    t.nf = 0;
    t.line = t.start = p;
    uint64_t prev_sep = 1; /* a line starts as if after a separator */
    pulse_csv_scanner_t sc;
    pulse_csv_scanner_init(&sc, sep, '"');
    for (const char *b = p; b < e; b += 64) {
        uint64_t sm, nm;
        int quote = block_masks(&sc, b, (size_t)(e - b) < 64 ? (size_t)(e - b) : 64, &sm, &nm);
        if (quote) {
            pt->saw_quote = 1; /* the whole file goes to the CSV parser: this part's rows are dropped */
            return;
        }
        if (ws) {
            uint64_t starts = ~sm & ((sm << 1) | prev_sep);
            uint64_t ends = sm & ~((sm << 1) | prev_sep);
            prev_sep = sm >> 63;
            uint64_t ev = starts | ends | nm;
            while (ev) {
                int i = __builtin_ctzll(ev);
                uint64_t bit = 1ULL << i;
                ev &= ev - 1;
                if (starts & bit) {
                    t.start = b + i;
                    continue;
                }
                if (ends & bit) {
                    if (t.nf < maxf) {
                        t.f[t.nf].p = t.start;
                        t.f[t.nf].n = (size_t)(b + i - t.start);
                    }
                    t.nf++;
                }
                if (nm & bit)
                    end_line(pt, &t, b + i);
            }
        } else {
            uint64_t ev = sm;
            while (ev) {
                int i = __builtin_ctzll(ev);
                ev &= ev - 1;
                if (t.nf < maxf) {
                    t.f[t.nf].p = t.start;
                    t.f[t.nf].n = (size_t)(b + i - t.start);
                }
                t.nf++;
                t.start = b + i + 1;
                if (nm & (1ULL << i))
                    end_line(pt, &t, b + i);
            }
        }
    }
    if (t.line < e) {
        /* a last line without a newline */
        if (ws && prev_sep == 0) { /* a field running to e at a block's end */
            if (t.nf < maxf) {
                t.f[t.nf].p = t.start;
                t.f[t.nf].n = (size_t)(e - t.start);
            }
            t.nf++;
        }
        if (!ws) {
            if (t.nf < maxf) {
                t.f[t.nf].p = t.start;
                t.f[t.nf].n = (size_t)(e - t.start);
            }
            t.nf++;
        }
        end_line(pt, &t, e);
    }
}

/* Rows of the range, from the mean line length of its first 64 KiB (a little over, never short
 * enough to matter: the columns grow if it is). */
static uint32_t estimate_rows(const char *s, const char *e)
{
    size_t sample = (size_t)(e - s) < 65536 ? (size_t)(e - s) : 65536;
    size_t lines = 0;
    for (const char *p = s; (p = memchr(p, '\n', (size_t)(s + sample - p))) != NULL; p++)
        lines++;
    if (lines == 0)
        return 1024;
    double est = (double)(e - s) / ((double)sample / (double)lines) * 1.02 + 1024;
    return est > 4e9 ? 4000000000u : (uint32_t)est;
}

static void *run_part(void *arg)
{
    part_t *pt = arg;
    long pg = sysconf(_SC_PAGESIZE);
    const char *p = pt->s;
    if (pt->e > pt->s)
        pulse_txstore_reserve(&pt->st, estimate_rows(pt->s, pt->e), 0);
    while (p < pt->e) {
        const char *ce = p + CHUNK;
        if (ce >= pt->e) {
            ce = pt->e;
        } else {
            const char *nl = memchr(ce, '\n', (size_t)(pt->e - ce));
            ce = nl ? nl + 1 : pt->e;
        }
        if (pt->base) {
            /* map the chunk's pages in one call rather than a fault per few pages (Linux 5.14+;
             * older kernels refuse it and the pages fault in as usual) */
            uintptr_t from = ((uintptr_t)p) & ~(uintptr_t)(pg - 1);
            madvise((void *)from, (uintptr_t)ce - from, MADV_POPULATE_READ);
        }
        parse_lines(pt, p, ce);
        if (pt->saw_quote)
            return NULL;
        if (pt->base) {
            /* parsed pages leave the resident set (the page cache keeps them) */
            uintptr_t from = ((uintptr_t)p) & ~(uintptr_t)(pg - 1), to = ((uintptr_t)ce) & ~(uintptr_t)(pg - 1);
            if (from < (uintptr_t)pt->base)
                from = (uintptr_t)pt->base;
            if (to > from)
                madvise((void *)from, to - from, MADV_DONTNEED);
        }
        p = ce;
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Files with quotes: the general parser */

static int csv_row(void *ud, size_t row_number, const pulse_csv_field_t *fields, size_t nfields)
{
    part_t *pt = ud;
    (void)row_number;
    if (pt->skip_header) {
        pt->skip_header = 0;
        return 0;
    }
    fld_t f[64];
    int nf = nfields < 64 ? (int)nfields : 64;
    char text[100];
    size_t tl = 0;
    for (int i = 0; i < nf; i++) {
        f[i].p = fields[i].ptr;
        f[i].n = fields[i].len;
        for (size_t k = 0; k <= fields[i].len && tl < sizeof(text) - 1; k++)
            text[tl++] = k < fields[i].len ? fields[i].ptr[k] : (i + 1 < nf ? pt->plan->sep : '\0');
    }
    take_row(pt, f, nf, pt->lines, text, tl ? tl - (text[tl - 1] == '\0') : 0);
    return 0;
}

typedef struct csv_ctx_t {
    part_t *pt;
    pulse_csv_parser_t *parser;
} csv_ctx_t;

static int csv_row_lined(void *ud, size_t row_number, const pulse_csv_field_t *fields, size_t nfields)
{
    csv_ctx_t *c = ud;
    c->pt->lines = pulse_csv_line(c->parser);
    return csv_row(c->pt, row_number, fields, nfields);
}

static int read_csv(part_t *pt, const char *buf, size_t len, char *err, size_t errlen)
{
    pulse_csv_dialect_t d;
    pulse_csv_dialect_init(&d);
    d.sep = pt->plan->sep;
    d.quote = '"';
    d.decimal_comma = pt->plan->decimal_comma;
    csv_ctx_t c = {pt, NULL};
    c.parser = pulse_csv_parser_new(&d, csv_row_lined, &c);
    int rc = pulse_csv_feed(c.parser, buf, len);
    if (rc == 0)
        rc = pulse_csv_finish(c.parser);
    if (rc < 0)
        pulse_fail(err, errlen, "%s", pulse_csv_error(c.parser));
    pulse_csv_free(c.parser);
    return rc < 0 ? -1 : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Entry points */

static int check_plan(const pulse_txfile_plan_t *pl, int *maxcol, char *err, size_t errlen)
{
    if (pl->col_customer < 0 || pl->col_date < 0 || pl->col_amount < 0)
        return pulse_fail(err, errlen, "plan: the customer, date and amount columns are required");
    int cols[] = {pl->col_customer, pl->col_date,    pl->col_amount, pl->col_quantity,
                  pl->col_category, pl->col_product, pl->col_invoice};
    int m = 0;
    for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
        if (cols[i] >= 63)
            return pulse_fail(err, errlen, "plan: column %d is past the 63 columns this reader takes", cols[i] + 1);
        if (cols[i] > m)
            m = cols[i];
    }
    if (pl->date_format <= PULSE_DATE_NONE || pl->date_format >= PULSE_DATE_FORMAT_COUNT)
        return pulse_fail(err, errlen, "plan: no date format");
    if (pl->sep == '"' || pl->sep == '\n' || pl->sep == '\r' || pl->sep == '\0')
        return pulse_fail(err, errlen, "plan: bad separator");
    *maxcol = m;
    return 0;
}

static int read_mem(const char *buf, size_t len, const char *base, const pulse_txfile_plan_t *plan, pulse_txstore_t *st,
                    pulse_txfile_stats_t *stats, char *err, size_t errlen)
{
    pulse_txfile_stats_t local;
    if (stats == NULL)
        stats = &local;
    memset(stats, 0, sizeof(*stats));
    int maxcol = 0;
    if (check_plan(plan, &maxcol, err, errlen) != 0)
        return -1;
    stats->bytes = len;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
        buf += 3;
        len -= 3;
    }
    int threads = plan->threads > 0 ? plan->threads : 2;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if (len < ((size_t)1 << 20) && plan->threads <= 0)
        threads = 1; /* not worth a thread */
    part_t *parts = calloc((size_t)threads, sizeof(part_t));
    if (parts == NULL) {
        fprintf(stderr, "pulse: out of memory (reader)\n");
        abort();
    }
    const char *p = buf, *end = buf + len;
    for (int t = 0; t < threads; t++) {
        part_t *pt = &parts[t];
        pt->plan = plan;
        pt->maxcol = maxcol;
        pt->keep_prev = 1;
        pt->base = base;
        pt->skip_header = t == 0 && plan->has_header;
        pulse_txstore_init(&pt->st);
        pt->s = p;
        if (t == threads - 1) {
            p = end;
        } else {
            const char *cut = buf + len / (size_t)threads * (size_t)(t + 1);
            if (cut < p)
                cut = p;
            const char *nl = cut < end ? memchr(cut, '\n', (size_t)(end - cut)) : NULL;
            p = nl ? nl + 1 : end;
        }
        pt->e = p;
    }
    pthread_t tid[MAX_THREADS];
    int started = 0;
    double t0 = pulse_now_s();
    for (int t = 1; t < threads; t++)
        if (pthread_create(&tid[t], NULL, run_part, &parts[t]) == 0)
            started = t;
        else
            break;
    run_part(&parts[0]);
    for (int t = 1; t <= started; t++)
        pthread_join(tid[t], NULL);
    for (int t = started + 1; t < threads; t++)
        run_part(&parts[t]);
    int quoted = 0;
    for (int t = 0; t < threads; t++)
        quoted |= parts[t].saw_quote;
    int rc = 0;
    if (quoted) {
        for (int t = 0; t < threads; t++)
            pulse_txstore_free(&parts[t].st);
        memset(parts, 0, sizeof(part_t));
        parts[0].plan = plan;
        parts[0].maxcol = maxcol;
        parts[0].skip_header = plan->has_header;
        pulse_txstore_init(&parts[0].st);
        threads = 1;
        stats->csv_fallback = 1;
        rc = read_csv(&parts[0], buf, len, err, errlen);
    }
    stats->threads = threads;
    double t1 = pulse_now_s();
    uint64_t line0 = 0;
    for (int t = 0; t < threads; t++) {
        part_t *pt = &parts[t];
        if (rc == 0)
            pulse_txstore_merge(st, &pt->st);
        else
            pulse_txstore_free(&pt->st);
        stats->rows += pt->rows;
        stats->bad_rows += pt->bad;
        for (size_t k = 0; k < pt->nbad && stats->nbad < PULSE_TXFILE_BAD_KEPT; k++) {
            stats->bad[stats->nbad] = pt->kept[k];
            stats->bad[stats->nbad++].line += line0;
        }
        line0 += pt->lines;
    }
    free(parts);
    stats->parse_seconds = t1 - t0;
    stats->merge_seconds = pulse_now_s() - t1;
    return rc;
}

int pulse_txfile_read_buffer(const char *buf, size_t len, const pulse_txfile_plan_t *plan, pulse_txstore_t *st,
                             pulse_txfile_stats_t *stats, char *err, size_t errlen)
{
    return read_mem(buf, len, NULL, plan, st, stats, err, errlen);
}

int pulse_txfile_read(const char *path, const pulse_txfile_plan_t *plan, pulse_txstore_t *st, pulse_txfile_stats_t *stats,
                      char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pulse_fail(err, errlen, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return pulse_fail(err, errlen, "cannot stat %s: %s", path, strerror(errno));
    }
    if (sb.st_size == 0) {
        close(fd);
        return read_mem("", 0, NULL, plan, st, stats, err, errlen);
    }
    size_t len = (size_t)sb.st_size;
    void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return pulse_fail(err, errlen, "cannot map %s: %s", path, strerror(errno));
    madvise(m, len, MADV_SEQUENTIAL);
    int rc = read_mem(m, len, m, plan, st, stats, err, errlen);
    munmap(m, len);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Plan guess */

typedef struct head_t {
    char cells[2][16][64];
    int n[2];
    int rows;
} head_t;

static int head_row(void *ud, size_t row, const pulse_csv_field_t *f, size_t n)
{
    head_t *h = ud;
    (void)row;
    int r = h->rows;
    h->n[r] = n < 16 ? (int)n : 16;
    for (int i = 0; i < h->n[r]; i++) {
        fld_t t = trim((fld_t){f[i].ptr, f[i].len});
        snprintf(h->cells[r][i], 64, "%.*s", (int)(t.n < 63 ? t.n : 63), t.p);
    }
    return ++h->rows == 2;
}

static int name_is(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (strcasecmp(name, *list) == 0)
            return 1;
    return 0;
}

int pulse_txfile_plan_guess(const char *buf, size_t len, pulse_txfile_plan_t *plan, char *err, size_t errlen)
{
    pulse_txfile_plan_init(plan);
    pulse_csv_dialect_t d;
    size_t n = len < 65536 ? len : 65536;
    if (pulse_csv_sniff(buf, n, &d, err, errlen) != 0)
        return -1;
    head_t h;
    memset(&h, 0, sizeof(h));
    pulse_csv_parser_t *p = pulse_csv_parser_new(&d, head_row, &h);
    if (pulse_csv_feed(p, buf, n) == 0)
        pulse_csv_finish(p);
    pulse_csv_free(p);
    if (h.rows < 2)
        return pulse_fail(err, errlen, "cannot guess the layout: fewer than two records");
    plan->sep = d.sep;
    plan->decimal_comma = d.decimal_comma;
    static const char *const cust[] = {"customerid", "customer_id", "customer", "customer_ref", "client_id", NULL};
    static const char *const date[] = {"transactiondate", "date", "invoicedate", "occurred_at", "order_date", NULL};
    static const char *const amount[] = {"transactionamount", "amount", "dollar_value", "revenue", "total", NULL};
    static const char *const qty[] = {"quantity", "number_of_cds", "qty", NULL};
    static const char *const cat[] = {"productcategory", "category", "product_category", NULL};
    static const char *const prod[] = {"product", "stockcode", "product_id", "sku", NULL};
    static const char *const inv[] = {"invoiceno", "invoice", "invoice_no", NULL};
    for (int i = 0; i < h.n[0]; i++) {
        const char *c = h.cells[0][i];
        int *slot = name_is(c, cust)     ? &plan->col_customer
                    : name_is(c, date)   ? &plan->col_date
                    : name_is(c, amount) ? &plan->col_amount
                    : name_is(c, qty)    ? &plan->col_quantity
                    : name_is(c, cat)    ? &plan->col_category
                    : name_is(c, prod)   ? &plan->col_product
                    : name_is(c, inv)    ? &plan->col_invoice
                                         : NULL;
        if (slot && *slot < 0) {
            *slot = i;
        }
    }
    int data_row = 1;
    if (plan->col_customer >= 0 && plan->col_date >= 0 && plan->col_amount >= 0) {
        plan->has_header = 1;
        if (plan->col_invoice >= 0)
            snprintf(plan->cancel_prefix, sizeof(plan->cancel_prefix), "C");
    } else if (h.n[0] == 4 && d.sep == PULSE_CSV_SEP_WHITESPACE) {
        pulse_txfile_plan_init(plan); /* CDNOW: customer_id date quantity amount, no header */
        plan->sep = PULSE_CSV_SEP_WHITESPACE;
        plan->col_customer = 0;
        plan->col_date = 1;
        plan->col_quantity = 2;
        plan->col_amount = 3;
        data_row = 0;
    } else {
        return pulse_fail(err, errlen, "cannot guess the layout: no customer/date/amount header and not CDNOW's 4 columns");
    }
    const char *v = h.cells[data_row][plan->col_date];
    plan->date_format = PULSE_DATE_NONE;
    /* compact YYYYMMDD first: CDNOW's dates are also valid integers */
    static const pulse_date_format_t order[] = {PULSE_DATE_YMD_COMPACT, PULSE_DATE_ISO};
    for (size_t k = 0; k < 2 && plan->date_format == PULSE_DATE_NONE; k++)
        if (pulse_date_parse(v, strlen(v), order[k], NULL, NULL) == 0)
            plan->date_format = order[k];
    for (int k = PULSE_DATE_NONE + 1; k < PULSE_DATE_FORMAT_COUNT && plan->date_format == PULSE_DATE_NONE; k++)
        if (pulse_date_parse(v, strlen(v), (pulse_date_format_t)k, NULL, NULL) == 0)
            plan->date_format = (pulse_date_format_t)k;
    if (plan->date_format == PULSE_DATE_NONE)
        return pulse_fail(err, errlen, "cannot guess the date format of '%s'", v);
    return 0;
}

int pulse_txfile_plan_guess_file(const char *path, pulse_txfile_plan_t *plan, char *err, size_t errlen)
{
    char head[65536];
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(head, 1, sizeof(head), f) : 0;
    if (f)
        fclose(f);
    if (n == 0)
        return pulse_fail(err, errlen, "cannot read %s", path);
    return pulse_txfile_plan_guess(head, n, plan, err, errlen);
}
