/* Migration runner: scan and checksum the folder, compare with schema_migrations, apply what is
 * pending one transaction per file. */
#include "db/migrate.h"
#include "core/buf.h"
#include "core/clock.h"
#include "db/conninfo.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#define MAX_MIGRATION_BYTES (64L * 1024 * 1024)

/* libpq messages end with a newline (and may span lines); ours are one line. */
static int fail_pg(PGconn *conn, const char *what, char *err, size_t errlen)
{
    pulse_fail(err, errlen, "%s: %s", what, PQerrorMessage(conn));
    pulse_db_one_line(err);
    return -1;
}

/* ---- scanning ---- */

/* <4+ digits>_<[a-z0-9_]+>.sql → version; -1 if the name does not follow the rule. */
static int parse_name(const char *file, int64_t *version)
{
    size_t len = strlen(file), digits = 0;
    if (len < 5 || strcmp(file + len - 4, ".sql") != 0)
        return -1;
    while (file[digits] >= '0' && file[digits] <= '9')
        digits++;
    if (digits < 4 || file[digits] != '_')
        return -1;
    size_t rest = digits + 1;
    if (rest >= len - 4)
        return -1;
    for (size_t i = rest; i < len - 4; i++) {
        char ch = file[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
            return -1;
    }
    int64_t v = 0;
    for (size_t i = 0; i < digits; i++) {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (file[i] - '0');
    }
    *version = v;
    return 0;
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char hex[] = "0123456789abcdef";
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1) {
        fprintf(stderr, "pulse: SHA-256 unavailable in libcrypto\n");
        abort();
    }
    for (unsigned int i = 0; i < mdlen && i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

static int read_file(const char *path, char **data, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rbe");
    if (f == NULL)
        return pulse_fail(err, errlen, "cannot read migration %s: %s", path, strerror(errno));
    pulse_buf_t b = PULSE_BUF_INIT;
    char chunk[16384];
    size_t n;
    pulse_buf_reserve(&b, 0);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        pulse_buf_append(&b, chunk, n);
        if (b.len > (size_t)MAX_MIGRATION_BYTES) {
            fclose(f);
            pulse_buf_free(&b);
            return pulse_fail(err, errlen, "migration %s is larger than %ld MiB", path, MAX_MIGRATION_BYTES >> 20);
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        pulse_buf_free(&b);
        return pulse_fail(err, errlen, "cannot read migration %s", path);
    }
    *data = b.data;
    *len = b.len;
    return 0;
}

static int by_version(const void *a, const void *b)
{
    const pulse_migration_t *x = a, *y = b;
    if (x->version != y->version)
        return x->version < y->version ? -1 : 1;
    return strcmp(x->name, y->name);
}

void pulse_migrate_free(pulse_migration_t *list, size_t count)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < count; i++) {
        free(list[i].name);
        free(list[i].path);
        free(list[i].sql);
    }
    free(list);
}

int pulse_migrate_scan(const char *dir, pulse_migration_t **out, size_t *count, char *err, size_t errlen)
{
    *out = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return pulse_fail(err, errlen, "cannot open the migrations folder %s: %s", dir, strerror(errno));
    pulse_migration_t *list = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') /* ., .., .gitkeep, editor swap files */
            continue;
        int64_t version;
        if (parse_name(e->d_name, &version) != 0) {
            rc = pulse_fail(err, errlen,
                            "%s/%s is not a migration file name: use NNNN_name.sql (4 or more digits, then lowercase letters, "
                            "digits and '_'), and keep other files out of the folder",
                            dir, e->d_name);
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            list = pulse_xrealloc(list, cap * sizeof(*list));
        }
        pulse_migration_t *m = &list[n];
        memset(m, 0, sizeof(*m));
        m->version = version;
        size_t len = strlen(e->d_name);
        m->name = pulse_xmalloc(len - 3);
        memcpy(m->name, e->d_name, len - 4);
        m->name[len - 4] = '\0';
        pulse_buf_t path = PULSE_BUF_INIT;
        pulse_buf_printf(&path, "%s/%s", dir, e->d_name);
        m->path = path.data;
        n++;
        if (read_file(m->path, &m->sql, &m->sql_len, err, errlen) != 0) {
            rc = -1;
            break;
        }
        if (memchr(m->sql, '\0', m->sql_len) != NULL) {
            rc = pulse_fail(err, errlen, "migration %s holds a NUL byte: it must be a text file", m->path);
            break;
        }
        sha256_hex(m->sql, m->sql_len, m->checksum);
    }
    closedir(d);
    if (rc != 0) {
        pulse_migrate_free(list, n);
        return -1;
    }
    if (n > 1)
        qsort(list, n, sizeof(*list), by_version);
    for (size_t i = 1; i < n; i++) {
        if (list[i].version == list[i - 1].version) {
            pulse_fail(err, errlen,
                       "migrations %s.sql and %s.sql have the same version %" PRId64 ": give the one not applied yet a new version",
                       list[i - 1].name, list[i].name, list[i].version);
            pulse_migrate_free(list, n);
            return -1;
        }
    }
    *out = list;
    *count = n;
    return 0;
}

