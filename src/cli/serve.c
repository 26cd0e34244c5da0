/* pulse serve: the HTTP server; pulse demo: everything a first-time user needs, then serve. */
#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "db/cluster.h"
#include "db/conninfo.h"
#include "db/migrate.h"
#include "demo/demo.h"
#include "server/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Applies --port and --threads over the environment (the flags win). */
static int parse_server_flags(int argc, char **argv, const char *cmd)
{
    for (int i = 1; i < argc; i++) {
        const char *var = NULL;
        if (strcmp(argv[i], "--port") == 0)
            var = "PULSE_PORT";
        else if (strcmp(argv[i], "--threads") == 0)
            var = "PULSE_THREADS";
        else {
            fprintf(stderr, "pulse %s: unknown option '%s' (see pulse %s --help)\n", cmd, argv[i], cmd);
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "pulse %s: %s needs a value\n", cmd, argv[i]);
            return -1;
        }
        setenv(var, argv[++i], 1);
    }
    return 0;
}

static void serve_usage(const char *cmd)
{
    if (strcmp(cmd, "demo") == 0)
        printf("Usage: pulse demo [--port N] [--threads N]\n\n"
               "Provisions a private PostgreSQL under var/ (unless PULSE_DATABASE_URL is set), applies the\n"
               "migrations, loads the demo data and serves the product. Safe to run again.\n\n");
    else
        printf("Usage: pulse serve [--port N] [--threads N]\n\n"
               "Serves the API (/api), the dashboard (/), the widget (/widget), /docs, /openapi.json,\n"
               "/health and /ready. SIGTERM or Ctrl-C: finish in-flight requests, then exit 0.\n"
               "SIGHUP: reload lua/ (a reload that fails to load keeps the running code).\n\n");
    pulse_config_describe();
}

int pulse_cli_serve(int argc, char **argv)
{
    pulse_config_t cfg;
    char conninfo[2048];
    if (pulse_cli_wants_help(argc, argv)) {
        serve_usage("serve");
        return 0;
    }
    if (parse_server_flags(argc, argv, "serve") != 0)
        return 2;
    if (pulse_cli_database("serve", &cfg, conninfo, sizeof(conninfo)) != 0)
        return 1;
    return pulse_server_run(&cfg, conninfo);
}

int pulse_cli_demo(int argc, char **argv)
{
    pulse_config_t cfg;
    char conninfo[2048], err[2048];
    if (pulse_cli_wants_help(argc, argv)) {
        serve_usage("demo");
        return 0;
    }
    if (parse_server_flags(argc, argv, "demo") != 0)
        return 2;
    printf("pulse demo: preparing the database...\n");
    fflush(stdout);
    if (pulse_cli_database("demo", &cfg, conninfo, sizeof(conninfo)) != 0)
        return 1;
    PGconn *conn = pulse_db_connect_blocking(conninfo, err, sizeof(err));
    if (conn == NULL) {
        fprintf(stderr, "pulse demo: %s\n", err);
        return 1;
    }
    char password[64];
    int rc = pulse_migrate_apply(conn, cfg.migrations_dir, stdout, err, sizeof(err));
    if (rc != 0) {
        PQfinish(conn);
        fprintf(stderr, "pulse demo: migration failed: %s\n", err);
        return 1;
    }
    rc = pulse_demo_load(&cfg, conninfo, conn, password, sizeof(password), err, sizeof(err));
    PQfinish(conn);
    if (rc != 0) {
        fprintf(stderr, "pulse demo: loading the demo data failed: %s\n", err);
        return 1;
    }
    printf("pulse demo: demo organizations: Demo Retail (sign in as %s), Demo Telco (%s), Demo Bank (%s);\n"
           "            password %s (kept in %s/demo-password)\n",
           PULSE_DEMO_EMAIL, PULSE_DEMO_TELCO_EMAIL, PULSE_DEMO_BANK_EMAIL, password, cfg.var_dir);
    fflush(stdout);
    return pulse_server_run(&cfg, conninfo);
}
