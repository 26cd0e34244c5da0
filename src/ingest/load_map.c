/* The import loader's per-row engine (see load.h): plan checks, cleaning, the natural key and the
 * COPY text of the staging table, the counted issues and the report. No database here. */
#include "ingest/load.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* ---------------------------------------------------------------------------------------------
 * Canonical fields. */

enum {
    F_CUSTOMER_ID,
    F_DATE,
    F_AMOUNT,
    F_QUANTITY,
    F_UNIT_PRICE,
    F_INVOICE_NO,
    F_PRODUCT,
    F_PRODUCT_CATEGORY,
    F_DESCRIPTION,
    F_COUNTRY,
    F_EVENT_TYPE,
    F_REVENUE_IMPACT,
    F_BALANCE,
    F_CHANNEL,
    F_EMAIL,
    F_NAME,
    F_CHURNED,
    F_COUNT
};

typedef enum { T_ID, T_DATE, T_MONEY, T_FLOAT, T_TEXT, T_BOOL } ftype_t;

typedef struct fspec_t {
    pulse_import_kind_t kind;
    const char *name;   /* canonical name in the plan */
    int id;             /* F_* */
    ftype_t type;       /* how it is read */
    const char *column; /* target (and staging) column */
    int required;
    size_t maxlen; /* bytes; 0 = no limit */
} fspec_t;

static const fspec_t FIELDS[] = {
    {PULSE_IMPORT_TRANSACTIONS, "customer_id", F_CUSTOMER_ID, T_ID, "customer_ref", 1, 200},
    {PULSE_IMPORT_TRANSACTIONS, "transaction_date", F_DATE, T_DATE, "occurred_at", 1, 0},
    {PULSE_IMPORT_TRANSACTIONS, "amount", F_AMOUNT, T_MONEY, "amount", 1, 0},
    {PULSE_IMPORT_TRANSACTIONS, "quantity", F_QUANTITY, T_FLOAT, "quantity", 0, 0},
    {PULSE_IMPORT_TRANSACTIONS, "unit_price", F_UNIT_PRICE, T_MONEY, "unit_price", 0, 0},
    {PULSE_IMPORT_TRANSACTIONS, "invoice_no", F_INVOICE_NO, T_TEXT, "invoice_no", 0, 0},
    {PULSE_IMPORT_TRANSACTIONS, "product", F_PRODUCT, T_TEXT, "product", 0, 0},
    {PULSE_IMPORT_TRANSACTIONS, "product_category", F_PRODUCT_CATEGORY, T_TEXT, "product_category", 0, 0},
    {PULSE_IMPORT_TRANSACTIONS, "description", F_DESCRIPTION, T_TEXT, "description", 0, 0},
    {PULSE_IMPORT_TRANSACTIONS, "country", F_COUNTRY, T_TEXT, "country", 0, 0},
    {PULSE_IMPORT_EVENTS, "customer_id", F_CUSTOMER_ID, T_ID, "customer_ref", 1, 200},
    {PULSE_IMPORT_EVENTS, "event_date", F_DATE, T_DATE, "occurred_at", 1, 0},
    {PULSE_IMPORT_EVENTS, "event_type", F_EVENT_TYPE, T_TEXT, "event_type", 1, 0},
    {PULSE_IMPORT_EVENTS, "revenue_impact", F_REVENUE_IMPACT, T_MONEY, "revenue_impact", 0, 0},
    {PULSE_IMPORT_EVENTS, "quantity", F_QUANTITY, T_FLOAT, "quantity", 0, 0},
    {PULSE_IMPORT_EVENTS, "balance", F_BALANCE, T_MONEY, "balance", 0, 0},
    {PULSE_IMPORT_EVENTS, "channel", F_CHANNEL, T_TEXT, "channel", 0, 0},
    {PULSE_IMPORT_CUSTOMERS, "customer_id", F_CUSTOMER_ID, T_ID, "external_id", 1, 200},
    {PULSE_IMPORT_CUSTOMERS, "email", F_EMAIL, T_TEXT, "email", 0, 254},
    {PULSE_IMPORT_CUSTOMERS, "name", F_NAME, T_TEXT, "name", 0, 200},
    {PULSE_IMPORT_CUSTOMERS, "churned", F_CHURNED, T_BOOL, "churned", 0, 0},
};
#define NFSPECS (sizeof(FIELDS) / sizeof(FIELDS[0]))

static const fspec_t *find_spec(pulse_import_kind_t kind, const char *name)
{
    for (size_t i = 0; i < NFSPECS; i++)
        if (FIELDS[i].kind == kind && strcmp(FIELDS[i].name, name) == 0)
            return &FIELDS[i];
    return NULL;
}

const char *pulse_import_kind_name(pulse_import_kind_t kind)
{
    switch (kind) {
    case PULSE_IMPORT_TRANSACTIONS:
        return "transactions";
    case PULSE_IMPORT_EVENTS:
        return "events";
    case PULSE_IMPORT_CUSTOMERS:
        return "customers";
    }
    return "?";
}

void pulse_import_plan_init(pulse_import_plan_t *plan)
{
    memset(plan, 0, sizeof(*plan));
    plan->kind = PULSE_IMPORT_TRANSACTIONS;
    pulse_csv_dialect_init(&plan->dialect);
    plan->has_header = 1;
    plan->max_error_rate = 0.01;
}

