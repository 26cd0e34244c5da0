/* Value types of uploaded columns: strict parsers for dates, numbers and booleans, and per-column
 * inference fed value by value (the import preview's "detected types and date format"). No locale,
 * no strptime/strtod on the hot path: deterministic and cheap enough for millions of values.
 * Refuses what it cannot read unambiguously: a DD/MM vs MM/DD tie is reported, never guessed. */
#ifndef PULSE_INGEST_TYPES_H
#define PULSE_INGEST_TYPES_H

#include <stddef.h>
#include <stdint.h>

/* Candidate date formats. D and M fields take 1 or 2 digits except in the ISO forms; two-digit
 * years pivot like POSIX %y: 00-68 -> 2000-2068, 69-99 -> 1969-1999. Times without a zone are
 * taken as UTC; fractional seconds are read and dropped (epoch seconds). Hours 0-23 ("24:00" is
 * refused), seconds 0-59 (no leap second). */
typedef enum pulse_date_format_t {
    PULSE_DATE_NONE = 0,
    PULSE_DATE_ISO,            /* YYYY-MM-DD */
    PULSE_DATE_ISO_DATETIME,   /* YYYY-MM-DD[(T|t| )HH:MM[:SS[(.|,)f{1,9}]][ ][Z|z|±HH|±HHMM|±HH:MM]]; bare date too */
    PULSE_DATE_YMD_COMPACT,    /* YYYYMMDD, years 1900-2199 only (so 8-digit ids are not dates) */
    PULSE_DATE_YMD_SLASH,      /* YYYY/MM/DD */
    PULSE_DATE_DMY_DASH,       /* DD-MM-YYYY */
    PULSE_DATE_MDY_DASH,       /* MM-DD-YYYY */
    PULSE_DATE_DMY_SLASH,      /* DD/MM/YYYY */
    PULSE_DATE_MDY_SLASH,      /* MM/DD/YYYY */
    PULSE_DATE_DMY_DOT,        /* DD.MM.YYYY */
    PULSE_DATE_DMY_DASH_YY,    /* DD-MM-YY */
    PULSE_DATE_MDY_DASH_YY,    /* MM-DD-YY */
    PULSE_DATE_DMY_SLASH_YY,   /* DD/MM/YY */
    PULSE_DATE_MDY_SLASH_YY,   /* MM/DD/YY */
    PULSE_DATE_DMY_DOT_YY,     /* DD.MM.YY */
    PULSE_DATE_MDY_SLASH_TIME, /* M/D/YYYY[ H:MM[:SS][ AM|PM]]; bare date too */
    PULSE_DATE_DMY_SLASH_TIME, /* D/M/YYYY[ H:MM[:SS][ AM|PM]]; bare date too */
    PULSE_DATE_DMY_DOT_TIME,   /* D.M.YYYY[ H:MM[:SS]]; bare date too */
    PULSE_DATE_FORMAT_COUNT
} pulse_date_format_t;

/* Parses s[0..n) (surrounding ASCII whitespace ignored) in exactly fmt: a real calendar date,
 * valid time, nothing left over. Returns 0 and sets *epoch_seconds_utc and *has_time (1 when the
 * value carried a time of day; either pointer may be NULL), or -1. */
int pulse_date_parse(const char *s, size_t n, pulse_date_format_t fmt, int64_t *epoch_seconds_utc, int *has_time);
/* Writes epoch as "YYYY-MM-DD" or, with with_time, "YYYY-MM-DDTHH:MM:SSZ" plus a NUL into buf.
 * Returns the length, or -1 if cap is too small or the year is outside 0000-9999. */
int pulse_date_format_iso(int64_t epoch_seconds_utc, int with_time, char *buf, size_t cap);
/* "DD/MM/YYYY", "YYYY-MM-DD", ...: the name shown in previews; "?" for an unknown value. */
const char *pulse_date_format_name(pulse_date_format_t fmt);
/* 1 for the formats that carry (or may carry) a time of day. */
int pulse_date_format_has_time(pulse_date_format_t fmt);

/* Numbers, strict whole-string: optional sign or parentheses for a negative; optional currency
 * symbol or code before or after ($ € £ ¥ ₹ US$ R$ CA$ A$ USD EUR GBP JPY CHF ...; one only, spaces
 * allowed between); digits with optional thousands separators in consistent groups of three (one
 * kind per value: ',' ' ' U+00A0 U+202F or '\'' — '.' instead of ',' when decimal_comma); decimal
 * mark '.' (or ',' when decimal_comma) followed by at least one digit; optional exponent. Refuses
 * "1,23,456", "12.34.56", "--5", "5.", and anything that overflows a double ("1e309").
 * Returns 0 and sets *out (may be NULL), or -1. */
