/* Demo data for `pulse demo`: one organization per industry (Demo Retail, Demo Telco, Demo Bank),
 * each with its owner and generated data (pulse gen: customers with planted churn, and their
 * transactions or events) imported the way a user's upload is. Idempotent: a second run keeps
 * what exists. The owners' password is random, kept in var/demo-password (mode 0600) and printed
 * on every run. */
#ifndef PULSE_DEMO_DEMO_H
#define PULSE_DEMO_DEMO_H

#include <libpq-fe.h>

#include "core/config.h"
#include <stddef.h>

#define PULSE_DEMO_EMAIL "demo@pulse.local"
#define PULSE_DEMO_CUSTOMERS 500

#define PULSE_DEMO_TELCO_EMAIL "demo-telco@pulse.local"
#define PULSE_DEMO_BANK_EMAIL "demo-bank@pulse.local"

/* Registers the organizations through conn (the migrating role) and imports their files (as
 * pulse_app, through conninfo). Fills password with the owners' password. Returns 0, or -1 with
 * a message in err. */
int pulse_demo_load(const pulse_config_t *cfg, const char *conninfo, PGconn *conn, char *password, size_t password_len, char *err,
                    size_t errlen);

#endif
