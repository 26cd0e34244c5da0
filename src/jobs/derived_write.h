/* Writing a tenant's derived per-customer results (customer_analytics from the segment job,
 * predictions from the scoring job) as one replacement: a fresh staging table filled with binary
 * COPY, then swapped in as the tenant's partition (migration 0008 says why and how). Everything
 * happens in the caller's open tenant transaction (pulse_ajob_begin or equivalent): a failed or
 * cancelled write is rolled back with it and the previous results stay.
 *
 *     pulse_derived_t w;
 *     pulse_derived_open(&w, conn, "predictions", "customer_id, churn_probability", epoch, err, n);
 *     for each row: pulse_derived_row(&w, 2); pulse_derived_int8(&w, id); pulse_derived_float4(&w, p);
 *                   pulse_derived_flush(&w, err, n) now and then;
 *     pulse_derived_commit_rows(&w, 0, &stored, err, n);   (or pulse_derived_abort) */
#ifndef PULSE_JOBS_DERIVED_WRITE_H
#define PULSE_JOBS_DERIVED_WRITE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct pulse_derived_t {
    PGconn *c;
    const char *table;
    pulse_buf_t buf; /* binary COPY data not sent yet */
    uint64_t rows;
    int64_t epoch; /* pulse_derived_epoch before the ids were read; -1: not known (the swap checks all) */
    int copying;
} pulse_derived_t;

/* The tenant's count of customer deletions (derived_epochs), to read before the customer ids a job
 * writes: unchanged at the swap, no customer went in between. Returns it, or -1 on error. */
int64_t pulse_derived_epoch(PGconn *c);

/* Creates the stage for table ("customer_analytics" or "predictions") and starts a binary COPY of
 * columns (a list of the table's columns; tenant_id is filled in by the stage). epoch: what
 * pulse_derived_epoch said before the ids were read (-1: unknown). Returns 0 or -1. */
int pulse_derived_open(pulse_derived_t *w, PGconn *c, const char *table, const char *columns, int64_t epoch, char *err,
                       size_t errlen);

/* The same encoder for any binary COPY ... FROM STDIN (FORMAT binary), e.g. into a TEMP table;
 * pulse_derived_end_copy finishes it (no swap). Both return 0 or -1. */
int pulse_derived_open_copy(pulse_derived_t *w, PGconn *c, const char *copy_sql, char *err, size_t errlen);
int pulse_derived_end_copy(pulse_derived_t *w, char *err, size_t errlen);

/* A row of nfields values, then each value in the order of the columns. */
void pulse_derived_row(pulse_derived_t *w, int nfields);
void pulse_derived_null(pulse_derived_t *w);
void pulse_derived_int8(pulse_derived_t *w, int64_t v);
void pulse_derived_int4(pulse_derived_t *w, int32_t v);
void pulse_derived_int2(pulse_derived_t *w, int16_t v);
void pulse_derived_float4(pulse_derived_t *w, float v); /* NaN is stored as NaN: use _null for SQL NULL */
void pulse_derived_float8(pulse_derived_t *w, double v);
void pulse_derived_text(pulse_derived_t *w, const char *s, size_t n);
/* bytea: the bytes as they are. */
void pulse_derived_bytea(pulse_derived_t *w, const void *bytes, size_t n);
/* jsonb from its JSON text (checked by the server). */
void pulse_derived_jsonb(pulse_derived_t *w, const char *json, size_t n);
/* uuid from its 16 bytes; pulse_derived_parse_uuid gives them from the text form (0, or -1 when it is
 * not a uuid). */
void pulse_derived_uuid(pulse_derived_t *w, const unsigned char bytes[16]);
int pulse_derived_parse_uuid(const char *text, unsigned char out[16]);
/* real[] of n values (one dimension). */
void pulse_derived_float4_array(pulse_derived_t *w, const float *v, size_t n, size_t stride);

/* Sends the buffered rows once they pass 1 MiB (always when force). Returns 0 or -1. */
int pulse_derived_flush(pulse_derived_t *w, int force, char *err, size_t errlen);

/* Ends the COPY and swaps the stage in. keep_others: the tenant's rows for customers the stage does
 * not name stay (a run over some customers; up to 50,000 staged rows are merged in place instead,
 * pulse_derived_merge); otherwise the stage replaces all of them. Rows naming a customer that is not
 * the tenant's are dropped. *stored: rows now stored (merged: the staged rows kept). Returns 0 or
 * -1. */
int pulse_derived_commit_rows(pulse_derived_t *w, int keep_others, uint64_t *stored, char *err, size_t errlen);

/* Ends an unfinished COPY with an error (the caller then rolls its transaction back). */
void pulse_derived_abort(pulse_derived_t *w);

#endif