/* ---- comparing with the database ---- */

typedef enum { ST_APPLIED, ST_PENDING, ST_CHANGED, ST_RENAMED, ST_MISSING } state_t;

typedef struct entry_t {
    int64_t version;
    const pulse_migration_t *file; /* NULL: MISSING */
    int row;                       /* row in the applied result, -1: PENDING */
    state_t state;
} entry_t;

typedef struct history_t {
    PGresult *res; /* version, name, checksum, applied_at, duration_ms; NULL when no table yet */
    int rows;
    entry_t *entries;
    size_t count;
    size_t pending, problems;
} history_t;

enum { COL_VERSION, COL_NAME, COL_CHECKSUM, COL_APPLIED_AT, COL_DURATION };

static void history_free(history_t *h)
{
    PQclear(h->res);
    free(h->entries);
    memset(h, 0, sizeof(*h));
}

static int table_exists(PGconn *conn, int *yes, char *err, size_t errlen)
{
    PGresult *r = PQexec(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        return fail_pg(conn, "cannot look for table schema_migrations", err, errlen);
    }
    *yes = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return 0;
}

/* Reads schema_migrations and pairs its rows with the files (both sorted by version). */
static int load_history(PGconn *conn, const pulse_migration_t *files, size_t nfiles, history_t *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof(*h));
    int have;
    if (table_exists(conn, &have, err, errlen) != 0)
        return -1;
    if (have) {
        h->res = PQexec(conn, "SELECT version, name, checksum, "
                              "to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC', "
                              "coalesce(duration_ms, -1) FROM schema_migrations ORDER BY version");
        if (PQresultStatus(h->res) != PGRES_TUPLES_OK) {
            fail_pg(conn, "cannot read schema_migrations", err, errlen);
            history_free(h);
            return -1;
        }
        h->rows = PQntuples(h->res);
    }
    h->entries = pulse_xmalloc((nfiles + (size_t)h->rows) * sizeof(entry_t));
    size_t i = 0;
    int j = 0;
    while (i < nfiles || j < h->rows) {
        entry_t *e = &h->entries[h->count++];
        int64_t rv = j < h->rows ? strtoll(PQgetvalue(h->res, j, COL_VERSION), NULL, 10) : INT64_MAX;
        if (i < nfiles && (j >= h->rows || files[i].version < rv)) {
            *e = (entry_t){files[i].version, &files[i], -1, ST_PENDING};
            h->pending++;
            i++;
        } else if (i >= nfiles || rv < files[i].version) {
            *e = (entry_t){rv, NULL, j, ST_MISSING};
            h->problems++;
            j++;
        } else {
            state_t st = ST_APPLIED;
            if (strcmp(files[i].name, PQgetvalue(h->res, j, COL_NAME)) != 0)
                st = ST_RENAMED;
            else if (strcmp(files[i].checksum, PQgetvalue(h->res, j, COL_CHECKSUM)) != 0)
                st = ST_CHANGED;
            *e = (entry_t){rv, &files[i], j, st};
            if (st != ST_APPLIED)
                h->problems++;
            i++;
            j++;
        }
    }
    return 0;
}

