/* PULSE_* environment variables → pulse_config_t. */
#include "core/config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef PULSE_SOURCE_DIR
#define PULSE_SOURCE_DIR "."
#endif

static const struct {
    const char *name, *def, *what;
} variables[] = {
    {"PULSE_ENV", "development", "development or production (production refuses missing secrets)"},
    {"PULSE_BIND", "127.0.0.1", "address to listen on (0.0.0.0 for all interfaces)"},
    {"PULSE_PORT", "8080", "HTTP port (serve --port overrides; 0 picks a free one)"},
    {"PULSE_THREADS", "cores", "event-loop threads, each with its own Lua VM"},
    {"PULSE_DATABASE_URL", "(private cluster)", "libpq URL; unset: a private PostgreSQL under var/pg"},
    {"PULSE_DB_POOL", "2", "database connections per loop thread (queries are pipelined)"},
    {"PULSE_DB_ROLE", "pulse_app", "role request connections act as (Row-Level Security applies to it)"},
    {"PULSE_DB_STATEMENT_TIMEOUT_MS", "5000", "statement_timeout for request queries"},
    {"PULSE_MAX_BODY_BYTES", "1048576", "largest request body accepted by the API (413 above)"},
    {"PULSE_REQUEST_TIMEOUT_MS", "30000", "a request still running after this answers 504"},
    {"PULSE_SHUTDOWN_TIMEOUT_MS", "10000", "SIGTERM: how long in-flight requests may finish"},
    {"PULSE_STREAM_MAX_SECONDS", "3600", "longest streamed answer (Server-Sent Events); then send gets 'expired'"},
    {"PULSE_CORS_ORIGINS", "*", "comma-separated origins allowed by CORS"},
    {"PULSE_LOG_LEVEL", "info", "debug, info, warn or error"},
    {"PULSE_ACCESS_LOG", "1", "1: one JSON line per request; 0: none"},
    {"PULSE_HOME", "(source tree)", "folder with lua/, migrations/, dashboard/, widget/"},
    {"PULSE_VAR_DIR", "$PULSE_HOME/var", "private database cluster and runtime files"},
    {"PULSE_APP_EXTRA", "", "extra Lua route files to load, ';'-separated (tests, benchmarks)"},
    {"PULSE_WORKERS", "cores/2", "worker threads for password hashing (off the event loops)"},
    {"PULSE_WORKER_QUEUE", "256", "hashes waiting before requests get 503 busy"},
    {"PULSE_JWT_KEYS", "(dev: random)", "kid:base64secret[@not_after],... access-token keys; required in production"},
    {"PULSE_JWT_ISSUER", "pulse", "iss of access tokens"},
    {"PULSE_JWT_AUDIENCE", "pulse-api", "aud of access tokens"},
    {"PULSE_MAX_UPLOAD_BYTES", "2147483648", "largest file accepted by the upload routes (413 above); buffered on disk"},
    {"PULSE_UPLOAD_DIR", "$PULSE_VAR_DIR/uploads", "where uploaded files wait for their import job"},
    {"PULSE_JOB_THREADS", "1", "worker threads running import jobs from the queue (0: this server runs none)"},
    {"PULSE_JOB_STALE_SECONDS", "60", "a running job without a heartbeat this long is retried (its worker died)"},
    {"PULSE_PG_PORT", "5432", "private cluster only: port naming its Unix socket"},
    {"PULSE_PG_FAST", "0", "private cluster only: 1 turns fsync off (tests; unsafe for data)"},
};

void pulse_config_describe(void)
{
    printf("Environment:\n");
    for (size_t i = 0; i < sizeof(variables) / sizeof(variables[0]); i++)
        printf("  %-30s %-18s %s\n", variables[i].name, variables[i].def, variables[i].what);
}

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return (v != NULL && *v != '\0') ? v : def;
}

static int env_int(const char *name, long def, long min, long max, long *out, char *err, size_t errlen)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < min || n > max) {
        snprintf(err, errlen, "%s must be an integer from %ld to %ld, got '%s'", name, min, max, v);
        return -1;
    }
    *out = n;
    return 0;
}

static int dir_has_app(const char *dir)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/lua/app.lua", dir);
    return access(p, R_OK) == 0;
}

static const char *find_home(void)
{
    const char *h = getenv("PULSE_HOME");
    if (h != NULL && *h != '\0')
        return h;
    static char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) != NULL && dir_has_app(cwd))
        return cwd;
    return PULSE_SOURCE_DIR;
}

void pulse_config_path(const pulse_config_t *cfg, const char *rel, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", cfg->home, rel);
}