int pulse_number_parse(const char *s, size_t n, int decimal_comma, double *out);
/* The same grammar restricted to integers: no decimal mark, exponent or currency; int64 range.
 * Thousands separators are allowed ("1,234" is 1234 unless decimal_comma). */
int pulse_int_parse(const char *s, size_t n, int decimal_comma, int64_t *out);
/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static inline int64_t pulse_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Fast paths for the per-value loops of the file reader and the importer (tens of millions of
 * values): the common shapes are read inline, everything else (and every value they would refuse)
 * goes to the full parser, so the results are those of the full parser, always. */

/* 1 when the 8 bytes at p are all ASCII digits: high nibbles all 3, and adding 6 to each low
 * nibble carries out of none (no carry crosses a byte: 0x3F + 1 stays below 0x80). */
static inline int pulse_digits8(const char *p)
{
    uint64_t x;
    __builtin_memcpy(&x, p, 8);
    const uint64_t hi = UINT64_C(0xF0F0F0F0F0F0F0F0), threes = UINT64_C(0x3030303030303030);
    return (x & hi) == threes && ((x + UINT64_C(0x0606060606060606)) & hi) == threes;
}

/* pulse_date_parse(s, n, fmt, epoch, NULL) with YYYY-MM-DD (the ISO formats, no time) and
 * YYYYMMDD inline. */
static inline int pulse_date_parse_fast(const char *s, size_t n, pulse_date_format_t fmt, int64_t *epoch)
{
    char d[8];
    if (n == 10 && (fmt == PULSE_DATE_ISO || fmt == PULSE_DATE_ISO_DATETIME) && s[4] == '-' && s[7] == '-') {
        __builtin_memcpy(d, s, 4);
        __builtin_memcpy(d + 4, s + 5, 2);
        __builtin_memcpy(d + 6, s + 8, 2);
    } else if (n == 8 && fmt == PULSE_DATE_YMD_COMPACT) {
        __builtin_memcpy(d, s, 8);
    } else {
        return pulse_date_parse(s, n, fmt, epoch, NULL);
    }
    if (!pulse_digits8(d))
        return pulse_date_parse(s, n, fmt, epoch, NULL);
    int y = (d[0] - '0') * 1000 + (d[1] - '0') * 100 + (d[2] - '0') * 10 + (d[3] - '0');
    int m = (d[4] - '0') * 10 + (d[5] - '0'), dd = (d[6] - '0') * 10 + (d[7] - '0');
    static const unsigned char dim[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    if ((fmt == PULSE_DATE_YMD_COMPACT && (y < 1900 || y > 2199)) || m < 1 || m > 12 || dd < 1 || dd > dim[m] + (m == 2 && leap))
        return pulse_date_parse(s, n, fmt, epoch, NULL); /* refused there too; one place says so */
    if (epoch)
        *epoch = pulse_days_from_civil(y, m, dd) * 86400;
    return 0;
}

/* pulse_number_parse with plain [-]digits[(.|,)digits] inline: at most 19 digits whose integer
 * (the digits without the mark) is at most 2^53, so it and the power of ten are exact doubles and
 * the one division is correctly rounded, as the full parser's result is. */
static inline int pulse_number_parse_fast(const char *s, size_t n, int decimal_comma, double *out)
{
    static const double p10[20] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,
                                   1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19};
    const char *p = s, *e = s + n;
    int neg = p < e && *p == '-';
    p += neg;
    const char *int0 = p, *lim = e - p > 19 ? p + 19 : e; /* at most 19 digits in all */
    uint64_t v = 0;
    while (p < lim && (unsigned)(*p - '0') < 10u)
        v = v * 10 + (uint64_t)(*p++ - '0');
    size_t nint = (size_t)(p - int0), nfrac = 0;
    if (p < e && *p == (decimal_comma ? ',' : '.')) {
        const char *frac0 = ++p;
        lim = (size_t)(e - p) > 19 - nint ? p + (19 - nint) : e;
        while (p < lim && (unsigned)(*p - '0') < 10u)
            v = v * 10 + (uint64_t)(*p++ - '0');
        nfrac = (size_t)(p - frac0);
        if (nfrac == 0)
            return pulse_number_parse(s, n, decimal_comma, out);
    }
    if (p != e || nint + nfrac == 0 || v > (UINT64_C(1) << 53))
        return pulse_number_parse(s, n, decimal_comma, out);
    double x = (double)v / p10[nfrac];
    if (out)
        *out = neg ? -x : x;
    return 0;
}

