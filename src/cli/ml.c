/* pulse train and pulse score: the churn and CLV training and the scoring jobs run from the command line for
 * one organization, through the same job code as POST /api/v1/ml/train and /api/v1/ml/predict/batch
 * (src/jobs/train_job.c, score_job.c): the job shows in the organization's job list and the model
 * in its registry. */
#include "cli/cli.h"
#include "core/buf.h"
#include "db/conninfo.h"
#include "jobs/jobs.h"
#include "jobs/score_job.h"
#include "jobs/train_job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct ml_args_t {
    const char *tenant, *kind, *seed, *medium, *high, *label, *horizon;
    int activate;
} ml_args_t;

static void usage(FILE *out, const char *cmd)
{
    if (strcmp(cmd, "train") == 0)
        fprintf(out, "Usage: pulse train --tenant ORG [--kind churn|clv] [--label explicit|behavioural] [--horizon DAYS]\n"
                     "                   [--seed S] [--activate]\n\n"
                     "--kind churn (the default) trains a churn model: logistic regression and gradient-boosted\n"
                     "trees, the better on validation ROC AUC kept and calibrated. --label explicit uses the\n"
                     "customers' churned flag (a customers file's churn column; the default when there is one);\n"
                     "--label behavioural derives it from the transactions: churned = no purchase in the last\n"
                     "--horizon days (default 90), features from the days before.\n"
                     "--kind clv trains the lifetime-value models on a time split: the last --horizon days\n"
                     "(default 90) are the holdout; BG/NBD + Gamma-Gamma against boosted trees of holdout spend,\n"
                     "the lower holdout MAE kept, refitted on all data, and every customer's CLV written.\n"
                     "--horizon takes 7 to 730 days; the data must span it plus 90 days.\n"
                     "The model is stored as the next version in the registry (active when it is the first of\n"
                     "its kind, or with --activate). Prints the job's result with the metrics.\n"
                     "Exit status: 0 trained, 1 refused or failed (the reason is printed), 2 bad usage.\n");
    else
        fprintf(out, "Usage: pulse score --tenant ORG [--medium P] [--high P]\n\n"
                     "Scores every customer of the organization with its active churn model and stores the\n"
                     "predictions (probability, risk band, reasons). --medium/--high: the churn band cut-offs\n"
                     "(default 0.4 and 0.7, the shipped segments rule's).\n"
                     "Exit status: 0 scored, 1 refused or failed, 2 bad usage.\n");
}

static int check_values(const char *cmd, const ml_args_t *a);

static int parse(const char *cmd, int argc, char **argv, ml_args_t *a)
{
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        const char **slot = NULL;
        if (strcmp(argv[i], "--activate") == 0 && strcmp(cmd, "train") == 0) {
            a->activate = 1;
            continue;
        }
        if (strcmp(argv[i], "--tenant") == 0)
            slot = &a->tenant;
        else if (strcmp(argv[i], "--kind") == 0 && strcmp(cmd, "train") == 0)
            slot = &a->kind;
        else if (strcmp(argv[i], "--seed") == 0 && strcmp(cmd, "train") == 0)
            slot = &a->seed;
        else if (strcmp(argv[i], "--label") == 0 && strcmp(cmd, "train") == 0)
            slot = &a->label;
        else if (strcmp(argv[i], "--horizon") == 0 && strcmp(cmd, "train") == 0)
            slot = &a->horizon;
        else if (strcmp(argv[i], "--medium") == 0 && strcmp(cmd, "score") == 0)
            slot = &a->medium;
        else if (strcmp(argv[i], "--high") == 0 && strcmp(cmd, "score") == 0)
            slot = &a->high;
        if (slot == NULL || i + 1 >= argc) {
            fprintf(stderr, "pulse %s: %s %s (see pulse %s --help)\n", cmd, slot ? "a value is needed after" : "unknown option",
                    argv[i], cmd);
            return -1;
        }
        *slot = argv[++i];
    }
    if (a->tenant == NULL) {
        fprintf(stderr, "pulse %s: --tenant is required (see pulse %s --help)\n", cmd, cmd);
        return -1;
    }
    return check_values(cmd, a);
}

/* --kind, --label, --horizon, --seed (as POST /api/v1/ml/train checks them) and the churn bands. */
static int check_values(const char *cmd, const ml_args_t *a)
{
    if (a->kind != NULL && strcmp(a->kind, "churn") != 0 && strcmp(a->kind, "clv") != 0) {
        fprintf(stderr, "pulse %s: --kind takes churn or clv, not '%s'\n", cmd, a->kind);
        return -1;
    }
    if (a->label != NULL && strcmp(a->label, "explicit") != 0 && strcmp(a->label, "behavioural") != 0) {
        fprintf(stderr, "pulse %s: --label takes explicit or behavioural, not '%s'\n", cmd, a->label);
        return -1;
    }
    if (a->label != NULL && a->kind != NULL && strcmp(a->kind, "clv") == 0) {
        fprintf(stderr, "pulse %s: --label is for churn models; a clv model is fitted on the transactions\n", cmd);
        return -1;
    }
    long days = a->horizon ? strtol(a->horizon, NULL, 10) : 90;
    if (a->horizon != NULL && (strspn(a->horizon, "0123456789") != strlen(a->horizon) || days < 7 || days > 730)) {
        fprintf(stderr, "pulse %s: --horizon takes a number of days from 7 to 730, not '%s'\n", cmd, a->horizon);
        return -1;
    }
    if (a->seed != NULL && strspn(a->seed, "0123456789") != strlen(a->seed)) {
        fprintf(stderr, "pulse %s: --seed takes a non-negative integer\n", cmd);
        return -1;
    }
    double m = a->medium ? atof(a->medium) : 0.4, h = a->high ? atof(a->high) : 0.7;
    if (!(m > 0 && m < h && h < 1)) {
        fprintf(stderr, "pulse %s: the churn bands need 0 < medium < high < 1\n", cmd);
        return -1;
    }
    return 0;
}

