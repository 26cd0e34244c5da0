/* Access tokens: HS256 JWTs carrying sub, tenant and role, signed with the current key of a key
 * ring and verified against any key still in its grace period (chosen by the header's kid).
 * Signing goes through libjwt; verification is our own (OpenSSL HMAC + a strict flat-JSON
 * parser) because libjwt's decode costs ~9 µs. It refuses alg:none, any alg but HS256, unknown or
 * retired kids, expired tokens and missing or malformed claims. Secrets never reach messages. */
#ifndef PULSE_AUTH_TOKEN_H
#define PULSE_AUTH_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define PULSE_TOKEN_MAX_KEYS 8
#define PULSE_TOKEN_KID_MAX 32     /* kid: 1-32 characters of [A-Za-z0-9._-] */
#define PULSE_TOKEN_SECRET_MIN 32  /* bytes, after base64 decoding */
#define PULSE_TOKEN_SECRET_MAX 128 /* bytes */
#define PULSE_TOKEN_SUB_MAX 64     /* printable ASCII, no '"' or '\\' */
#define PULSE_TOKEN_NAME_MAX 128   /* iss and aud */
#define PULSE_TOKEN_MAX_LEN 4096   /* longer tokens are refused before any work */
#define PULSE_TOKEN_IAT_LEEWAY 60  /* seconds of clock skew tolerated for iat/nbf */

typedef enum {
    PULSE_TOKEN_OK = 0,
    PULSE_TOKEN_MALFORMED = -1,     /* not three base64url parts of flat JSON */
    PULSE_TOKEN_BAD_ALG = -2,       /* alg is not exactly HS256 (alg:none included) */
    PULSE_TOKEN_UNKNOWN_KID = -3,   /* no kid, unknown kid, or a key past its grace period */
    PULSE_TOKEN_BAD_SIGNATURE = -4, /* HMAC mismatch (wrong key, tampered token) */
    PULSE_TOKEN_EXPIRED = -5,       /* now >= exp */
    PULSE_TOKEN_NOT_YET_VALID = -6, /* iat or nbf more than PULSE_TOKEN_IAT_LEEWAY in the future */
    PULSE_TOKEN_BAD_ISSUER = -7,
    PULSE_TOKEN_BAD_AUDIENCE = -8,
    PULSE_TOKEN_MISSING_CLAIM = -9, /* exp, iat, iss, aud, sub, tenant, role or jti absent */
    PULSE_TOKEN_BAD_CLAIM = -10,    /* wrong type or format (tenant not a uuid, unknown role, ...) */
} pulse_token_error_t;

/* sub, tenant and role are inputs to sign and outputs of verify; the rest are set by verify. */
typedef struct st_pulse_token_claims_t {
    char sub[PULSE_TOKEN_SUB_MAX + 1]; /* user id */
    char tenant[37];                   /* uuid, 8-4-4-4-12 hex */
    char role[16];                     /* "owner", "analyst" or "viewer" */
    char jti[33];                      /* 128-bit random, hex */
    char kid[PULSE_TOKEN_KID_MAX + 1]; /* key that signed the token */
    int64_t iat, exp;
} pulse_token_claims_t;

typedef struct st_pulse_token_keys_t pulse_token_keys_t;

/* Builds a key ring from spec, the value of PULSE_JWT_KEYS:
 *     kid:secret[@not_after],kid:secret[@not_after],...
 * kid is 1-32 characters of [A-Za-z0-9._-]; secret is base64 (standard or URL alphabet, padding
 * optional) of 32-128 bytes; not_after is unix seconds until which a retired key still verifies.
 * Exactly one entry has no @not_after: the current key, which signs. Spaces after commas are
 * skipped; at most PULSE_TOKEN_MAX_KEYS entries; kids are unique. Example:
 *     PULSE_JWT_KEYS="k2:<base64 of 32+ bytes>,k1:<base64>@1767225600"
 * issuer and audience become the iss and aud of signed tokens and are required on verification.
 * Returns a ring owned by the caller (pulse_token_keys_free), or NULL with a message in err
 * naming the entry by position and kid, never by its secret. */
pulse_token_keys_t *pulse_token_keys_parse(const char *spec, const char *issuer, const char *audience, char *err, size_t errlen);
/* Wipes the secrets and frees the ring; NULL is a no-op. */
void pulse_token_keys_free(pulse_token_keys_t *keys);
size_t pulse_token_keys_count(const pulse_token_keys_t *keys);
/* The kid of the signing key; the string belongs to the ring. */
const char *pulse_token_keys_current_kid(const pulse_token_keys_t *keys);

/* Signs an access token for claims->sub, ->tenant and ->role (other fields are ignored) with the
 * current key: header {alg:HS256, typ:JWT, kid}, claims iss, aud, sub, tenant, role, iat = now,
 * exp = now + ttl_seconds, jti = 128 random bits. On success returns 0 and *out is a
 * NUL-terminated token owned by the caller (free). Returns -1 with a message in err if the
 * claims are invalid or ttl_seconds <= 0. Thread-safe on a shared ring. */
int pulse_token_sign(const pulse_token_keys_t *keys, const pulse_token_claims_t *claims, int64_t now, int ttl_seconds, char **out,
                     char *err, size_t errlen);

/* Verifies token at time now. Returns 0 and fills *out (may be NULL), or a negative
 * pulse_token_error_t with a short message in err (no secrets, no token contents); *out is
 * zeroed on failure. Thread-safe on a shared ring (one short-lived digest context per call). */
int pulse_token_verify(const pulse_token_keys_t *keys, const char *token, int64_t now, pulse_token_claims_t *out, char *err,
                       size_t errlen);

/* Stable lower-case name of an error code ("expired", "bad_signature", ...), for logs and
 * problem codes; "ok" for 0 and "unknown" for anything else. */
const char *pulse_token_strerror(int code);

#endif
