/* Demo organization, owner and customers for `pulse demo` (see demo.h). */
#include "demo/demo.h"
#include "auth/password.h"
#include "core/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const first_names[] = {"Ada",  "Ben",  "Chloe", "Dev",  "Elena", "Farid", "Grace", "Hugo", "Ines", "Jon",
                                          "Kira", "Liam", "Maya",  "Noor", "Omar",  "Priya", "Quinn", "Rosa", "Sven", "Tara"};
static const char *const last_names[] = {"Almeida", "Brooks", "Chen",     "Dubois", "Eriksen", "Fischer",  "Garcia", "Haddad",
                                         "Ito",     "Jensen", "Kowalski", "Lopez",  "Murphy",  "Nakamura", "Okafor", "Patel"};
static const char *const cities[] = {"Lisbon", "Berlin", "Lyon", "Austin", "Osaka", "Lagos", "Pune", "Oslo"};
static const char *const plans[] = {"free", "basic", "plus", "premium"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The password is made once and kept beside the private database, readable by its owner only. */
static int demo_password(const char *var_dir, char *out, size_t outlen, int *created, char *err, size_t errlen)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/demo-password", var_dir);
    FILE *f = fopen(path, "r");
    *created = 0;
    if (f != NULL) {
        int ok = fgets(out, (int)outlen, f) != NULL;
        fclose(f);
        out[strcspn(out, "\r\n")] = '\0';
        if (ok && strlen(out) >= 16)
            return 0;
    }
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    unsigned char raw[20];
    if (outlen < sizeof(raw) + 1 || RAND_bytes(raw, sizeof(raw)) != 1)
        return pulse_fail(err, errlen, "cannot make a random demo password");
    for (size_t i = 0; i < sizeof(raw); i++)
        out[i] = alphabet[raw[i] % (sizeof(alphabet) - 1)];
    out[sizeof(raw)] = '\0';
    mkdir(var_dir, 0755);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, out, strlen(out)) < 0 || write(fd, "\n", 1) < 0) {
        if (fd >= 0)
            close(fd);
        return pulse_fail(err, errlen, "cannot write %s: %s", path, strerror(errno));
    }
    close(fd);
    *created = 1;
    return 0;
}

static int exec_ok(PGresult *res, ExecStatusType want, const char *what, char *err, size_t errlen)
{
    int ok = PQresultStatus(res) == want;
    if (!ok)
        pulse_fail(err, errlen, "%s: %s", what, PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

/* The demo tenant's id, registering organization and owner on first use. */
static int demo_tenant(PGconn *conn, const char *password, char *tenant, size_t tenant_len, char *err, size_t errlen)
{
    const char *email = PULSE_DEMO_EMAIL;
    PGresult *res = PQexecParams(conn, "SELECT tenant_id FROM users WHERE email = $1", 1, NULL, &email, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        snprintf(tenant, tenant_len, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        return 0;
    }
    PQclear(res);
    char hash[PULSE_PASSWORD_ENCODED_MAX];
    if (pulse_password_hash(password, strlen(password), hash, sizeof(hash), err, errlen) != 0)
        return -1;
    const char *params[5] = {"Demo Retail", "ecommerce", email, "Demo Owner", hash};
    res = PQexecParams(conn, "SELECT tenant_id FROM pulse_register($1, $2, $3, $4, $5)", 5, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        return exec_ok(res, PGRES_TUPLES_OK, "registering the demo organization", err, errlen);
    snprintf(tenant, tenant_len, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

/* Customers with deterministic, varied attributes: the same set on every machine. */
static int demo_customers(PGconn *conn, const char *tenant, char *err, size_t errlen)
{
    pulse_buf_t sql = PULSE_BUF_INIT;
    pulse_buf_puts(&sql, "INSERT INTO customers (tenant_id, external_id, email, name, attributes) VALUES ");
    for (int i = 1; i <= PULSE_DEMO_CUSTOMERS; i++) {
        const char *first = first_names[(i * 7) % COUNT(first_names)], *last = last_names[(i * 11) % COUNT(last_names)];
        pulse_buf_printf(&sql,
                         "%s($1, 'C%05d', lower('%s.%s%d@example.com'), '%s %s', "
                         "'{\"city\": \"%s\", \"plan\": \"%s\", \"signup_year\": %d}')",
                         i > 1 ? ", " : "", i, first, last, i, first, last, cities[(i * 3) % COUNT(cities)],
                         plans[(i * 5) % COUNT(plans)], 2018 + i % 7);
    }
    pulse_buf_puts(&sql, " ON CONFLICT (tenant_id, external_id) DO NOTHING");
    /* every value above is a constant of this file; the tenant travels as a parameter */
    PGresult *res = PQexecParams(conn, sql.data, 1, NULL, &tenant, NULL, NULL, 0);
    pulse_buf_free(&sql);
    return exec_ok(res, PGRES_COMMAND_OK, "inserting the demo customers", err, errlen);
}

int pulse_demo_load(PGconn *conn, const char *var_dir, char *password, size_t password_len, char *err, size_t errlen)
{
    int created;
    char tenant[64];
    if (demo_password(var_dir, password, password_len, &created, err, errlen) != 0)
        return -1;
    if (exec_ok(PQexec(conn, "BEGIN"), PGRES_COMMAND_OK, "BEGIN", err, errlen) != 0)
        return -1;
    if (demo_tenant(conn, password, tenant, sizeof(tenant), err, errlen) != 0 || demo_customers(conn, tenant, err, errlen) != 0) {
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    return exec_ok(PQexec(conn, "COMMIT"), PGRES_COMMAND_OK, "COMMIT", err, errlen);
}