/* The message for a CHANGED, RENAMED or MISSING entry. */
static void describe_problem(const history_t *h, const entry_t *e, const char *dir, pulse_buf_t *b)
{
    const char *applied_at = PQgetvalue(h->res, e->row, COL_APPLIED_AT);
    const char *recorded = PQgetvalue(h->res, e->row, COL_CHECKSUM);
    const char *rec_name = PQgetvalue(h->res, e->row, COL_NAME);
    switch (e->state) {
    case ST_CHANGED:
        pulse_buf_printf(b,
                         "migration %s.sql was changed after it was applied (checksum %.12s… recorded on %s, %.12s… now): "
                         "restore it and add a new migration instead",
                         e->file->name, recorded, applied_at, e->file->checksum);
        break;
    case ST_RENAMED:
        pulse_buf_printf(b,
                         "migration %s.sql has version %" PRId64 ", which was applied as %s.sql on %s: restore that file "
                         "and give new migrations new versions",
                         e->file->name, e->version, rec_name, applied_at);
        break;
    case ST_MISSING:
        pulse_buf_printf(b,
                         "migration %s.sql was applied on %s but its file is missing from %s: restore it (applied "
                         "migrations are never deleted)",
                         rec_name, applied_at, dir);
        break;
    default:
        break;
    }
}

/* err = the first problem, and how many more there are. */
static int fail_problems(const history_t *h, const char *dir, char *err, size_t errlen)
{
    pulse_buf_t b = PULSE_BUF_INIT;
    for (size_t i = 0; i < h->count; i++) {
        const entry_t *e = &h->entries[i];
        if (e->state == ST_CHANGED || e->state == ST_RENAMED || e->state == ST_MISSING) {
            describe_problem(h, e, dir, &b);
            break;
        }
    }
    if (h->problems > 1)
        pulse_buf_printf(&b, " (and %zu more problem%s: see pulse migrate --status)", h->problems - 1, h->problems > 2 ? "s" : "");
    pulse_fail(err, errlen, "%s", b.data ? b.data : "migration history does not match the files");
    pulse_buf_free(&b);
    return -1;
}

/* ---- applying ---- */

static int exec_ok(PGconn *conn, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        return fail_pg(conn, what, err, errlen);
    return 0;
}

static int lock_migrations(PGconn *conn, FILE *progress, char *err, size_t errlen)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%" PRId64 ")", PULSE_MIGRATE_LOCK_KEY);
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        return fail_pg(conn, "cannot take the migration lock", err, errlen);
    }
    int got = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (got)
        return 0;
    if (progress != NULL) {
        fprintf(progress, "waiting for another migration run to finish...\n");
        fflush(progress);
    }
    snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock(%" PRId64 ")", PULSE_MIGRATE_LOCK_KEY);
    return exec_ok(conn, sql, "cannot take the migration lock", err, errlen);
}

static void unlock_migrations(PGconn *conn)
{
    char sql[96];
    if (PQstatus(conn) != CONNECTION_OK)
        return;
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        PQclear(PQexec(conn, "ROLLBACK"));
    snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock(%" PRId64 ")", PULSE_MIGRATE_LOCK_KEY);
    PQclear(PQexec(conn, sql));
}

/* 1-based line of a 1-based character position (PG_DIAG_STATEMENT_POSITION counts characters). */
static long line_of(const char *sql, long pos)
{
    long line = 1, chars = 0;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++) {
        if ((*p & 0xC0) == 0x80)
            continue;
        if (++chars >= pos)
            break;
        if (*p == '\n')
            line++;
    }
    return line;
}

static int fail_sql(const pulse_migration_t *m, PGconn *conn, PGresult *r, char *err, size_t errlen)
{
    const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (primary == NULL) {
        char what[PATH_MAX];
        snprintf(what, sizeof(what), "migration %s.sql failed", m->name);
        return fail_pg(conn, what, err, errlen);
    }
    const char *severity = PQresultErrorField(r, PG_DIAG_SEVERITY);
    const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    const char *hint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
    const char *pos = PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    pulse_buf_t b = PULSE_BUF_INIT;
    pulse_buf_printf(&b, "migration %s.sql failed", m->name);
    if (pos != NULL)
        pulse_buf_printf(&b, " at line %ld", line_of(m->sql, strtol(pos, NULL, 10)));
    pulse_buf_printf(&b, ": %s: %s", severity ? severity : "ERROR", primary);
    if (detail != NULL)
        pulse_buf_printf(&b, "; DETAIL: %s", detail);
    if (hint != NULL)
        pulse_buf_printf(&b, "; HINT: %s", hint);
    if (state != NULL)
        pulse_buf_printf(&b, " (SQLSTATE %s)", state);
    pulse_buf_puts(&b, "; nothing of it was applied");
    pulse_fail(err, errlen, "%s", b.data);
    pulse_buf_free(&b);
    return -1;
}

