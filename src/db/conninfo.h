/* Where the database is: PULSE_DATABASE_URL, or else the private cluster under var/ (created and
 * started on demand). Also the one blocking connect used by the CLI and start-up checks, and a
 * redacted form of a connection string for messages: passwords are never printed or logged. */
#ifndef PULSE_DB_CONNINFO_H
#define PULSE_DB_CONNINFO_H

#include <stddef.h>

#include <libpq-fe.h>

#include "core/config.h"

/* Fills out with cfg->database_url when set, else with the private cluster's connection string
 * (pulse_cluster_ensure on cfg->var_dir, which may initdb and start a server). Returns 0, or -1
 * with a message in err. out may hold a password: pass it to messages only through
 * pulse_db_conninfo_redact. */
int pulse_db_conninfo(const pulse_config_t *cfg, char *out, size_t outlen, char *err, size_t errlen);

/* Connects and waits (connect_timeout 10 s unless conninfo sets one); application_name is "pulse"
 * unless conninfo sets one. Returns a connection in CONNECTION_OK state, owned by the caller
 * (PQfinish), or NULL with a message in err naming the (redacted) target. */
PGconn *pulse_db_connect_blocking(const char *conninfo, char *err, size_t errlen);

/* Writes "host=... port=... dbname=... user=..." from conninfo (keyword string or URI) into out,
 * leaving out the password and every other option. */
void pulse_db_conninfo_redact(const char *conninfo, char *out, size_t outlen);

/* Folds a libpq message (several lines, tab-indented hints, final newline) into one line, in place. */
void pulse_db_one_line(char *msg);

#endif
