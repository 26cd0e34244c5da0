/* pulse migrate: applies the pending migrations of $PULSE_HOME/migrations, or lists their state. */
#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "db/conninfo.h"
#include "db/migrate.h"

#include <stdio.h>
#include <string.h>

#define EXIT_PENDING 3

static void usage(FILE *out)
{
    fprintf(out, "Usage: pulse migrate [--status]\n\n"
                 "Applies the pending migrations of $PULSE_HOME/migrations (NNNN_name.sql, in version order,\n"
                 "one transaction each) and records them in the table schema_migrations. A migration that was\n"
                 "applied must not be edited, renamed or deleted: add a new one instead.\n\n"
                 "Database: PULSE_DATABASE_URL, or else the private PostgreSQL cluster under PULSE_VAR_DIR\n"
                 "(created and started on demand).\n\n"
                 "Options:\n"
                 "  --status   list every migration (applied, pending, CHANGED, MISSING FILE), apply nothing\n"
                 "  --help     this text\n\n"
                 "Exit status: 0 done (--status: everything applied), 1 error (including a changed or missing\n"
                 "applied migration), 2 usage error, 3 (--status only) some migrations are pending.\n");
}

int pulse_cli_migrate(int argc, char **argv)
{
    int status_only = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--status") == 0) {
            status_only = 1;
        } else {
            fprintf(stderr, "pulse migrate: unknown argument '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    pulse_config_t cfg;
    char err[2048], conninfo[4096];
    if (pulse_cli_database("migrate", &cfg, conninfo, sizeof(conninfo)) != 0)
        return 1;
    PGconn *conn = pulse_db_connect_blocking(conninfo, err, sizeof(err));
    if (conn == NULL) {
        fprintf(stderr, "pulse migrate: %s\n", err);
        return 1;
    }
    char target[512];
    pulse_db_conninfo_redact(conninfo, target, sizeof(target));

    int rc;
    if (status_only) {
        int pending = 0;
        printf("database: %s\nmigrations: %s\n", target, cfg.migrations_dir);
        if (pulse_migrate_status(conn, cfg.migrations_dir, stdout, &pending, err, sizeof(err)) != 0) {
            fflush(stdout);
            fprintf(stderr, "pulse migrate: %s\n", err);
            rc = 1;
        } else {
            rc = pending > 0 ? EXIT_PENDING : 0;
        }
    } else {
        printf("migrating %s\n", target);
        fflush(stdout);
        if (pulse_migrate_apply(conn, cfg.migrations_dir, stdout, err, sizeof(err)) != 0) {
            fflush(stdout);
            fprintf(stderr, "pulse migrate: %s\n", err);
            rc = 1;
        } else {
            rc = 0;
        }
    }
    PQfinish(conn);
    return rc;
}
