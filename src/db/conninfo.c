/* Resolving, describing and opening the database connection. */
#include "db/conninfo.h"
#include "db/cluster.h"

#include <stdio.h>
#include <string.h>

#include "core/buf.h"

int pulse_db_conninfo(const pulse_config_t *cfg, char *out, size_t outlen, char *err, size_t errlen)
{
    if (cfg->database_url != NULL && *cfg->database_url != '\0') {
        if (snprintf(out, outlen, "%s", cfg->database_url) >= (int)outlen) {
            snprintf(err, errlen, "PULSE_DATABASE_URL is longer than %zu bytes", outlen - 1);
            return -1;
        }
        return 0;
    }
    return pulse_cluster_ensure(cfg->var_dir, out, outlen, err, errlen);
}

void pulse_db_one_line(char *msg)
{
    char *w = msg;
    for (const char *r = msg; *r; r++) {
        if (*r == '\n' || *r == '\t') {
            if (w > msg && w[-1] != ' ')
                *w++ = ' ';
        } else {
            *w++ = *r;
        }
    }
    while (w > msg && w[-1] == ' ')
        w--;
    *w = '\0';
}

void pulse_db_conninfo_redact(const char *conninfo, char *out, size_t outlen)
{
    static const char *const shown[] = {"host", "hostaddr", "port", "dbname", "user", NULL};
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    if (opts == NULL) {
        PQfreemem(perr);
        snprintf(out, outlen, "(unparsable connection string)");
        return;
    }
    pulse_buf_t b = PULSE_BUF_INIT;
    for (const char *const *k = shown; *k; k++) {
        for (PQconninfoOption *o = opts; o->keyword; o++) {
            if (strcmp(o->keyword, *k) == 0 && o->val != NULL && *o->val != '\0')
                pulse_buf_printf(&b, "%s%s=%s", b.len ? " " : "", o->keyword, o->val);
        }
    }
    PQconninfoFree(opts);
    snprintf(out, outlen, "%s", b.len ? b.data : "(libpq defaults)");
    pulse_buf_free(&b);
}

PGconn *pulse_db_connect_blocking(const char *conninfo, char *err, size_t errlen)
{
    /* Entries before the expanded dbname are defaults the connection string may override. */
    const char *keys[] = {"application_name", "connect_timeout", "dbname", NULL};
    const char *vals[] = {"pulse", "10", conninfo, NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (conn == NULL) {
        snprintf(err, errlen, "out of memory creating a database connection");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        char target[512];
        pulse_db_conninfo_redact(conninfo, target, sizeof(target));
        snprintf(err, errlen, "cannot connect to the database (%s): %s", target, PQerrorMessage(conn));
        pulse_db_one_line(err);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}
