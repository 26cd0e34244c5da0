/* pulse db: manage the private PostgreSQL cluster used when PULSE_DATABASE_URL is unset. */
#include "cli/cli.h"
#include "core/config.h"
#include "db/cluster.h"
#include "db/conninfo.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "Usage: pulse db <start|stop|status|url|destroy>\n\n"
                 "Manages the private PostgreSQL cluster under var/pg (PULSE_VAR_DIR), the local default\n"
                 "when PULSE_DATABASE_URL is unset:\n"
                 "  start    create the cluster if needed, start it, create the database 'pulse'\n"
                 "  stop     stop it (fast shutdown); its data stays\n"
                 "  status   say where it lives and whether it exists\n"
                 "  url      print the connection string (starting the cluster if needed)\n"
                 "  destroy  stop it and delete its data\n");
}

int pulse_cli_db(int argc, char **argv)
{
    if (pulse_cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    if (argc != 2) {
        usage(stderr);
        return 2;
    }
    pulse_config_t cfg;
    char err[2048], conninfo[2048], root[1024];
    if (pulse_cli_config("db", &cfg) != 0)
        return 1;
    const char *verb = argv[1];
    int rc = 0;
    if (cfg.database_url != NULL && strcmp(verb, "url") != 0) {
        fprintf(stderr, "pulse db: PULSE_DATABASE_URL is set: the private cluster is not in use\n");
        return 1;
    }
    if (strcmp(verb, "start") == 0 || strcmp(verb, "url") == 0) {
        rc = pulse_db_conninfo(&cfg, conninfo, sizeof(conninfo), err, sizeof(err));
        if (rc == 0)
            printf("%s\n", strcmp(verb, "url") == 0 ? conninfo : "database ready");
    } else if (strcmp(verb, "stop") == 0) {
        rc = pulse_cluster_stop(cfg.var_dir, err, sizeof(err));
    } else if (strcmp(verb, "destroy") == 0) {
        rc = pulse_cluster_destroy(cfg.var_dir, err, sizeof(err));
    } else if (strcmp(verb, "status") == 0) {
        int exists = pulse_cluster_root(cfg.var_dir, root, sizeof(root), err, sizeof(err));
        rc = exists < 0 ? -1 : 0;
        if (exists >= 0)
            printf("%s: %s\n", root, exists ? "cluster exists" : "no cluster yet");
    } else {
        usage(stderr);
        return 2;
    }
    if (rc != 0) {
        fprintf(stderr, "pulse db %s: %s\n", verb, err);
        return 1;
    }
    return 0;
}