int pulse_config_load(pulse_config_t *cfg, char *err, size_t errlen)
{
    long n;
    memset(cfg, 0, sizeof(*cfg));
    cfg->env = env_or("PULSE_ENV", "development");
    if (strcmp(cfg->env, "development") != 0 && strcmp(cfg->env, "production") != 0) {
        snprintf(err, errlen, "PULSE_ENV must be 'development' or 'production', got '%s'", cfg->env);
        return -1;
    }
    cfg->bind = env_or("PULSE_BIND", "127.0.0.1");
    if (env_int("PULSE_PORT", 8080, 0, 65535, &n, err, errlen) != 0)
        return -1;
    cfg->port = (int)n;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (env_int("PULSE_THREADS", cores > 0 ? cores : 1, 1, 256, &n, err, errlen) != 0)
        return -1;
    cfg->threads = (int)n;
    cfg->database_url = env_or("PULSE_DATABASE_URL", NULL);
    if (env_int("PULSE_DB_POOL", 2, 1, 64, &n, err, errlen) != 0)
        return -1;
    cfg->db_pool = (int)n;
    cfg->db_role = env_or("PULSE_DB_ROLE", "pulse_app");
    for (const char *c = cfg->db_role; *c; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) {
            snprintf(err, errlen, "PULSE_DB_ROLE must be a lower-case role name ([a-z0-9_]), got '%s'", cfg->db_role);
            return -1;
        }
    }
    if (env_int("PULSE_DB_STATEMENT_TIMEOUT_MS", 5000, 0, 3600000, &n, err, errlen) != 0)
        return -1;
    cfg->statement_timeout_ms = (int)n;
    if (env_int("PULSE_MAX_BODY_BYTES", 1048576, 1024, 1L << 30, &n, err, errlen) != 0)
        return -1;
    cfg->max_body_bytes = (size_t)n;
    if (env_int("PULSE_REQUEST_TIMEOUT_MS", 30000, 100, 3600000, &n, err, errlen) != 0)
        return -1;
    cfg->request_timeout_ms = (int)n;
    if (env_int("PULSE_SHUTDOWN_TIMEOUT_MS", 10000, 0, 600000, &n, err, errlen) != 0)
        return -1;
    cfg->shutdown_timeout_ms = (int)n;
    if (env_int("PULSE_STREAM_MAX_SECONDS", 3600, 1, 86400, &n, err, errlen) != 0)
        return -1;
    cfg->stream_max_seconds = (int)n;
    if (env_int("PULSE_ACCESS_LOG", 1, 0, 1, &n, err, errlen) != 0)
        return -1;
    cfg->access_log = (int)n;
    cfg->cors_origins = env_or("PULSE_CORS_ORIGINS", "*");
    cfg->log_level = env_or("PULSE_LOG_LEVEL", "info");
    if (strcmp(cfg->log_level, "debug") && strcmp(cfg->log_level, "info") && strcmp(cfg->log_level, "warn") &&
        strcmp(cfg->log_level, "error")) {
        snprintf(err, errlen, "PULSE_LOG_LEVEL must be debug, info, warn or error, got '%s'", cfg->log_level);
        return -1;
    }
    cfg->home = find_home();
    if (!dir_has_app(cfg->home)) {
        snprintf(err, errlen, "PULSE_HOME '%s' has no lua/app.lua: set PULSE_HOME to the Pulse source folder", cfg->home);
        return -1;
    }
    static char var_default[PATH_MAX];
    snprintf(var_default, sizeof(var_default), "%s/var", cfg->home);
    cfg->var_dir = env_or("PULSE_VAR_DIR", var_default);
    cfg->app_extra = env_or("PULSE_APP_EXTRA", "");
    if (env_int("PULSE_MAX_UPLOAD_BYTES", 2147483648L, 1024, 1L << 40, &n, err, errlen) != 0)
        return -1;
    cfg->max_upload_bytes = (size_t)n;
    static char upload_default[PATH_MAX];
    snprintf(upload_default, sizeof(upload_default), "%s/uploads", cfg->var_dir);
    cfg->upload_dir = env_or("PULSE_UPLOAD_DIR", upload_default);
    if (env_int("PULSE_JOB_THREADS", 1, 0, 64, &n, err, errlen) != 0)
        return -1;
    cfg->job_threads = (int)n;
    if (env_int("PULSE_JOB_STALE_SECONDS", 60, 1, 86400, &n, err, errlen) != 0)
        return -1;
    cfg->job_stale_seconds = (int)n;
    pulse_config_path(cfg, "lua", cfg->lua_dir, sizeof(cfg->lua_dir));
    pulse_config_path(cfg, "migrations", cfg->migrations_dir, sizeof(cfg->migrations_dir));
    pulse_config_path(cfg, "dashboard", cfg->dashboard_dir, sizeof(cfg->dashboard_dir));
    pulse_config_path(cfg, "widget", cfg->widget_dir, sizeof(cfg->widget_dir));
    pulse_config_path(cfg, "dashboard/node_modules/swagger-ui-dist", cfg->docs_assets_dir, sizeof(cfg->docs_assets_dir));
    return 0;
}
