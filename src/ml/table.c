/* Training table from a CSV or from columns in memory (see table.h). */
#include "ml/table.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "ingest/csv.h"
#include "ingest/types.h"

/* A column on its way into the table: numbers, or text pointing at bytes owned elsewhere. */
typedef struct rawcol_t {
    const char *name;
    double *num;    /* owned, numeric columns only */
    const char **s; /* text: pointer per row, NULL = missing */
    uint32_t *len;  /* text: length per row */
} rawcol_t;

static int eq_word(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

int pulse_ml_label_parse(const char *s, size_t n)
{
    static const char *const pos[] = {"churned", "churn", "lost", "left", "cancelled", "canceled", "attrited", NULL};
    static const char *const neg[] = {"retained", "stayed", "active", "current", "kept", "existing", NULL};
    while (n > 0 && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    int b;
    if (n == 0)
        return -1;
    if (pulse_bool_parse(s, n, &b) == 0)
        return b;
    if (n == 3 && (memcmp(s, "1.0", 3) == 0 || memcmp(s, "0.0", 3) == 0))
        return s[0] == '1';
    for (int i = 0; pos[i]; i++)
        if (eq_word(s, n, pos[i]))
            return 1;
    for (int i = 0; neg[i]; i++)
        if (eq_word(s, n, neg[i]))
            return 0;
    return -1;
}

/* ---------------------------------------------------------------------------------------------
 * String set: open addressing over (pointer, length) keys, for dictionaries and id detection. */

typedef struct strset_t {
    size_t cap, n;
    const char **key;
    uint32_t *klen;
    uint32_t *val; /* order of first appearance */
} strset_t;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static void strset_init(strset_t *t, size_t expect)
{
    t->cap = 16;
    while (t->cap < expect * 2)
        t->cap <<= 1;
    t->n = 0;
    t->key = pulse_xmalloc(t->cap * sizeof(*t->key));
    memset(t->key, 0, t->cap * sizeof(*t->key));
    t->klen = pulse_xmalloc(t->cap * sizeof(*t->klen));
    t->val = pulse_xmalloc(t->cap * sizeof(*t->val));
}

static void strset_free(strset_t *t)
{
    free(t->key);
    free(t->klen);
    free(t->val);
}

/* Returns the value of s, inserting it with value t->n when new. */
static uint32_t strset_add(strset_t *t, const char *s, uint32_t n)
{
    if ((t->n + 1) * 2 > t->cap) {
        strset_t g;
        strset_init(&g, t->cap);
        for (size_t i = 0; i < t->cap; i++) {
            if (t->key[i] == NULL)
                continue;
            size_t h = hash_bytes(t->key[i], t->klen[i]) & (g.cap - 1);
            while (g.key[h] != NULL)
                h = (h + 1) & (g.cap - 1);
            g.key[h] = t->key[i], g.klen[h] = t->klen[i], g.val[h] = t->val[i];
        }
        g.n = t->n;
        strset_free(t);
        *t = g;
    }
    size_t h = hash_bytes(s, n) & (t->cap - 1);
    while (t->key[h] != NULL) {
        if (t->klen[h] == n && memcmp(t->key[h], s, n) == 0)
            return t->val[h];
        h = (h + 1) & (t->cap - 1);
    }
    t->key[h] = s, t->klen[h] = n, t->val[h] = (uint32_t)t->n;
    return (uint32_t)t->n++;
}

/* ---------------------------------------------------------------------------------------------
 * From raw columns to the table. */

typedef struct level_t {
    const char *s;
    uint32_t n;
    uint32_t first; /* code in order of appearance */
} level_t;

static int level_cmp(const void *a, const void *b)
{
    const level_t *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, m);
    if (c != 0)
        return c;
    return (x->n > y->n) - (x->n < y->n);
}

static char *dup_n(const char *s, size_t n)
{
    char *d = pulse_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* 1 when the text column holds a value on every row and no value twice. */
static int all_distinct(const rawcol_t *c, size_t n_rows)
{
    if (c->s == NULL || n_rows < 10)
        return 0;
    strset_t set;
    strset_init(&set, n_rows);
    int ok = 1;
    for (size_t i = 0; i < n_rows && ok; i++)
        ok = c->s[i] != NULL && strset_add(&set, c->s[i], c->len[i]) == i;
    strset_free(&set);
    return ok;
}

/* where(i) names row i in messages: "line 12" for a CSV, "row 12" in memory. */
static int build(rawcol_t *cols, size_t n_cols, size_t n_rows, const pulse_ml_table_options_t *opt, const uint64_t *line_of_row,
                 pulse_ml_table_t **out, char *err, size_t errlen)
{
    if (opt == NULL || opt->label == NULL || opt->label[0] == '\0')
        return pulse_fail(err, errlen, "no label column given");
    long label = -1, id = -1;
    for (size_t j = 0; j < n_cols; j++) {
        if (strcmp(cols[j].name, opt->label) == 0 && label < 0)
            label = (long)j;
        if (opt->id != NULL && strcmp(cols[j].name, opt->id) == 0 && id < 0)
            id = (long)j;
    }
    /* "churn" for a header saying "Churn": an exact match wins, a case-insensitive one will do. */
    for (size_t j = 0; j < n_cols; j++) {
        if (label < 0 && strcasecmp(cols[j].name, opt->label) == 0)
            label = (long)j;
        if (opt->id != NULL && id < 0 && strcasecmp(cols[j].name, opt->id) == 0)
            id = (long)j;
    }
    if (label < 0)
        return pulse_fail(err, errlen, "no column named '%s' for the label", opt->label);
    if (opt->id != NULL && id < 0)
        return pulse_fail(err, errlen, "no column named '%s' for the id", opt->id);
    if (opt->id != NULL && id == label)
        return pulse_fail(err, errlen, "the label column '%s' cannot also be the id", opt->label);
    if (n_rows == 0)
        return pulse_fail(err, errlen, "the table has no rows");
    if (id < 0) {
        for (size_t j = 0; j < n_cols && id < 0; j++)
            if ((long)j != label && all_distinct(&cols[j], n_rows))
                id = (long)j;
    }

    float *y = pulse_xmalloc(n_rows * sizeof(float));
    size_t n_pos = 0;
    rawcol_t *lc = &cols[label];
    for (size_t i = 0; i < n_rows; i++) {
        int v = -1;
        if (lc->num != NULL) {
            if (lc->num[i] == 0.0 || lc->num[i] == 1.0)
                v = (int)lc->num[i];
        } else if (lc->s[i] != NULL) {
            v = pulse_ml_label_parse(lc->s[i], lc->len[i]);
        }
        if (v < 0) {
            char shown[48] = "";
            if (lc->num != NULL && !isnan(lc->num[i]))
                snprintf(shown, sizeof(shown), "%g", lc->num[i]);
            else if (lc->num == NULL && lc->s[i] != NULL)
                snprintf(shown, sizeof(shown), "%.*s", (int)(lc->len[i] > 40 ? 40 : lc->len[i]), lc->s[i]);
            free(y);
            if (shown[0] == '\0')
                return pulse_fail(err, errlen, "%s %llu: the label '%s' is missing", line_of_row ? "line" : "row",
                                  (unsigned long long)(line_of_row ? line_of_row[i] : i + 1), opt->label);
            return pulse_fail(err, errlen, "%s %llu: the label '%s' is '%s', expected Yes/No, 1/0, true/false or churned/retained",
                              line_of_row ? "line" : "row", (unsigned long long)(line_of_row ? line_of_row[i] : i + 1), opt->label,
                              shown);
        }
        y[i] = (float)v;
        n_pos += (size_t)v;
    }

    pulse_ml_table_t *t = pulse_xmalloc(sizeof(*t));
    memset(t, 0, sizeof(*t));
    size_t nf = n_cols - 1 - (id >= 0);
    pulse_ml_data_t *d = &t->data;
    d->n_rows = n_rows;
    d->n_cols = nf;
    d->x = pulse_xmalloc((nf ? nf : 1) * n_rows * sizeof(float));
    d->y = y;
    d->names = pulse_xmalloc((nf ? nf : 1) * sizeof(char *));
    d->categorical = pulse_xmalloc(nf ? nf : 1);
    d->n_categories = pulse_xmalloc((nf ? nf : 1) * sizeof(int));
    t->levels = pulse_xmalloc((nf ? nf : 1) * sizeof(char **));
    t->label = pulse_xstrdup(cols[label].name);
    t->id = id >= 0 ? pulse_xstrdup(cols[id].name) : NULL;
    t->n_positive = n_pos;

    size_t k = 0;
    for (size_t j = 0; j < n_cols; j++) {
        if ((long)j == label || (long)j == id)
            continue;
        rawcol_t *c = &cols[j];
        float *x = d->x + k * n_rows;
        d->names[k] = pulse_xstrdup(c->name);
        if (c->num != NULL) {
            for (size_t i = 0; i < n_rows; i++)
                x[i] = (float)c->num[i];
            d->categorical[k] = 0;
            d->n_categories[k] = 0;
            t->levels[k] = NULL;
        } else {
            strset_t set;
            strset_init(&set, 64);
            uint32_t *first = pulse_xmalloc(n_rows * sizeof(uint32_t));
            level_t *lv = NULL;
            size_t nlv = 0, caplv = 0;
            for (size_t i = 0; i < n_rows; i++) {
                if (c->s[i] == NULL) {
                    first[i] = UINT32_MAX;
                    continue;
                }
                uint32_t v = strset_add(&set, c->s[i], c->len[i]);
                if (v == nlv) {
                    if (nlv == caplv) {
                        caplv = caplv ? caplv * 2 : 16;
                        lv = pulse_xrealloc(lv, caplv * sizeof(*lv));
                    }
                    lv[nlv++] = (level_t){c->s[i], c->len[i], v};
                }
                first[i] = v;
            }
            /* Sorted codes: the same categories get the same codes whatever the row order. */
            qsort(lv, nlv, sizeof(*lv), level_cmp);
            uint32_t *remap = pulse_xmalloc((nlv ? nlv : 1) * sizeof(uint32_t));
            t->levels[k] = pulse_xmalloc((nlv ? nlv : 1) * sizeof(char *));
            for (size_t a = 0; a < nlv; a++) {
                remap[lv[a].first] = (uint32_t)a;
                t->levels[k][a] = dup_n(lv[a].s, lv[a].n);
            }
            for (size_t i = 0; i < n_rows; i++)
                x[i] = first[i] == UINT32_MAX ? NAN : (float)remap[first[i]];
            d->categorical[k] = 1;
            d->n_categories[k] = (int)nlv;
            free(remap);
            free(first);
            free(lv);
            strset_free(&set);
        }
        k++;
    }
    *out = t;
    return 0;
}

void pulse_ml_table_free(pulse_ml_table_t *t)
{
    if (t == NULL)
        return;
    pulse_ml_data_t *d = &t->data;
    for (size_t j = 0; j < d->n_cols; j++) {
        if (t->levels[j] != NULL)
            for (int c = 0; c < d->n_categories[j]; c++)
                free(t->levels[j][c]);
        free(t->levels[j]);
        free(d->names[j]);
    }
    free(t->levels);
    free(d->names);
    free(d->x);
    free(d->y);
    free(d->categorical);
    free(d->n_categories);
    free(t->label);
    free(t->id);
    free(t);
}

int pulse_ml_table_find(const pulse_ml_table_t *t, const char *name)
{
    for (size_t j = 0; j < t->data.n_cols; j++)
        if (strcmp(t->data.names[j], name) == 0)
            return (int)j;
    return -1;
}

int pulse_ml_table_from_columns(const pulse_ml_column_t *cols, size_t n_cols, size_t n_rows, const pulse_ml_table_options_t *opt,
                                pulse_ml_table_t **out, char *err, size_t errlen)
{
    rawcol_t *rc = pulse_xmalloc((n_cols ? n_cols : 1) * sizeof(*rc));
    int ret = 0;
    for (size_t j = 0; j < n_cols; j++) {
        rc[j] = (rawcol_t){cols[j].name ? cols[j].name : "", NULL, NULL, NULL};
        if ((cols[j].num == NULL) == (cols[j].text == NULL)) {
            ret = pulse_fail(err, errlen, "column %zu ('%s') needs exactly one of numbers and text", j + 1, rc[j].name);
            n_cols = j;
            break;
        }
        if (cols[j].num != NULL) {
            rc[j].num = pulse_xmalloc((n_rows ? n_rows : 1) * sizeof(double));
            memcpy(rc[j].num, cols[j].num, n_rows * sizeof(double));
        } else {
            rc[j].s = pulse_xmalloc((n_rows ? n_rows : 1) * sizeof(char *));
            rc[j].len = pulse_xmalloc((n_rows ? n_rows : 1) * sizeof(uint32_t));
            for (size_t i = 0; i < n_rows; i++) {
                const char *s = cols[j].text[i];
                rc[j].s[i] = s;
                rc[j].len[i] = s ? (uint32_t)strlen(s) : 0;
            }
        }
    }
    if (ret == 0)
        ret = build(rc, n_cols, n_rows, opt, NULL, out, err, errlen);
    for (size_t j = 0; j < n_cols; j++) {
        free(rc[j].num);
        free(rc[j].s);
        free(rc[j].len);
    }
    free(rc);
    return ret;
}

/* ---------------------------------------------------------------------------------------------
 * CSV: every field is kept in one arena during the parse; types are decided once it is complete. */

typedef struct csvload_t {
    size_t n_cols;
    char **header;
    pulse_buf_t arena;
    uint64_t *off; /* per field, row-major: offset in the arena, UINT64_MAX = null-like */
    uint32_t *len;
    size_t n_rows, cap_rows;
    uint64_t *line;
    pulse_csv_parser_t *parser;
    char *err;
    size_t errlen;
    int failed;
} csvload_t;

static int on_row(void *ud, size_t row_number, const pulse_csv_field_t *f, size_t nf)
{
    csvload_t *L = ud;
    (void)row_number;
    if (L->header == NULL) {
        L->n_cols = nf;
        L->header = pulse_xmalloc((nf ? nf : 1) * sizeof(char *));
        for (size_t j = 0; j < nf; j++) {
            size_t a = 0, b = f[j].len;
            while (a < b && (f[j].ptr[a] == ' ' || f[j].ptr[a] == '\t'))
                a++;
            while (b > a && (f[j].ptr[b - 1] == ' ' || f[j].ptr[b - 1] == '\t'))
                b--;
            L->header[j] = dup_n(f[j].ptr + a, b - a);
        }
        return 0;
    }
    if (nf != L->n_cols) {
        L->failed = 1;
        pulse_fail(L->err, L->errlen, "line %llu: %zu fields, the header has %zu", (unsigned long long)pulse_csv_line(L->parser),
                   nf, L->n_cols);
        return 1;
    }
    if (L->n_rows == L->cap_rows) {
        L->cap_rows = L->cap_rows ? L->cap_rows * 2 : 1024;
        L->off = pulse_xrealloc(L->off, L->cap_rows * L->n_cols * sizeof(uint64_t));
        L->len = pulse_xrealloc(L->len, L->cap_rows * L->n_cols * sizeof(uint32_t));
        L->line = pulse_xrealloc(L->line, L->cap_rows * sizeof(uint64_t));
    }
    size_t base = L->n_rows * L->n_cols;
    for (size_t j = 0; j < nf; j++) {
        const char *s = f[j].ptr;
        size_t n = f[j].len;
        while (n > 0 && (*s == ' ' || *s == '\t'))
            s++, n--;
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (pulse_is_null_like(s, n)) {
            L->off[base + j] = UINT64_MAX;
            L->len[base + j] = 0;
            continue;
        }
        L->off[base + j] = L->arena.len;
        L->len[base + j] = (uint32_t)n;
        pulse_buf_append(&L->arena, s, n);
    }
    L->line[L->n_rows++] = pulse_csv_line(L->parser);
    return 0;
}

int pulse_ml_table_parse_csv(const char *buf, size_t len, const pulse_ml_table_options_t *opt, pulse_ml_table_t **out, char *err,
                             size_t errlen)
{
    pulse_csv_dialect_t dia;
    if (pulse_csv_sniff(buf, len < 65536 ? len : 65536, &dia, err, errlen) != 0)
        return -1;
    csvload_t L;
    memset(&L, 0, sizeof(L));
    L.err = err;
    L.errlen = errlen;
    L.parser = pulse_csv_parser_new(&dia, on_row, &L);
    int rc = pulse_csv_feed(L.parser, buf, len);
    if (rc == 0)
        rc = pulse_csv_finish(L.parser);
    int ret = 0;
    if (rc < 0)
        ret = pulse_fail(err, errlen, "%s", pulse_csv_error(L.parser));
    else if (L.failed)
        ret = -1;
    else if (L.header == NULL)
        ret = pulse_fail(err, errlen, "the file is empty");
    if (ret == 0) {
        rawcol_t *cols = pulse_xmalloc(L.n_cols * sizeof(*cols));
        size_t n = L.n_rows, nc = L.n_cols;
        for (size_t j = 0; j < nc; j++) {
            cols[j] = (rawcol_t){L.header[j], NULL, NULL, NULL};
            /* A column is numeric when every present value reads as a number, blanks as NaN. */
            int numeric = 1;
            double *num = pulse_xmalloc((n ? n : 1) * sizeof(double));
            for (size_t i = 0; i < n && numeric; i++) {
                uint64_t o = L.off[i * nc + j];
                if (o == UINT64_MAX)
                    num[i] = NAN;
                else
                    numeric = pulse_number_parse(L.arena.data + o, L.len[i * nc + j], dia.decimal_comma, &num[i]) == 0;
            }
            if (numeric) {
                cols[j].num = num;
                continue;
            }
            free(num);
            cols[j].s = pulse_xmalloc((n ? n : 1) * sizeof(char *));
            cols[j].len = pulse_xmalloc((n ? n : 1) * sizeof(uint32_t));
            for (size_t i = 0; i < n; i++) {
                uint64_t o = L.off[i * nc + j];
                cols[j].s[i] = o == UINT64_MAX ? NULL : L.arena.data + o;
                cols[j].len[i] = L.len[i * nc + j];
            }
        }
        /* The label is read from its text, so "1"/"0" and "Yes"/"No" go the same way. */
        ret = build(cols, nc, n, opt, L.line, out, err, errlen);
        for (size_t j = 0; j < nc; j++) {
            free(cols[j].num);
            free(cols[j].s);
            free(cols[j].len);
        }
        free(cols);
    }
    for (size_t j = 0; L.header && j < L.n_cols; j++)
        free(L.header[j]);
    free(L.header);
    free(L.off);
    free(L.len);
    free(L.line);
    pulse_buf_free(&L.arena);
    pulse_csv_free(L.parser);
    return ret;
}

int pulse_ml_table_load_csv(const char *path, const pulse_ml_table_options_t *opt, pulse_ml_table_t **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return pulse_fail(err, errlen, "cannot open %s: %s", path, strerror(errno));
    pulse_buf_t b = PULSE_BUF_INIT;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        pulse_buf_append(&b, tmp, n);
    int bad = ferror(f);
    fclose(f);
    int ret;
    if (bad)
        ret = pulse_fail(err, errlen, "cannot read %s", path);
    else
        ret = pulse_ml_table_parse_csv(b.data ? b.data : "", b.len, opt, out, err, errlen);
    pulse_buf_free(&b);
    return ret;
}