int pulse_import_plan_check(const pulse_import_plan_t *plan, char *err, size_t errlen)
{
    if (plan->kind != PULSE_IMPORT_TRANSACTIONS && plan->kind != PULSE_IMPORT_EVENTS && plan->kind != PULSE_IMPORT_CUSTOMERS)
        return pulse_fail(err, errlen, "unknown import kind");
    if (plan->n_fields < 0 || plan->n_fields > PULSE_IMPORT_MAX_FIELDS || plan->n_attrs < 0 ||
        plan->n_attrs > PULSE_IMPORT_MAX_ATTRS)
        return pulse_fail(err, errlen, "too many fields or attributes");
    const char *kind = pulse_import_kind_name(plan->kind);
    char unknown[256] = "";
    size_t nunknown = 0;
    int seen[F_COUNT] = {0};
    for (int i = 0; i < plan->n_fields; i++) {
        const pulse_import_field_t *f = &plan->fields[i];
        const fspec_t *s = find_spec(plan->kind, f->name);
        if (s == NULL) {
            size_t used = strlen(unknown);
            snprintf(unknown + used, sizeof(unknown) - used, "%s%s", nunknown ? ", " : "", f->name);
            nunknown++;
            continue;
        }
        if (seen[s->id])
            return pulse_fail(err, errlen, "field %s is mapped twice", f->name);
        seen[s->id] = 1;
        if (f->column < 0 || f->column > PULSE_IMPORT_MAX_COLUMN)
            return pulse_fail(err, errlen, "field %s: column %d is out of range (0-%d)", f->name, f->column,
                              PULSE_IMPORT_MAX_COLUMN);
        if (s->type == T_DATE && (f->date_format <= PULSE_DATE_NONE || f->date_format >= PULSE_DATE_FORMAT_COUNT))
            return pulse_fail(err, errlen, "field %s needs a date_format", f->name);
    }
    if (nunknown > 0)
        return pulse_fail(err, errlen, "unknown field%s for %s: %s", nunknown > 1 ? "s" : "", kind, unknown);
    if (plan->derive_amount_from_qty_price) {
        if (plan->kind != PULSE_IMPORT_TRANSACTIONS)
            return pulse_fail(err, errlen, "a derived amount is only for transactions");
        if (seen[F_AMOUNT])
            return pulse_fail(err, errlen, "amount is both mapped and derived");
        if (!seen[F_QUANTITY] || !seen[F_UNIT_PRICE])
            return pulse_fail(err, errlen, "a derived amount needs quantity and unit_price mapped");
    }
    for (size_t i = 0; i < NFSPECS; i++) {
        const fspec_t *s = &FIELDS[i];
        if (s->kind == plan->kind && s->required && !seen[s->id] && !(s->id == F_AMOUNT && plan->derive_amount_from_qty_price))
            return pulse_fail(err, errlen, "required field %s is not mapped", s->name);
    }
    if (plan->cancellation_field[0] != '\0') {
        const fspec_t *s = find_spec(plan->kind, plan->cancellation_field);
        if (s == NULL || s->type != T_TEXT || !seen[s->id])
            return pulse_fail(err, errlen, "cancellation field %s is not a mapped text field", plan->cancellation_field);
        if (plan->cancellation_prefix[0] == '\0')
            return pulse_fail(err, errlen, "cancellation needs a prefix");
    }
    if (plan->n_attrs > 0 && plan->kind != PULSE_IMPORT_CUSTOMERS)
        return pulse_fail(err, errlen, "attributes are only for customers");
    for (int i = 0; i < plan->n_attrs; i++) {
        const pulse_import_attr_t *a = &plan->attrs[i];
        if (a->name[0] == '\0')
            return pulse_fail(err, errlen, "attribute %d has no name", i + 1);
        if (a->column < 0 || a->column > PULSE_IMPORT_MAX_COLUMN)
            return pulse_fail(err, errlen, "attribute %s: column %d is out of range", a->name, a->column);
        if (a->type < PULSE_ATTR_TEXT || a->type > PULSE_ATTR_DATE)
            return pulse_fail(err, errlen, "attribute %s: unknown type", a->name);
        for (int j = 0; j < i; j++)
            if (strcmp(plan->attrs[j].name, a->name) == 0)
                return pulse_fail(err, errlen, "attribute %s is named twice", a->name);
        for (int j = 0; j < plan->n_fields; j++)
            if (plan->fields[j].column == a->column)
                return pulse_fail(err, errlen, "attribute %s: column %d is already mapped to %s", a->name, a->column,
                                  plan->fields[j].name);
    }
    if (!(plan->max_error_rate >= 0 && plan->max_error_rate <= 1))
        return pulse_fail(err, errlen, "max_error_rate must be between 0 and 1");
    if (!plan->xlsx) {
        char sep = plan->dialect.sep;
        if (sep != ',' && sep != ';' && sep != '\t' && sep != '|' && sep != PULSE_CSV_SEP_WHITESPACE)
            return pulse_fail(err, errlen, "unsupported separator");
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Issues. */

#define MAX_ISSUES 64
#define FIRST_LINES 10

typedef struct issue_t {
    const char *code, *action, *message;
    char field[128];
    uint64_t count;
    uint64_t lines[FIRST_LINES];
    size_t nlines;
} issue_t;

typedef struct slot_t {
    int col; /* -1: not mapped */
    const fspec_t *spec;
    pulse_date_format_t date_format;
} slot_t;

/* A slot in staging order, for the per-row loops (no id -> slot -> spec chain per value). */
typedef struct step_t {
    int id, col;
    ftype_t type;
    pulse_date_format_t date_format;
    size_t maxlen;
    const fspec_t *spec;
} step_t;

/* One row's values, by field id. */
typedef struct value_t {
    int present; /* 0: NULL */
    const char *p;
    size_t n;
    double d;
    int64_t i;   /* MONEY/FLOAT: scaled by 10^4; DATE: epoch seconds; BOOL: 0/1 */
    int special; /* text: needs COPY escaping */
} value_t;

#define RESERVOIR 100000
#define BLOOM_LAG 8 /* rows mapped between a key's prefetch and its probe: the miss is hidden */

struct pulse_import_mapper_t {
    pulse_import_plan_t plan;
    slot_t slots[F_COUNT];
    int order[F_COUNT]; /* staged field ids in column order */
    int norder;
    step_t steps[F_COUNT]; /* the same, with what the row loops need */
    int max_col;           /* highest column read */
    int outlier_field;     /* F_AMOUNT / F_REVENUE_IMPACT, or -1 */
    int cancel_field;      /* F_*, or -1 */
    size_t cancel_prefix_len;
    int64_t future_limit;
    char columns[512];
    char ddl[1024];
    issue_t issues[MAX_ISSUES];
    size_t nissues;
    uint64_t rows_read, rows_accepted, rows_rejected, returns;
    int64_t min_epoch, max_epoch;
    uint64_t key[2];
    pulse_buf_t scratch; /* key bytes, attribute JSON */
    double *sample;      /* reservoir of outlier-field values */
    size_t nsample;
    uint64_t nseen, rng;
    char outlier_rule[256];
    char copy_columns[600];
    uint64_t *bloom; /* keys seen, for the maybe_dup flag (records kinds) */
    /* pulse_import_map_defer: accepted rows whose flag waits for its Bloom word (oldest first) */
    int defer;
    struct bloom_wait_t {
        size_t off;  /* of the flag's placeholder in wait_buf */
        size_t word; /* of the filter */
        uint64_t bits;
    } wait[BLOOM_LAG];
    unsigned nwait, wait_head;
    pulse_buf_t *wait_buf;
};

#define BLOOM_BITS_LOG2 27 /* 16 MiB: about 1% false positives at 11 M keys, 3 probes */

static issue_t *issue_get(pulse_import_mapper_t *m, const char *code, const char *field, const char *action, const char *message)
{
    if (field == NULL)
        field = "";
    for (size_t i = 0; i < m->nissues; i++)
        if (strcmp(m->issues[i].code, code) == 0 && strcmp(m->issues[i].field, field) == 0)
            return &m->issues[i];
    if (m->nissues == MAX_ISSUES)
        return &m->issues[MAX_ISSUES - 1]; /* cannot happen with the codes below; never lose a count */
    issue_t *is = &m->issues[m->nissues++];
    memset(is, 0, sizeof(*is));
    is->code = code;
    is->action = action;
    is->message = message;
    snprintf(is->field, sizeof(is->field), "%s", field);
    return is;
}

static void issue_add(pulse_import_mapper_t *m, const char *code, const char *field, const char *action, const char *message,
                      uint64_t line)
{
    issue_t *is = issue_get(m, code, field, action, message);
    is->count++;
    if (is->nlines < FIRST_LINES)
        is->lines[is->nlines++] = line;
}

static int reject(pulse_import_mapper_t *m, const char *code, const char *field, const char *message, uint64_t line)
{
    issue_add(m, code, field, "rejected", message, line);
    m->rows_rejected++;
    return 0;
}

void pulse_import_note(pulse_import_mapper_t *m, const char *code, uint64_t count, const uint64_t *first_lines, size_t nlines)
{
    const char *action = "kept", *message = "";
    if (strcmp(code, "duplicates") == 0) {
        action = "dropped";
        message = m->plan.kind == PULSE_IMPORT_CUSTOMERS
                      ? "earlier rows of a customer named again later in the file (the last row wins)"
                      : "records repeated inside the file (the first is kept)";
    } else if (strcmp(code, "existing") == 0) {
        action = "merged";
        message = m->plan.kind == PULSE_IMPORT_CUSTOMERS ? "customers already stored, updated"
                                                         : "records already stored by an earlier upload";
    } else if (strcmp(code, "outliers") == 0) {
        action = "flagged";
        message = "amounts far from the rest (kept)";
    }
    if (count == 0)
        return;
    issue_t *is = issue_get(m, code, NULL, action, message);
    is->count += count;
    for (size_t i = 0; first_lines != NULL && i < nlines && is->nlines < FIRST_LINES; i++)
        is->lines[is->nlines++] = first_lines[i];
}

/* ---------------------------------------------------------------------------------------------
 * Mapper. */

static const char *stage_type(const fspec_t *s)
{
    switch (s->type) {
    case T_DATE:
        return "bigint"; /* epoch seconds: cheaper to COPY than timestamptz text */
    case T_MONEY:
        return "numeric";
    case T_FLOAT:
        return "float8";
    case T_BOOL:
        return "boolean";
    default:
        return "text";
    }
}

/* The filter on 2 MiB pages where the kernel gives them (transparent huge pages on request): each
 * row's probe lands on a random word of 16 MiB, and with 4 KiB pages nearly every probe was a TLB
 * miss on top of the cache miss, a page walk the prefetch could not hide. */
static uint64_t *bloom_new(void)
{
    const size_t bytes = (size_t)1 << (BLOOM_BITS_LOG2 - 3), huge = (size_t)2 << 20;
    void *p = NULL;
    if (posix_memalign(&p, huge, bytes) != 0) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE); /* advice: refused or ignored, the pages are 4 KiB */
#endif
    memset(p, 0, bytes);
    return p;
}

pulse_import_mapper_t *pulse_import_mapper_new(const pulse_import_plan_t *plan, char *err, size_t errlen)
{
    if (pulse_import_plan_check(plan, err, errlen) != 0)
        return NULL;
    pulse_import_mapper_t *m = pulse_xmalloc(sizeof(*m));
    memset(m, 0, sizeof(*m));
    m->plan = *plan;
    m->max_col = -1;
    m->cancel_field = -1;
    m->outlier_field = -1;
    for (int i = 0; i < F_COUNT; i++)
        m->slots[i].col = -1;
    for (int i = 0; i < plan->n_fields; i++) {
        const fspec_t *s = find_spec(plan->kind, plan->fields[i].name);
        m->slots[s->id].col = plan->fields[i].column;
        m->slots[s->id].spec = s;
        m->slots[s->id].date_format = plan->fields[i].date_format;
        if (plan->fields[i].column > m->max_col)
            m->max_col = plan->fields[i].column;
    }
    for (int i = 0; i < plan->n_attrs; i++)
        if (plan->attrs[i].column > m->max_col)
            m->max_col = plan->attrs[i].column;
    if (plan->derive_amount_from_qty_price)
        m->slots[F_AMOUNT].spec = find_spec(plan->kind, "amount");
    if (plan->cancellation_field[0] != '\0') {
        m->cancel_field = find_spec(plan->kind, plan->cancellation_field)->id;
        m->cancel_prefix_len = strlen(plan->cancellation_prefix);
    }
    if (plan->kind == PULSE_IMPORT_TRANSACTIONS)
        m->outlier_field = F_AMOUNT;
    else if (plan->kind == PULSE_IMPORT_EVENTS && m->slots[F_REVENUE_IMPACT].spec != NULL)
        m->outlier_field = F_REVENUE_IMPACT;
    int64_t now = plan->now_epoch != 0 ? plan->now_epoch : (int64_t)time(NULL);
    m->future_limit = now + 86400;
    m->min_epoch = INT64_MAX;
    m->max_epoch = INT64_MIN;
    m->rng = UINT64_C(0x9E3779B97F4A7C15);

    /* staging columns: line, row_key (not for customers), the fields in canonical order */
    pulse_buf_t cols = PULSE_BUF_INIT, ddl = PULSE_BUF_INIT;
    pulse_buf_puts(&ddl, "CREATE TEMP TABLE pulse_import_stage (line bigint NOT NULL");
    if (plan->kind != PULSE_IMPORT_CUSTOMERS) {
        pulse_buf_puts(&cols, "row_key");
        pulse_buf_puts(&ddl, ", row_key uuid NOT NULL");
    }
    for (size_t i = 0; i < NFSPECS; i++) {
        const fspec_t *s = &FIELDS[i];
        /* customers: every column, so the upsert's SET list is fixed */
        if (s->kind != plan->kind || (m->slots[s->id].spec == NULL && plan->kind != PULSE_IMPORT_CUSTOMERS))
            continue;
        m->slots[s->id].spec = s;
        m->order[m->norder++] = s->id;
        pulse_buf_printf(&cols, "%s%s", cols.len ? ", " : "", s->column);
        pulse_buf_printf(&ddl, ", %s %s", s->column, stage_type(s));
    }
    if (plan->kind == PULSE_IMPORT_TRANSACTIONS) {
        pulse_buf_puts(&cols, ", is_return");
        pulse_buf_puts(&ddl, ", is_return boolean NOT NULL");
    }
    if (plan->kind != PULSE_IMPORT_CUSTOMERS) {
        /* a key this file may have had before (Bloom filter): only those rows need ON CONFLICT */
        pulse_buf_puts(&ddl, ", maybe_dup boolean NOT NULL");
        m->bloom = bloom_new();
    } else if (plan->kind == PULSE_IMPORT_CUSTOMERS) {
        pulse_buf_puts(&cols, ", attributes");
        pulse_buf_puts(&ddl, ", attributes jsonb NOT NULL");
    }
    pulse_buf_puts(&ddl, ") ON COMMIT DROP");
    for (int k = 0; k < m->norder; k++) {
        const slot_t *sl = &m->slots[m->order[k]];
        m->steps[k] = (step_t){m->order[k], sl->col, sl->spec->type, sl->date_format, sl->spec->maxlen, sl->spec};
    }
    snprintf(m->columns, sizeof(m->columns), "%s", cols.data);
    snprintf(m->copy_columns, sizeof(m->copy_columns), "line, %s%s", cols.data, m->bloom ? ", maybe_dup" : "");
    snprintf(m->ddl, sizeof(m->ddl), "%s", ddl.data);
    pulse_buf_free(&cols);
    pulse_buf_free(&ddl);
    if (m->outlier_field >= 0)
        m->sample = pulse_xmalloc(RESERVOIR * sizeof(double));
    return m;
}

void pulse_import_mapper_free(pulse_import_mapper_t *m)
{
    if (m == NULL)
        return;
    pulse_buf_free(&m->scratch);
    free(m->sample);
    free(m->bloom);
    free(m);
}

const char *pulse_import_stage_columns(const pulse_import_mapper_t *m)
{
    return m->columns;
}

const char *pulse_import_stage_copy_columns(const pulse_import_mapper_t *m)
{
    return m->copy_columns;
}

const char *pulse_import_stage_ddl(const pulse_import_mapper_t *m)
{
    return m->ddl;
}

void pulse_import_counts(const pulse_import_mapper_t *m, pulse_import_counts_t *c)
{
    c->rows_read = m->rows_read;
    c->rows_accepted = m->rows_accepted;
    c->rows_rejected = m->rows_rejected;
    c->returns = m->returns;
}

void pulse_import_last_key(const pulse_import_mapper_t *m, uint64_t key[2])
{
    key[0] = m->key[0];
    key[1] = m->key[1];
}

/* ---------------------------------------------------------------------------------------------
 * Small fast pieces: trimming, text scanning, number formatting, the hash. */

static inline void trim(const char **p, size_t *n)
{
    const char *s = *p;
    size_t k = *n;
    if (k > 0 && (unsigned char)s[0] > ' ' && (unsigned char)s[k - 1] > ' ')
        return; /* most values: nothing to trim, every byte trimmed is a blank or below */
    while (k > 0 && (*s == ' ' || *s == '\t'))
        s++, k--;
    while (k > 0 && (s[k - 1] == ' ' || s[k - 1] == '\t' || s[k - 1] == '\r' || s[k - 1] == '\n'))
        k--;
    *p = s;
    *n = k;
}

/* pulse_is_null_like, called only when the first byte can start a null-like value (empty, blank,
 * NA, N/A, #N/A, null, "-"): most values are looked at once. */
static inline int maybe_null(const char *p, size_t n)
{
    if (n == 0)
        return 1;
    char c = p[0];
    if (c != 'n' && c != 'N' && c != '#' && c != '-')
        return 0;
    return pulse_is_null_like(p, n);
}

/* Bytes COPY text needs escaped, and NUL (refused). */
static const unsigned char SPECIAL[256] = {
    [0] = 2, ['\\'] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1, [11] = 1, [12] = 1, [8] = 1,
};

/* High bit of each byte of x that is below 0x20 or a backslash (and maybe of a byte after one:
 * borrows; never a miss). */
static inline uint64_t ctl_or_backslash(uint64_t x)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
    uint64_t y = x ^ (ones * '\\');
    return ((x - ones * 0x20) & ~x & highs) | ((y - ones) & ~y & highs);
}

