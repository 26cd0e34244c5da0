/* Configuration from the environment (PULSE_*), validated once at start-up. Every variable,
 * its default and its meaning is listed in pulse_config_describe() and in the README. */
#ifndef PULSE_CORE_CONFIG_H
#define PULSE_CORE_CONFIG_H

#include <stddef.h>

#define PULSE_VERSION "0.1.0"

typedef struct pulse_config_t {
    const char *env;          /* "development" or "production" */
    const char *bind;         /* PULSE_BIND, default 127.0.0.1 */
    int port;                 /* PULSE_PORT, default 8080 */
    int threads;              /* PULSE_THREADS, default: number of cores */
    const char *database_url; /* PULSE_DATABASE_URL; NULL: the private cluster under var/ */
    int db_pool;              /* PULSE_DB_POOL connections per loop thread, default 2 */
    const char *db_role;      /* PULSE_DB_ROLE: the role request connections act as, default pulse_app */
    int statement_timeout_ms; /* PULSE_DB_STATEMENT_TIMEOUT_MS, default 5000 */
    size_t max_body_bytes;    /* PULSE_MAX_BODY_BYTES, default 1 MiB */
    int request_timeout_ms;   /* PULSE_REQUEST_TIMEOUT_MS, default 30000 */
    int shutdown_timeout_ms;  /* PULSE_SHUTDOWN_TIMEOUT_MS, default 10000 */
    int stream_max_seconds;   /* PULSE_STREAM_MAX_SECONDS: longest streamed answer (SSE), default 3600 */
    const char *cors_origins; /* PULSE_CORS_ORIGINS, comma-separated, default "*" */
    const char *log_level;    /* PULSE_LOG_LEVEL, default info */
    int access_log;           /* PULSE_ACCESS_LOG, default 1 */
    const char *home;         /* PULSE_HOME: folder holding lua/, migrations/, dashboard/ ... */
    const char *var_dir;      /* PULSE_VAR_DIR, default $PULSE_HOME/var */
    const char *app_extra;    /* PULSE_APP_EXTRA: extra Lua route files (';'-separated), tests and benches */
    size_t max_upload_bytes;  /* PULSE_MAX_UPLOAD_BYTES: largest upload (file routes), default 2 GiB */
    const char *upload_dir;   /* PULSE_UPLOAD_DIR, default $PULSE_VAR_DIR/uploads */
    int job_threads;          /* PULSE_JOB_THREADS: import workers in this process, default 1 */
    int job_stale_seconds;    /* PULSE_JOB_STALE_SECONDS: heartbeat age after which a job is retried */
    char lua_dir[1024], migrations_dir[1024], dashboard_dir[1024], widget_dir[1024], docs_assets_dir[1024];
} pulse_config_t;

/* Reads the environment into cfg. On a bad value returns -1 with a message in err naming the
 * variable, what was wrong and what to do. */
int pulse_config_load(pulse_config_t *cfg, char *err, size_t errlen);
/* Prints the table of variables (for --help). */
void pulse_config_describe(void);
/* Resolves a path under PULSE_HOME into out. */
void pulse_config_path(const pulse_config_t *cfg, const char *rel, char *out, size_t outlen);

#endif
