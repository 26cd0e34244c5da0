/* Value types of uploaded columns: strict date/number/boolean parsers and column inference. */
#include "ingest/types.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IS_DIGIT(c) ((unsigned)((unsigned char)(c) - '0') < 10u)

static inline int is_ascii_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static inline void trim_ascii(const char **p, const char **e)
{
    while (*p < *e && is_ascii_space(**p))
        (*p)++;
    while (*e > *p && is_ascii_space((*e)[-1]))
        (*e)--;
}

static inline int lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : (unsigned char)c;
}

/* Case-insensitive equality of p[0..n) with the lower-case word w. */
static int ci_eq(const char *p, size_t n, const char *w)
{
    size_t i = 0;
    for (; i < n && w[i]; i++)
        if (lower(p[i]) != w[i])
            return 0;
    return i == n && w[i] == '\0';
}

/* ---------------------------------------------------------------- dates */

typedef struct {
    char order;        /* 'Y' Y-M-D, 'D' D-M-Y, 'M' M-D-Y, 'C' YYYYMMDD */
    char sep;          /* between the date fields */
    unsigned char yd;  /* year digits: 4 or 2 */
    unsigned char dmn; /* minimum digits of day and month (maximum is 2) */
    unsigned char tm;  /* 0: no time, 1: ISO time and zone, 2: " H:MM[:SS][ AM|PM]" */
    const char *name;
} fmt_desc_t;

static const fmt_desc_t fmts[PULSE_DATE_FORMAT_COUNT] = {
    [PULSE_DATE_NONE] = {0, 0, 0, 0, 0, "?"},
    [PULSE_DATE_ISO] = {'Y', '-', 4, 2, 0, "YYYY-MM-DD"},
    [PULSE_DATE_ISO_DATETIME] = {'Y', '-', 4, 2, 1, "YYYY-MM-DDTHH:MM:SS"},
    [PULSE_DATE_YMD_COMPACT] = {'C', 0, 4, 2, 0, "YYYYMMDD"},
    [PULSE_DATE_YMD_SLASH] = {'Y', '/', 4, 1, 0, "YYYY/MM/DD"},
    [PULSE_DATE_DMY_DASH] = {'D', '-', 4, 1, 0, "DD-MM-YYYY"},
    [PULSE_DATE_MDY_DASH] = {'M', '-', 4, 1, 0, "MM-DD-YYYY"},
    [PULSE_DATE_DMY_SLASH] = {'D', '/', 4, 1, 0, "DD/MM/YYYY"},
    [PULSE_DATE_MDY_SLASH] = {'M', '/', 4, 1, 0, "MM/DD/YYYY"},
    [PULSE_DATE_DMY_DOT] = {'D', '.', 4, 1, 0, "DD.MM.YYYY"},
    [PULSE_DATE_DMY_DASH_YY] = {'D', '-', 2, 1, 0, "DD-MM-YY"},
    [PULSE_DATE_MDY_DASH_YY] = {'M', '-', 2, 1, 0, "MM-DD-YY"},
    [PULSE_DATE_DMY_SLASH_YY] = {'D', '/', 2, 1, 0, "DD/MM/YY"},
    [PULSE_DATE_MDY_SLASH_YY] = {'M', '/', 2, 1, 0, "MM/DD/YY"},
    [PULSE_DATE_DMY_DOT_YY] = {'D', '.', 2, 1, 0, "DD.MM.YY"},
    [PULSE_DATE_MDY_SLASH_TIME] = {'M', '/', 4, 1, 2, "M/D/YYYY H:MM"},
    [PULSE_DATE_DMY_SLASH_TIME] = {'D', '/', 4, 1, 2, "D/M/YYYY H:MM"},
    [PULSE_DATE_DMY_DOT_TIME] = {'D', '.', 4, 1, 2, "D.M.YYYY H:MM"},
};

const char *pulse_date_format_name(pulse_date_format_t fmt)
{
    return (unsigned)fmt < PULSE_DATE_FORMAT_COUNT ? fmts[fmt].name : "?";
}

