/* The pulse binary: one entry point, one subcommand per verb. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/config.h"

static const pulse_cli_command_t commands[] = {
    {"serve", "run the HTTP server (API, dashboard, widget)", pulse_cli_serve},
    {"migrate", "apply database migrations (--status to list them)", pulse_cli_migrate},
    {"import", "import a CSV or .xlsx file for an organization (pulse import --help)", pulse_cli_import},
    {"train", "train a churn model for an organization (pulse train --help)", pulse_cli_train},
    {"score", "score an organization's customers with its active churn model (pulse score --help)", pulse_cli_score},
    {"demo", "provision a local database, migrate, load demo data and serve", pulse_cli_demo},
    {"bench", "benchmarks that print figures (pulse bench http)", pulse_cli_bench},
    {"db", "start, stop or locate the private PostgreSQL cluster under var/", pulse_cli_db},
    {"gen", "write synthetic data files with planted churn (pulse gen --help)", pulse_cli_gen},
    {"rules", "check a rule file or test it on data (pulse rules --help)", pulse_cli_rules},
    {"segment", "segment the customers of a transactions file, no database needed (pulse segment --help)", pulse_cli_segment},
    {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: pulse <command> [options]\n\nPulse: customer-retention platform.\n\nCommands:\n");
    for (const pulse_cli_command_t *c = commands; c->name; c++)
        fprintf(out, "  %-10s %s\n", c->name, c->summary);
    fprintf(out, "\nRun 'pulse <command> --help' for a command's options. Configuration comes from PULSE_*\n"
                 "environment variables: 'pulse serve --help' lists them.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("pulse %s\n", PULSE_VERSION);
        return 0;
    }
    for (const pulse_cli_command_t *c = commands; c->name; c++) {
        if (strcmp(argv[1], c->name) == 0)
            return c->run(argc - 1, argv + 1);
    }
    fprintf(stderr, "pulse: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
