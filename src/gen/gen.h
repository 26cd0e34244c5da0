/* Synthetic data files with planted churn (pulse gen): per industry, a customers.csv holding the
 * truth (Churned yes/no) and an activity file (transactions.csv or events.csv) in which churners
 * fade out over the 60-120 days before their churn date and then go silent. Deterministic: the
 * same options give byte-identical files. Streams customer by customer, so memory does not grow
 * with the number of rows. Refuses options it cannot honour (pulse_gen_check). */
#ifndef PULSE_GEN_GEN_H
#define PULSE_GEN_GEN_H

#include <stddef.h>
#include <stdint.h>

typedef enum pulse_gen_industry_t {
    PULSE_GEN_ECOMMERCE = 0,
    PULSE_GEN_TELECOM = 1,
    PULSE_GEN_BANKING = 2,
} pulse_gen_industry_t;

#define PULSE_GEN_MIN_MONTHS 6
#define PULSE_GEN_MAX_MONTHS 240
#define PULSE_GEN_MAX_CUSTOMERS 100000000ULL

typedef struct pulse_gen_options_t {
    pulse_gen_industry_t industry;
    uint64_t customers; /* 1 .. PULSE_GEN_MAX_CUSTOMERS */
    uint64_t seed;
    const char *out_dir; /* borrowed; created (one level) if missing */
    int months;          /* window length, PULSE_GEN_MIN_MONTHS .. PULSE_GEN_MAX_MONTHS */
    int32_t end_day;     /* last day of the window, days since 1970-01-01 */
    double churn_rate;   /* 0 .. 1: probability that a customer is a churner */
} pulse_gen_options_t;

/* What one customer was planted with; recomputable from (options, index) alone. */
typedef struct pulse_gen_customer_t {
    uint64_t index;     /* 0-based; the CustomerID is index + 1 */
    int32_t signup_day; /* within the window */
    int churned;
    int32_t churn_day;   /* churners: first day without activity (nothing on or after it) */
    int32_t decline_day; /* churners: activity declines from here to churn_day (60-120 days) */
    double interval;     /* mean days between purchases / primary events */
    double level;        /* basket or amount level */
} pulse_gen_customer_t;

typedef struct pulse_gen_file_t {
    char path[1024];
    uint64_t rows; /* data rows, header excluded */
    uint64_t bytes;
} pulse_gen_file_t;

typedef struct pulse_gen_report_t {
    pulse_gen_file_t files[2]; /* [0] the activity file, [1] customers.csv */
    int nfiles;
    uint64_t churners;
} pulse_gen_report_t;

/* Defaults: ecommerce, 1000 customers, seed 1, out ".", 24 months to 2026-06-30, churn rate 0.25. */
void pulse_gen_options_init(pulse_gen_options_t *opt);
/* "ecommerce", "telecom", "banking"; returns -1 for anything else. */
int pulse_gen_parse_industry(const char *s, pulse_gen_industry_t *out);
const char *pulse_gen_industry_name(pulse_gen_industry_t industry);
/* Strict YYYY-MM-DD (a real calendar day, years 1900-9999) into days since 1970-01-01; -1 if not. */
int pulse_gen_parse_date(const char *s, int32_t *day);
/* Writes YYYY-MM-DD and a terminating NUL into out. */
void pulse_gen_format_date(int32_t day, char out[11]);
int32_t pulse_gen_days_from_civil(int y, int m, int d);
/* First day of the window: end_day minus `months` calendar months, plus one day. */
int32_t pulse_gen_window_start(const pulse_gen_options_t *opt);
/* 0 if the options can be honoured; otherwise -1 and what is wrong in err. */
int pulse_gen_check(const pulse_gen_options_t *opt, char *err, size_t errlen);
/* The planted profile of customer `index` (what the writer used for it). */
void pulse_gen_customer(const pulse_gen_options_t *opt, uint64_t index, pulse_gen_customer_t *c);
/* Writes the files of opt->industry into opt->out_dir (overwriting them). On success returns 0
 * and fills report (may be NULL); on failure -1 with the reason in err. */
int pulse_gen_write(const pulse_gen_options_t *opt, pulse_gen_report_t *report, char *err, size_t errlen);

#endif