int pulse_date_format_has_time(pulse_date_format_t fmt)
{
    return (unsigned)fmt < PULSE_DATE_FORMAT_COUNT && fmts[fmt].tm != 0;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static inline int days_in_month(int y, int m)
{
    static const unsigned char dim[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return 29;
    return dim[m];
}

/* Reads min..max digits (greedy) at *p. */
static inline int rd_num(const char **p, const char *e, int min, int max, int *out)
{
    const char *q = *p;
    int v = 0, k = 0;
    while (k < max && q < e && IS_DIGIT(*q)) {
        v = v * 10 + (*q++ - '0');
        k++;
    }
    if (k < min)
        return -1;
    *p = q;
    *out = v;
    return 0;
}

static inline int rd_char(const char **p, const char *e, char c)
{
    if (*p < e && **p == c) {
        (*p)++;
        return 0;
    }
    return -1;
}

/* "T10:00[:00[.123]][Z|+01:00]" after an ISO date; *secs gets local seconds minus the offset. */
static int iso_time(const char **pp, const char *e, int64_t *secs)
{
    const char *p = *pp;
    int h, mi, s = 0;
    if (p >= e || (*p != 'T' && *p != 't' && *p != ' '))
        return -1;
    p++;
    if (rd_num(&p, e, 2, 2, &h) || rd_char(&p, e, ':') || rd_num(&p, e, 2, 2, &mi))
        return -1;
    if (p < e && *p == ':') {
        p++;
        if (rd_num(&p, e, 2, 2, &s))
            return -1;
        if (p < e && (*p == '.' || *p == ',')) {
            int k = 0;
            for (p++; p < e && IS_DIGIT(*p) && k <= 9; p++)
                k++;
            if (k < 1 || k > 9)
                return -1;
        }
    }
    if (h > 23 || mi > 59 || s > 59)
        return -1;
    int64_t off = 0;
    if (p < e && *p == ' ' && p + 1 < e && (p[1] == '+' || p[1] == '-'))
        p++;
    if (p < e && (*p == 'Z' || *p == 'z')) {
        p++;
    } else if (p < e && (*p == '+' || *p == '-')) {
        int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
        if (rd_num(&p, e, 2, 2, &oh))
            return -1;
        if (p < e && *p == ':') {
            p++;
            if (rd_num(&p, e, 2, 2, &om))
                return -1;
        } else if (p < e && IS_DIGIT(*p)) {
            if (rd_num(&p, e, 2, 2, &om))
                return -1;
        }
        if (oh > 23 || om > 59)
            return -1;
        off = sign * (oh * 3600 + om * 60);
    }
    *secs = (int64_t)h * 3600 + mi * 60 + s - off;
    *pp = p;
    return 0;
}

/* " 8:26[:00][ AM|PM]" after a D/M/Y date. */
static int plain_time(const char **pp, const char *e, int64_t *secs)
{
    const char *p = *pp;
    int h, mi, s = 0;
    if (p >= e || *p != ' ')
        return -1;
    while (p < e && *p == ' ')
        p++;
    if (rd_num(&p, e, 1, 2, &h) || rd_char(&p, e, ':') || rd_num(&p, e, 2, 2, &mi))
        return -1;
    if (p < e && *p == ':') {
        p++;
        if (rd_num(&p, e, 2, 2, &s))
            return -1;
    }
    const char *q = p;
    while (q < e && *q == ' ')
        q++;
    if (e - q == 2 && (q[1] == 'M' || q[1] == 'm') && (lower(q[0]) == 'a' || lower(q[0]) == 'p')) {
        if (h < 1 || h > 12)
            return -1;
        h = (h % 12) + (lower(q[0]) == 'p' ? 12 : 0);
        p = e;
    }
    if (h > 23 || mi > 59 || s > 59)
        return -1;
    *secs = (int64_t)h * 3600 + mi * 60 + s;
    *pp = p;
    return 0;
}

/* p..e trimmed; fmt valid and not NONE. */
static int parse_fmt(const char *p, const char *e, pulse_date_format_t fmt, int64_t *epoch, int *has_time)
{
    const fmt_desc_t *d = &fmts[fmt];
    int y, m, dd, a, b;
    if (d->order == 'C') {
        if (e - p != 8)
            return -1;
        for (int i = 0; i < 8; i++)
            if (!IS_DIGIT(p[i]))
                return -1;
        y = (p[0] - '0') * 1000 + (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
        m = (p[4] - '0') * 10 + (p[5] - '0');
        dd = (p[6] - '0') * 10 + (p[7] - '0');
        if (y < 1900 || y > 2199)
            return -1;
        p = e;
    } else if (d->order == 'Y') {
        if (rd_num(&p, e, 4, 4, &y) || rd_char(&p, e, d->sep) || rd_num(&p, e, d->dmn, 2, &m) || rd_char(&p, e, d->sep) ||
            rd_num(&p, e, d->dmn, 2, &dd))
            return -1;
    } else {
        if (rd_num(&p, e, d->dmn, 2, &a) || rd_char(&p, e, d->sep) || rd_num(&p, e, d->dmn, 2, &b) || rd_char(&p, e, d->sep) ||
            rd_num(&p, e, d->yd, d->yd, &y))
            return -1;
        if (d->yd == 2)
            y += y < 69 ? 2000 : 1900;
        if (d->order == 'D') {
            dd = a;
            m = b;
        } else {
            m = a;
            dd = b;
        }
    }
    if (p < e && IS_DIGIT(*p))
        return -1;
    if (m < 1 || m > 12 || dd < 1 || dd > days_in_month(y, m))
        return -1;
    int64_t secs = 0;
    int timed = 0;
    if (p < e) {
        if (d->tm == 0 || (d->tm == 1 ? iso_time(&p, e, &secs) : plain_time(&p, e, &secs)) != 0 || p != e)
            return -1;
        timed = 1;
    }
    if (epoch)
        *epoch = pulse_days_from_civil(y, m, dd) * 86400 + secs;
    if (has_time)
        *has_time = timed;
    return 0;
}

int pulse_date_parse(const char *s, size_t n, pulse_date_format_t fmt, int64_t *epoch_seconds_utc, int *has_time)
{
    if (fmt <= PULSE_DATE_NONE || fmt >= PULSE_DATE_FORMAT_COUNT || s == NULL)
        return -1;
    const char *p = s, *e = s + n;
    trim_ascii(&p, &e);
    return parse_fmt(p, e, fmt, epoch_seconds_utc, has_time);
}

int pulse_date_format_iso(int64_t epoch, int with_time, char *buf, size_t cap)
{
    /* floor division, so times before 1970 land on the right day */
    int64_t days = epoch / 86400, rem = epoch % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    if (days < -719528 || days > 2932896) /* 0000-01-01 .. 9999-12-31 */
        return -1;
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    size_t need = with_time ? 21 : 11;
    if (cap < need)
        return -1;
    int len;
    if (with_time)
        len = snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02dZ", (int)y, m, d, (int)(rem / 3600), (int)(rem / 60 % 60),
                       (int)(rem % 60));
    else
        len = snprintf(buf, cap, "%04d-%02d-%02d", (int)y, m, d);
    return len;
}

/* ---------------------------------------------------------------- numbers */

typedef struct {
    int is_int;    /* no decimal mark, exponent or currency, fits int64 */
    int lead_zero; /* "007" */
    int64_t ival;
    double dval;
} num_t;

/* Length of a space-like character at p: ' ', U+00A0, U+202F; 0 otherwise. */
static inline size_t space_at(const char *p, const char *e)
{
    if (p < e && *p == ' ')
        return 1;
    if (e - p >= 2 && (unsigned char)p[0] == 0xc2 && (unsigned char)p[1] == 0xa0)
        return 2;
    if (e - p >= 3 && (unsigned char)p[0] == 0xe2 && (unsigned char)p[1] == 0x80 && (unsigned char)p[2] == 0xaf)
        return 3;
    return 0;
}

static inline size_t space_before(const char *p, const char *e)
{
    if (e > p && e[-1] == ' ')
        return 1;
    if (e - p >= 2 && (unsigned char)e[-2] == 0xc2 && (unsigned char)e[-1] == 0xa0)
        return 2;
    if (e - p >= 3 && (unsigned char)e[-3] == 0xe2 && (unsigned char)e[-2] == 0x80 && (unsigned char)e[-1] == 0xaf)
        return 3;
    return 0;
}

static void trim_num(const char **p, const char **e)
{
    size_t l;
    trim_ascii(p, e);
    while ((l = space_at(*p, *e)) != 0)
        *p += l;
    while ((l = space_before(*p, *e)) != 0)
        *e -= l;
    trim_ascii(p, e);
}

/* Longer tokens first so "US$" is not read as "$" after "US". */
#define CUR(s)                                                                                                                     \
    {                                                                                                                              \
        s, sizeof(s) - 1                                                                                                           \
    }
static const struct {
    const char *s;
    size_t len;
} currencies[] = {CUR("US$"),      CUR("CA$"),          CUR("R$"),  CUR("A$"),  CUR("$"),   CUR("\xe2\x82\xac"), CUR("\xc2\xa3"),
                  CUR("\xc2\xa5"), CUR("\xe2\x82\xb9"), CUR("USD"), CUR("EUR"), CUR("GBP"), CUR("JPY"),          CUR("CHF"),
                  CUR("CAD"),      CUR("AUD"),          CUR("NZD"), CUR("SEK"), CUR("NOK"), CUR("DKK"),          CUR("PLN"),
                  CUR("CZK"),      CUR("HUF"),          CUR("INR"), CUR("CNY"), CUR("BRL"), CUR("MXN"),          CUR("ZAR"),
                  CUR("SGD"),      CUR("HKD"),          CUR("TRY")};
#define N_CURRENCIES (sizeof(currencies) / sizeof(currencies[0]))

static inline int is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static size_t currency_prefix(const char *p, const char *e)
{
    size_t n = (size_t)(e - p);
    for (size_t i = 0; i < N_CURRENCIES; i++) {
        size_t l = currencies[i].len;
        if (currencies[i].s[0] == *p && n >= l && memcmp(p, currencies[i].s, l) == 0 && !(l < n && is_alpha(p[l])))
            return l;
    }
    return 0;
}

static size_t currency_suffix(const char *p, const char *e)
{
    size_t n = (size_t)(e - p);
    for (size_t i = 0; i < N_CURRENCIES; i++) {
        size_t l = currencies[i].len;
        if (currencies[i].s[l - 1] == e[-1] && n >= l && memcmp(e - l, currencies[i].s, l) == 0 &&
            !(l < n && is_alpha(e[-(ptrdiff_t)l - 1])))
            return l;
    }
    return 0;
}

/* Length of a thousands separator at p (and its kind in *kind), 0 if none. */
static inline size_t group_sep(const char *p, const char *e, int dc, int *kind)
{
    char c = *p;
    if (c == (dc ? '.' : ',') || c == '\'') {
        *kind = (unsigned char)c;
        return 1;
    }
    size_t l = space_at(p, e);
    *kind = (int)l + 256; /* ' ', NBSP and NNBSP are different kinds: no mixing */
    return l;
}

#define NUM_MAX_DIGITS 40

static int parse_num(const char *s, size_t n, int dc, num_t *o)
{
    const char *p = s, *e = s + n;
    trim_num(&p, &e);
    if (p == e)
        return -1;
    int neg = 0, paren = 0, signed_ = 0, cur = 0;
    size_t l;
    if (*p == '(') {
        if (e[-1] != ')')
            return -1;
        paren = neg = 1;
        p++;
        e--;
        if (p >= e)
            return -1;
    }
    if (!IS_DIGIT(e[-1]) && (l = currency_suffix(p, e)) != 0) {
        e -= l;
        cur = 1;
        while ((l = space_before(p, e)) != 0)
            e -= l;
    }
    if (p < e && (*p == '-' || *p == '+')) {
        if (paren)
            return -1;
        neg = *p++ == '-';
        signed_ = 1;
    }
    if (!cur && p < e && !IS_DIGIT(*p) && (l = currency_prefix(p, e)) != 0) {
        p += l;
        cur = 1;
        while ((l = space_at(p, e)) != 0)
            p += l;
        if (!signed_ && p < e && (*p == '-' || *p == '+')) {
            if (paren)
                return -1;
            neg = *p++ == '-';
        }
    }
    if (p >= e)
        return -1;

    char digs[NUM_MAX_DIGITS + 1];
    int nd = 0, int_digits = 0, frac_digits = 0, exp10 = 0, grouped = 0, kind = 0, has_exp = 0, has_point = 0;
    unsigned glen = 0;
    uint64_t mant = 0;
    const char *first = p;
    const char dp = dc ? ',' : '.';
    while (p < e) {
        char c = *p;
        if (IS_DIGIT(c)) {
            if (nd > 0 || c != '0') {
                if (nd < NUM_MAX_DIGITS) {
                    if (nd < 19)
                        mant = mant * 10 + (uint64_t)(c - '0');
                    digs[nd++] = c;
                } else if (exp10 < 100000) { /* saturates: the value is inf long before */
                    exp10++;
                }
            }
            int_digits++;
            glen++;
            p++;
            continue;
        }
        int k;
        if ((l = group_sep(p, e, dc, &k)) == 0)
            break;
        if (int_digits == 0 || *first == '0')
            return -1;
        if (!grouped) {
            if (glen > 3)
                return -1;
            grouped = 1;
            kind = k;
        } else if (k != kind || glen != 3) {
            return -1;
        }
        if (p + l >= e || !IS_DIGIT(p[l]))
            return -1;
        glen = 0;
        p += l;
    }
    if (grouped && glen != 3)
        return -1;
    o->lead_zero = int_digits > 1 && *first == '0';
    if (p < e && *p == dp) {
        has_point = 1;
        for (p++; p < e && IS_DIGIT(*p); p++) {
            frac_digits++;
            if (nd == 0 && *p == '0') {
                if (exp10 > -100000) /* saturates: the value is 0 long before */
                    exp10--;
            } else if (nd < NUM_MAX_DIGITS) {
                if (nd < 19)
                    mant = mant * 10 + (uint64_t)(*p - '0');
                digs[nd++] = *p;
                exp10--;
            }
        }
        if (frac_digits == 0)
            return -1;
    }
    if (int_digits + frac_digits == 0)
        return -1;
    if (p < e && (*p == 'e' || *p == 'E')) {
        int esign = 1, ev, ek = 0;
        p++;
        if (p < e && (*p == '-' || *p == '+'))
            esign = *p++ == '-' ? -1 : 1;
        for (ev = 0; p < e && IS_DIGIT(*p); p++, ek++)
            if (ek < 4)
                ev = ev * 10 + (*p - '0'); /* more digits are refused below */
        if (ek < 1 || ek > 4)
            return -1;
        exp10 += esign * ev;
        has_exp = 1;
    }
    if (p != e)
        return -1;

    o->is_int = 0;
    if (!has_point && !has_exp && !cur && nd <= 19 && exp10 == 0) {
        if (!neg && mant <= (uint64_t)INT64_MAX) {
            o->is_int = 1;
            o->ival = (int64_t)mant;
        } else if (neg && mant <= (uint64_t)INT64_MAX + 1) {
            o->is_int = 1;
            o->ival = mant == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mant;
        }
    }
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    double v;
    if (nd == 0) {
        v = 0.0;
    } else if (nd <= 15 && exp10 >= -22 && exp10 <= 22) {
        /* exact mantissa and power of ten: one correctly rounded operation (Clinger's fast path) */
        v = exp10 >= 0 ? (double)mant * p10[exp10] : (double)mant / p10[-exp10];
    } else {
        /* digits and exponent only, no decimal mark: strtod's locale cannot matter */
        char buf[NUM_MAX_DIGITS + 16];
        memcpy(buf, digs, (size_t)nd);
        snprintf(buf + nd, sizeof(buf) - (size_t)nd, "e%d", exp10);
        errno = 0;
        v = strtod(buf, NULL);
        if (isinf(v))
            return -1;
    }
    o->dval = neg ? -v : v;
    return 0;
}

int pulse_number_parse(const char *s, size_t n, int decimal_comma, double *out)
{
    num_t r;
    if (s == NULL || parse_num(s, n, decimal_comma, &r) != 0)
        return -1;
    if (out)
        *out = r.dval;
    return 0;
}

int pulse_int_parse(const char *s, size_t n, int decimal_comma, int64_t *out)
{
    num_t r;
    if (s == NULL || parse_num(s, n, decimal_comma, &r) != 0 || !r.is_int)
        return -1;
    if (out)
        *out = r.ival;
    return 0;
}

/* ---------------------------------------------------------------- booleans and nulls */

/* 1: true, 0: false, -1: not a boolean; *word is set when it was a word (not 0/1). */
static int bool_value(const char *p, size_t n, int *word)
{
    *word = 1;
    switch (n) {
    case 1:
        if (*p == '1' || *p == '0') {
            *word = 0;
            return *p == '1';
        }
        if (lower(*p) == 'y' || lower(*p) == 't')
            return 1;
        if (lower(*p) == 'n' || lower(*p) == 'f')
            return 0;
        return -1;
    case 2:
        return ci_eq(p, n, "no") ? 0 : -1;
    case 3:
        return ci_eq(p, n, "yes") ? 1 : -1;
    case 4:
        return ci_eq(p, n, "true") ? 1 : -1;
    case 5:
        return ci_eq(p, n, "false") ? 0 : -1;
    default:
        return -1;
    }
}

int pulse_bool_parse(const char *s, size_t n, int *out)
{
    if (s == NULL)
        return -1;
    const char *p = s, *e = s + n;
    trim_ascii(&p, &e);
    int word, v = bool_value(p, (size_t)(e - p), &word);
    if (v < 0)
        return -1;
    if (out)
        *out = v;
    return 0;
}

static inline int null_like(const char *p, size_t n)
{
    switch (n) {
    case 0:
        return 1;
    case 1:
        return *p == '-';
    case 2:
        return ci_eq(p, n, "na");
    case 3:
        return ci_eq(p, n, "n/a");
    case 4:
        return ci_eq(p, n, "null") || ci_eq(p, n, "#n/a");
    default:
        return 0;
    }
}

int pulse_is_null_like(const char *s, size_t n)
{
    if (s == NULL)
        return 1;
    const char *p = s, *e = s + n;
    trim_ascii(&p, &e);
    return null_like(p, (size_t)(e - p));
}

/* ---------------------------------------------------------------- column inference */

#define BIT(f) (1u << (f))

/* Formats a value can possibly be in, from its leading digit count and the character after them. */
static unsigned date_candidates(const char *p, const char *e)
{
    const char *q = p;
    while (q < e && IS_DIGIT(*q) && q - p < 9)
        q++;
    size_t k = (size_t)(q - p);
    if (q == e)
        return k == 8 ? BIT(PULSE_DATE_YMD_COMPACT) : 0;
    switch (*q) {
    case '-':
        if (k == 4)
            return BIT(PULSE_DATE_ISO) | BIT(PULSE_DATE_ISO_DATETIME);
        if (k == 1 || k == 2)
            return BIT(PULSE_DATE_DMY_DASH) | BIT(PULSE_DATE_MDY_DASH) | BIT(PULSE_DATE_DMY_DASH_YY) | BIT(PULSE_DATE_MDY_DASH_YY);
        return 0;
    case '/':
        if (k == 4)
            return BIT(PULSE_DATE_YMD_SLASH);
        if (k == 1 || k == 2)
            return BIT(PULSE_DATE_DMY_SLASH) | BIT(PULSE_DATE_MDY_SLASH) | BIT(PULSE_DATE_DMY_SLASH_YY) |
                   BIT(PULSE_DATE_MDY_SLASH_YY) | BIT(PULSE_DATE_MDY_SLASH_TIME) | BIT(PULSE_DATE_DMY_SLASH_TIME);
        return 0;
    case '.':
        if (k == 1 || k == 2)
            return BIT(PULSE_DATE_DMY_DOT) | BIT(PULSE_DATE_DMY_DOT_YY) | BIT(PULSE_DATE_DMY_DOT_TIME);
        return 0;
    default:
        return 0;
    }
}

void pulse_column_init(pulse_column_stats_t *st)
{
    memset(st, 0, sizeof(*st));
}

void pulse_column_merge(pulse_column_stats_t *dst, const pulse_column_stats_t *src)
{
    uint64_t *d = (uint64_t *)dst;
    const uint64_t *s = (const uint64_t *)src;
    for (size_t i = 0; i < sizeof(*dst) / sizeof(uint64_t); i++)
        d[i] += s[i];
}

void pulse_column_observe(pulse_column_stats_t *st, const char *s, size_t n)
{
    const char *p = s, *e = s + n;
    trim_ascii(&p, &e);
    size_t len = (size_t)(e - p);
    if (len <= 4 && null_like(p, len)) {
        st->nulls++;
        return;
    }
    st->values++;

    /* fast path: [-]digits, up to 18 of them (always in int64 range) */
    size_t i = *p == '-';
    const char *q = p + i;
    while (q < e && IS_DIGIT(*q))
        q++;
    if (q == e && len - i >= 1 && len - i <= 18) {
        st->int_ok[0]++;
        st->int_ok[1]++;
        st->dec_ok[0]++;
        st->dec_ok[1]++;
        if (len - i > 1 && p[i] == '0') {
            st->int_lead_zero[0]++;
            st->int_lead_zero[1]++;
        }
        if (len == 1 && (*p == '0' || *p == '1'))
            st->bool_ok++;
        else if (len == 8 && parse_fmt(p, e, PULSE_DATE_YMD_COMPACT, NULL, NULL) == 0)
            st->date_ok[PULSE_DATE_YMD_COMPACT]++;
        return;
    }

    num_t r;
    int ok0 = parse_num(p, len, 0, &r) == 0;
    if (ok0) {
        st->dec_ok[0]++;
        if (r.is_int) {
            st->int_ok[0]++;
            st->int_lead_zero[0] += (uint64_t)r.lead_zero;
        }
    }
    /* the decimal comma only changes the reading of values containing ',' or '.' */
    if (memchr(p, ',', len) == NULL && memchr(p, '.', len) == NULL) {
        if (ok0) {
            st->dec_ok[1]++;
            if (r.is_int) {
                st->int_ok[1]++;
                st->int_lead_zero[1] += (uint64_t)r.lead_zero;
            }
        }
    } else if (parse_num(p, len, 1, &r) == 0) {
        st->dec_ok[1]++;
        if (r.is_int) {
            st->int_ok[1]++;
            st->int_lead_zero[1] += (uint64_t)r.lead_zero;
        }
    }

    int word;
    if (len <= 5 && bool_value(p, len, &word) >= 0) {
        st->bool_ok++;
        st->bool_words += (uint64_t)word;
    }

    unsigned cand = IS_DIGIT(*p) ? date_candidates(p, e) : 0;
    int timed = 0;
    while (cand) {
        int f = __builtin_ctz(cand);
        cand &= cand - 1;
        int t;
        if (parse_fmt(p, e, (pulse_date_format_t)f, NULL, &t) == 0) {
            st->date_ok[f]++;
            timed |= t;
        }
    }
    st->date_timed += (uint64_t)timed;
}

const char *pulse_column_kind_name(pulse_column_kind_t kind)
{
    switch (kind) {
    case PULSE_COL_AUTO:
        return "auto";
    case PULSE_COL_EMPTY:
        return "empty";
    case PULSE_COL_BOOLEAN:
        return "boolean";
    case PULSE_COL_INTEGER:
        return "integer";
    case PULSE_COL_DECIMAL:
        return "decimal";
    case PULSE_COL_DATE:
        return "date";
    case PULSE_COL_DATETIME:
        return "datetime";
    case PULSE_COL_TEXT:
        return "text";
    }
    return "?";
}

/* Preference order among surviving date formats; pairs that must be told apart sit together. */
static const pulse_date_format_t date_order[] = {
    PULSE_DATE_ISO,        PULSE_DATE_ISO_DATETIME,   PULSE_DATE_YMD_COMPACT,    PULSE_DATE_YMD_SLASH,
    PULSE_DATE_DMY_DOT,    PULSE_DATE_DMY_DOT_YY,     PULSE_DATE_DMY_DOT_TIME,   PULSE_DATE_DMY_SLASH,
    PULSE_DATE_MDY_SLASH,  PULSE_DATE_DMY_SLASH_TIME, PULSE_DATE_MDY_SLASH_TIME, PULSE_DATE_DMY_DASH,
    PULSE_DATE_MDY_DASH,   PULSE_DATE_DMY_SLASH_YY,   PULSE_DATE_MDY_SLASH_YY,   PULSE_DATE_DMY_DASH_YY,
    PULSE_DATE_MDY_DASH_YY};

/* The MM/DD twin of a DD/MM format (and back); NONE for formats without one. */
static pulse_date_format_t date_twin(pulse_date_format_t f)
{
    switch (f) {
    case PULSE_DATE_DMY_DASH:
        return PULSE_DATE_MDY_DASH;
    case PULSE_DATE_MDY_DASH:
        return PULSE_DATE_DMY_DASH;
    case PULSE_DATE_DMY_SLASH:
        return PULSE_DATE_MDY_SLASH;
    case PULSE_DATE_MDY_SLASH:
        return PULSE_DATE_DMY_SLASH;
    case PULSE_DATE_DMY_DASH_YY:
        return PULSE_DATE_MDY_DASH_YY;
    case PULSE_DATE_MDY_DASH_YY:
        return PULSE_DATE_DMY_DASH_YY;
    case PULSE_DATE_DMY_SLASH_YY:
        return PULSE_DATE_MDY_SLASH_YY;
    case PULSE_DATE_MDY_SLASH_YY:
        return PULSE_DATE_DMY_SLASH_YY;
    case PULSE_DATE_DMY_SLASH_TIME:
        return PULSE_DATE_MDY_SLASH_TIME;
    case PULSE_DATE_MDY_SLASH_TIME:
        return PULSE_DATE_DMY_SLASH_TIME;
    default:
        return PULSE_DATE_NONE;
    }
}

static int is_dmy(pulse_date_format_t f)
{
    return fmts[f].order == 'D';
}

/* The date format most values fit (preference order on ties); NONE if no value fits any. */
static pulse_date_format_t best_date(const pulse_column_stats_t *st)
{
    pulse_date_format_t best = PULSE_DATE_NONE;
    for (size_t i = 0; i < sizeof(date_order) / sizeof(date_order[0]); i++) {
        pulse_date_format_t f = date_order[i];
        if (st->date_ok[f] > (best ? st->date_ok[best] : 0))
            best = f;
    }
    return best;
}

static void set_date(const pulse_column_stats_t *st, pulse_date_format_t f, pulse_column_type_t *out)
{
    out->type = fmts[f].tm ? PULSE_COL_DATETIME : PULSE_COL_DATE;
    out->date_format = f;
    out->failures = st->values - st->date_ok[f];
    pulse_date_format_t twin = date_twin(f);
    if (twin != PULSE_DATE_NONE && st->date_ok[twin] == st->date_ok[f] && st->values > 0) {
        out->ambiguous = 1;
        out->date_format = is_dmy(f) ? f : twin;
        out->alt_format = is_dmy(f) ? twin : f;
        snprintf(out->reason, sizeof(out->reason), "%s both %s and %s: choose one",
                 out->failures == 0 ? "all values fit" : "as many values fit", fmts[out->date_format].name,
                 fmts[out->alt_format].name);
    }
}

void pulse_column_decide(const pulse_column_stats_t *st, const pulse_type_options_t *opt, pulse_column_type_t *out)
{
    static const pulse_type_options_t defaults = {0, PULSE_COL_AUTO, PULSE_DATE_NONE};
    if (opt == NULL)
        opt = &defaults;
    const int m = opt->decimal_comma ? 1 : 0;
    const uint64_t v = st->values;
    memset(out, 0, sizeof(*out));
    out->values = v;
    out->nulls = st->nulls;

    pulse_date_format_t ff = opt->force_date_format;
    if (ff > PULSE_DATE_NONE && ff < PULSE_DATE_FORMAT_COUNT &&
        (opt->force_type == PULSE_COL_AUTO || opt->force_type == PULSE_COL_DATE || opt->force_type == PULSE_COL_DATETIME)) {
        out->type = fmts[ff].tm ? PULSE_COL_DATETIME : PULSE_COL_DATE;
        out->date_format = ff;
        out->failures = v - st->date_ok[ff];
        return;
    }
    switch (opt->force_type) {
    case PULSE_COL_AUTO:
    case PULSE_COL_EMPTY:
        break;
    case PULSE_COL_BOOLEAN:
        out->type = PULSE_COL_BOOLEAN;
        out->failures = v - st->bool_ok;
        return;
    case PULSE_COL_INTEGER:
        out->type = PULSE_COL_INTEGER;
        out->failures = v - st->int_ok[m];
        out->leading_zeros = st->int_lead_zero[m];
        out->looks_boolean = v > 0 && st->bool_ok == v && st->bool_words == 0;
        return;
    case PULSE_COL_DECIMAL:
        out->type = PULSE_COL_DECIMAL;
        out->failures = v - st->dec_ok[m];
        return;
    case PULSE_COL_DATE:
    case PULSE_COL_DATETIME: {
        pulse_date_format_t f = best_date(st);
        if (f == PULSE_DATE_NONE) {
            out->type = opt->force_type;
            out->failures = v;
            snprintf(out->reason, sizeof(out->reason), "no value is a date in a known format");
        } else {
            set_date(st, f, out);
        }
        return;
    }
    case PULSE_COL_TEXT:
        out->type = PULSE_COL_TEXT;
        return;
    }

    if (v == 0) {
        out->type = PULSE_COL_EMPTY;
        return;
    }
    if (st->bool_ok == v && st->bool_words > 0) {
        out->type = PULSE_COL_BOOLEAN;
        return;
    }
    if (st->int_ok[m] == v) {
        if (st->date_ok[PULSE_DATE_YMD_COMPACT] == v) {
            out->type = PULSE_COL_DATE;
            out->date_format = PULSE_DATE_YMD_COMPACT;
            return;
        }
        out->type = PULSE_COL_INTEGER;
        out->leading_zeros = st->int_lead_zero[m];
        out->looks_boolean = st->bool_ok == v;
        return;
    }
    if (st->dec_ok[m] == v) {
        out->type = PULSE_COL_DECIMAL;
        return;
    }
    pulse_date_format_t f = best_date(st);
    if (f != PULSE_DATE_NONE && st->date_ok[f] == v) {
        set_date(st, f, out);
        return;
    }

    /* text; say which candidate came closest */
    out->type = PULSE_COL_TEXT;
    uint64_t best = 0;
    if (st->bool_ok > best && st->bool_words > 0) {
        best = st->bool_ok;
        out->near_type = PULSE_COL_BOOLEAN;
    }
    if (st->int_ok[m] > best) {
        best = st->int_ok[m];
        out->near_type = PULSE_COL_INTEGER;
    }
    if (st->dec_ok[m] > best) {
        best = st->dec_ok[m];
        out->near_type = PULSE_COL_DECIMAL;
    }
    if (f != PULSE_DATE_NONE && st->date_ok[f] > best) {
        best = st->date_ok[f];
        out->near_type = fmts[f].tm ? PULSE_COL_DATETIME : PULSE_COL_DATE;
        out->near_date_format = f;
    }
    if (best > 0) {
        out->near_failures = v - best;
        if (out->near_date_format != PULSE_DATE_NONE)
            snprintf(out->reason, sizeof(out->reason), "%llu of %llu values are not %s dates", (unsigned long long)(v - best),
                     (unsigned long long)v, fmts[f].name);
        else
            snprintf(out->reason, sizeof(out->reason), "%llu of %llu values are not %s", (unsigned long long)(v - best),
                     (unsigned long long)v, pulse_column_kind_name(out->near_type));
    }
}