/* 0 plain, 1 needs escaping, 2 holds a NUL. Eight bytes at a time (short values: two overlapping
 * words, padded with letters): a byte below 0x20 or a backslash sends the value to the exact
 * (rare) path. */
__attribute__((always_inline)) static inline int text_scan(const char *p, size_t n)
{
    uint64_t any = 0, x;
    if (n >= 8) {
        for (size_t i = 0; i + 8 <= n; i += 8) {
            memcpy(&x, p + i, 8);
            any |= ctl_or_backslash(x);
        }
        memcpy(&x, p + n - 8, 8);
        any |= ctl_or_backslash(x);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        any = ctl_or_backslash(a | ((uint64_t)b << 32));
    } else {
        for (size_t i = 0; i < n; i++)
            any |= ctl_or_backslash((unsigned char)p[i] | UINT64_C(0x6161616161616100));
    }
    if (any == 0)
        return 0;
    const unsigned char *u = (const unsigned char *)p;
    int r = 0;
    for (size_t i = 0; i < n; i++)
        r |= SPECIAL[u[i]];
    return r & 2 ? 2 : r;
}

/* memcpy for the short values of a row, inline: two overlapping moves instead of a call. The
 * caller's buffer has room for n bytes; only n are read and written. */
static inline void copy_bytes(void *dst, const void *src, size_t n)
{
    char *o = dst;
    const char *p = src;
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, p, 8);
        memcpy(&b, p + n - 8, 8);
        memcpy(o, &a, 8);
        memcpy(o + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        memcpy(o, &a, 4);
        memcpy(o + n - 4, &b, 4);
    } else if (n > 0 && n < 4) {
        o[0] = p[0];
        o[n / 2] = p[n / 2];
        o[n - 1] = p[n - 1];
    } else if (n > 16)
        memcpy(o, p, n);
}

