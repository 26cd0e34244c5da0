/* Process-wide authentication state, set up once before any thread starts and then shared
 * read-only: the embedded password blocklist, the dummy hash for unknown users, and the access
 * token key ring from PULSE_JWT_KEYS / PULSE_JWT_ISSUER / PULSE_JWT_AUDIENCE. In development a
 * missing PULSE_JWT_KEYS gets a random key (tokens die with the process); in production it is an
 * error. Used by pulse serve and by the Lua spec runner. */
#ifndef PULSE_AUTH_SETUP_H
#define PULSE_AUTH_SETUP_H

#include <stddef.h>

#include "auth/token.h"

#define PULSE_AUTH_DEFAULT_ISSUER "pulse"
#define PULSE_AUTH_DEFAULT_AUDIENCE "pulse-api"

/* Loads the blocklist, computes the dummy hash and parses the key ring from the environment.
 * production: refuse to run without PULSE_JWT_KEYS. Returns 0, or -1 with a message in err
 * naming the variable (never a secret). Call once, before starting threads; a second call
 * replaces the key ring (not while other threads use it). */
int pulse_auth_setup(int production, char *err, size_t errlen);
/* The key ring, or NULL before pulse_auth_setup. Belongs to this module. */
const pulse_token_keys_t *pulse_auth_keys(void);
/* Wipes and frees the key ring and the blocklist (after every thread has stopped). */
void pulse_auth_teardown(void);

#endif
