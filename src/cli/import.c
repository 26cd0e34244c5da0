/* pulse import: loads a file for one organization from the command line, through the same plan
 * (lua/import_plan.lua) and job code (src/jobs/) as an upload over HTTP: the job shows in the
 * organization's job list, and a progress bar runs on a terminal. Ctrl-C cancels: nothing is
 * stored. */
#include "cli/cli.h"
#include "core/buf.h"
#include "core/clock.h"
#include "db/conninfo.h"
#include "jobs/jobs.h"
#include "script/script.h"

#include <lauxlib.h>
#include <libgen.h>
#include <limits.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: pulse import --tenant ORG [--kind KIND] [options] FILE\n\n"
                 "Imports a CSV or .xlsx file into an organization's data, all or nothing, with a data-quality\n"
                 "report (the same checks and plan as POST /api/v1/imports). Options:\n"
                 "  --tenant ORG          the organization: its id, business id or exact name (required)\n"
                 "  --kind KIND           transactions, events or customers (default: recognised from the columns)\n"
                 "  --mapping JSON        {\"canonical_field\": \"column name\", ...} instead of the suggestion\n"
                 "  --date-formats JSON   answers to ambiguous dates: {\"column name\": \"DD/MM/YYYY\"}\n"
                 "  --sheet NAME          the .xlsx sheet (default: the first)\n"
                 "  --sep SEP             the CSV separator: , ; tab | whitespace (default: sniffed)\n"
                 "  --max-error-rate R    share of bad rows above which nothing is stored (default 0.01)\n"
                 "  --quiet               no progress bar\n"
                 "Exit status: 0 imported, 1 refused or failed (the reason is printed), 2 bad usage.\n");
}

typedef struct args_t {
    const char *tenant, *kind, *mapping, *date_formats, *sheet, *sep, *max_error_rate, *file;
    int quiet;
} args_t;

static int parse_args(int argc, char **argv, args_t *a)
{
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char **slot = NULL;
        if (strcmp(arg, "--quiet") == 0) {
            a->quiet = 1;
            continue;
        }
        if (strcmp(arg, "--tenant") == 0)
            slot = &a->tenant;
        else if (strcmp(arg, "--kind") == 0)
            slot = &a->kind;
        else if (strcmp(arg, "--mapping") == 0)
            slot = &a->mapping;
        else if (strcmp(arg, "--date-formats") == 0)
            slot = &a->date_formats;
        else if (strcmp(arg, "--sheet") == 0)
            slot = &a->sheet;
        else if (strcmp(arg, "--sep") == 0)
            slot = &a->sep;
        else if (strcmp(arg, "--max-error-rate") == 0)
            slot = &a->max_error_rate;
        if (slot != NULL) {
            if (i + 1 >= argc) {
                fprintf(stderr, "pulse import: %s needs a value (see pulse import --help)\n", arg);
                return -1;
            }
            *slot = argv[++i];
        } else if (arg[0] == '-' && arg[1] != '\0') {
            fprintf(stderr, "pulse import: unknown option %s (see pulse import --help)\n", arg);
            return -1;
        } else if (a->file == NULL) {
            a->file = arg;
        } else {
            fprintf(stderr, "pulse import: one file at a time (got %s and %s)\n", a->file, arg);
            return -1;
        }
    }
    if (a->tenant == NULL || a->file == NULL) {
        fprintf(stderr, "pulse import: %s is required (see pulse import --help)\n", a->tenant == NULL ? "--tenant" : "FILE");
        return -1;
    }
    return 0;
}