static inline char *put_text(char *o, const char *p, size_t n, int special)
{
    if (!special) {
        copy_bytes(o, p, n);
        return o + n;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (SPECIAL[c]) {
            *o++ = '\\';
            switch (c) {
            case '\t':
                *o++ = 't';
                break;
            case '\n':
                *o++ = 'n';
                break;
            case '\r':
                *o++ = 'r';
                break;
            case 8:
                *o++ = 'b';
                break;
            case 11:
                *o++ = 'v';
                break;
            case 12:
                *o++ = 'f';
                break;
            default:
                *o++ = (char)c;
            }
        } else
            *o++ = (char)c;
    }
    return o;
}

static const char DIGITS2[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                              "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                              "8081828384858687888990919293949596979899";

static inline unsigned decimal_digits(uint64_t v)
{
    unsigned n = 1;
    for (;;) {
        if (v < 10)
            return n;
        if (v < 100)
            return n + 1;
        if (v < 1000)
            return n + 2;
        if (v < 10000)
            return n + 3;
        v /= 10000;
        n += 4;
    }
}

/* Written from the last digit back, four at a time (two table pairs from one division by 10^4),
 * straight into o; 32-bit arithmetic once the rest fits. */
static inline char *put_u64(char *o, uint64_t v)
{
    if (v < 100) { /* quantities, most amounts' units */
        if (v < 10) {
            *o = (char)('0' + v);
            return o + 1;
        }
        memcpy(o, DIGITS2 + 2 * v, 2);
        return o + 2;
    }
    char *e = o + decimal_digits(v), *q = e;
    while (v > UINT32_MAX) {
        unsigned r = (unsigned)(v % 10000);
        v /= 10000;
        q -= 4;
        memcpy(q, DIGITS2 + 2 * (r / 100), 2);
        memcpy(q + 2, DIGITS2 + 2 * (r % 100), 2);
    }
    uint32_t w = (uint32_t)v;
    while (w >= 10000) {
        unsigned r = w % 10000;
        w /= 10000;
        q -= 4;
        memcpy(q, DIGITS2 + 2 * (r / 100), 2);
        memcpy(q + 2, DIGITS2 + 2 * (r % 100), 2);
    }
    if (w >= 100) {
        memcpy(q - 2, DIGITS2 + 2 * (w % 100), 2);
        q -= 2;
        w /= 100;
    }
    if (w >= 10)
        memcpy(q - 2, DIGITS2 + 2 * w, 2);
    else
        q[-1] = (char)('0' + w);
    return e;
}

static inline char *put_i64(char *o, int64_t v)
{
    if (v < 0) {
        *o++ = '-';
        return put_u64(o, (uint64_t)0 - (uint64_t)v);
    }
    return put_u64(o, (uint64_t)v);
}

/* v / 10^4 in decimal, trailing zeros of the fraction dropped. */
__attribute__((always_inline)) static inline char *put_scaled4(char *o, int64_t v)
{
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    if (v < 0)
        *o++ = '-';
    o = put_u64(o, u / 10000);
    unsigned f = (unsigned)(u % 10000);
    if (f != 0) {
        *o++ = '.';
        memcpy(o, DIGITS2 + 2 * (f / 100), 2);
        memcpy(o + 2, DIGITS2 + 2 * (f % 100), 2);
        o += f % 10 ? 4 : f % 100 ? 3 : f % 1000 ? 2 : 1; /* the buffer has room for all four */
    }
    return o;
}

static inline char *put_double(char *o, double d, int64_t scaled)
{
    if (fabs(d) < 1e14 && fabs((double)scaled - d * 10000.0) < 1e-6)
        return put_scaled4(o, scaled);
    return o + snprintf(o, 32, "%.17g", d);
}

/* The 8 hex digits of x, most significant first: each nibble spread to a byte (SWAR), the byte
 * order swapped so the first digit lands first in memory, then '0'-'9' or 'a'-'f' by adding 0x30 and
 * 39 more where the nibble is over 9. A row's key is written on every row: 16 table lookups and a
 * loop per key were 5 % of the import's in-memory pass. */
static inline void hex8(uint32_t x, char *o)
{
    uint64_t v = x;
    v = (v | v << 16) & UINT64_C(0x0000FFFF0000FFFF);
    v = (v | v << 8) & UINT64_C(0x00FF00FF00FF00FF);
    v = (v | v << 4) & UINT64_C(0x0F0F0F0F0F0F0F0F);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    uint64_t letters = ((v + UINT64_C(0x0606060606060606)) >> 4) & UINT64_C(0x0101010101010101);
    v += UINT64_C(0x3030303030303030) + letters * ('a' - '0' - 10);
    memcpy(o, &v, 8);
}

/* The 32 hex digits of the key, most significant first, as four words of eight characters (in
 * memory order). SSE2: the 16 bytes (big-endian) split into high and low nibbles, interleaved and
 * turned into digits in one go, and taken out of the register as words (storing the vector and
 * reading parts of it back stalled store forwarding: a tenth of the row's time). */
static inline void hex32(const uint64_t key[2], uint64_t w[4])
{
#if defined(__SSE2__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const __m128i x = _mm_set_epi64x((long long)__builtin_bswap64(key[1]), (long long)__builtin_bswap64(key[0]));
    const __m128i low4 = _mm_set1_epi8(0x0F), nine = _mm_set1_epi8(9), zero = _mm_set1_epi8('0');
    const __m128i letters = _mm_set1_epi8('a' - '0' - 10);
    __m128i lo = _mm_and_si128(x, low4), hi = _mm_and_si128(_mm_srli_epi16(x, 4), low4);
    __m128i a = _mm_unpacklo_epi8(hi, lo), b = _mm_unpackhi_epi8(hi, lo);
    a = _mm_add_epi8(_mm_add_epi8(a, zero), _mm_and_si128(_mm_cmpgt_epi8(a, nine), letters));
    b = _mm_add_epi8(_mm_add_epi8(b, zero), _mm_and_si128(_mm_cmpgt_epi8(b, nine), letters));
    w[0] = (uint64_t)_mm_cvtsi128_si64(a);
    w[1] = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(a, a));
    w[2] = (uint64_t)_mm_cvtsi128_si64(b);
    w[3] = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(b, b));