static int apply_one(PGconn *conn, const pulse_migration_t *m, FILE *progress, char *err, size_t errlen)
{
    if (exec_ok(conn, "BEGIN", "cannot begin a transaction", err, errlen) != 0)
        return -1;
    double t0 = 1e3 * pulse_now_s();
    PGresult *r = PQexec(conn, m->sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        fail_sql(m, conn, r, err, errlen);
        PQclear(r);
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    PQclear(r);
    if (PQtransactionStatus(conn) != PQTRANS_INTRANS)
        return pulse_fail(err, errlen,
                          "migration %s.sql ended the transaction itself (COMMIT or ROLLBACK): what ran before that is now "
                          "committed but not recorded; remove the COMMIT/ROLLBACK and check the database by hand",
                          m->name);
    long ms = (long)(1e3 * pulse_now_s() - t0 + 0.5);
    char version[24], duration[24];
    snprintf(version, sizeof(version), "%" PRId64, m->version);
    snprintf(duration, sizeof(duration), "%ld", ms > INT_MAX ? (long)INT_MAX : ms);
    const char *params[] = {version, m->name, m->checksum, duration};
    r = PQexecParams(conn, "INSERT INTO schema_migrations (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)", 4, NULL,
                     params, NULL, NULL, 0);
    st = PQresultStatus(r);
    PQclear(r);
    if (st != PGRES_COMMAND_OK) {
        fail_pg(conn, "cannot record the migration in schema_migrations", err, errlen);
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    char what[PATH_MAX];
    snprintf(what, sizeof(what), "cannot commit migration %s.sql", m->name);
    if (exec_ok(conn, "COMMIT", what, err, errlen) != 0)
        return -1;
    if (progress != NULL) {
        fprintf(progress, "applied %s (%ld ms)\n", m->name, ms);
        fflush(progress);
    }
    return 0;
}

static const char create_table_sql[] = "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
                                       "    version bigint PRIMARY KEY,\n"
                                       "    name text NOT NULL,\n"
                                       "    checksum text NOT NULL,\n"
                                       "    applied_at timestamptz NOT NULL DEFAULT now(),\n"
                                       "    duration_ms integer\n"
                                       ")";

static int apply_locked(PGconn *conn, const char *dir, const pulse_migration_t *files, size_t nfiles, FILE *progress, char *err,
                        size_t errlen)
{
    int have;
    if (table_exists(conn, &have, err, errlen) != 0)
        return -1;
    if (!have && exec_ok(conn, create_table_sql, "cannot create table schema_migrations", err, errlen) != 0)
        return -1;
    history_t h;
    if (load_history(conn, files, nfiles, &h, err, errlen) != 0)
        return -1;
    if (h.problems > 0) {
        fail_problems(&h, dir, err, errlen);
        history_free(&h);
        return -1;
    }
    int64_t highest_applied = h.rows > 0 ? strtoll(PQgetvalue(h.res, h.rows - 1, COL_VERSION), NULL, 10) : -1;
    size_t applied = 0;
    for (size_t i = 0; i < h.count; i++) {
        const entry_t *e = &h.entries[i];
        if (e->state != ST_PENDING)
            continue;
        if (e->version < highest_applied && progress != NULL)
            fprintf(progress, "note: %s is older than the newest applied migration; applying it now\n", e->file->name);
        if (apply_one(conn, e->file, progress, err, errlen) != 0) {
            history_free(&h);
            return -1;
        }
        applied++;
    }
    if (progress != NULL) {
        if (applied == 0)
            fprintf(progress, "database is up to date (%d migration%s applied)\n", h.rows, h.rows == 1 ? "" : "s");
        else
            fprintf(progress, "applied %zu migration%s; database is up to date\n", applied, applied == 1 ? "" : "s");
        fflush(progress);
    }
    history_free(&h);
    return 0;
}

int pulse_migrate_apply(PGconn *conn, const char *dir, FILE *progress, char *err, size_t errlen)
{
    pulse_migration_t *files;
    size_t nfiles;
    if (pulse_migrate_scan(dir, &files, &nfiles, err, errlen) != 0)
        return -1;
    int rc = lock_migrations(conn, progress, err, errlen);
    if (rc == 0) {
        rc = apply_locked(conn, dir, files, nfiles, progress, err, errlen);
        unlock_migrations(conn);
    }
    pulse_migrate_free(files, nfiles);
    return rc;
}

int pulse_migrate_status(PGconn *conn, const char *dir, FILE *out, int *pending, char *err, size_t errlen)
{
    pulse_migration_t *files;
    size_t nfiles;
    *pending = 0;
    if (pulse_migrate_scan(dir, &files, &nfiles, err, errlen) != 0)
        return -1;
    history_t h;
    if (load_history(conn, files, nfiles, &h, err, errlen) != 0) {
        pulse_migrate_free(files, nfiles);
        return -1;
    }
    int width = 0;
    for (size_t i = 0; i < h.count; i++) {
        const entry_t *e = &h.entries[i];
        const char *name = e->file ? e->file->name : PQgetvalue(h.res, e->row, COL_NAME);
        if ((int)strlen(name) > width)
            width = (int)strlen(name);
    }
    for (size_t i = 0; i < h.count; i++) {
        const entry_t *e = &h.entries[i];
        const char *name = e->file ? e->file->name : PQgetvalue(h.res, e->row, COL_NAME);
        const char *at = e->row >= 0 ? PQgetvalue(h.res, e->row, COL_APPLIED_AT) : "";
        fprintf(out, "%-*s  ", width, name);
        switch (e->state) {
        case ST_APPLIED: {
            const char *ms = PQgetvalue(h.res, e->row, COL_DURATION);
            if (strcmp(ms, "-1") == 0)
                fprintf(out, "applied %s\n", at);
            else
                fprintf(out, "applied %s (%s ms)\n", at, ms);
            break;
        }
        case ST_PENDING:
            fprintf(out, "pending\n");
            break;
        case ST_CHANGED:
            fprintf(out, "CHANGED since it was applied %s (checksum %.12s… recorded, %.12s… now)\n", at,
                    PQgetvalue(h.res, e->row, COL_CHECKSUM), e->file->checksum);
            break;
        case ST_RENAMED:
            fprintf(out, "RENAMED: version applied %s as %s\n", at, PQgetvalue(h.res, e->row, COL_NAME));
            break;
        case ST_MISSING:
            fprintf(out, "MISSING FILE (applied %s)\n", at);
            break;
        }
    }
    fprintf(out, "%d applied, %zu pending", h.rows, h.pending);
    if (h.problems)
        fprintf(out, ", %zu problem%s", h.problems, h.problems == 1 ? "" : "s");
    fprintf(out, "\n");
    *pending = (int)h.pending;
    int rc = h.problems ? fail_problems(&h, dir, err, errlen) : 0;
    history_free(&h);
    pulse_migrate_free(files, nfiles);
    return rc;
}

int pulse_migrate_is_current(PGconn *conn, const char *dir, char *err, size_t errlen)
{
    pulse_migration_t *files;
    size_t nfiles;
    if (pulse_migrate_scan(dir, &files, &nfiles, err, errlen) != 0)
        return -1;
    history_t h;
    if (load_history(conn, files, nfiles, &h, err, errlen) != 0) {
        pulse_migrate_free(files, nfiles);
        return -1;
    }
    int rc = 1;
    if (h.problems) {
        rc = 0;
        fail_problems(&h, dir, err, errlen);
    } else if (h.pending) {
        rc = 0;
        for (size_t i = 0; i < h.count; i++) {
            if (h.entries[i].state == ST_PENDING) {
                pulse_fail(err, errlen, "%zu migration%s pending, first %s: run pulse migrate", h.pending,
                           h.pending == 1 ? "" : "s", h.entries[i].file->name);
                break;
            }
        }
    }
    history_free(&h);
    pulse_migrate_free(files, nfiles);
    return rc;
}
