/* pulse gen: synthetic customers.csv + transactions.csv / events.csv with planted churn.
 * Every customer has three private random streams (profile, activity, attributes) seeded from
 * (seed, industry, index), so a customer's rows do not depend on any other customer. Rows are
 * formatted by hand into a 1 MiB buffer and written with fwrite; each file is written under a
 * temporary name and renamed when complete. */
#include "gen/gen.h"
#include "gen/rng.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#define STREAM_PROFILE 1
#define STREAM_ACTIVITY 2
#define STREAM_ATTRS 3
#define WRITER_CAP ((size_t)1 << 20)
#define ROW_MAX 512 /* longest row the formatters can produce, with margin */

/* ---- dates ---- */

int32_t pulse_gen_days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (unsigned)((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1);
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int32_t)(era * 146097 + (int)doe - 719468);
}

static void civil_from_days(int32_t z, int *y, int *m, int *d)
{
    z += 719468;
    int era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int yy = (int)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yy + (*m <= 2);
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dim[m - 1];
}

int pulse_gen_parse_date(const char *s, int32_t *day)
{
    if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return -1;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0');
    int d = (s[8] - '0') * 10 + (s[9] - '0');
    if (y < 1900 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        return -1;
    *day = pulse_gen_days_from_civil(y, m, d);
    return 0;
}

void pulse_gen_format_date(int32_t day, char out[11])
{
    int y, m, d;
    civil_from_days(day, &y, &m, &d);
    out[0] = (char)('0' + y / 1000 % 10);
    out[1] = (char)('0' + y / 100 % 10);
    out[2] = (char)('0' + y / 10 % 10);
    out[3] = (char)('0' + y % 10);
    out[4] = '-';
    out[5] = (char)('0' + m / 10);
    out[6] = (char)('0' + m % 10);
    out[7] = '-';
    out[8] = (char)('0' + d / 10);
    out[9] = (char)('0' + d % 10);
    out[10] = '\0';
}

int32_t pulse_gen_window_start(const pulse_gen_options_t *opt)
{
    int y, m, d;
    civil_from_days(opt->end_day, &y, &m, &d);
    int months = y * 12 + (m - 1) - opt->months;
    y = months / 12;
    m = months % 12 + 1;
    if (d > days_in_month(y, m))
        d = days_in_month(y, m);
    return pulse_gen_days_from_civil(y, m, d) + 1;
}

/* ---- options ---- */

static const char *const industry_names[] = {"ecommerce", "telecom", "banking"};

void pulse_gen_options_init(pulse_gen_options_t *opt)
{
    memset(opt, 0, sizeof(*opt));
    opt->industry = PULSE_GEN_ECOMMERCE;
    opt->customers = 1000;
    opt->seed = 1;
    opt->out_dir = ".";
    opt->months = 24;
    opt->end_day = pulse_gen_days_from_civil(2026, 6, 30);
    opt->churn_rate = 0.25;
}

int pulse_gen_parse_industry(const char *s, pulse_gen_industry_t *out)
{
    for (int i = 0; i < 3; i++)
        if (s != NULL && strcmp(s, industry_names[i]) == 0) {
            *out = (pulse_gen_industry_t)i;
            return 0;
        }
    return -1;
}

const char *pulse_gen_industry_name(pulse_gen_industry_t industry)
{
    return (unsigned)industry < 3 ? industry_names[industry] : "?";
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int pulse_gen_check(const pulse_gen_options_t *opt, char *err, size_t errlen)
{
    if ((unsigned)opt->industry > PULSE_GEN_BANKING)
        return fail(err, errlen, "unknown industry (use ecommerce, telecom or banking)");
    if (opt->customers < 1 || opt->customers > PULSE_GEN_MAX_CUSTOMERS)
        return fail(err, errlen, "customers must be between 1 and %llu", (unsigned long long)PULSE_GEN_MAX_CUSTOMERS);
    if (opt->months < PULSE_GEN_MIN_MONTHS || opt->months > PULSE_GEN_MAX_MONTHS)
        return fail(err, errlen, "months must be between %d and %d (churners need room to fade out and stay silent)",
                    PULSE_GEN_MIN_MONTHS, PULSE_GEN_MAX_MONTHS);
    if (!(opt->churn_rate >= 0.0 && opt->churn_rate <= 1.0))
        return fail(err, errlen, "churn rate must be between 0 and 1");
    if (opt->end_day < pulse_gen_days_from_civil(1900, 1, 1) + 31 * PULSE_GEN_MAX_MONTHS ||
        opt->end_day > pulse_gen_days_from_civil(9999, 12, 31))
        return fail(err, errlen, "end date out of range (1920-9999)");
    if (opt->out_dir == NULL || opt->out_dir[0] == '\0')
        return fail(err, errlen, "output directory is empty");
    return 0;
}

/* ---- planted profile ---- */

static double clampd(double x, double lo, double hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

void pulse_gen_customer(const pulse_gen_options_t *opt, uint64_t index, pulse_gen_customer_t *c)
{
    pulse_rng_t r;
    pulse_rng_seed(&r, opt->seed, STREAM_PROFILE * 16 + (uint64_t)opt->industry, index);
    int32_t start = pulse_gen_window_start(opt), end = opt->end_day;
    int32_t span = end - start + 1;
    memset(c, 0, sizeof(*c));
    c->index = index;
    c->churned = pulse_rng_uniform(&r) < opt->churn_rate;
    /* Signups lean towards the start of the window, so most customers have history. */
    double u = pulse_rng_uniform(&r);
    if (c->churned) {
        /* Active at least 90 days, churned at least 10 days before the end. */
        c->signup_day = start + (int32_t)((span - 180) * pow(u, 1.3));
        int32_t first = c->signup_day + 90, last = end - 10;
        c->churn_day = first + (int32_t)((last - first + 1) * pulse_rng_uniform(&r));
        if (c->churn_day > last)
            c->churn_day = last;
        c->decline_day = c->churn_day - 60 - (int32_t)pulse_rng_below(&r, 61);
    } else {
        c->signup_day = start + (int32_t)((span - 30) * pow(u, 1.6));
        pulse_rng_uniform(&r); /* keep the draw count equal for both kinds */
        pulse_rng_below(&r, 61);
    }
    switch (opt->industry) {
    case PULSE_GEN_ECOMMERCE:
        c->interval = clampd(pulse_rng_lognormal(&r, 28.0, 0.75), 2.0, 90.0);
        c->level = clampd(pulse_rng_lognormal(&r, 38.0, 0.55), 5.0, 600.0);
        break;
    case PULSE_GEN_TELECOM:
        c->interval = clampd(pulse_rng_lognormal(&r, 4.0, 0.5), 1.0, 20.0);
        c->level = clampd(pulse_rng_lognormal(&r, 1.0, 0.4), 0.3, 4.0);
        break;
    case PULSE_GEN_BANKING:
        c->interval = clampd(pulse_rng_lognormal(&r, 4.0, 0.6), 0.7, 25.0);
        c->level = clampd(pulse_rng_lognormal(&r, 1.0, 0.7), 0.1, 20.0);
        break;
    }
}

/* 1 while active; churners fall linearly from 1 to 0.15 between decline_day and churn_day. */
static double activity(const pulse_gen_customer_t *c, int32_t day)
{
    if (!c->churned || day < c->decline_day)
        return 1.0;
    double p = (double)(day - c->decline_day) / (double)(c->churn_day - c->decline_day);
    return clampd(1.0 - 0.85 * p, 0.15, 1.0);
}

/* ---- buffered writer and hand-made formatting ---- */

typedef struct writer_t {
    FILE *f;
    char *buf;
    size_t len;
    uint64_t bytes, rows;
    int failed;
    char tmp[1040];
    pulse_gen_file_t *file;
} writer_t;

static void w_flush(writer_t *w)
{
    if (w->len > 0 && !w->failed && fwrite(w->buf, 1, w->len, w->f) != w->len)
        w->failed = errno != 0 ? errno : EIO;
    w->bytes += w->len;
    w->len = 0;
}

/* Room for one row; commit with w_commit. */
static inline char *w_row(writer_t *w)
{
    if (w->len + ROW_MAX > WRITER_CAP)
        w_flush(w);
    return w->buf + w->len;
}

static inline void w_commit(writer_t *w, char *end)
{
    w->len = (size_t)(end - w->buf);
    w->rows++;
}

static inline char *put_mem(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static inline char *put_str(char *p, const char *s)
{
    return put_mem(p, s, strlen(s));
}

static inline char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

/* Amount with two decimals, '-' for negatives. */
static inline char *put_cents(char *p, int64_t cents)
{
    if (cents < 0) {
        *p++ = '-';
        cents = -cents;
    }
    p = put_u64(p, (uint64_t)cents / 100);
    *p++ = '.';
    *p++ = (char)('0' + cents / 10 % 10);
    *p++ = (char)('0' + cents % 10);
    return p;
}

static int64_t to_cents(double x)
{
    return (int64_t)llround(x * 100.0);
}

/* ---- tables ---- */

static const char *const first_names[] = {"James", "Mary",  "Robert", "Patricia", "John",  "Jennifer", "Michael", "Linda",
                                          "David", "Sarah", "Daniel", "Emma",     "Lucas", "Sofia",    "Mateo",   "Olivia",
                                          "Noah",  "Mia",   "Liam",   "Chloe",    "Ethan", "Hannah",   "Ahmed",   "Fatima",
                                          "Wei",   "Yuki",  "Arjun",  "Priya",    "Lars",  "Ingrid",   "Pierre",  "Elena"};
static const char *const last_names[] = {"Smith",   "Johnson", "Williams", "Brown", "Jones",    "Garcia", "Miller", "Davis",
                                         "Muller",  "Schmidt", "Dubois",   "Rossi", "Novak",    "Silva",  "Santos", "Kowalski",
                                         "Nielsen", "Larsen",  "Tanaka",   "Sato",  "Kim",      "Lee",    "Chen",   "Wang",
                                         "Patel",   "Singh",   "Khan",     "Ali",   "Anderson", "Taylor", "Thomas", "Moore"};
static const char *const countries[] = {
    "United States", "United States", "United States", "United Kingdom", "United Kingdom", "Germany", "Germany", "France",
    "Spain",         "Italy",         "Netherlands",   "Canada",         "Australia",      "Sweden",  "Poland",  "Ireland"};
#define NCOUNTRIES (sizeof(countries) / sizeof(countries[0]))

typedef struct category_t {
    const char *name;
    size_t len;
    double price; /* relative unit price */
} category_t;
#define CAT(s, p)                                                                                                                  \
    {                                                                                                                              \
        s, sizeof(s) - 1, p                                                                                                        \
    }
static const category_t categories[] = {CAT("Electronics", 3.2), CAT("Clothing", 1.1), CAT("Home", 1.4), CAT("Beauty", 0.7),
                                        CAT("Books", 0.45),      CAT("Sports", 1.3),   CAT("Toys", 0.8), CAT("Grocery", 0.35),
                                        CAT("Garden", 1.2),      CAT("Jewelry", 2.5)};
#define NCATEGORIES (sizeof(categories) / sizeof(categories[0]))

/* ---- per-run context ---- */

typedef struct ctx_t {
    const pulse_gen_options_t *opt;
    int32_t start, end;
    char (*dates)[10];    /* date string of every window day */
    unsigned char *month; /* 1..12 of every window day */
    int idwidth;
} ctx_t;

static inline char *put_date(const ctx_t *x, char *p, int32_t day)
{
    return put_mem(p, x->dates[day - x->start], 10);
}

static inline int month_of(const ctx_t *x, int32_t day)
{
    return x->month[day - x->start];
}

/* "C000123" into out (no NUL); returns its length. */
static int format_id(const ctx_t *x, uint64_t index, char *out)
{
    char digits[24];
    char *e = put_u64(digits, index + 1);
    int n = (int)(e - digits);
    out[0] = 'C';
    int pad = x->idwidth - n;
    for (int i = 0; i < pad; i++)
        out[1 + i] = '0';
    memcpy(out + 1 + (pad > 0 ? pad : 0), digits, (size_t)n);
    return 1 + (pad > 0 ? pad : 0) + n;
}

/* id,email,name, */
static char *put_identity(char *p, const char *id, int idlen, pulse_rng_t *attrs)
{
    p = put_mem(p, id, (size_t)idlen);
    *p++ = ',';
    *p++ = 'c';
    p = put_mem(p, id + 1, (size_t)idlen - 1);
    p = put_mem(p, "@example.com,", 13);
    p = put_str(p, first_names[pulse_rng_below(attrs, sizeof(first_names) / sizeof(first_names[0]))]);
    *p++ = ' ';
    p = put_str(p, last_names[pulse_rng_below(attrs, sizeof(last_names) / sizeof(last_names[0]))]);
    *p++ = ',';
    return p;
}

static int tenure_months(const ctx_t *x, const pulse_gen_customer_t *c)
{
    int32_t last = c->churned ? c->churn_day : x->end + 1;
    return (int)((last - c->signup_day) / 30.44);
}

/* ---- ecommerce ---- */

static void ecommerce_customer(const ctx_t *x, const pulse_gen_customer_t *c, const char *id, int idlen, writer_t *act,
                               writer_t *cust)
{
    pulse_rng_t r, a;
    pulse_rng_seed(&r, x->opt->seed, STREAM_ACTIVITY * 16 + 0, c->index);
    pulse_rng_seed(&a, x->opt->seed, STREAM_ATTRS * 16 + 0, c->index);

    char *p = w_row(cust);
    p = put_identity(p, id, idlen, &a);
    p = put_str(p, countries[pulse_rng_below(&a, NCOUNTRIES)]);
    *p++ = ',';
    p = put_date(x, p, c->signup_day);
    p = put_str(p, c->churned ? ",yes\n" : ",no\n");
    w_commit(cust, p);

    unsigned fav = pulse_rng_below(&a, NCATEGORIES), fav2 = pulse_rng_below(&a, NCATEGORIES);
    int32_t stop = c->churned ? c->churn_day : x->end + 1;
    double t = c->signup_day + pulse_rng_exp(&r, 3.0);
    for (;;) {
        int32_t day = (int32_t)t;
        if (day >= stop)
            break;
        double act_level = activity(c, day);
        int mon = month_of(x, day);
        double season = mon == 12 ? 1.5 : mon == 11 ? 1.3 : mon == 1 ? 0.85 : 1.0;
        double u = pulse_rng_uniform(&r);
        int lines = 1 + (u < 0.45 * act_level) + (u < 0.18 * act_level);
        for (int i = 0; i < lines; i++) {
            double v = pulse_rng_uniform(&r);
            unsigned cat = v < 0.5 ? fav : v < 0.7 ? fav2 : pulse_rng_below(&r, NCATEGORIES);
            double q = pulse_rng_uniform(&r);
            int qty = 1 + (q < 0.3 * act_level) + (q < 0.1 * act_level);
            double unit = c->level * categories[cat].price * pulse_rng_lognormal(&r, 1.0, 0.35) * (0.55 + 0.45 * act_level) *
                          (mon == 12 ? 1.1 : 1.0);
            int64_t cents = to_cents(unit) * qty;
            if (cents < 50)
                cents = 50;
            char *o = w_row(act);
            o = put_mem(o, id, (size_t)idlen);
            *o++ = ',';
            o = put_date(x, o, day);
            *o++ = ',';
            o = put_cents(o, cents);
            *o++ = ',';
            o = put_mem(o, categories[cat].name, categories[cat].len);
            *o++ = ',';
            *o++ = (char)('0' + qty);
            *o++ = '\n';
            w_commit(act, o);
        }
        t += (1.0 + pulse_rng_exp(&r, c->interval)) / (act_level * season);
    }
}

/* ---- event streams (telecom, banking) ---- */

typedef struct stream_t {
    const char *name;
    double mean;  /* mean days between events of an active customer */
    double decay; /* rate *= activity^decay */
    double surge; /* rate *= 1 + surge * (1 - activity) */
} stream_t;

#define MAX_STREAMS 10

/* Merges independent event streams in date order; emit() writes one row for stream i. */
typedef void (*emit_fn)(const ctx_t *x, const pulse_gen_customer_t *c, pulse_rng_t *r, int i, int32_t day, double act_level,
                        const void *state, char *p, writer_t *w);

static double stream_gap(pulse_rng_t *r, const stream_t *s, double act_level, double season)
{
    double rate = season;
    if (s->decay > 0)
        rate *= pow(act_level, s->decay);
    if (s->surge > 0)
        rate *= 1.0 + s->surge * (1.0 - act_level);
    return pulse_rng_exp(r, s->mean) / rate;
}

/* Events of one customer: streams[i].mean <= 0 means "monthly, on a fixed day" (billing). A
 * forced event of stream `forced` (-1: none) happens at forced_day. */
static void run_streams(const ctx_t *x, const pulse_gen_customer_t *c, pulse_rng_t *r, const stream_t *streams, int n, int forced,
                        int32_t forced_day, double (*season)(int stream, int month), emit_fn emit, const void *state,
                        const char *id, int idlen, writer_t *w)
{
    double next[MAX_STREAMS];
    int32_t stop = c->churned ? c->churn_day : x->end + 1;
    for (int i = 0; i < n; i++)
        next[i] = streams[i].mean <= 0 ? c->signup_day + 0.5 : c->signup_day + pulse_rng_uniform(r) * streams[i].mean;
    int forced_done = forced < 0;
    for (;;) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (next[i] < next[best])
                best = i;
        int32_t day = (int32_t)next[best];
        if (!forced_done && forced_day <= day) {
            forced_done = 1;
            if (forced_day < stop) {
                char *p = w_row(w);
                p = put_mem(p, id, (size_t)idlen);
                *p++ = ',';
                p = put_date(x, p, forced_day);
                *p++ = ',';
                emit(x, c, r, forced, forced_day, activity(c, forced_day), state, p, w);
            }
            continue;
        }
        if (day >= stop)
            break;
        double act_level = activity(c, day);
        char *p = w_row(w);
        p = put_mem(p, id, (size_t)idlen);
        *p++ = ',';
        p = put_date(x, p, day);
        *p++ = ',';
        emit(x, c, r, best, day, act_level, state, p, w);
        const stream_t *s = &streams[best];
        if (s->mean <= 0)
            next[best] += 30.4375;
        else
            next[best] += stream_gap(r, s, act_level, season(best, month_of(x, day)));
    }
}

static char *put_event(char *p, const char *type)
{
    p = put_str(p, type);
    *p++ = ',';
    return p;
}

static void end_row(writer_t *w, char *p)
{
    *p++ = '\n';
    w_commit(w, p);
}

/* ---- telecom ---- */

enum { T_DATA, T_CALL, T_SMS, T_PAYMENT, T_COMPLAINT, T_SUPPORT, T_PLAN, T_ROAMING, T_N };

typedef struct telecom_state_t {
    double monthly;
} telecom_state_t;

static double telecom_season(int stream, int month)
{
    if (stream == T_ROAMING)
        return month >= 6 && month <= 8 ? 3.0 : month == 12 ? 1.5 : 0.7;
    if (stream == T_DATA)
        return month == 12 || month == 8 ? 1.15 : 1.0;
    return 1.0;
}

static double uniform_in(pulse_rng_t *r, double lo, double hi)
{
    return lo + (hi - lo) * pulse_rng_uniform(r);
}

static void telecom_emit(const ctx_t *x, const pulse_gen_customer_t *c, pulse_rng_t *r, int i, int32_t day, double act_level,
                         const void *state, char *p, writer_t *w)
{
    const telecom_state_t *st = state;
    static const char *const names[T_N] = {"data_usage",      "call",        "sms",    "payment", "complaint",
                                           "support_contact", "plan_change", "roaming"};
    p = put_event(p, names[i]);
    int64_t cents = 0;
    switch (i) {
    case T_DATA: /* add-on data packs, bought less as usage falls */
        if (pulse_rng_uniform(r) < 0.12 * act_level)
            cents = to_cents(uniform_in(r, 2.0, 10.0) * c->level);
        break;
    case T_CALL:
        if (pulse_rng_uniform(r) < 0.25)
            cents = to_cents(uniform_in(r, 0.05, 2.5));
        break;
    case T_SMS:
        if (pulse_rng_uniform(r) < 0.2)
            cents = to_cents(uniform_in(r, 0.1, 0.6));
        break;
    case T_PAYMENT:
        cents = to_cents(st->monthly);
        break;
    case T_COMPLAINT: /* sometimes settled with a credit */
        if (pulse_rng_uniform(r) < 0.4)
            cents = -to_cents(uniform_in(r, 3.0, 20.0));
        break;
    case T_PLAN: /* downgrades while fading, mostly upgrades otherwise */
        if (act_level < 1.0 || pulse_rng_uniform(r) < 0.4)
            cents = -to_cents(uniform_in(r, 5.0, 25.0));
        else
            cents = to_cents(uniform_in(r, 5.0, 20.0));
        break;
    case T_ROAMING:
        cents = to_cents(uniform_in(r, 3.0, 30.0));
        break;
    default:
        break;
    }
    p = put_cents(p, cents);
    end_row(w, p);
}

static void telecom_customer(const ctx_t *x, const pulse_gen_customer_t *c, const char *id, int idlen, writer_t *act,
                             writer_t *cust)
{
    static const char *const plans[] = {"Basic", "Standard", "Premium", "Unlimited"};
    static const double plan_price[] = {25.0, 45.0, 70.0, 90.0};
    pulse_rng_t r, a;
    pulse_rng_seed(&r, x->opt->seed, STREAM_ACTIVITY * 16 + 1, c->index);
    pulse_rng_seed(&a, x->opt->seed, STREAM_ATTRS * 16 + 1, c->index);

    char *p = w_row(cust);
    p = put_identity(p, id, idlen, &a);
    unsigned plan = pulse_rng_below(&a, 4);
    /* Contract is a soft signal: churners are more often month-to-month. */
    double u = pulse_rng_uniform(&a);
    const char *contract = c->churned ? (u < 0.7   ? "month-to-month"
                                         : u < 0.9 ? "one-year"
                                                   : "two-year")
                                      : (u < 0.35   ? "month-to-month"
                                         : u < 0.65 ? "one-year"
                                                    : "two-year");
    telecom_state_t st = {plan_price[plan] * uniform_in(&a, 0.9, 1.15)};
    p = put_str(p, plans[plan]);
    *p++ = ',';
    p = put_str(p, contract);
    *p++ = ',';
    p = put_u64(p, (uint64_t)tenure_months(x, c));
    *p++ = ',';
    p = put_cents(p, to_cents(st.monthly));
    p = put_str(p, c->churned ? ",yes\n" : ",no\n");
    w_commit(cust, p);

    stream_t s[T_N] = {
        [T_DATA] = {"data_usage", c->interval, 1.5, 0}, [T_CALL] = {"call", c->interval * 1.4, 1.0, 0},
        [T_SMS] = {"sms", c->interval * 2.0, 1.0, 0},   [T_PAYMENT] = {"payment", 0, 0, 0},
        [T_COMPLAINT] = {"complaint", 150, 0, 8},       [T_SUPPORT] = {"support_contact", 75, 0, 5},
        [T_PLAN] = {"plan_change", 240, 0, 3},          [T_ROAMING] = {"roaming", 120, 1.0, 0},
    };
    run_streams(x, c, &r, s, T_N, -1, 0, telecom_season, telecom_emit, &st, id, idlen, act);
}

/* ---- banking ---- */

enum { B_LOGIN, B_TRANSFER, B_CARD, B_DEPOSIT, B_WITHDRAWAL, B_FEE, B_SUPPORT, B_OPEN, B_CLOSE, B_N };

static double banking_season(int stream, int month)
{
    if (stream == B_CARD)
        return month == 12 ? 1.4 : month == 11 ? 1.15 : 1.0;
    return 1.0;
}

static void banking_emit(const ctx_t *x, const pulse_gen_customer_t *c, pulse_rng_t *r, int i, int32_t day, double act_level,
                         const void *state, char *p, writer_t *w)
{
    static const char *const names[B_N] = {"login", "transfer",        "card_payment", "deposit",      "withdrawal",
                                           "fee",   "support_contact", "product_open", "product_close"};
    p = put_event(p, names[i]);
    int64_t cents = 0;
    switch (i) {
    case B_TRANSFER:
        if (pulse_rng_uniform(r) < 0.3)
            cents = to_cents(uniform_in(r, 0.25, 2.0));
        break;
    case B_CARD: /* interchange on the spend */
        cents = to_cents(0.015 * pulse_rng_lognormal(r, 40.0, 0.8) * c->level * (0.5 + 0.5 * act_level));
        break;
    case B_DEPOSIT: /* margin on new money */
        cents = to_cents(uniform_in(r, 0.5, 6.0) * c->level);
        break;
    case B_WITHDRAWAL: /* margin lost; larger while the customer drains the account */
        cents = -to_cents(uniform_in(r, 0.2, 5.0) * c->level * (2.5 - 1.5 * act_level));
        break;
    case B_FEE:
        cents = to_cents(uniform_in(r, 1.0, 35.0));
        break;
    case B_OPEN:
        cents = to_cents(uniform_in(r, 10.0, 60.0));
        break;
    case B_CLOSE:
        cents = -to_cents(uniform_in(r, 10.0, 60.0));
        break;
    default:
        break;
    }
    p = put_cents(p, cents);
    end_row(w, p);
}

static void banking_customer(const ctx_t *x, const pulse_gen_customer_t *c, const char *id, int idlen, writer_t *act,
                             writer_t *cust)
{
    static const char *const segments[] = {"retail", "retail", "retail", "premium", "business", "student"};
    pulse_rng_t r, a;
    pulse_rng_seed(&r, x->opt->seed, STREAM_ACTIVITY * 16 + 2, c->index);
    pulse_rng_seed(&a, x->opt->seed, STREAM_ATTRS * 16 + 2, c->index);

    char *p = w_row(cust);
    p = put_identity(p, id, idlen, &a);
    unsigned seg = pulse_rng_below(&a, 6);
    /* Soft signals only: churners hold fewer products and lower balances, with overlap. */
    int products = 1 + (int)pulse_rng_below(&a, 4);
    if (c->churned && products > 1 && pulse_rng_uniform(&a) < 0.6)
        products--;
    double balance = pulse_rng_lognormal(&a, 4000.0, 1.1) * c->level * (c->churned ? 0.45 : 1.0);
    if (seg == 3)
        balance *= 4.0;
    p = put_str(p, segments[seg]);
    *p++ = ',';
    p = put_u64(p, (uint64_t)products);
    *p++ = ',';
    p = put_cents(p, to_cents(balance));
    *p++ = ',';
    p = put_u64(p, (uint64_t)tenure_months(x, c));
    p = put_str(p, c->churned ? ",yes\n" : ",no\n");
    w_commit(cust, p);

    stream_t s[B_N] = {
        [B_LOGIN] = {"login", c->interval, 2.0, 0},
        [B_TRANSFER] = {"transfer", 12, 0.7, 0},
        [B_CARD] = {"card_payment", c->interval * 1.3, 1.0, 0},
        [B_DEPOSIT] = {"deposit", 28, 2.0, 0},
        [B_WITHDRAWAL] = {"withdrawal", 25, 0, 5},
        [B_FEE] = {"fee", 40, 0, 0},
        [B_SUPPORT] = {"support_contact", 120, 0, 5},
        [B_OPEN] = {"product_open", 300, 3.0, 0},
        [B_CLOSE] = {"product_close", 900, 0, 2},
    };
    /* Every churner closes a product in the second half of its decline. */
    int32_t close_day = 0;
    if (c->churned) {
        int32_t lo = c->decline_day + (c->churn_day - c->decline_day) / 2;
        if (lo < c->signup_day)
            lo = c->signup_day;
        close_day = lo + (int32_t)pulse_rng_below(&r, (uint32_t)(c->churn_day - lo));
    }
    run_streams(x, c, &r, s, B_N, c->churned ? B_CLOSE : -1, close_day, banking_season, banking_emit, NULL, id, idlen, act);
}

/* ---- files ---- */

static int w_open(writer_t *w, const char *dir, const char *name, pulse_gen_file_t *file, char *err, size_t errlen)
{
    memset(w, 0, sizeof(*w));
    w->file = file;
    int n = snprintf(file->path, sizeof(file->path), "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof(file->path) || (size_t)n + 5 >= sizeof(w->tmp))
        return fail(err, errlen, "%s/%s: path too long", dir, name);
    snprintf(w->tmp, sizeof(w->tmp), "%s.tmp", file->path);
    w->buf = malloc(WRITER_CAP);
    if (w->buf == NULL)
        return fail(err, errlen, "out of memory");
    w->f = fopen(w->tmp, "wb");
    if (w->f == NULL) {
        int e = errno;
        free(w->buf);
        w->buf = NULL;
        return fail(err, errlen, "%s: %s", w->tmp, strerror(e));
    }
    return 0;
}

static void w_header(writer_t *w, const char *header)
{
    char *p = w_row(w);
    p = put_str(p, header);
    w->len = (size_t)(p - w->buf);
}

/* Flushes, closes and renames into place (ok) or removes the temporary file. */
static int w_close(writer_t *w, int ok, char *err, size_t errlen)
{
    if (w->f == NULL)
        return ok ? 0 : -1;
    w_flush(w);
    int e = w->failed;
    if (fclose(w->f) != 0 && e == 0)
        e = errno != 0 ? errno : EIO;
    w->f = NULL;
    free(w->buf);
    w->buf = NULL;
    if (ok && e != 0) {
        ok = 0;
        fail(err, errlen, "%s: %s", w->tmp, strerror(e));
    }
    if (ok && rename(w->tmp, w->file->path) != 0) {
        ok = 0;
        fail(err, errlen, "%s: %s", w->file->path, strerror(errno));
    }
    if (!ok) {
        remove(w->tmp);
        return -1;
    }
    w->file->rows = w->rows;
    w->file->bytes = w->bytes;
    return 0;
}

static int ensure_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (stat(dir, &st) == 0)
        return S_ISDIR(st.st_mode) ? 0 : fail(err, errlen, "%s: not a directory", dir);
    if (errno != ENOENT || mkdir(dir, 0777) != 0)
        return fail(err, errlen, "%s: %s", dir, strerror(errno));
    return 0;
}

int pulse_gen_write(const pulse_gen_options_t *opt, pulse_gen_report_t *report, char *err, size_t errlen)
{
    if (pulse_gen_check(opt, err, errlen) != 0)
        return -1;
    if (ensure_dir(opt->out_dir, err, errlen) != 0)
        return -1;
    pulse_gen_report_t local;
    if (report == NULL)
        report = &local;
    memset(report, 0, sizeof(*report));

    ctx_t x = {.opt = opt, .start = pulse_gen_window_start(opt), .end = opt->end_day};
    int32_t days = x.end - x.start + 1;
    x.dates = malloc((size_t)days * sizeof(*x.dates));
    x.month = malloc((size_t)days);
    if (x.dates == NULL || x.month == NULL) {
        free(x.dates);
        free(x.month);
        return fail(err, errlen, "out of memory");
    }
    for (int32_t i = 0; i < days; i++) {
        char s[11];
        pulse_gen_format_date(x.start + i, s);
        memcpy(x.dates[i], s, 10);
        x.month[i] = (unsigned char)((s[5] - '0') * 10 + (s[6] - '0'));
    }
    char digits[24];
    x.idwidth = (int)(put_u64(digits, opt->customers) - digits);
    if (x.idwidth < 6)
        x.idwidth = 6;

    const char *act_name, *act_header, *cust_header;
    void (*customer_fn)(const ctx_t *, const pulse_gen_customer_t *, const char *, int, writer_t *, writer_t *);
    switch (opt->industry) {
    case PULSE_GEN_TELECOM:
        act_name = "events.csv";
        act_header = "CustomerID,EventDate,EventType,RevenueImpact\n";
        cust_header = "CustomerID,Email,Name,Plan,Contract,TenureMonths,MonthlyCharges,Churned\n";
        customer_fn = telecom_customer;
        break;
    case PULSE_GEN_BANKING:
        act_name = "events.csv";
        act_header = "CustomerID,EventDate,EventType,RevenueImpact\n";
        cust_header = "CustomerID,Email,Name,Segment,Products,Balance,TenureMonths,Churned\n";
        customer_fn = banking_customer;
        break;
    default:
        act_name = "transactions.csv";
        act_header = "CustomerID,TransactionDate,TransactionAmount,ProductCategory,Quantity\n";
        cust_header = "CustomerID,Email,Name,Country,SignupDate,Churned\n";
        customer_fn = ecommerce_customer;
        break;
    }

    writer_t act, cust;
    int rc = -1;
    memset(&cust, 0, sizeof(cust));
    if (w_open(&act, opt->out_dir, act_name, &report->files[0], err, errlen) != 0)
        goto done;
    if (w_open(&cust, opt->out_dir, "customers.csv", &report->files[1], err, errlen) != 0) {
        w_close(&act, 0, err, errlen);
        goto done;
    }
    w_header(&act, act_header);
    w_header(&cust, cust_header);
    for (uint64_t i = 0; i < opt->customers && !act.failed && !cust.failed; i++) {
        pulse_gen_customer_t c;
        pulse_gen_customer(opt, i, &c);
        report->churners += (uint64_t)c.churned;
        char id[32];
        int idlen = format_id(&x, i, id);
        customer_fn(&x, &c, id, idlen, &act, &cust);
    }
    int ok1 = w_close(&act, 1, err, errlen) == 0;
    int ok2 = w_close(&cust, ok1, err, errlen) == 0;
    if (ok1 && ok2) {
        report->nfiles = 2;
        rc = 0;
    } else if (ok1) {
        remove(report->files[0].path);
    }
done:
    free(x.dates);
    free(x.month);
    return rc;
}