#else
    char h[32];
    hex8((uint32_t)(key[0] >> 32), h);
    hex8((uint32_t)key[0], h + 8);
    hex8((uint32_t)(key[1] >> 32), h + 16);
    hex8((uint32_t)key[1], h + 24);
    memcpy(w, h, 32);
#endif
}

/* 36 characters (8-4-4-4-12), no NUL: the words with the dashes shifted in, little-endian. */
static inline void key_uuid(const uint64_t key[2], char *out)
{
    uint64_t w[4];
    hex32(key, w);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t dash = '-';
    uint64_t y1 = dash | (w[1] & 0xFFFFFFFFu) << 8 | dash << 40 | ((w[1] >> 32) & 0xFFFFu) << 48;
    uint32_t y2 = (uint32_t)(w[1] >> 48) | (uint32_t)dash << 16 | (uint32_t)(w[2] & 0xFF) << 24;
    uint32_t y3 = (uint32_t)((w[2] >> 8) & 0xFFFFFFu) | (uint32_t)dash << 24, y4 = (uint32_t)(w[2] >> 32);
    memcpy(out, &w[0], 8);
    memcpy(out + 8, &y1, 8);
    memcpy(out + 16, &y2, 4);
    memcpy(out + 20, &y3, 4);
    memcpy(out + 24, &y4, 4);
    memcpy(out + 28, &w[3], 8);
#else
    const char *h = (const char *)w;
    memcpy(out, h, 8);
    out[8] = '-';
    memcpy(out + 9, h + 8, 4);
    out[13] = '-';
    memcpy(out + 14, h + 12, 4);
    out[18] = '-';
    memcpy(out + 19, h + 16, 4);
    out[23] = '-';
    memcpy(out + 24, h + 20, 12);
#endif
}

void pulse_import_key_uuid(const uint64_t key[2], char out[37])
{
    key_uuid(key, out);
    out[36] = '\0';
}

