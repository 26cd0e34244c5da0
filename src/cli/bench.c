/* pulse bench: runs the benchmark scripts in bench/ (figures, never pass/fail). */
#include "analytics/cluster_bench.h"
#include "analytics/features_bench.h"
#include "auth/token_bench.h"
#include "cli/cli.h"
#include "db/migrate.h"
#include "db/conninfo.h"
#include "ingest/csv_bench.h"
#include "ingest/load_bench.h"
#include "ingest/types_bench.h"
#include "ml/clv_bench.h"
#include "ml/score_bench.h"
#include "ml/train_bench.h"
#include "script/sandbox_bench.h"
#include "ml/gbdt_bench.h"
#include "core/config.h"
#include "script/script.h"

#include <lauxlib.h>
#include <lualib.h>

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Runs bench/<name>.lua in an embedded VM with the application's modules (no server, no
 * database): for benchmarks of Lua-side code such as the rules layer. */
static int run_lua_bench(const pulse_config_t *cfg, const char *name, int argc, char **argv)
{
    char path[2048];
    snprintf(path, sizeof(path), "%s/bench/%s.lua", cfg->home, name);
    lua_State *L = luaL_newstate();
    pulse_script_open(L, cfg, NULL);
    int code = 1;
    if (luaL_loadfile(L, path) != LUA_OK) {
        fprintf(stderr, "pulse bench: %s\n", lua_tostring(L, -1));
    } else {
        for (int i = 1; i < argc; i++)
            lua_pushstring(L, argv[i]);
        if (lua_pcall(L, argc - 1, 0, 0) != LUA_OK)
            fprintf(stderr, "pulse bench: %s\n", lua_tostring(L, -1));
        else
            code = 0;
    }
    fflush(stdout);
    lua_close(L);
    return code;
}

/* The end-to-end import bench writes through the application's role and tables: a database
 * without Pulse's schema gets a clear word instead of a failure halfway. */
static int database_is_migrated(const pulse_config_t *cfg, const char *conninfo)
{
    char err[512];
    PGconn *c = pulse_db_connect_blocking(conninfo, err, sizeof(err));
    int current = c != NULL && pulse_migrate_is_current(c, cfg->migrations_dir, err, sizeof(err)) == 1;
    if (!current)
        fprintf(stderr, "pulse bench: the database is not ready (%s): run `pulse migrate` first; end-to-end skipped\n", err);
    PQfinish(c);
    return current;
}

