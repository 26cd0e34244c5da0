/* Reading the rows of a COPY ... TO STDOUT (FORMAT binary) as they stream in: each row's fields as
 * (pointer, length) in PostgreSQL's binary send format (network byte order), length -1 for NULL.
 * No text parsing or unescaping, and no result set held in memory. */
#ifndef PULSE_DB_COPYBIN_H
#define PULSE_DB_COPYBIN_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#define PULSE_COPYBIN_MAX_FIELDS 16

/* Called per row; non-zero stops the read (the COPY is cancelled and drained). */
typedef int (*pulse_copybin_row_cb)(void *ud, const unsigned char *const *field, const int32_t *len);

/* Runs sql (a COPY (...) TO STDOUT (FORMAT binary) of nfields columns) on c. Returns 0, 1 when
 * the callback stopped it, or -1 with a message (what names the data read, for it). */
int pulse_copybin_read(PGconn *c, const char *sql, int nfields, pulse_copybin_row_cb cb, void *ud, const char *what, char *err,
                       size_t errlen);

static inline uint32_t pulse_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t pulse_be64(const unsigned char *p)
{
    return (uint64_t)pulse_be32(p) << 32 | pulse_be32(p + 4);
}

static inline float pulse_be_float4(const unsigned char *p)
{
    uint32_t u = pulse_be32(p);
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
}

static inline double pulse_be_float8(const unsigned char *p)
{
    uint64_t u = pulse_be64(p);
    double d;
    __builtin_memcpy(&d, &u, 8);
    return d;
}

/* A timestamptz in binary send format (microseconds since 2000-01-01 00:00 UTC; integer
 * datetimes, the only kind since PostgreSQL 10) as whole days since 1970-01-01 in UTC, rounded
 * down: what (ts AT TIME ZONE 'UTC')::date - date '1970-01-01' gives, without the server's work. */
static inline int32_t pulse_be_timestamptz_days(const unsigned char *p)
{
    const int64_t us_per_day = 86400000000LL, days_1970_to_2000 = 10957;
    int64_t us = (int64_t)pulse_be64(p);
    int64_t day = us / us_per_day - (us % us_per_day < 0);
    return (int32_t)(day + days_1970_to_2000);
}

/* A numeric in binary send format (len bytes) as a double, or NaN for NaN, infinities or a
 * malformed value. Equal to the server's numeric::float8 (a correctly rounded conversion of the
 * decimal): the base-10000 digits are gathered into an exact integer (up to 18 decimal digits)
 * and divided or multiplied once by an exact power of ten. Longer values fall back to summing. */
double pulse_be_numeric_float8(const unsigned char *p, int32_t len);

#endif