/* yes/no, y/n, true/false, t/f (any case), 1/0. Returns 0 and sets *out to 1/0 (may be NULL), or -1. */
int pulse_bool_parse(const char *s, size_t n, int *out);
/* 1 for values that mean "no value": empty or blank, NA, N/A, #N/A, null (any case), "-". */
int pulse_is_null_like(const char *s, size_t n);

typedef enum pulse_column_kind_t {
    PULSE_COL_AUTO = 0, /* in options only: infer */
    PULSE_COL_EMPTY,    /* no non-null value */
    PULSE_COL_BOOLEAN,
    PULSE_COL_INTEGER,
    PULSE_COL_DECIMAL,
    PULSE_COL_DATE,
    PULSE_COL_DATETIME,
    PULSE_COL_TEXT
} pulse_column_kind_t;

const char *pulse_column_kind_name(pulse_column_kind_t kind); /* "integer", "date", ... */

/* Counts of values that parse as each candidate, so a candidate survives when its count equals
 * `values`, and forcing a type reports exactly how many values fail it. Plain data: zero it (or
 * pulse_column_init) and feed values; stats of chunks observed on different threads add up
 * with pulse_column_merge. */
typedef struct pulse_column_stats_t {
    uint64_t values;           /* non-null values observed */
    uint64_t nulls;            /* null-like values (see pulse_is_null_like) */
    uint64_t int_ok[2];        /* [0]: '.' decimal mark, [1]: decimal comma */
    uint64_t dec_ok[2];        /* numbers (integers included) */
    uint64_t int_lead_zero[2]; /* integers written with leading zeros ("007"): codes more than numbers */
    uint64_t bool_ok;          /* yes/no/true/false/... or 0/1 */
    uint64_t bool_words;       /* of which yes/no/true/false/... */
    uint64_t date_ok[PULSE_DATE_FORMAT_COUNT];
    uint64_t date_timed; /* values that carried a time of day (in any format) */
} pulse_column_stats_t;

void pulse_column_init(pulse_column_stats_t *st);
void pulse_column_observe(pulse_column_stats_t *st, const char *s, size_t n);
void pulse_column_merge(pulse_column_stats_t *dst, const pulse_column_stats_t *src);

typedef struct pulse_type_options_t {
    int decimal_comma;                     /* ',' is the decimal mark (the file's separator is ';') */
    pulse_column_kind_t force_type;        /* PULSE_COL_AUTO to infer */
    pulse_date_format_t force_date_format; /* PULSE_DATE_NONE to infer; the user's answer to an ambiguity */
} pulse_type_options_t;

typedef struct pulse_column_type_t {
    pulse_column_kind_t type;
    pulse_date_format_t date_format; /* DATE/DATETIME; when ambiguous, the DD/MM candidate */
    pulse_date_format_t alt_format;  /* when ambiguous, the MM/DD candidate */
    int ambiguous;                   /* the preview must ask (reason says what) */
    int looks_boolean;               /* INTEGER whose values are all 0/1: reported as integer, the
                                        mapping may treat it as a label */
    uint64_t values, nulls;
    uint64_t failures;      /* non-null values that do not parse as the (forced) type */
    uint64_t leading_zeros; /* INTEGER: values like "007" (ids/codes: offer text) */
    /* TEXT: the candidate most values fit, for "12 of 5000 values are not DD/MM/YYYY dates". */
    pulse_column_kind_t near_type; /* PULSE_COL_AUTO when none */
    pulse_date_format_t near_date_format;
    uint64_t near_failures;
    char reason[160]; /* human-readable; empty when there is nothing to say */
} pulse_column_type_t;

/* Decides the column type from stats. opt may be NULL (infer, '.' decimal mark). Without forcing:
 * all null -> EMPTY; all boolean with at least one word -> BOOLEAN; all integers -> INTEGER (or
 * DATE when they are all valid YYYYMMDD); all numbers -> DECIMAL; all one date format -> DATE or
 * DATETIME (a bare-date format is preferred to its optional-time variant; ISO first); a DMY/MDY
 * pair both surviving -> ambiguous, type DATE/DATETIME with both candidates; otherwise TEXT.
 * Mixed columns are TEXT; forcing a type (or a date format) reports its failures instead. */
void pulse_column_decide(const pulse_column_stats_t *st, const pulse_type_options_t *opt, pulse_column_type_t *out);

#endif
