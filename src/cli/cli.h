/* Subcommands of the pulse binary. Each takes (argc, argv) with argv[0] the command name,
 * handles its own --help, and returns the process exit code (0 ok, 1 failure, 2 usage). */
#ifndef PULSE_CLI_CLI_H
#define PULSE_CLI_CLI_H

#include <stddef.h>

#include "core/config.h"

typedef struct pulse_cli_command_t {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} pulse_cli_command_t;

int pulse_cli_serve(int argc, char **argv);
int pulse_cli_migrate(int argc, char **argv);
int pulse_cli_demo(int argc, char **argv);
int pulse_cli_db(int argc, char **argv);
int pulse_cli_bench(int argc, char **argv);
int pulse_cli_import(int argc, char **argv);
int pulse_cli_gen(int argc, char **argv);
int pulse_cli_rules(int argc, char **argv);
int pulse_cli_segment(int argc, char **argv);
/* The segment job (and with cluster, a cluster job: method, k 0 = auto) for one organization, run
 * in this process as the workers would (pulse segment --tenant, pulse demo). rules: a segments rule
 * file, NULL for the shipped one; as_of NULL for the default. Returns 0 when every job is done. */
int pulse_segment_org(const pulse_config_t *cfg, const char *conninfo, const char *tenant, const char *industry, const char *rules,
                      const char *as_of, int cluster, const char *method, int k, int quiet);
/* pulse bench segment FILE | --tenant ORG (argv[0] is "segment"), beside the CLI it measures. */
int pulse_cli_segment_bench(int argc, char **argv);
int pulse_cli_train(int argc, char **argv);
int pulse_cli_score(int argc, char **argv);

/* True if argv holds --help or -h. */
int pulse_cli_wants_help(int argc, char **argv);
/* Loads the configuration (and the log level); production without a database URL is refused.
 * Prints "pulse <cmd>: <what is wrong>" and returns -1 on failure. */
int pulse_cli_config(const char *cmd, pulse_config_t *cfg);
/* pulse_cli_config, then where the database is (starting the private cluster if that is the
 * one), into conninfo. Prints the problem and returns -1 on failure. */
int pulse_cli_database(const char *cmd, pulse_config_t *cfg, char *conninfo, size_t conninfo_len);

#endif
