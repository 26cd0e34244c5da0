/* pulse gen: writes synthetic data files with planted churn (src/gen/gen.h) for benchmarks,
 * demos and the churn models' tests. */
#include "cli/cli.h"
#include "gen/gen.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: pulse gen --industry ecommerce|telecom|banking --customers N --seed S\n"
            "                 [--out DIR] [--months M] [--end YYYY-MM-DD] [--churn-rate R]\n\n"
            "Writes realistic synthetic CSV files (comma separated, header row, LF, ISO dates, amounts\n"
            "with two decimals) with planted churn. The same arguments give byte-identical files.\n\n"
            "Files:\n"
            "  ecommerce  transactions.csv  CustomerID,TransactionDate,TransactionAmount,ProductCategory,Quantity\n"
            "             customers.csv     CustomerID,Email,Name,Country,SignupDate,Churned\n"
            "  telecom    events.csv        CustomerID,EventDate,EventType,RevenueImpact\n"
            "             customers.csv     CustomerID,Email,Name,Plan,Contract,TenureMonths,MonthlyCharges,Churned\n"
            "  banking    events.csv        CustomerID,EventDate,EventType,RevenueImpact\n"
            "             customers.csv     CustomerID,Email,Name,Segment,Products,Balance,TenureMonths,Churned\n\n"
            "Each customer signs up within the window and has a personal rhythm and spending level. A\n"
            "share of them (--churn-rate) are churners: over the 60-120 days before their churn date their\n"
            "activity fades (longer gaps, smaller baskets; telecom: less usage, more complaints and support\n"
            "contacts, downgrades; banking: fewer logins and deposits, withdrawals, a product_close), and\n"
            "from the churn date on there is nothing. Churned (yes/no) in customers.csv is that truth.\n"
            "RevenueImpact is the event's revenue to the business (negative: credits, downgrades, margin\n"
            "lost). Emails use example.com.\n\n"
            "Options:\n"
            "  --industry NAME    ecommerce, telecom or banking (required)\n"
            "  --customers N      number of customers, 1-%llu (required)\n"
            "  --seed S           random seed, a non-negative integer (required)\n"
            "  --out DIR          output directory, created if missing (default .)\n"
            "  --months M         length of the window in months, %d-%d (default 24)\n"
            "  --end YYYY-MM-DD   last day of the window (default 2026-06-30)\n"
            "  --churn-rate R     share of churners, 0-1 (default 0.25)\n"
            "  --help             this text\n\n"
            "Exit status: 0 written, 1 error (I/O), 2 usage error.\n",
            (unsigned long long)PULSE_GEN_MAX_CUSTOMERS, PULSE_GEN_MIN_MONTHS, PULSE_GEN_MAX_MONTHS);
}

/* Prints "pulse gen: <what is wrong>" and a pointer to --help; returns the usage exit code 2. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pulse gen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nRun 'pulse gen --help' for the options.\n");
    va_end(ap);
    return 2;
}

/* Strict unsigned decimal: digits only, no sign, no overflow. */
static int parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int parse_rate(const char *s, double *out)
{
    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !(v >= 0.0 && v <= 1.0))
        return -1;
    *out = v;
    return 0;
}

int pulse_cli_gen(int argc, char **argv)
{
    if (pulse_cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    pulse_gen_options_t opt;
    pulse_gen_options_init(&opt);
    int have_industry = 0, have_customers = 0, have_seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL;
        char name[32];
        const char *eq = strchr(arg, '=');
        if (strncmp(arg, "--", 2) == 0 && eq != NULL && (size_t)(eq - arg) < sizeof(name)) {
            memcpy(name, arg, (size_t)(eq - arg));
            name[eq - arg] = '\0';
            val = eq + 1;
        } else {
            snprintf(name, sizeof(name), "%s", arg);
            if (strlen(arg) >= sizeof(name))
                return usage_error("unknown argument '%s'", arg);
        }
        static const char *const known[] = {"--industry", "--customers", "--seed", "--out", "--months", "--end", "--churn-rate"};
        int k = -1;
        for (int j = 0; j < 7; j++)
            if (strcmp(name, known[j]) == 0)
                k = j;
        if (k < 0)
            return usage_error("unknown argument '%s'", arg);
        if (val == NULL) {
            if (i + 1 >= argc)
                return usage_error("%s needs a value", name);
            val = argv[++i];
        }
        uint64_t u;
        switch (k) {
        case 0:
            if (pulse_gen_parse_industry(val, &opt.industry) != 0)
                return usage_error("unknown industry '%s': use ecommerce, telecom or banking", val);
            have_industry = 1;
            break;
        case 1:
            if (parse_u64(val, &u) != 0 || u < 1 || u > PULSE_GEN_MAX_CUSTOMERS)
                return usage_error("--customers '%s': use a whole number from 1 to 100000000", val);
            opt.customers = u;
            have_customers = 1;
            break;
        case 2:
            if (parse_u64(val, &u) != 0)
                return usage_error("--seed '%s': use a non-negative whole number", val);
            opt.seed = u;
            have_seed = 1;
            break;
        case 3:
            if (*val == '\0')
                return usage_error("--out is empty: use a directory");
            opt.out_dir = val;
            break;
        case 4:
            if (parse_u64(val, &u) != 0 || u < PULSE_GEN_MIN_MONTHS || u > PULSE_GEN_MAX_MONTHS)
                return usage_error("--months '%s': use a whole number from 6 to 240", val);
            opt.months = (int)u;
            break;
        case 5:
            if (pulse_gen_parse_date(val, &opt.end_day) != 0)
                return usage_error("--end '%s': use a calendar date YYYY-MM-DD", val);
            break;
        case 6:
            if (parse_rate(val, &opt.churn_rate) != 0)
                return usage_error("--churn-rate '%s': use a number from 0 to 1, e.g. 0.25", val);
            break;
        }
    }
    if (!have_industry)
        return usage_error("--industry is required: ecommerce, telecom or banking");
    if (!have_customers)
        return usage_error("--customers is required: the number of customers");
    if (!have_seed)
        return usage_error("--seed is required: any non-negative integer");
    char err[1200];
    if (pulse_gen_check(&opt, err, sizeof(err)) != 0)
        return usage_error("%s", err);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pulse_gen_report_t rep;
    if (pulse_gen_write(&opt, &rep, err, sizeof(err)) != 0) {
        fprintf(stderr, "pulse gen: %s\n", err);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    uint64_t total = 0;
    for (int i = 0; i < rep.nfiles; i++) {
        printf("wrote %s: %llu rows, %llu bytes\n", rep.files[i].path, (unsigned long long)rep.files[i].rows,
               (unsigned long long)rep.files[i].bytes);
        total += rep.files[i].bytes;
    }
    printf("%s: %llu customers, %llu churners; %.1f MB in %.2f s (%.0f MB/s)\n", pulse_gen_industry_name(opt.industry),
           (unsigned long long)opt.customers, (unsigned long long)rep.churners, (double)total / 1e6, secs,
           secs > 0 ? (double)total / 1e6 / secs : 0.0);
    return 0;
}
