/* What several subcommands share: --help detection, configuration, locating the database. */
#include "cli/cli.h"
#include "core/log.h"
#include "db/conninfo.h"

#include <stdio.h>
#include <string.h>

int pulse_cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

int pulse_cli_config(const char *cmd, pulse_config_t *cfg)
{
    char err[1024];
    if (pulse_config_load(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "pulse %s: %s\n", cmd, err);
        return -1;
    }
    pulse_log_set_level(cfg->log_level);
    if (strcmp(cfg->env, "production") == 0 && cfg->database_url == NULL) {
        fprintf(stderr, "pulse %s: PULSE_ENV=production needs PULSE_DATABASE_URL (the private cluster is for development only)\n",
                cmd);
        return -1;
    }
    return 0;
}

int pulse_cli_database(const char *cmd, pulse_config_t *cfg, char *conninfo, size_t conninfo_len)
{
    char err[2048];
    if (pulse_cli_config(cmd, cfg) != 0)
        return -1;
    if (pulse_db_conninfo(cfg, conninfo, conninfo_len, err, sizeof(err)) != 0) {
        fprintf(stderr, "pulse %s: %s\n", cmd, err);
        return -1;
    }
    return 0;
}