/* The organization named by id, business id or exact name -> its id. */
static int find_tenant(const char *cmd, PGconn *owner, const char *which, char id[40])
{
    const char *p[] = {which};
    PGresult *r = PQexecParams(owner,
                               "SELECT id FROM organizations WHERE id::text = $1 OR business_id::text = $1 OR name = $1 "
                               "ORDER BY (id::text = $1) DESC LIMIT 2",
                               1, NULL, p, NULL, NULL, 0);
    int rc = -1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "pulse %s: cannot read the organizations: %s", cmd, PQerrorMessage(owner));
    else if (PQntuples(r) == 0)
        fprintf(stderr, "pulse %s: no organization has the id, business id or name '%s'\n", cmd, which);
    else if (PQntuples(r) > 1 && strcmp(PQgetvalue(r, 0, 0), which) != 0)
        fprintf(stderr, "pulse %s: several organizations are named '%s': give its id\n", cmd, which);
    else {
        snprintf(id, 40, "%s", PQgetvalue(r, 0, 0));
        rc = 0;
    }
    PQclear(r);
    return rc;
}

static int run(const char *cmd, int argc, char **argv)
{
    if (pulse_cli_wants_help(argc, argv)) {
        usage(stdout, cmd);
        return 0;
    }
    ml_args_t a;
    if (parse(cmd, argc, argv, &a) != 0)
        return 2;
    pulse_config_t cfg;
    char conninfo[2048], err[1024], tenant[40];
    if (pulse_cli_database(cmd, &cfg, conninfo, sizeof(conninfo)) != 0)
        return 1;
    PGconn *owner = pulse_db_connect_blocking(conninfo, err, sizeof(err));
    if (owner == NULL) {
        fprintf(stderr, "pulse %s: %s\n", cmd, err);
        return 1;
    }
    int found = find_tenant(cmd, owner, a.tenant, tenant);
    PQfinish(owner);
    if (found != 0)
        return 1;
    PGconn *ctl = pulse_jobs_connect(&cfg, conninfo, "pulse-cli-job", err, sizeof(err));
    PGconn *work = ctl ? pulse_jobs_connect(&cfg, conninfo, "pulse-cli-work", err, sizeof(err)) : NULL;
    if (work == NULL) {
        fprintf(stderr, "pulse %s: %s\n", cmd, err);
        PQfinish(ctl);
        return 1;
    }
    int train = strcmp(cmd, "train") == 0;
    pulse_buf_t params = PULSE_BUF_INIT;
    if (train) {
        int clv = a.kind != NULL && strcmp(a.kind, "clv") == 0;
        pulse_buf_printf(&params, "{\"kind\":\"%s\",\"activate\":%s,\"seed\":%s,\"source\":\"cli\"", clv ? "clv" : "churn",
                         a.activate ? "true" : "false", a.seed ? a.seed : "42");
        if (a.label)
            pulse_buf_printf(&params, ",\"label\":\"%s\"", a.label);
        if (a.horizon)
            pulse_buf_printf(&params, ",\"horizon_days\":%s", a.horizon);
        pulse_buf_putc(&params, '}');
    } else
        pulse_buf_printf(&params, "{\"customer_ids\":[\"all\"],\"churn_bands\":{\"medium\":%s,\"high\":%s},\"source\":\"cli\"}",
                         a.medium ? a.medium : "0.4", a.high ? a.high : "0.7");
    const char *p[] = {tenant, train ? "train" : "score", params.data};
    PGresult *r =
        pulse_jobs_tenant_exec(ctl, tenant,
                               "INSERT INTO jobs (tenant_id, kind, params, state, attempts, phase, started_at, heartbeat_at) "
                               "VALUES ($1, $2, $3::jsonb, 'running', 1, 'starting', now(), now()) RETURNING id",
                               3, p, err, sizeof(err));
    int rc = 1;
    if (r == NULL) {
        fprintf(stderr, "pulse %s: cannot create the job: %s\n", cmd, err);
    } else {
        char job[40];
        snprintf(job, sizeof(job), "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        pulse_job_outcome_t out;
        fprintf(stderr, "pulse %s: job %s running\n", cmd, job);
        int ok = (train ? pulse_train_job_run : pulse_score_job_run)(&cfg, ctl, work, job, tenant, params.data, NULL, NULL, NULL,
                                                                     &out) == 0;
        const char *q[] = {job};
        r = pulse_jobs_tenant_exec(ctl, tenant, "SELECT coalesce(result::text, '') FROM jobs WHERE id = $1", 1, q, err,
                                   sizeof(err));
        if (ok)
            printf("pulse %s: job %s done: %s\n", cmd, job, r && PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
        else
            fprintf(stderr, "pulse %s: job %s %s: %s\n", cmd, job, out.state, out.error);
        PQclear(r);
        rc = ok ? 0 : 1;
    }
    pulse_buf_free(&params);
    PQfinish(work);
    PQfinish(ctl);
    return rc;
}

int pulse_cli_train(int argc, char **argv)
{
    return run("train", argc, argv);
}

int pulse_cli_score(int argc, char **argv)
{
    return run("score", argc, argv);
}
