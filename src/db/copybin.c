/* Binary COPY reader (see copybin.h). */
#include "db/copybin.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

#define HEADER_BYTES 19 /* signature (11), flags (4), header extension length (4) */

/* Splits one row message; 0, or -1 when it is not a row of nfields fields. */
static int split_row(const unsigned char *p, size_t n, int nfields, const unsigned char **f, int32_t *len)
{
    const unsigned char *end = p + n;
    if (n < 2 || (int)(p[0] << 8 | p[1]) != nfields)
        return -1;
    p += 2;
    for (int i = 0; i < nfields; i++) {
        if (end - p < 4)
            return -1;
        len[i] = (int32_t)pulse_be32(p);
        p += 4;
        f[i] = p;
        if (len[i] > 0) {
            if (end - p < len[i])
                return -1;
            p += len[i];
        }
    }
    return 0;
}

static void cancel(PGconn *c)
{
    PGcancel *k = PQgetCancel(c);
    char e[256];
    if (k) {
        PQcancel(k, e, sizeof(e));
        PQfreeCancel(k);
    }
}

int pulse_copybin_read(PGconn *c, const char *sql, int nfields, pulse_copybin_row_cb cb, void *ud, const char *what, char *err,
                       size_t errlen)
{
    if (nfields < 1 || nfields > PULSE_COPYBIN_MAX_FIELDS)
        return pulse_fail(err, errlen, "reading the %s: %d columns (1 to %d)", what, nfields, PULSE_COPYBIN_MAX_FIELDS);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COPY_OUT) {
        pulse_fail(err, errlen, "cannot read the %s: %s", what, PQerrorMessage(c));
        PQclear(r);
        return -1;
    }
    PQclear(r);
    const unsigned char *f[PULSE_COPYBIN_MAX_FIELDS];
    int32_t len[PULSE_COPYBIN_MAX_FIELDS];
    char *buf;
    int n, first = 1, stopped = 0, bad = 0;
    while ((n = PQgetCopyData(c, &buf, 0)) > 0) {
        const unsigned char *p = (const unsigned char *)buf;
        size_t left = (size_t)n;
        if (first && left >= HEADER_BYTES && memcmp(p, "PGCOPY\n\377\r\n", 11) == 0) {
            size_t skip = HEADER_BYTES + pulse_be32(p + 15);
            skip = skip < left ? skip : left;
            p += skip;
            left -= skip;
        }
        first = 0;
        int trailer = left == 2 && p[0] == 0xff && p[1] == 0xff;
        if (!stopped && !bad && left > 0 && !trailer) {
            if (split_row(p, left, nfields, f, len) != 0)
                bad = 1;
            else if (cb(ud, f, len) != 0)
                stopped = 1;
            if (stopped || bad)
                cancel(c);
        }
        PQfreemem(buf);
    }
    int ok = n == -1;
    while ((r = PQgetResult(c)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            ok = 0;
        PQclear(r);
    }
    if (stopped)
        return 1;
    if (bad)
        return pulse_fail(err, errlen, "reading the %s: a row is not laid out as %d columns", what, nfields);
    if (!ok)
        return pulse_fail(err, errlen, "reading the %s failed: %s", what, PQerrorMessage(c));
    return 0;
}

/* Powers of ten up to 10^22, each exactly representable as a double. */
static const double EXACT_POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The slow way, exact for any length: the digits as a decimal integer with an exponent, through strtod
 * (no decimal point, so no locale in the way). */
static double numeric_by_strtod(const unsigned char *d, int ndigits, int weight)
{
    char text[4 * 1000 + 16];
    if (ndigits > 1000)
        return NAN;
    size_t n = 0;
    for (int i = 0; i < ndigits; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%04d", d[2 * i] << 8 | d[2 * i + 1]);
    snprintf(text + n, sizeof(text) - n, "e%d", 4 * (weight - ndigits + 1));
    return ndigits ? strtod(text, NULL) : 0.0;
}

double pulse_be_numeric_float8(const unsigned char *p, int32_t len)
{
    enum { POSITIVE = 0x0000, NEGATIVE = 0x4000 };
    if (len < 8)
        return NAN;
    int ndigits = (int16_t)(p[0] << 8 | p[1]), weight = (int16_t)(p[2] << 8 | p[3]);
    unsigned sign = (unsigned)(p[4] << 8 | p[5]);
    if ((sign != POSITIVE && sign != NEGATIVE) || ndigits < 0 || len != 8 + 2 * ndigits)
        return NAN; /* NaN, +-Infinity, or not a numeric */
    const unsigned char *d = p + 8;
    /* value = the digits as one integer m x 10^exp10: exact when m < 2^53 and |exp10| <= 22 */
    int64_t m = 0;
    for (int i = 0; i < ndigits && i < 4; i++)
        m = m * 10000 + (d[2 * i] << 8 | d[2 * i + 1]);
    int exp10 = 4 * (weight - ndigits + 1);
    double v;
    if (ndigits <= 4 && m <= (INT64_C(1) << 53) && exp10 >= -22 && exp10 <= 22)
        v = exp10 >= 0 ? (double)m * EXACT_POW10[exp10] : (double)m / EXACT_POW10[-exp10];
    else
        v = numeric_by_strtod(d, ndigits, weight);
    return sign == NEGATIVE ? -v : v;
}
