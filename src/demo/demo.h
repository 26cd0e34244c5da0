/* Demo data for `pulse demo`: one organization (Demo Retail, e-commerce), its owner account and
 * a generated set of customers, so a first-time user can sign in and see something. Idempotent:
 * a second run keeps what exists. The owner's password is random, kept in var/demo-password
 * (mode 0600) and printed on every run. */
#ifndef PULSE_DEMO_DEMO_H
#define PULSE_DEMO_DEMO_H

#include <libpq-fe.h>
#include <stddef.h>

#define PULSE_DEMO_EMAIL "demo@pulse.local"
#define PULSE_DEMO_CUSTOMERS 500

/* Loads the demo data through conn (the migrating role: it writes across Row-Level Security).
 * Fills password with the owner's password. Returns 0, or -1 with a message in err. */
int pulse_demo_load(PGconn *conn, const char *var_dir, char *password, size_t password_len, char *err, size_t errlen);

#endif
