/* pulse bench: runs the benchmark scripts in bench/ (figures, never pass/fail). */
#include "auth/token_bench.h"
#include "cli/cli.h"
#include "ingest/csv_bench.h"
#include "ingest/load_bench.h"
#include "ingest/types_bench.h"
#include "ml/gbdt_bench.h"
#include "core/config.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int pulse_cli_bench(int argc, char **argv)
{
    if (argc < 2 || pulse_cli_wants_help(argc, argv)) {
        printf("Usage: pulse bench http|tokens|logins|csv|types|import|gbdt\n\n"
               "  http   req/s, latency and memory of the server: a JSON handler on one loop thread and a\n"
               "         handler doing one primary-key query (wrk on this machine; needs the wrk package).\n"
               "         BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_THREADS_PK tune it.\n"
               "  tokens access-token signing and verification, microseconds per operation.\n"
               "  logins one login's cost, and a burst of failed logins: rate limit and /health latency.\n"
               "  csv    CSV sniffing and parsing, MB/s (generated files, and ../shared/data when present).\n"
               "  types  column type and date inference, values per second.\n"
               "  import FILE [--plan PLAN.json] [--kind K]: the import loader, in memory (MB/s) and end to end\n"
               "         into PostgreSQL against a plain COPY of the same rows, and peak memory.\n"
               "  gbdt   [--rows N] [--trees 200] [--depth 4]: boosted-trees training time on a Telco-sized\n"
               "         synthetic table (early stopping), batch scoring rows/s on 1 and 2 threads.\n");
        return argc < 2 ? 2 : 0;
    }
    pulse_config_t cfg;
    char script[2048], self[1024];
    if (pulse_cli_config("bench", &cfg) != 0)
        return 1;
    if (strcmp(argv[1], "tokens") == 0)
        return pulse_token_bench(stdout) == 0 ? 0 : 1;
    if (strcmp(argv[1], "csv") == 0)
        return pulse_csv_bench(stdout) == 0 ? 0 : 1;
    if (strcmp(argv[1], "types") == 0)
        return pulse_types_bench(stdout) == 0 ? 0 : 1;
    if (strcmp(argv[1], "gbdt") == 0)
        return pulse_gbdt_bench(argc - 1, argv + 1, stdout);
    if (strcmp(argv[1], "import") == 0) {
        char conninfo[2048];
        int have_db = pulse_cli_database("bench", &cfg, conninfo, sizeof(conninfo)) == 0;
        return pulse_import_bench(argc - 1, argv + 1, have_db ? conninfo : NULL, stdout);
    }
    if (strcmp(argv[1], "http") != 0 && strcmp(argv[1], "logins") != 0) {
        fprintf(stderr, "pulse bench: unknown benchmark '%s' (see pulse bench --help)\n", argv[1]);
        return 2;
    }
    snprintf(script, sizeof(script), "%s/bench/%s.sh", cfg.home, argv[1]);
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        setenv("PULSE_BIN", self, 0); /* benchmark the binary that was asked */
    }
    execl("/bin/bash", "bash", script, (char *)NULL);
    fprintf(stderr, "pulse bench: cannot run %s: %s\n", script, strerror(errno));
    return 1;
}