/* A wyhash-style 64-bit hash (multiply-fold mixing); two seeds give the two halves of the key. */
static inline uint64_t mum(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t rd64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Both halves in one pass, each lane pairing the words differently. */
static void hash128(const unsigned char *p, size_t n, uint64_t out[2])
{
    static const uint64_t P0 = UINT64_C(0xa0761d6478bd642f), P1 = UINT64_C(0xe7037ed1a0b428db), P2 = UINT64_C(0x8ebc6af09c88c6e3),
                          P3 = UINT64_C(0x589965cc75374cc3);
    uint64_t h1 = UINT64_C(0x243f6a8885a308d3) ^ mum((uint64_t)n ^ P0, P1);
    uint64_t h2 = UINT64_C(0x13198a2e03707344) ^ mum((uint64_t)n ^ P2, P3);
    while (n >= 16) {
        uint64_t a = rd64(p), b = rd64(p + 8);
        h1 = mum(a ^ P1, b ^ h1 ^ P2);
        h2 = mum(b ^ P3, a ^ h2 ^ P0);
        p += 16;
        n -= 16;
    }
    unsigned char tail[16] = {0};
    copy_bytes(tail, p, n);
    uint64_t a = rd64(tail) ^ (uint64_t)n, b = rd64(tail + 8);
    h1 = mum(a ^ P1, b ^ h1 ^ P2);
    h2 = mum(b ^ P3, a ^ h2 ^ P0);
    out[0] = mum(h1 ^ P3, h1 ^ P0);
    out[1] = mum(h2 ^ P1, h2 ^ P2);
}

/* Appends field id, length and bytes to the key at k (room checked by the caller). */
static inline unsigned char *key_put(unsigned char *k, int field, const void *p, size_t n)
{
    k[0] = (unsigned char)field;
    k[1] = (unsigned char)(n >> 24);
    k[2] = (unsigned char)(n >> 16);
    k[3] = (unsigned char)(n >> 8);
    k[4] = (unsigned char)n;
    copy_bytes(k + 5, p, n);
    return k + 5 + n;
}

/* ---------------------------------------------------------------------------------------------
 * The Bloom filter's probes. */

/* Sets *flag to 't' when the key's bits were all there already, and adds them. */
static inline void bloom_probe(pulse_import_mapper_t *m, size_t word, uint64_t bits, char *flag)
{
    uint64_t w = m->bloom[word];
    *flag = (w & bits) == bits ? 't' : 'f';
    m->bloom[word] = w | bits;
}

/* The oldest waiting row's flag. */
static inline void bloom_settle_one(pulse_import_mapper_t *m)
{
    const struct bloom_wait_t *w = &m->wait[m->wait_head];
    bloom_probe(m, w->word, w->bits, m->wait_buf->data + w->off);
    m->wait_head = (m->wait_head + 1) % BLOOM_LAG;
    m->nwait--;
}

/* A row whose flag is at off in copy waits; the oldest is probed when BLOOM_LAG are waiting. */
static inline void bloom_wait(pulse_import_mapper_t *m, pulse_buf_t *copy, size_t off, size_t word, uint64_t bits)
{
    if (m->wait_buf != copy)
        pulse_import_map_settle(m);
    if (m->nwait == BLOOM_LAG)
        bloom_settle_one(m);
    m->wait_buf = copy;
    m->wait[(m->wait_head + m->nwait++) % BLOOM_LAG] = (struct bloom_wait_t){off, word, bits};
}

void pulse_import_map_defer(pulse_import_mapper_t *m)
{
    m->defer = m->bloom != NULL;
}

void pulse_import_map_settle(pulse_import_mapper_t *m)
{
    while (m->nwait > 0)
        bloom_settle_one(m);
}

/* ---------------------------------------------------------------------------------------------
 * One row. */

/* epoch seconds -> civil date (Howard Hinnant's algorithm). */
static void civil(int64_t t, int *y, int *mo, int *d, int *hh, int *mi, int *ss)
{
    int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    int64_t sod = t - days * 86400;
    *hh = (int)(sod / 3600);
    *mi = (int)(sod / 60 % 60);
    *ss = (int)(sod % 60);
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *mo = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*mo <= 2));
}

static char *put_iso_date(char *o, int64_t t)
{
    int y, mo, d, hh, mi, ss;
    civil(t, &y, &mo, &d, &hh, &mi, &ss);
    return o + sprintf(o, "%04d-%02d-%02d", y, mo, d);
}

static void reservoir_add(pulse_import_mapper_t *m, double x)
{
    m->nseen++;
    if (m->nsample < RESERVOIR) {
        m->sample[m->nsample++] = x;
        return;
    }
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    uint64_t j = (uint64_t)(((__uint128_t)m->rng * m->nseen) >> 64); /* uniform in [0, nseen) without a division */
    if (j < RESERVOIR)
        m->sample[j] = x;
}

static int scale4(double d, int64_t *out)
{
    if (!(fabs(d) < 9.2e14))
        return -1;
    double x = d * 10000.0;
    *out = (int64_t)(x < 0 ? x - 0.5 : x + 0.5);
    return 0;
}

/* Appends v as a JSON value of attribute type a to the scratch buffer. 0, or -1 if unreadable. */
static int attr_json(pulse_import_mapper_t *m, const pulse_import_attr_t *a, const char *p, size_t n)
{
    pulse_buf_t *b = &m->scratch;
    switch (a->type) {
    case PULSE_ATTR_INTEGER: {
        int64_t v;
        if (pulse_int_parse(p, n, m->plan.dialect.decimal_comma, &v) != 0)
            return -1;
        char tmp[24];
        pulse_buf_append(b, tmp, (size_t)(put_i64(tmp, v) - tmp));
        return 0;
    }
    case PULSE_ATTR_DECIMAL: {
        double d;
        if (pulse_number_parse(p, n, m->plan.dialect.decimal_comma, &d) != 0 || !isfinite(d))
            return -1;
        char tmp[40];
        for (int prec = 15; prec <= 17; prec++) { /* the shortest text that reads back exactly */
            snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
            if (strtod(tmp, NULL) == d)
                break;
        }
        pulse_buf_puts(b, tmp);
        return 0;
    }
    case PULSE_ATTR_BOOLEAN: {
        int v;
        if (pulse_bool_parse(p, n, &v) != 0)
            return -1;
        pulse_buf_puts(b, v ? "true" : "false");
        return 0;
    }
    case PULSE_ATTR_DATE: {
        int64_t t;
        int has_time = 0;
        int ok = -1;
        if (a->date_format != PULSE_DATE_NONE)
            ok = pulse_date_parse(p, n, a->date_format, &t, &has_time);
        else if ((ok = pulse_date_parse(p, n, PULSE_DATE_ISO, &t, &has_time)) != 0)
            ok = pulse_date_parse(p, n, PULSE_DATE_ISO_DATETIME, &t, &has_time);
        if (ok != 0)
            return -1;
        char iso[40];
        if (pulse_date_format_iso(t, has_time, iso, sizeof(iso)) < 0)
            return -1;
        pulse_buf_printf(b, "\"%s\"", iso);
        return 0;
    }
    case PULSE_ATTR_TEXT:
        pulse_buf_putc(b, '"');
        pulse_buf_json_escape(b, p, n);
        pulse_buf_putc(b, '"');
        return 0;
    }
    return -1;
}

static int map_customer(pulse_import_mapper_t *m, uint64_t line, const pulse_import_cell_t *cells, size_t ncells, value_t *v,
                        pulse_buf_t *copy)
{
    /* attributes JSON into scratch; problems omit the value (counted) rather than lose the row */
    pulse_buf_t *b = &m->scratch;
    pulse_buf_reset(b);
    pulse_buf_putc(b, '{');
    int first = 1;
    for (int i = 0; i < m->plan.n_attrs; i++) {
        const pulse_import_attr_t *a = &m->plan.attrs[i];
        if ((size_t)a->column >= ncells)
            continue;
        const char *p = cells[a->column].p;
        size_t n = cells[a->column].n;
        trim(&p, &n);
        if (pulse_is_null_like(p, n))
            continue;
        if (cells[a->column].bad_utf8 || text_scan(p, n) == 2) {
            issue_add(m, "bad_attribute", a->name, "omitted", "attribute values that are not valid UTF-8 text (left out)", line);
            continue;
        }
        size_t mark = b->len;
        if (!first)
            pulse_buf_putc(b, ',');
        pulse_buf_putc(b, '"');
        pulse_buf_json_escape(b, a->name, strlen(a->name));
        pulse_buf_puts(b, "\":");
        if (attr_json(m, a, p, n) != 0) {
            b->len = mark;
            b->data[mark] = '\0';
            issue_add(m, "bad_attribute", a->name, "omitted", "attribute values that do not read as the declared type (left out)",
                      line);
            continue;
        }
        first = 0;
    }
    pulse_buf_putc(b, '}');

    size_t need = 64 + b->len * 2;
    for (int k = 0; k < m->norder; k++)
        need += v[m->order[k]].n * 2 + 8;
    pulse_buf_reserve(copy, need);
    char *o = copy->data + copy->len;
    o = put_u64(o, line);
    for (int k = 0; k < m->norder; k++) {
        int id = m->order[k];
        *o++ = '\t';
        const value_t *x = &v[id];
        if (!x->present) {
            *o++ = '\\';
            *o++ = 'N';
        } else if (id == F_CHURNED)
            *o++ = x->i ? 't' : 'f';
        else
            o = put_text(o, x->p, x->n, x->special);
    }
    *o++ = '\t';
    o = put_text(o, b->data, b->len, text_scan(b->data, b->len));
    *o++ = '\n';
    *o = '\0'; /* pulse_buf_t keeps its data NUL-terminated */
    copy->len = (size_t)(o - copy->data);
    m->rows_accepted++;
    return 1;
}

