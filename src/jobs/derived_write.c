/* The derived-results writer (see derived_write.h). Binary COPY rather than text: no number or
 * array formatting here and no parsing in the server (jsonb still parses its text), and the values
 * go in as the column types expect them. */
#include "jobs/derived_write.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLUSH_BYTES (1u << 20)
#define FLOAT4OID 700

static void put_u16(pulse_buf_t *b, uint16_t v)
{
    uint16_t n = htons(v);
    pulse_buf_append(b, &n, 2);
}

static void put_u32(pulse_buf_t *b, uint32_t v)
{
    uint32_t n = htonl(v);
    pulse_buf_append(b, &n, 4);
}

static void put_u64(pulse_buf_t *b, uint64_t v)
{
    put_u32(b, (uint32_t)(v >> 32));
    put_u32(b, (uint32_t)v);
}

static uint32_t float_bits(float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return u;
}

static int fail_pg(PGconn *c, char *err, size_t errlen, const char *what)
{
    const char *m = PQerrorMessage(c);
    size_t n = strlen(m);
    while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' '))
        n--;
    return pulse_fail(err, errlen, "%s: %.*s", what, (int)n, m);
}

/* A new stage for table: its name, quoted (PQfreemem), or NULL with a message. */
static char *stage(PGconn *c, const char *table, char *err, size_t errlen)
{
    const char *p[] = {table};
    PGresult *r = PQexecParams(c, "SELECT pulse_derived_stage($1)", 1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        fail_pg(c, err, errlen, "cannot stage the results");
        return NULL;
    }
    char *name = PQescapeIdentifier(c, PQgetvalue(r, 0, 0), strlen(PQgetvalue(r, 0, 0)));
    PQclear(r);
    if (name == NULL)
        fail_pg(c, err, errlen, "cannot stage the results");
    return name;
}

int64_t pulse_derived_epoch(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT coalesce((SELECT customers_deleted FROM derived_epochs), 0)");
    int64_t e = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    return e;
}

/* Runs one of the storing functions (sql: a SELECT of it, params as given); *stored: its count. */
static int store(PGconn *c, const char *sql, int nparams, const char *const *params, uint64_t *stored, char *err, size_t errlen)
{
    PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        return fail_pg(c, err, errlen, "cannot store the results");
    }
    if (stored)
        *stored = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return 0;
}

static int swap(PGconn *c, const char *table, int keep_others, uint64_t staged, int64_t epoch, uint64_t *stored, char *err,
                size_t errlen)
{
    char n[32], e[32];
    snprintf(n, sizeof(n), "%llu", (unsigned long long)staged);
    snprintf(e, sizeof(e), "%lld", (long long)epoch);
    const char *p[] = {table, keep_others ? "t" : "f", n, epoch >= 0 ? e : NULL};
    return store(c, "SELECT pulse_derived_swap($1, $2, $3, $4)", 4, p, stored, err, errlen);
}

int pulse_derived_open(pulse_derived_t *w, PGconn *c, const char *table, const char *columns, int64_t epoch, char *err,
                       size_t errlen)
{
    char *name = stage(c, table, err, errlen);
    if (name == NULL)
        return -1;
    pulse_buf_t sql = PULSE_BUF_INIT;
    pulse_buf_printf(&sql, "COPY %s (%s) FROM STDIN (FORMAT binary)", name, columns);
    PQfreemem(name);
    int rc = pulse_derived_open_copy(w, c, sql.data, err, errlen);
    pulse_buf_free(&sql);
    w->table = table;
    w->epoch = epoch;
    return rc;
}

int pulse_derived_open_copy(pulse_derived_t *w, PGconn *c, const char *copy_sql, char *err, size_t errlen)
{
    memset(w, 0, sizeof(*w));
    w->c = c;
    PGresult *r = PQexec(c, copy_sql);
    int ok = PQresultStatus(r) == PGRES_COPY_IN;
    PQclear(r);
    if (!ok)
        return fail_pg(c, err, errlen, "cannot write the results");
    w->copying = 1;
    static const char header[] = "PGCOPY\n\377\r\n";
    pulse_buf_append(&w->buf, header, 11);
    put_u32(&w->buf, 0); /* flags */
    put_u32(&w->buf, 0); /* header extension */
    return 0;
}

void pulse_derived_row(pulse_derived_t *w, int nfields)
{
    put_u16(&w->buf, (uint16_t)nfields);
    w->rows++;
}

void pulse_derived_null(pulse_derived_t *w)
{
    put_u32(&w->buf, UINT32_MAX); /* length -1 */
}

void pulse_derived_int8(pulse_derived_t *w, int64_t v)
{
    put_u32(&w->buf, 8);
    put_u64(&w->buf, (uint64_t)v);
}

void pulse_derived_int4(pulse_derived_t *w, int32_t v)
{
    put_u32(&w->buf, 4);
    put_u32(&w->buf, (uint32_t)v);
}

void pulse_derived_int2(pulse_derived_t *w, int16_t v)
{
    put_u32(&w->buf, 2);
    put_u16(&w->buf, (uint16_t)v);
}

