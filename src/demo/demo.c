/* Demo organizations, owners and data for `pulse demo` (see demo.h). */
#include "demo/demo.h"
#include "cli/cli.h"
#include "auth/password.h"
#include "core/buf.h"
#include "gen/gen.h"
#include "jobs/jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The password is made once and kept beside the private database, readable by its owner only. */
static int demo_password(const char *var_dir, char *out, size_t outlen, int *created, char *err, size_t errlen)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/demo-password", var_dir);
    FILE *f = fopen(path, "r");
    *created = 0;
    if (f != NULL) {
        int ok = fgets(out, (int)outlen, f) != NULL;
        fclose(f);
        out[strcspn(out, "\r\n")] = '\0';
        if (ok && strlen(out) >= 16)
            return 0;
    }
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    unsigned char raw[20];
    if (outlen < sizeof(raw) + 1 || RAND_bytes(raw, sizeof(raw)) != 1)
        return pulse_fail(err, errlen, "cannot make a random demo password");
    for (size_t i = 0; i < sizeof(raw); i++)
        out[i] = alphabet[raw[i] % (sizeof(alphabet) - 1)];
    out[sizeof(raw)] = '\0';
    mkdir(var_dir, 0755);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, out, strlen(out)) < 0 || write(fd, "\n", 1) < 0) {
        if (fd >= 0)
            close(fd);
        return pulse_fail(err, errlen, "cannot write %s: %s", path, strerror(errno));
    }
    close(fd);
    *created = 1;
    return 0;
}

static int exec_ok(PGresult *res, ExecStatusType want, const char *what, char *err, size_t errlen)
{
    int ok = PQresultStatus(res) == want;
    if (!ok)
        pulse_fail(err, errlen, "%s: %s", what, PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

static const struct {
    const char *name, *industry, *email;
    uint64_t customers;
} demo_orgs[] = {
    {"Demo Retail", "ecommerce", PULSE_DEMO_EMAIL, PULSE_DEMO_CUSTOMERS},
    {"Demo Telco", "telecom", PULSE_DEMO_TELCO_EMAIL, 300},
    {"Demo Bank", "banking", PULSE_DEMO_BANK_EMAIL, 300},
};

/* A demo tenant's id, registering organization and owner on first use. */
static int demo_tenant(PGconn *conn, int which, const char *password, char *tenant, size_t tenant_len, char *err, size_t errlen)
{
    const char *email = demo_orgs[which].email;
    PGresult *res = PQexecParams(conn, "SELECT tenant_id FROM users WHERE email = $1", 1, NULL, &email, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        snprintf(tenant, tenant_len, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        return 0;
    }
    PQclear(res);
    char hash[PULSE_PASSWORD_ENCODED_MAX];
    if (pulse_password_hash(password, strlen(password), hash, sizeof(hash), err, errlen) != 0)
        return -1;
    const char *params[5] = {demo_orgs[which].name, demo_orgs[which].industry, email, "Demo Owner", hash};
    res = PQexecParams(conn, "SELECT tenant_id FROM pulse_register($1, $2, $3, $4, $5)", 5, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        return exec_ok(res, PGRES_TUPLES_OK, "registering a demo organization", err, errlen);
    snprintf(tenant, tenant_len, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

/* Whether the tenant already has a finished import of this kind (a second run adds nothing). */
static int has_import(PGconn *conn, const char *tenant, const char *kind)
{
    const char *p[] = {tenant, kind};
    PGresult *res = PQexecParams(conn, "SELECT 1 FROM imports WHERE tenant_id = $1 AND kind = $2 AND state = 'done'", 2, NULL, p,
                                 NULL, NULL, 0);
    int yes = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;
    PQclear(res);
    return yes;
}

/* Generated files (pulse gen, seed 42) for one organization, imported as a user would. */
static int demo_data(const pulse_config_t *cfg, const char *conninfo, PGconn *conn, int which, const char *tenant, char *err,
                     size_t errlen)
{
    const char *industry = demo_orgs[which].industry;
    const char *activity = strcmp(industry, "ecommerce") == 0 ? "transactions" : "events";
    if (has_import(conn, tenant, "customers") && has_import(conn, tenant, activity))
        return 0;
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/demo-%s", cfg->var_dir, industry);
    pulse_gen_options_t opt;
    pulse_gen_options_init(&opt);
    pulse_gen_parse_industry(industry, &opt.industry);
    opt.customers = demo_orgs[which].customers;
    opt.seed = 42;
    opt.out_dir = dir;
    pulse_gen_report_t rep;
    if (pulse_gen_write(&opt, &rep, err, errlen) != 0)
        return -1;
    for (int f = rep.nfiles - 1; f >= 0; f--) { /* customers first, then their activity */
        const char *kind = f == 1 ? "customers" : activity;
        if (has_import(conn, tenant, kind))
            continue;
        pulse_import_request_t rq = {rep.files[f].path, NULL, kind, NULL, NULL, NULL, NULL, NULL};
        pulse_job_outcome_t out;
        char job[40];
        if (pulse_import_file(cfg, conninfo, tenant, industry, &rq, NULL, NULL, &out, job, "pulse demo", stderr) != 0)
            return pulse_fail(err, errlen, "importing %s for %s: %s %s", rep.files[f].path, demo_orgs[which].name, out.state,
                              out.error);
        printf("pulse demo: %s: %llu %s imported\n", demo_orgs[which].name, (unsigned long long)out.rows_accepted, kind);
    }
    return 0;
}

/* Segments, behaviour and 4 clusters for an organization that has none yet, so the demo opens on
 * analysed customers (the same jobs POST .../segment and POST /api/v1/clusters start). */
static int demo_segments(const pulse_config_t *cfg, const char *conninfo, PGconn *conn, int which, const char *tenant, char *err,
                         size_t errlen)
{
    const char *p[] = {tenant};
    PGresult *r = PQexecParams(conn, "SELECT 1 FROM analytics_runs WHERE tenant_id = $1 LIMIT 1", 1, NULL, p, NULL, NULL, 0);
    int done = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return exec_ok(r, PGRES_TUPLES_OK, "looking for the demo's segments", err, errlen);
    PQclear(r);
    if (done)
        return 0;
    if (pulse_segment_org(cfg, conninfo, tenant, demo_orgs[which].industry, NULL, NULL, 1, "kmeans", 4, 1) != 0)
        return pulse_fail(err, errlen, "segmenting %s failed (see above)", demo_orgs[which].name);
    printf("pulse demo: %s: customers segmented and clustered\n", demo_orgs[which].name);
    return 0;
}

int pulse_demo_load(const pulse_config_t *cfg, const char *conninfo, PGconn *conn, char *password, size_t password_len, char *err,
                    size_t errlen)
{
    int created;
    if (demo_password(cfg->var_dir, password, password_len, &created, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(demo_orgs) / sizeof(demo_orgs[0]); i++) {
        char tenant[64];
        if (demo_tenant(conn, (int)i, password, tenant, sizeof(tenant), err, errlen) != 0 ||
            demo_data(cfg, conninfo, conn, (int)i, tenant, err, errlen) != 0 ||
            demo_segments(cfg, conninfo, conn, (int)i, tenant, err, errlen) != 0)
            return -1;
    }
    return 0;
}
