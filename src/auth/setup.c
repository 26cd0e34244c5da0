/* Process-wide authentication state (see setup.h). */
#include "auth/setup.h"
#include "auth/common_passwords.h"
#include "auth/password.h"
#include "core/log.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>

#define DEV_KEY_BYTES 32

static pulse_token_keys_t *keys;

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v != NULL && *v ? v : fallback;
}

/* A throw-away ring "dev:<base64 of 32 random bytes>" for development without PULSE_JWT_KEYS. */
static pulse_token_keys_t *random_ring(const char *issuer, const char *audience, char *err, size_t errlen)
{
    unsigned char secret[DEV_KEY_BYTES];
    char spec[8 + 4 * ((DEV_KEY_BYTES + 2) / 3) + 1] = "dev:";
    if (RAND_bytes(secret, sizeof(secret)) != 1) {
        snprintf(err, errlen, "cannot generate a development signing key: no randomness");
        return NULL;
    }
    EVP_EncodeBlock((unsigned char *)spec + 4, secret, sizeof(secret));
    pulse_token_keys_t *ring = pulse_token_keys_parse(spec, issuer, audience, err, errlen);
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(spec, sizeof(spec));
    return ring;
}

int pulse_auth_setup(int production, char *err, size_t errlen)
{
    pulse_password_blocklist_clear();
    pulse_password_blocklist_load(pulse_common_passwords, pulse_common_passwords_len);
    if (pulse_password_init() != 0) {
        snprintf(err, errlen, "cannot compute the dummy password hash (out of memory?)");
        return -1;
    }

    const char *spec = env_or("PULSE_JWT_KEYS", NULL);
    const char *issuer = env_or("PULSE_JWT_ISSUER", PULSE_AUTH_DEFAULT_ISSUER);
    const char *audience = env_or("PULSE_JWT_AUDIENCE", PULSE_AUTH_DEFAULT_AUDIENCE);
    pulse_token_keys_t *ring;
    if (spec != NULL) {
        char why[512];
        if ((ring = pulse_token_keys_parse(spec, issuer, audience, why, sizeof(why))) == NULL) {
            snprintf(err, errlen, "PULSE_JWT_KEYS (or PULSE_JWT_ISSUER/PULSE_JWT_AUDIENCE) is invalid: %s", why);
            return -1;
        }
    } else if (production) {
        snprintf(err, errlen,
                 "PULSE_JWT_KEYS is not set: production needs the access-token signing keys "
                 "(kid:base64-secret-of-32+-bytes[,kid:secret@not_after...])");
        return -1;
    } else {
        if ((ring = random_ring(issuer, audience, err, errlen)) == NULL)
            return -1;
        pulse_log(PULSE_LOG_WARN, "jwt_dev_key",
                  "PULSE_JWT_KEYS is not set: signing access tokens with a random key; they will not survive a restart");
    }
    pulse_token_keys_free(keys);
    keys = ring;
    return 0;
}

const pulse_token_keys_t *pulse_auth_keys(void)
{
    return keys;
}

void pulse_auth_teardown(void)
{
    pulse_token_keys_free(keys);
    keys = NULL;
    pulse_password_blocklist_clear();
}