void pulse_derived_float4(pulse_derived_t *w, float v)
{
    put_u32(&w->buf, 4);
    put_u32(&w->buf, float_bits(v));
}

void pulse_derived_float8(pulse_derived_t *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    put_u32(&w->buf, 8);
    put_u64(&w->buf, u);
}

void pulse_derived_text(pulse_derived_t *w, const char *s, size_t n)
{
    put_u32(&w->buf, (uint32_t)n);
    pulse_buf_append(&w->buf, s, n);
}

void pulse_derived_bytea(pulse_derived_t *w, const void *bytes, size_t n)
{
    put_u32(&w->buf, (uint32_t)n);
    pulse_buf_append(&w->buf, bytes, n);
}

void pulse_derived_jsonb(pulse_derived_t *w, const char *json, size_t n)
{
    put_u32(&w->buf, (uint32_t)n + 1);
    pulse_buf_putc(&w->buf, 1); /* jsonb binary format version */
    pulse_buf_append(&w->buf, json, n);
}

static int hex_value(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int pulse_derived_parse_uuid(const char *text, unsigned char out[16])
{
    size_t k = 0;
    for (const char *p = text; p && *p; p++) {
        if (*p == '-')
            continue;
        int hi = hex_value(p[0]), lo = p[1] ? hex_value(p[1]) : -1;
        if (hi < 0 || lo < 0 || k == 16)
            return -1;
        out[k++] = (unsigned char)(hi << 4 | lo);
        p++;
    }
    return k == 16 ? 0 : -1;
}

void pulse_derived_uuid(pulse_derived_t *w, const unsigned char bytes[16])
{
    put_u32(&w->buf, 16);
    pulse_buf_append(&w->buf, bytes, 16);
}

void pulse_derived_float4_array(pulse_derived_t *w, const float *v, size_t n, size_t stride)
{
    put_u32(&w->buf, (uint32_t)(20 + 8 * n));
    put_u32(&w->buf, 1); /* dimensions */
    put_u32(&w->buf, 0); /* no NULL elements */
    put_u32(&w->buf, FLOAT4OID);
    put_u32(&w->buf, (uint32_t)n);
    put_u32(&w->buf, 1); /* lower bound */
    for (size_t i = 0; i < n; i++) {
        put_u32(&w->buf, 4);
        put_u32(&w->buf, float_bits(v[i * stride]));
    }
}

int pulse_derived_flush(pulse_derived_t *w, int force, char *err, size_t errlen)
{
    if (w->buf.len == 0 || (!force && w->buf.len < FLUSH_BYTES))
        return 0;
    if (PQputCopyData(w->c, w->buf.data, (int)w->buf.len) != 1)
        return fail_pg(w->c, err, errlen, "writing the results failed");
    pulse_buf_reset(&w->buf);
    return 0;
}

static int end_copy(pulse_derived_t *w, const char *error, char *err, size_t errlen)
{
    int rc = 0;
    w->copying = 0;
    if (PQputCopyEnd(w->c, error) != 1 && error == NULL)
        rc = fail_pg(w->c, err, errlen, "writing the results failed");
    PGresult *r;
    while ((r = PQgetResult(w->c)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == 0 && error == NULL)
            rc = fail_pg(w->c, err, errlen, "writing the results failed");
        PQclear(r);
    }
    pulse_buf_free(&w->buf);
    return rc;
}

int pulse_derived_end_copy(pulse_derived_t *w, char *err, size_t errlen)
{
    put_u16(&w->buf, UINT16_MAX); /* trailer: -1 */
    if (pulse_derived_flush(w, 1, err, errlen) != 0) {
        pulse_derived_abort(w);
        return -1;
    }
    return end_copy(w, NULL, err, errlen);
}

/* Staged rows up to which a run that keeps the others' rows merges them in place: replacing a few
 * rows costs their index entries, where the swap copies every other row and builds the indexes. */
#define MERGE_MAX_ROWS 50000

/* The staged rows put into the current ones in place (pulse_derived_merge). */
static int merge(PGconn *c, const char *table, uint64_t staged, int64_t epoch, uint64_t *stored, char *err, size_t errlen)
{
    char n[32], e[32];
    snprintf(n, sizeof(n), "%llu", (unsigned long long)staged);
    snprintf(e, sizeof(e), "%lld", (long long)epoch);
    const char *p[] = {table, n, epoch >= 0 ? e : NULL};
    return store(c, "SELECT pulse_derived_merge($1, $2, $3)", 3, p, stored, err, errlen);
}

int pulse_derived_commit_rows(pulse_derived_t *w, int keep_others, uint64_t *stored, char *err, size_t errlen)
{
    if (pulse_derived_end_copy(w, err, errlen) != 0)
        return -1;
    if (keep_others && w->rows <= MERGE_MAX_ROWS)
        return merge(w->c, w->table, w->rows, w->epoch, stored, err, errlen);
    return swap(w->c, w->table, keep_others, w->rows, w->epoch, stored, err, errlen);
}

void pulse_derived_abort(pulse_derived_t *w)
{
    if (w->copying)
        end_copy(w, "the job stopped before its results were complete", NULL, 0);
    pulse_buf_free(&w->buf);
}
