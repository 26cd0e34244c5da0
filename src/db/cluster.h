/* The private PostgreSQL cluster used when no PULSE_DATABASE_URL is set: created, configured and
 * started on demand for a var/ folder, reachable only through a Unix socket, with trust auth for
 * local connections. PostgreSQL refuses to run as root, so under root the server runs as the
 * `postgres` system user, and lives under /var/lib/pulse when var/ is out of that user's reach. */
#ifndef PULSE_DB_CLUSTER_H
#define PULSE_DB_CLUSTER_H

#include <stddef.h>

/* Makes sure the cluster of var_dir exists, runs and has a database `pulse`, then fills conninfo
 * with a libpq keyword string for it (host=<socket dir> port=N dbname=pulse user=pulse, no
 * password). Idempotent; concurrent callers (threads or processes) are serialised by a flock on
 * var_dir/pg.lock, so only one of them runs initdb or starts the server.
 *
 * Layout: <root>/data (PGDATA), <root>/run (socket), <root>/log/postgresql.log, where <root> is
 * var_dir/pg; except, under root, when the `postgres` user cannot traverse var_dir (a 0700 parent
 * such as /root or a mkdtemp folder): then <root> is /var/lib/pulse/pg-<hash of var_dir>,
 * recorded in var_dir/pg/location. When <root>/run would make the socket path longer than the
 * 107 bytes Unix sockets allow, the socket folder alone is /tmp/pulse-pg-<hash of var_dir>.
 *
 * Environment: PULSE_PG_PORT (default 5432; with listen_addresses='' it only names the socket
 * file), PULSE_PG_FAST=1 (fsync, synchronous_commit and full_page_writes off: tests only; a crash
 * can then corrupt the cluster). Returns 0, or -1 with a message in err (including the tail of
 * initdb/pg_ctl output when one of them failed). */
int pulse_cluster_ensure(const char *var_dir, char *conninfo, size_t conninfo_len, char *err, size_t errlen);

/* Stops the cluster of var_dir (pg_ctl -m fast). A cluster that does not run or was never created
 * is not an error. Returns 0, or -1 with a message in err. */
int pulse_cluster_stop(const char *var_dir, char *err, size_t errlen);

/* Stops the cluster and deletes its files (data, socket and log folders, the /var/lib/pulse folder
 * and the location record); var_dir itself stays. For tests and `pulse db destroy`. */
int pulse_cluster_destroy(const char *var_dir, char *err, size_t errlen);

/* Fills out with the folder holding the cluster's data/, run/ and log/ (see above). Returns 1 when
 * a cluster exists there, 0 when none was created yet (out then holds var_dir/pg), -1 on error. */
int pulse_cluster_root(const char *var_dir, char *out, size_t outlen, char *err, size_t errlen);

#endif
