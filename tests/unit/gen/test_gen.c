/* Unit tests for src/gen/gen.c (pulse gen): determinism, exact headers, dates inside the window,
 * and the planted churn as seen in the written files (silence after the churn date, fading
 * activity before it, label share), plus argument checking of src/cli/gen.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "gen/gen.h"

#define N 400

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void make_dir(char *tmpl)
{
    strcpy(tmpl, "/tmp/pulse-gen-test-XXXXXX");
    assert_non_null(mkdtemp(tmpl));
}

static void remove_dir(const char *dir)
{
    static const char *const names[] = {"transactions.csv", "events.csv", "customers.csv"};
    char path[512];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        remove(path);
    }
    rmdir(dir);
}

static void options(pulse_gen_options_t *opt, pulse_gen_industry_t industry, uint64_t seed, const char *dir)
{
    pulse_gen_options_init(opt);
    opt->industry = industry;
    opt->customers = N;
    opt->seed = seed;
    opt->out_dir = dir;
}

static void generate(const pulse_gen_options_t *opt, pulse_gen_report_t *rep)
{
    char err[256] = "";
    int rc = pulse_gen_write(opt, rep, err, sizeof(err));
    if (rc != 0)
        fail_msg("pulse_gen_write: %s", err);
    assert_int_equal(rep->nfiles, 2);
}

static int same_file(const char *a, const char *b)
{
    size_t la, lb;
    char *x = slurp(a, &la), *y = slurp(b, &lb);
    int same = la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return same;
}

static void test_deterministic(void **state)
{
    for (int ind = 0; ind < 3; ind++) {
        char d1[64], d2[64], d3[64];
        make_dir(d1);
        make_dir(d2);
        make_dir(d3);
        pulse_gen_options_t o1, o2, o3;
        pulse_gen_report_t r1, r2, r3;
        options(&o1, (pulse_gen_industry_t)ind, 7, d1);
        options(&o2, (pulse_gen_industry_t)ind, 7, d2);
        options(&o3, (pulse_gen_industry_t)ind, 8, d3);
        generate(&o1, &r1);
        generate(&o2, &r2);
        generate(&o3, &r3);
        for (int f = 0; f < 2; f++) {
            assert_true(same_file(r1.files[f].path, r2.files[f].path));
            assert_false(same_file(r1.files[f].path, r3.files[f].path));
        }
        remove_dir(d1);
        remove_dir(d2);
        remove_dir(d3);
    }
}

/* Everything one written dataset tells about the planted churn. */
typedef struct stats_t {
    uint64_t rows, customers, churned_labels, mismatched_labels;
    uint64_t outside_window, after_churn, before_signup;
    double early_rows, early_days, late_rows, late_days; /* churners: per-day rows before / in the last 90 days */
    uint64_t early_complaints, late_complaints, early_total, late_total;
    uint64_t closes_in_decline, churners_long_gone;
} stats_t;

static uint64_t id_index(const char *line)
{
    assert_int_equal(line[0], 'C');
    return strtoull(line + 1, NULL, 10) - 1;
}

static const char *field(const char *line, int k)
{
    for (int i = 0; i < k; i++) {
        line = strchr(line, ',');
        assert_non_null(line);
        line++;
    }
    return line;
}

static int32_t field_date(const char *line, int k)
{
    char d[11];
    memcpy(d, field(line, k), 10);
    d[10] = '\0';
    int32_t day;
    assert_int_equal(pulse_gen_parse_date(d, &day), 0);
    return day;
}