int pulse_import_map_row(pulse_import_mapper_t *m, uint64_t line, const pulse_import_cell_t *cells, size_t ncells,
                         pulse_buf_t *copy)
{
    m->rows_read++;
    if (m->max_col >= 0 && ncells <= (size_t)m->max_col)
        return reject(m, "ragged_row", NULL, "rows with fewer fields than the mapping needs", line);
    value_t v[F_COUNT];
    int is_return = 0;
    int dc = m->plan.dialect.decimal_comma;
    size_t need = 128, klen = 1; /* COPY text room, key bytes: of the present values */
    for (int k = 0; k < m->norder; k++) {
        const step_t *s = &m->steps[k];
        int id = s->id;
        value_t *x = &v[id];
        x->present = 0;
        x->n = 0;
        x->p = NULL;
        x->special = 0;
        if (s->col < 0)
            continue; /* customers' unmapped columns, derived amount */
        const pulse_import_cell_t *c = &cells[s->col];
        const char *p = c->p;
        size_t n = c->n;
        trim(&p, &n);
        switch (s->type) {
        case T_ID:
            if (maybe_null(p, n))
                return reject(m, "missing_customer_id", NULL, "rows without a customer id", line);
            if (c->bad_utf8 || (x->special = text_scan(p, n)) == 2)
                return reject(m, "bad_encoding", s->spec->name, "values that are not valid UTF-8 text (or hold NUL bytes)", line);
            if (n > s->maxlen)
                return reject(m, "too_long", s->spec->name, "values longer than the column allows", line);
            break;
        case T_DATE: {
            if (pulse_date_parse_fast(p, n, s->date_format, &x->i) != 0) {
                if (maybe_null(p, n))
                    return reject(m, "missing_value", s->spec->name, "rows without a value in a required field", line);
                return reject(m, "bad_date", s->spec->name, "dates not in the plan's format", line);
            }
            if (x->i > m->future_limit)
                return reject(m, "future_date", s->spec->name, "dates in the future", line);
            break;
        }
        case T_MONEY:
        case T_FLOAT:
            if (pulse_number_parse_fast(p, n, dc, &x->d) != 0) {
                if (!maybe_null(p, n))
                    return reject(m, "bad_number", s->spec->name, "values that are not numbers", line);
                if (s->spec->required)
                    return reject(m, "missing_value", s->spec->name, "rows without a value in a required field", line);
                continue;
            }
            if (scale4(x->d, &x->i) != 0 ||
                (s->type == T_MONEY && (x->i >= INT64_C(10000000000000000) || x->i <= -INT64_C(10000000000000000))))
                return reject(m, "bad_number", s->spec->name, "numbers too large to store", line);
            if ((id == F_QUANTITY || id == F_AMOUNT) && x->d < 0)
                is_return = 1;
            break;
        case T_TEXT:
            if (n == 0) {
                if (s->spec->required)
                    return reject(m, "missing_value", s->spec->name, "rows without a value in a required field", line);
                continue;
            }
            if (c->bad_utf8 || (x->special = text_scan(p, n)) == 2)
                return reject(m, "bad_encoding", s->spec->name, "values that are not valid UTF-8 text (or hold NUL bytes)", line);
            if (s->maxlen && n > s->maxlen)
                return reject(m, "too_long", s->spec->name, "values longer than the column allows", line);
            break;
        case T_BOOL: {
            if (n == 0 || pulse_is_null_like(p, n))
                continue;
            int b;
            if (pulse_bool_parse(p, n, &b) != 0)
                return reject(m, "bad_label", s->spec->name, "labels that are not yes/no, true/false or 1/0", line);
            x->i = b;
            break;
        }
        }
        x->present = 1;
        x->p = p;
        x->n = n;
        klen += 5 + (s->type == T_DATE || s->type == T_MONEY || s->type == T_FLOAT ? 8 : n);
        need += 2 * n + 40;
    }
    if (m->plan.kind == PULSE_IMPORT_CUSTOMERS)
        return map_customer(m, line, cells, ncells, v, copy);

    value_t *amt = &v[F_AMOUNT];
    if (m->plan.derive_amount_from_qty_price) {
        if (!v[F_QUANTITY].present || !v[F_UNIT_PRICE].present)
            return reject(m, "missing_value", "amount", "rows without a value in a required field", line);
        amt->d = v[F_QUANTITY].d * v[F_UNIT_PRICE].d;
        if (scale4(amt->d, &amt->i) != 0 || amt->i >= INT64_C(10000000000000000) || amt->i <= -INT64_C(10000000000000000))
            return reject(m, "bad_number", "amount", "numbers too large to store", line);
        amt->present = 1;
        klen += 5 + 8;
        need += 40;
    }
    if (m->cancel_field >= 0) {
        const value_t *c = &v[m->cancel_field];
        if (c->present && c->n >= m->cancel_prefix_len && memcmp(c->p, m->plan.cancellation_prefix, m->cancel_prefix_len) == 0)
            is_return = 1;
    }
    if (m->plan.kind == PULSE_IMPORT_TRANSACTIONS && is_return) {
        if (amt->i > 0) {
            amt->i = -amt->i;
            amt->d = -amt->d;
        }
        m->returns++;
        issue_add(m, "returns", NULL, "kept", "returns and cancellations (stored with a negative amount)", line);
    }

    /* the natural key: kind, then every staged field (canonical order) as id + length + bytes */
    unsigned char stackkey[512], *kb = stackkey;
    if (klen > sizeof(stackkey)) {
        pulse_buf_reset(&m->scratch);
        pulse_buf_reserve(&m->scratch, klen);
        kb = (unsigned char *)m->scratch.data;
    }
    unsigned char *ko = kb;
    *ko++ = (unsigned char)m->plan.kind;
    for (int k = 0; k < m->norder; k++) {
        int id = m->order[k];
        const value_t *x = &v[id];
        if (!x->present)
            continue;
        switch (m->steps[k].type) {
        case T_DATE:
        case T_MONEY:
        case T_FLOAT:
            ko = key_put(ko, id, &x->i, 8);
            break;
        default:
            ko = key_put(ko, id, x->p, x->n);
        }
    }
    hash128(kb, (size_t)(ko - kb), m->key);
    /* Blocked Bloom filter: the key's three bits lie in one 64-bit word, so one cache miss per row,
     * prefetched now and looked at after the row's text is written (deferred: BLOOM_LAG rows later). */
    size_t bw = (size_t)(m->key[0] >> (64 - (BLOOM_BITS_LOG2 - 6)));
    uint64_t bmask =
        ((uint64_t)1 << (m->key[1] & 63)) | ((uint64_t)1 << ((m->key[1] >> 6) & 63)) | ((uint64_t)1 << ((m->key[1] >> 12) & 63));
    __builtin_prefetch(&m->bloom[bw], 1);

    int64_t t = v[F_DATE].i;
    if (t < m->min_epoch)
        m->min_epoch = t;
    if (t > m->max_epoch)
        m->max_epoch = t;
    if (m->outlier_field >= 0 && v[m->outlier_field].present)
        reservoir_add(m, v[m->outlier_field].d);
    if (copy == NULL) {
        pulse_import_map_settle(m); /* the filter sees the keys in file order */
        m->bloom[bw] |= bmask;
        m->rows_accepted++;
        return 1;
    }
    pulse_buf_reserve(copy, need);
    char *o = copy->data + copy->len;
    o = put_u64(o, line);
    *o++ = '\t';
    key_uuid(m->key, o);
    o += 36;
    for (int k = 0; k < m->norder; k++) {
        int id = m->order[k];
        const value_t *x = &v[id];
        *o++ = '\t';
        if (!x->present) {
            *o++ = '\\';
            *o++ = 'N';
            continue;
        }
        switch (m->steps[k].type) {
        case T_DATE:
            o = put_i64(o, x->i);
            break;
        case T_MONEY:
            o = put_scaled4(o, x->i);
            break;
        case T_FLOAT:
            o = put_double(o, x->d, x->i);
            break;
        default:
            o = put_text(o, x->p, x->n, x->special);
        }
    }
    if (m->plan.kind == PULSE_IMPORT_TRANSACTIONS) {
        *o++ = '\t';
        *o++ = is_return ? 't' : 'f';
    }
    *o++ = '\t';
    if (m->defer) {
        bloom_wait(m, copy, (size_t)(o - copy->data), bw, bmask);
        *o++ = 'f'; /* until settled */
    } else {
        bloom_probe(m, bw, bmask, o++);
    }
    *o++ = '\n';
    *o = '\0'; /* pulse_buf_t keeps its data NUL-terminated */
    copy->len = (size_t)(o - copy->data);
    m->rows_accepted++;
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * Outliers and the report. */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_sorted(const double *v, size_t n)
{
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int pulse_import_outlier_bounds(pulse_import_mapper_t *m, double *lo, double *hi)
{
    if (m->sample == NULL || m->nsample < 20)
        return -1;
    size_t n = m->nsample;
    double *v = pulse_xmalloc(n * sizeof(double));
    memcpy(v, m->sample, n * sizeof(double));
    qsort(v, n, sizeof(double), cmp_double);
    double med = median_sorted(v, n);
    for (size_t i = 0; i < n; i++)
        v[i] = fabs(v[i] - med);
    qsort(v, n, sizeof(double), cmp_double);
    double mad = median_sorted(v, n);
    free(v);
    snprintf(m->outlier_rule, sizeof(m->outlier_rule),
             "|%s - median| > 10 x MAD (median %.4g, MAD %.4g, from a sample of %zu values)",
             m->outlier_field == F_AMOUNT ? "amount" : "revenue_impact", med, mad, n);
    if (!(mad > 0))
        return -1;
    *lo = med - 10 * mad;
    *hi = med + 10 * mad;
    return 0;
}

void pulse_import_report(pulse_import_mapper_t *m, const pulse_import_result_t *r, int aborted, double elapsed_s, pulse_buf_t *out)
{
    uint64_t read = m->rows_read;
    double rate = read ? (double)m->rows_rejected / (double)read : 0;
    pulse_buf_printf(out,
                     "{\"kind\":\"%s\",\"rows_read\":%llu,\"rows_accepted\":%llu,\"rows_rejected\":%llu,\"rows_duplicate\":%llu,"
                     "\"rows_existing\":%llu,\"rows_inserted\":%llu,\"customers_created\":%llu,\"error_rate\":%.6g,"
                     "\"max_error_rate\":%.6g,\"aborted\":%s,\"issues\":[",
                     pulse_import_kind_name(m->plan.kind), (unsigned long long)read, (unsigned long long)r->rows_accepted,
                     (unsigned long long)m->rows_rejected, (unsigned long long)r->rows_duplicate,
                     (unsigned long long)r->rows_existing, (unsigned long long)r->rows_inserted,
                     (unsigned long long)r->customers_created, rate, m->plan.max_error_rate, aborted ? "true" : "false");
    for (size_t i = 0; i < m->nissues; i++) {
        const issue_t *is = &m->issues[i];
        pulse_buf_printf(out, "%s{\"code\":\"%s\"", i ? "," : "", is->code);
        if (is->field[0] != '\0') {
            pulse_buf_puts(out, ",\"field\":\"");
            pulse_buf_json_escape(out, is->field, strlen(is->field));
            pulse_buf_putc(out, '"');
        }
        pulse_buf_printf(out, ",\"action\":\"%s\",\"count\":%llu,\"first_lines\":[", is->action, (unsigned long long)is->count);
        for (size_t k = 0; k < is->nlines; k++)
            pulse_buf_printf(out, "%s%llu", k ? "," : "", (unsigned long long)is->lines[k]);
        pulse_buf_puts(out, "],\"message\":\"");
        pulse_buf_json_escape(out, is->message, strlen(is->message));
        pulse_buf_putc(out, '"');
        if (strcmp(is->code, "outliers") == 0 && m->outlier_rule[0] != '\0') {
            pulse_buf_puts(out, ",\"rule\":\"");
            pulse_buf_json_escape(out, m->outlier_rule, strlen(m->outlier_rule));
            pulse_buf_putc(out, '"');
        }
        pulse_buf_putc(out, '}');
    }
    pulse_buf_putc(out, ']');
    if (m->outlier_rule[0] != '\0') {
        pulse_buf_puts(out, ",\"outlier_rule\":\"");
        pulse_buf_json_escape(out, m->outlier_rule, strlen(m->outlier_rule));
        pulse_buf_putc(out, '"');
    }
    if (m->min_epoch <= m->max_epoch) {
        char a[32], b[32];
        *put_iso_date(a, m->min_epoch) = '\0';
        *put_iso_date(b, m->max_epoch) = '\0';
        pulse_buf_printf(out, ",\"date_range\":{\"first\":\"%s\",\"last\":\"%s\"}", a, b);
    } else
        pulse_buf_puts(out, ",\"date_range\":null");
    pulse_buf_printf(out, ",\"elapsed_ms\":%llu,\"rows_per_second\":%llu}", (unsigned long long)llround(elapsed_s * 1000),
                     (unsigned long long)(elapsed_s > 0 ? llround((double)read / elapsed_s) : 0));
}
