/* Schema migrations: migrations/NNNN_name.sql files applied in version order, each in its own
 * transaction, recorded with their SHA-256 in schema_migrations. An applied file is immutable:
 * editing, renaming or deleting it is refused (fix forward with a new migration). Concurrent
 * runs are serialised by a session advisory lock. */
#ifndef PULSE_DB_MIGRATE_H
#define PULSE_DB_MIGRATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <libpq-fe.h>

/* Key of the pg_advisory_lock taken by pulse_migrate_apply: "pulsemig" in ASCII. */
#define PULSE_MIGRATE_LOCK_KEY INT64_C(8103502347401783655)

typedef struct pulse_migration_t {
    int64_t version;   /* the NNNN prefix */
    char *name;        /* file name without ".sql", e.g. "0001_foundation": recorded in the table */
    char *path;        /* dir/name.sql */
    char checksum[65]; /* hex SHA-256 of the file's bytes */
    char *sql;         /* the file's contents, NUL-terminated */
    size_t sql_len;
} pulse_migration_t;

/* Reads every migration of dir, sorted by version. File names must be <4+ digits>_<[a-z0-9_]+>.sql;
 * any other name (dot-files excepted), a duplicate version or a file holding a NUL byte is an
 * error naming the file. An empty folder gives count 0. On success *out is an array owned by the
 * caller (pulse_migrate_free); on error returns -1 with a message in err and *out is NULL. */
int pulse_migrate_scan(const char *dir, pulse_migration_t **out, size_t *count, char *err, size_t errlen);
void pulse_migrate_free(pulse_migration_t *list, size_t count);

/* Applies the pending migrations of dir under the advisory lock, after checking that no applied
 * one was changed, renamed or deleted (then nothing is applied). Each file runs with PQexec
 * (several statements allowed) inside BEGIN ... COMMIT together with its schema_migrations row;
 * a file must not COMMIT or ROLLBACK itself. Progress lines ("applied 0001_init (12 ms)") go to
 * progress when not NULL. Returns 0, or -1 with a message in err; the migrations applied before a
 * failing one stay applied. */
int pulse_migrate_apply(PGconn *conn, const char *dir, FILE *progress, char *err, size_t errlen);

/* Prints one line per migration to out: applied (when, how long), pending, CHANGED, RENAMED or
 * MISSING FILE, then a summary. *pending gets the number not applied yet. Returns 0 when the
 * listing worked and every applied migration matches its file; -1 with a message in err when a
 * recorded one was changed or is missing, or on a scan or database error. */
int pulse_migrate_status(PGconn *conn, const char *dir, FILE *out, int *pending, char *err, size_t errlen);

/* For readiness checks: 1 when every migration of dir is applied unchanged and the database has
 * none the folder lacks; 0 when not (err says why); -1 on a scan or database error. Read-only,
 * takes no lock. */
int pulse_migrate_is_current(PGconn *conn, const char *dir, char *err, size_t errlen);

#endif
