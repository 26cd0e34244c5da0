/* Reading an uploaded churn-score file (see churn_scores.h). Two passes over the parse: the first
 * checks every row, the second delivers them, so a bad line 3,000,000 applies nothing. */
#include "jobs/churn_scores.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "ingest/csv.h"
#include "ingest/types.h"

#define CHUNK ((size_t)1 << 20)

typedef struct read_ctx_t {
    const char *id_column, *score_column;
    int id_at, score_at; /* column positions, -1 until the header is read */
    int decimal_comma;
    char sep;
    int deliver; /* 0: checking pass, 1: delivering pass */
    pulse_churn_score_cb cb;
    void *ud;
    pulse_csv_parser_t *parser;
    int64_t rows;
    char *err;
    size_t errlen;
} read_ctx_t;

static int same_name(const pulse_csv_field_t *f, const char *name)
{
    return f->len == strlen(name) && memcmp(f->ptr, name, f->len) == 0;
}

static int read_header(read_ctx_t *c, const pulse_csv_field_t *fields, size_t nfields)
{
    for (size_t i = 0; i < nfields; i++) {
        if (c->id_at < 0 && same_name(&fields[i], c->id_column))
            c->id_at = (int)i;
        else if (c->score_at < 0 && same_name(&fields[i], c->score_column))
            c->score_at = (int)i;
    }
    if (c->id_at < 0 || c->score_at < 0) {
        snprintf(c->err, c->errlen, "line 1: the header has no column '%s': send a header naming the customer id and the score",
                 c->id_at < 0 ? c->id_column : c->score_column);
        return -1;
    }
    return 0;
}

/* "0.85", "0,85" (decimal comma files) or "85%" -> 0.85; -1 if not a probability. */
static int parse_score(const read_ctx_t *c, const char *s, size_t n, float *out)
{
    double v, scale = 1.0;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n > 0 && s[n - 1] == '%') {
        n--;
        scale = 100.0;
    }
    /* a ';' or tab file may write 0,85 even where the sniffer's sample did not show it */
    if (pulse_number_parse(s, n, c->decimal_comma, &v) != 0 &&
        (c->sep == ',' || pulse_number_parse(s, n, !c->decimal_comma, &v) != 0))
        return -1;
    v /= scale;
    if (!(v >= 0.0 && v <= 1.0))
        return -1;
    *out = (float)v;
    return 0;
}

static int on_row(void *ud, size_t row_number, const pulse_csv_field_t *fields, size_t nfields)
{
    read_ctx_t *c = ud;
    if (c->id_at < 0 && c->score_at < 0)
        return read_header(c, fields, nfields) != 0 ? 1 : 0;
    uint64_t line = pulse_csv_line(c->parser);
    (void)row_number;
    size_t need = (size_t)(c->id_at > c->score_at ? c->id_at : c->score_at) + 1;
    if (nfields < need) {
        snprintf(c->err, c->errlen, "line %llu: %zu fields, the header has more: every row needs '%s' and '%s'",
                 (unsigned long long)line, nfields, c->id_column, c->score_column);
        return 1;
    }
    const pulse_csv_field_t *id = &fields[c->id_at], *score = &fields[c->score_at];
    if (id->len == 0) {
        snprintf(c->err, c->errlen, "line %llu: '%s' is empty: every row needs the customer's id", (unsigned long long)line,
                 c->id_column);
        return 1;
    }
    float p;
    if (parse_score(c, score->ptr, score->len, &p) != 0) {
        snprintf(c->err, c->errlen, "line %llu: '%s' is '%.*s': give a probability from 0 to 1 (or a percentage like 85%%)",
                 (unsigned long long)line, c->score_column, (int)(score->len > 40 ? 40 : score->len), score->ptr);
        return 1;
    }
    c->rows++;
    if (c->deliver && c->cb(c->ud, id->ptr, id->len, p) != 0) {
        snprintf(c->err, c->errlen, "stopped at line %llu", (unsigned long long)line);
        return 1;
    }
    return 0;
}

/* One parse of the whole file; 0 or -1 with c->err set. */
static int parse_file(FILE *f, const pulse_csv_dialect_t *d, read_ctx_t *c, char *buf)
{
    c->id_at = c->score_at = -1;
    c->rows = 0;
    c->parser = pulse_csv_parser_new(d, on_row, c);
    int rc = 0;
    size_t n;
    rewind(f);
    while (rc == 0 && (n = fread(buf, 1, CHUNK, f)) > 0)
        rc = pulse_csv_feed(c->parser, buf, n);
    if (rc == 0 && ferror(f)) {
        snprintf(c->err, c->errlen, "cannot read the file: %s", strerror(errno));
        rc = -1;
    } else if (rc == 0) {
        rc = pulse_csv_finish(c->parser);
    }
    if (rc < 0 && c->err[0] == '\0')
        snprintf(c->err, c->errlen, "%s", pulse_csv_error(c->parser));
    if (rc == 0 && c->id_at < 0)
        snprintf(c->err, c->errlen, "the file is empty: send a header and one row per customer");
    pulse_csv_free(c->parser);
    c->parser = NULL;
    return rc != 0 || c->id_at < 0 ? -1 : 0;
}

int64_t pulse_churn_scores_read(const char *path, const char *id_column, const char *score_column, pulse_churn_score_cb cb,
                                void *ud, char *err, size_t errlen)
{
    err[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open the uploaded scores: %s", strerror(errno));
        return -1;
    }
    char *chunk = pulse_xmalloc(CHUNK);
    pulse_csv_dialect_t d;
    size_t n = fread(chunk, 1, 64 * 1024, f);
    int64_t out = -1;
    if (pulse_csv_sniff(chunk, n, &d, err, errlen) == 0) {
        read_ctx_t c = {.id_column = id_column,
                        .score_column = score_column,
                        .decimal_comma = d.decimal_comma,
                        .sep = d.sep,
                        .cb = cb,
                        .ud = ud,
                        .err = err,
                        .errlen = errlen};
        if (parse_file(f, &d, &c, chunk) == 0) {
            c.deliver = 1;
            if (parse_file(f, &d, &c, chunk) == 0)
                out = c.rows;
        }
    }
    free(chunk);
    fclose(f);
    return out;
}