int pulse_cli_bench(int argc, char **argv)
{
    if (argc < 2 || pulse_cli_wants_help(argc, argv)) {
        printf(
            "Usage: pulse bench "
            "http|tokens|logins|csv|types|import|clv|cluster|train|score|rules|sandbox|features|gbdt|segment|dryrun\n\n"
            "  http   req/s, latency and memory of the server: a JSON handler on one loop thread and a\n"
            "         handler doing one primary-key query (wrk on this machine; needs the wrk package).\n"
            "         BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_THREADS_PK tune it.\n"
            "  tokens access-token signing and verification, microseconds per operation.\n"
            "  logins one login's cost, and a burst of failed logins: rate limit and /health latency.\n"
            "  csv    CSV sniffing and parsing, MB/s (generated files, and ../shared/data when present).\n"
            "  types  column type and date inference, values per second.\n"
            "  import FILE [--plan PLAN.json] [--kind K] [--memory-only] [--copy-out FILE]: the import loader, in memory (MB/s)\n"
            "         and end to end into PostgreSQL against a plain COPY of the same rows, and peak memory\n"
            "         (--memory-only: no database; --copy-out: the COPY text of the last pass, to compare builds).\n"
            "  clv    SUMMARY.csv: BG/NBD (and Gamma-Gamma when a zbar column is there) fits on a customer\n"
            "         summary (ID,frequency,recency,T or ID,x,t_x,T[,zbar]): parameters, best fit time in ms.\n"
            "  clv    TRANSACTIONS [--horizon DAYS]: the time-split comparison of the CLV models (holdout = the\n"
            "         last DAYS, 90): BG/NBD + Gamma-Gamma against boosted trees of holdout spend, MAE, RMSE and\n"
            "         the calibration-vs-holdout table by repeat purchases; the chosen model's parameters.\n"
            "  cluster [--n N] [--d D] [--k K]: customer clustering on N (3,500,000) synthetic RFM-like rows:\n"
            "         k-means with k = K (4) on 1 and 2 threads, then k-means, GMM and Ward choosing k; seconds,\n"
            "         iterations, scores, personas and peak memory.\n"
            "  dryrun a segments rule dry run over every customer of a generated 1 M-customer tenant (BENCH_CUSTOMERS).\n"
            "  rules  the rules layer: an offer rule call from the application (copy in, call, output check),\n"
            "         validating a rule, and the 500-call segment lookup table.\n"
            "  train  FILE.csv --label COLUMN [--id COLUMN] [--seed S]: the churn training pipeline on a\n"
            "         stratified 80/20 split: test ROC AUC, PR AUC, log-loss and training time per model,\n"
            "         the chosen model, and the test ROC AUC over 5 seeds.\n"
            "  score  [--rows N] [--trees 200] [--depth 4]: batch churn scoring through the registry container\n"
            "         (load and validate, predict, calibrate) of a calibrated GBDT on N (1,000,000) rows: rows/s\n"
            "         wall and per core on 1 and 2 threads.\n"
            "  sandbox tenant-rule calls through the sandbox, microseconds per call: a trivial function, a\n"
            "         profile in and an offer out (deep copies), and a segments rule over the 125 RFM cells.\n"
            "  features FILE [--threads N]: transactions file -> store -> per-customer features -> RFM\n"
            "         scores (CDNOW layout or the e-commerce CSV): time per stage, MB/s, peak memory.\n"
            "  gbdt   [--rows N] [--trees 200] [--depth 4]: boosted-trees training time on a Telco-sized\n"
            "         synthetic table (early stopping), batch scoring rows/s on 1 and 2 threads.\n"
            "  segment FILE [--threads N] [--k K]: parse -> features -> RFM -> the shipped rule's segments (table\n"
            "         lookup) with e-commerce behaviour -> k-means (K = 4): time per stage, total, peak memory.\n"
            "  segment --tenant ORG: the segment job on the organization's data in PostgreSQL (load, compute\n"
            "         and write times; it writes the results, as the job does).\n");
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
    if (strcmp(argv[1], "cluster") == 0)
        return pulse_cluster_bench(argc - 1, argv + 1, stdout);
    if (strcmp(argv[1], "sandbox") == 0)
        return pulse_sandbox_bench(stdout) == 0 ? 0 : 1;
    if (strcmp(argv[1], "types") == 0)
        return pulse_types_bench(stdout) == 0 ? 0 : 1;
    if (strcmp(argv[1], "clv") == 0)
        return pulse_clv_bench(argc - 1, argv + 1, stdout);
    if (strcmp(argv[1], "segment") == 0)
        return pulse_cli_segment_bench(argc - 1, argv + 1);
    if (strcmp(argv[1], "train") == 0)
        return pulse_train_bench(argc - 1, argv + 1, stdout);
    if (strcmp(argv[1], "score") == 0)
        return pulse_score_bench(argc - 1, argv + 1, stdout);
    if (strcmp(argv[1], "features") == 0)
        return pulse_features_bench(argc - 1, argv + 1, stdout);
    if (strcmp(argv[1], "gbdt") == 0)
        return pulse_gbdt_bench(argc - 1, argv + 1, stdout);
    if (strcmp(argv[1], "import") == 0) {
        char conninfo[2048];
        int memory_only = 0; /* no database is looked for (or started) */
        for (int i = 2; i < argc; i++)
            memory_only |= strcmp(argv[i], "--memory-only") == 0;
        int have_db = !memory_only && pulse_cli_database("bench", &cfg, conninfo, sizeof(conninfo)) == 0 &&
                      database_is_migrated(&cfg, conninfo);
        return pulse_import_bench(argc - 1, argv + 1, have_db ? conninfo : NULL, stdout);
    }
    if (strcmp(argv[1], "rules") == 0)
        return run_lua_bench(&cfg, "rules", argc - 1, argv + 1);
    if (strcmp(argv[1], "http") != 0 && strcmp(argv[1], "logins") != 0 && strcmp(argv[1], "dryrun") != 0) {
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