/* -?digits.dd followed by ',' or the end of the line. */
static int is_amount(const char *p)
{
    if (*p == '-')
        p++;
    const char *d = p;
    while (*p >= '0' && *p <= '9')
        p++;
    if (p == d || *p != '.' || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9')
        return 0;
    return p[3] == ',' || p[3] == '\0';
}

static void analyse(const pulse_gen_options_t *opt, const pulse_gen_report_t *rep, const char *act_header, const char *cust_header,
                    stats_t *s)
{
    memset(s, 0, sizeof(*s));
    int32_t start = pulse_gen_window_start(opt), end = opt->end_day;
    pulse_gen_customer_t *cs = calloc(opt->customers, sizeof(*cs));
    assert_non_null(cs);
    for (uint64_t i = 0; i < opt->customers; i++)
        pulse_gen_customer(opt, i, &cs[i]);

    size_t len;
    char *buf = slurp(rep->files[1].path, &len);
    assert_int_equal(len, rep->files[1].bytes);
    assert_memory_equal(buf, cust_header, strlen(cust_header));
    char *save = NULL;
    int first = 1;
    for (char *line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (first) {
            first = 0;
            continue;
        }
        uint64_t idx = id_index(line);
        assert_true(idx < opt->customers);
        assert_int_equal(idx, s->customers);
        s->customers++;
        const char *last = strrchr(line, ',') + 1;
        int yes = strcmp(last, "yes") == 0;
        assert_true(yes || strcmp(last, "no") == 0);
        s->churned_labels += (uint64_t)yes;
        s->mismatched_labels += (uint64_t)(yes != cs[idx].churned);
        char email[64];
        snprintf(email, sizeof(email), "c%06llu@example.com", (unsigned long long)idx + 1);
        assert_memory_equal(field(line, 1), email, strlen(email));
        if (opt->industry == PULSE_GEN_ECOMMERCE) {
            int32_t signup = field_date(line, 4);
            assert_int_equal(signup, cs[idx].signup_day);
            s->outside_window += (uint64_t)(signup < start || signup > end);
        }
    }
    assert_int_equal(s->customers, rep->files[1].rows);
    free(buf);

    buf = slurp(rep->files[0].path, &len);
    assert_int_equal(len, rep->files[0].bytes);
    assert_memory_equal(buf, act_header, strlen(act_header));
    assert_int_equal(buf[len - 1], '\n');
    assert_null(strchr(buf, '\r'));
    uint8_t *closed = calloc(opt->customers, 1);
    uint64_t prev_idx = 0;
    int32_t prev_day = 0;
    first = 1;
    for (char *line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (first) {
            first = 0;
            continue;
        }
        s->rows++;
        uint64_t idx = id_index(line);
        assert_true(idx < opt->customers);
        const pulse_gen_customer_t *c = &cs[idx];
        int32_t day = field_date(line, 1);
        assert_true(is_amount(field(line, opt->industry == PULSE_GEN_ECOMMERCE ? 2 : 3)));
        /* Customers in ID order, each one's rows in date order. */
        assert_true(idx > prev_idx || (idx == prev_idx && day >= prev_day) || s->rows == 1);
        prev_idx = idx;
        prev_day = day;
        s->outside_window += (uint64_t)(day < start || day > end);
        s->before_signup += (uint64_t)(day < c->signup_day);
        if (!c->churned)
            continue;
        s->after_churn += (uint64_t)(day >= c->churn_day);
        int late = day >= c->churn_day - 90;
        const char *type = field(line, 2);
        int bad_sign = strncmp(type, "complaint,", 10) == 0 || strncmp(type, "support_contact,", 16) == 0;
        if (late) {
            s->late_rows++;
            s->late_total++;
            s->late_complaints += (uint64_t)bad_sign;
        } else {
            s->early_rows++;
            s->early_total++;
            s->early_complaints += (uint64_t)bad_sign;
        }
        if (strncmp(type, "product_close,", 14) == 0 && day >= c->decline_day)
            closed[idx] = 1;
    }
    assert_int_equal(s->rows, rep->files[0].rows);
    for (uint64_t i = 0; i < opt->customers; i++) {
        const pulse_gen_customer_t *c = &cs[i];
        if (!c->churned)
            continue;
        int32_t cut = c->churn_day - 90 > c->signup_day ? c->churn_day - 90 : c->signup_day;
        s->early_days += cut - c->signup_day;
        s->late_days += c->churn_day - cut;
        s->closes_in_decline += closed[i];
        s->churners_long_gone += (uint64_t)(c->churn_day <= end - 90);
    }
    free(closed);
    free(buf);
    free(cs);
}

static void check_planted(pulse_gen_industry_t industry, const char *act_header, const char *cust_header, stats_t *s)
{
    char dir[64];
    make_dir(dir);
    pulse_gen_options_t opt;
    pulse_gen_report_t rep;
    options(&opt, industry, 42, dir);
    generate(&opt, &rep);
    analyse(&opt, &rep, act_header, cust_header, s);
    remove_dir(dir);

    assert_int_equal(s->customers, N);
    assert_int_equal(s->mismatched_labels, 0);
    assert_int_equal(s->outside_window, 0);
    assert_int_equal(s->before_signup, 0);
    assert_int_equal(s->after_churn, 0);
    /* Label share near 0.25 (N=400: standard deviation about 0.022). */
    double share = (double)s->churned_labels / N;
    assert_true(share > 0.17 && share < 0.33);
    /* Activity in the last 90 days before churn is clearly lower than before. */
    double early = s->early_rows / s->early_days, late = s->late_rows / s->late_days;
    print_message("%s: %llu rows, churn share %.3f, churner rows/day %.3f before and %.3f in the last 90 days\n",
                  pulse_gen_industry_name(industry), (unsigned long long)s->rows, share, early, late);
    assert_true(late < 0.75 * early);
    /* Some churners left at least 90 days before the end ("no purchase in 90 days" labels exist). */
    assert_true(s->churners_long_gone > s->churned_labels / 2);
}

static void test_ecommerce(void **state)
{
    stats_t s;
    check_planted(PULSE_GEN_ECOMMERCE, "CustomerID,TransactionDate,TransactionAmount,ProductCategory,Quantity\n",
                  "CustomerID,Email,Name,Country,SignupDate,Churned\n", &s);
    assert_true(s.rows > 5 * N && s.rows < 200 * N);
}

static void test_telecom(void **state)
{
    stats_t s;
    check_planted(PULSE_GEN_TELECOM, "CustomerID,EventDate,EventType,RevenueImpact\n",
                  "CustomerID,Email,Name,Plan,Contract,TenureMonths,MonthlyCharges,Churned\n", &s);
    assert_true(s.rows > 20 * N && s.rows < 2000 * N);
    /* Complaints and support contacts take a larger share of a fading customer's events. */
    assert_true((double)s.late_complaints / s.late_total > 2.0 * (double)s.early_complaints / s.early_total);
}

static void test_banking(void **state)
{
    stats_t s;
    check_planted(PULSE_GEN_BANKING, "CustomerID,EventDate,EventType,RevenueImpact\n",
                  "CustomerID,Email,Name,Segment,Products,Balance,TenureMonths,Churned\n", &s);
    assert_true(s.rows > 20 * N && s.rows < 2000 * N);
    /* Every churner closes a product while fading. */
    assert_int_equal(s.closes_in_decline, s.churned_labels);
}

static void test_label_share_large(void **state)
{
    pulse_gen_options_t opt;
    pulse_gen_options_init(&opt);
    opt.churn_rate = 0.4;
    uint64_t churned = 0;
    for (uint64_t i = 0; i < 20000; i++) {
        pulse_gen_customer_t c;
        pulse_gen_customer(&opt, i, &c);
        churned += (uint64_t)c.churned;
        if (c.churned) {
            assert_true(c.churn_day - c.decline_day >= 60 && c.churn_day - c.decline_day <= 120);
            assert_true(c.churn_day <= opt.end_day);
        }
    }
    assert_true(churned > 7600 && churned < 8400);
}

static void test_dates(void **state)
{
    int32_t d;
    char s[11];
    assert_int_equal(pulse_gen_parse_date("2026-06-30", &d), 0);
    pulse_gen_format_date(d, s);
    assert_string_equal(s, "2026-06-30");
    assert_int_equal(pulse_gen_parse_date("1970-01-01", &d), 0);
    assert_int_equal(d, 0);
    assert_int_equal(pulse_gen_parse_date("2024-02-29", &d), 0);
    assert_int_equal(pulse_gen_parse_date("2026-02-29", &d), -1);
    assert_int_equal(pulse_gen_parse_date("2026-13-01", &d), -1);
    assert_int_equal(pulse_gen_parse_date("2026-6-30", &d), -1);
    assert_int_equal(pulse_gen_parse_date("30/06/2026", &d), -1);
    pulse_gen_options_t opt;
    pulse_gen_options_init(&opt);
    pulse_gen_format_date(pulse_gen_window_start(&opt), s);
    assert_string_equal(s, "2024-07-01");
    opt.months = 6;
    assert_int_equal(pulse_gen_parse_date("2026-08-31", &opt.end_day), 0);
    pulse_gen_format_date(pulse_gen_window_start(&opt), s);
    assert_string_equal(s, "2026-03-01"); /* 2026-02-28 + 1 */
}

static int cli(int n, ...)
{
    char *argv[16];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    argv[n] = NULL;
    return pulse_cli_gen(n, argv);
}

static void test_bad_arguments(void **state)
{
    char dir[64];
    make_dir(dir);
    assert_int_equal(cli(5, "gen", "--industry", "retail", "--customers", "10"), 2);
    assert_int_equal(cli(7, "gen", "--industry", "telecom", "--customers", "0", "--seed", "1"), 2);
    assert_int_equal(cli(7, "gen", "--industry", "telecom", "--customers", "-5", "--seed", "1"), 2);
    assert_int_equal(cli(7, "gen", "--industry", "telecom", "--customers", "12x", "--seed", "1"), 2);
    assert_int_equal(cli(7, "gen", "--industry", "telecom", "--customers", "10", "--seed", "-1"), 2);
    assert_int_equal(cli(5, "gen", "--industry", "banking", "--customers", "10"), 2); /* no --seed */
    assert_int_equal(cli(8, "gen", "--industry=banking", "--customers=10", "--seed=1", "--churn-rate", "1.5", "--out", dir), 2);
    assert_int_equal(cli(6, "gen", "--industry=banking", "--customers=10", "--seed=1", "--end=2026-02-30", "--out"), 2);
    assert_int_equal(cli(5, "gen", "--industry=banking", "--customers=10", "--seed=1", "--months=3"), 2);
    assert_int_equal(cli(5, "gen", "--industry=banking", "--customers=10", "--seed=1", "--frobnicate"), 2);
    assert_int_equal(cli(4, "gen", "--industry=banking", "--customers=10", "--seed"), 2);
    assert_int_equal(cli(2, "gen", "--help"), 0);
    assert_int_equal(cli(8, "gen", "--industry=banking", "--customers=10", "--seed=1", "--months", "12", "--out", dir), 0);
    assert_int_equal(access(dir, F_OK), 0);
    remove_dir(dir);

    pulse_gen_options_t opt;
    char err[256];
    pulse_gen_options_init(&opt);
    assert_int_equal(pulse_gen_check(&opt, err, sizeof(err)), 0);
    opt.churn_rate = -0.1;
    assert_int_equal(pulse_gen_check(&opt, err, sizeof(err)), -1);
    pulse_gen_options_init(&opt);
    opt.customers = 0;
    assert_int_equal(pulse_gen_check(&opt, err, sizeof(err)), -1);
    pulse_gen_options_init(&opt);
    opt.out_dir = "/proc/no-such-dir/x";
    assert_int_equal(pulse_gen_write(&opt, NULL, err, sizeof(err)), -1);
    assert_true(strlen(err) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic), cmocka_unit_test(test_ecommerce),         cmocka_unit_test(test_telecom),
        cmocka_unit_test(test_banking),       cmocka_unit_test(test_label_share_large), cmocka_unit_test(test_dates),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