/* The organization named by id, business id or exact name -> its id and industry. */
static int find_tenant(PGconn *owner, const char *which, char id[40], char industry[32])
{
    const char *p[] = {which};
    PGresult *r = PQexecParams(owner,
                               "SELECT id, industry FROM organizations WHERE id::text = $1 OR business_id::text = $1 OR name = $1 "
                               "ORDER BY (id::text = $1) DESC LIMIT 2",
                               1, NULL, p, NULL, NULL, 0);
    int rc = -1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "pulse import: cannot read the organizations: %s", PQerrorMessage(owner));
    else if (PQntuples(r) == 0)
        fprintf(stderr, "pulse import: no organization has the id, business id or name '%s'\n", which);
    else if (PQntuples(r) > 1 && strcmp(PQgetvalue(r, 0, 0), which) != 0)
        fprintf(stderr, "pulse import: several organizations are named '%s': give its id\n", which);
    else {
        snprintf(id, 40, "%s", PQgetvalue(r, 0, 0));
        snprintf(industry, 32, "%s", PQgetvalue(r, 0, 1));
        rc = 0;
    }
    PQclear(r);
    return rc;
}

/* --- the job --- */

typedef struct bar_t {
    int tty, quiet;
    double last;
} bar_t;

static int draw(void *ud, const pulse_job_progress_t *p)
{
    bar_t *b = ud;
    if (b->quiet)
        return interrupted;
    double now = pulse_now_s();
    if (!b->tty && now - b->last < 5.0 && strcmp(p->phase, "reading") == 0)
        return interrupted; /* a log line every few seconds when not on a terminal */
    b->last = now;
    int filled = (int)(p->percent / 100.0 * 30.0 + 0.5);
    char bar[31];
    for (int i = 0; i < 30; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[30] = '\0';
    char eta[32] = "";
    if (p->eta_seconds >= 0)
        snprintf(eta, sizeof(eta), "  ETA %.0fs", p->eta_seconds);
    fprintf(stderr, "%s[%s] %5.1f%%  %llu rows (%llu rejected)  %.0f rows/s%s  %-18s%s", b->tty ? "\r" : "", bar, p->percent,
            (unsigned long long)p->rows_read, (unsigned long long)p->rows_rejected, p->rows_per_second, eta, p->phase,
            b->tty ? "" : "\n");
    fflush(stderr);
    return interrupted;
}

int pulse_cli_import(int argc, char **argv)
{
    if (pulse_cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    args_t a;
    if (parse_args(argc, argv, &a) != 0)
        return 2;
    pulse_config_t cfg;
    char conninfo[2048], err[1024], tenant[40], industry[32], id[40];
    if (pulse_cli_database("import", &cfg, conninfo, sizeof(conninfo)) != 0)
        return 1;
    PGconn *owner = pulse_db_connect_blocking(conninfo, err, sizeof(err));
    if (owner == NULL) {
        fprintf(stderr, "pulse import: %s\n", err);
        return 1;
    }
    int found = find_tenant(owner, a.tenant, tenant, industry);
    PQfinish(owner);
    if (found != 0)
        return 1;
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);
    bar_t bar = {isatty(2), a.quiet, 0};
    pulse_import_request_t rq = {a.file, a.file, a.kind, a.mapping, a.date_formats, a.sheet, a.sep, a.max_error_rate};
    pulse_job_outcome_t out;
    double t0 = pulse_now_s();
    pulse_import_file(&cfg, conninfo, tenant, industry, &rq, draw, &bar, &out, id, "pulse import", stderr);
    if (id[0] == '\0')
        return 1; /* refused before a job existed: the reasons are printed */
    double secs = pulse_now_s() - t0;
    if (bar.tty && !bar.quiet)
        fputc('\n', stderr);
    int ok = strcmp(out.state, "done") == 0;
    fprintf(ok ? stdout : stderr, "pulse import: job %s %s in %.1fs: %llu rows read, %llu accepted, %llu rejected%s%s\n", id,
            out.state, secs, (unsigned long long)out.rows_read, (unsigned long long)out.rows_accepted,
            (unsigned long long)out.rows_rejected, out.error[0] ? " — " : "", out.error);
    pulse_import_print_report(&cfg, conninfo, tenant, id, stderr);
    return ok ? 0 : 1;
}
