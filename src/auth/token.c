/* Access tokens: key ring parsing, signing through libjwt, and a strict allocation-light HS256
 * verifier (base64url + HMAC-SHA256 from precomputed pad states + a flat-JSON parser). */
#include "auth/token.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

typedef struct {
    char kid[PULSE_TOKEN_KID_MAX + 1];
    int64_t not_after; /* 0: current key */
    unsigned char secret[PULSE_TOKEN_SECRET_MAX];
    size_t secret_len;
    EVP_MD_CTX *inner, *outer; /* SHA-256 states after absorbing key^ipad / key^opad */
} token_key_t;

struct st_pulse_token_keys_t {
    token_key_t keys[PULSE_TOKEN_MAX_KEYS];
    size_t count;
    size_t current;
    char iss[PULSE_TOKEN_NAME_MAX + 1];
    char aud[PULSE_TOKEN_NAME_MAX + 1];
};

static int fail(int code, char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(int code, char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- base64 ---- */

static int b64_value(unsigned char ch, int url_only)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '-' || (!url_only && ch == '+'))
        return 62;
    if (ch == '_' || (!url_only && ch == '/'))
        return 63;
    return -1;
}

/* Decodes src[0..n) into dst. Strict mode (tokens): URL alphabet, no padding, zero trailing bits,
 * so every value has exactly one encoding. Lenient mode (config): both alphabets, optional
 * padding. Returns the decoded length, -1 if invalid, -2 if longer than cap. */
static long b64_decode(const char *src, size_t n, unsigned char *dst, size_t cap, int strict)
{
    if (!strict) {
        for (int pad = 0; pad < 2 && n > 0 && src[n - 1] == '='; pad++)
            n--;
    }
    if (n % 4 == 1)
        return -1;
    if (n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > cap)
        return -2;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)src[i], strict);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (strict && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (long)o;
}

/* ---- flat JSON: one object of string and integer members ---- */

typedef struct {
    int is_int;
    int64_t num;
    size_t len;
    char str[256];
} json_val_t;

/* Called per member; returns 0 or a pulse_token_error_t with *msg set. */
typedef int (*json_member_fn)(void *ctx, const char *key, const json_val_t *v, const char **msg);

static const char *json_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static int hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes one escape after the backslash at *pp; only ASCII \u escapes. Returns the byte or -1. */
static int json_escape(const char **pp, const char *end)
{
    const char *p = *pp;
    if (p >= end)
        return -1;
    int ch = (unsigned char)*p++;
    switch (ch) {
    case '"':
    case '\\':
    case '/':
        break;
    case 'b':
        ch = '\b';
        break;
    case 'f':
        ch = '\f';
        break;
    case 'n':
        ch = '\n';
        break;
    case 'r':
        ch = '\r';
        break;
    case 't':
        ch = '\t';
        break;
    case 'u':
        ch = 0;
        for (int i = 0; i < 4; i++) {
            int h = p < end ? hex_value((unsigned char)*p++) : -1;
            if (h < 0)
                return -1;
            ch = ch * 16 + h;
        }
        if (ch < 0x20 || ch >= 0x80)
            return -1;
        break;
    default:
        return -1;
    }
    *pp = p;
    return ch;
}

/* *pp is just past the opening quote; leaves it past the closing one. NUL-terminates dst. */
static int json_string(const char **pp, const char *end, char *dst, size_t cap, size_t *len)
{
    const char *p = *pp;
    size_t o = 0;
    while (p < end) {
        int ch = (unsigned char)*p++;
        if (ch == '"') {
            dst[o] = '\0';
            *len = o;
            *pp = p;
            return 0;
        }
        if (ch < 0x20)
            return -1;
        if (ch == '\\' && (ch = json_escape(&p, end)) < 0)
            return -1;
        if (o + 1 >= cap)
            return -1;
        dst[o++] = (char)ch;
    }
    return -1;
}

/* Integers only: no fraction, exponent or leading zeros; at most 18 digits. */
static int json_int(const char **pp, const char *end, int64_t *out)
{
    const char *p = *pp;
    int neg = p < end && *p == '-';
    p += neg;
    const char *digits = p;
    int64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9' && p - digits < 18)
        v = v * 10 + (*p++ - '0');
    size_t nd = (size_t)(p - digits);
    if (nd == 0 || nd > 18 || (nd > 1 && *digits == '0'))
        return -1;
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E' || (*p >= '0' && *p <= '9')))
        return -1;
    *out = neg ? -v : v;
    *pp = p;
    return 0;
}

static int json_value(const char **pp, const char *end, json_val_t *v)
{
    if (*pp < end && **pp == '"') {
        (*pp)++;
        v->is_int = 0;
        return json_string(pp, end, v->str, sizeof(v->str), &v->len);
    }
    v->is_int = 1;
    v->len = 0;
    v->str[0] = '\0';
    return json_int(pp, end, &v->num);
}

static int json_flat_object(const char *p, size_t n, json_member_fn fn, void *ctx, const char **msg)
{
    const char *end = p + n;
    char key[64];
    json_val_t v;
    size_t keylen;
    *msg = "not a flat JSON object of strings and integers";
    p = json_ws(p, end);
    if (p >= end || *p++ != '{')
        return PULSE_TOKEN_MALFORMED;
    p = json_ws(p, end);
    if (p < end && *p == '}') {
        p++;
    } else {
        for (;;) {
            if (p >= end || *p++ != '"' || json_string(&p, end, key, sizeof(key), &keylen) != 0)
                return PULSE_TOKEN_MALFORMED;
            p = json_ws(p, end);
            if (p >= end || *p++ != ':')
                return PULSE_TOKEN_MALFORMED;
            p = json_ws(p, end);
            if (json_value(&p, end, &v) != 0)
                return PULSE_TOKEN_MALFORMED;
            int rc = fn(ctx, key, &v, msg);
            if (rc != 0)
                return rc;
            p = json_ws(p, end);
            if (p < end && *p == ',') {
                p = json_ws(p + 1, end);
                continue;
            }
            if (p >= end || *p++ != '}')
                return PULSE_TOKEN_MALFORMED;
            break;
        }
    }
    *msg = "trailing data after JSON object";
    return json_ws(p, end) == end ? 0 : PULSE_TOKEN_MALFORMED;
}

/* ---- claim formats ---- */

static int kid_ok(const char *s, size_t n)
{
    if (n == 0 || n > PULSE_TOKEN_KID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* 1..max printable ASCII characters, no quote or backslash (so they never need escaping). */
static int printable_ok(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
            return 0;
    }
    return 1;
}

static int uuid_ok(const char *s)
{
    for (int i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : hex_value((unsigned char)s[i]) < 0)
            return 0;
    }
    return s[36] == '\0';
}

static int role_ok(const char *s)
{
    return strcmp(s, "owner") == 0 || strcmp(s, "analyst") == 0 || strcmp(s, "viewer") == 0;
}

static int jti_ok(const char *s)
{
    for (int i = 0; i < 32; i++) {
        if (hex_value((unsigned char)s[i]) < 0)
            return 0;
    }
    return s[32] == '\0';
}

/* ---- key ring ---- */

static int key_prepare(token_key_t *k)
{
    unsigned char block[64] = {0}, pad[64];
    int ok = 1;
    if (k->secret_len > sizeof(block))
        ok = EVP_Digest(k->secret, k->secret_len, block, NULL, EVP_sha256(), NULL);
    else
        memcpy(block, k->secret, k->secret_len);
    k->inner = EVP_MD_CTX_new();
    k->outer = EVP_MD_CTX_new();
    if (k->inner == NULL || k->outer == NULL)
        ok = 0;
    for (size_t i = 0; ok && i < sizeof(pad); i++)
        pad[i] = block[i] ^ 0x36;
    ok = ok && EVP_DigestInit_ex(k->inner, EVP_sha256(), NULL) && EVP_DigestUpdate(k->inner, pad, sizeof(pad));
    for (size_t i = 0; ok && i < sizeof(pad); i++)
        pad[i] = block[i] ^ 0x5c;
    ok = ok && EVP_DigestInit_ex(k->outer, EVP_sha256(), NULL) && EVP_DigestUpdate(k->outer, pad, sizeof(pad));
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(pad, sizeof(pad));
    return ok ? 0 : -1;
}

static int parse_not_after(const char *s, size_t n, int64_t *out)
{
    int64_t v = 0;
    if (n == 0 || n > 18)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return v > 0 ? 0 : -1;
}

/* Parses entry number pos ("kid:secret[@not_after]", n bytes at p) into the next slot. */
static int parse_entry(pulse_token_keys_t *ring, const char *p, size_t n, size_t pos, char *err, size_t errlen)
{
    token_key_t *k = &ring->keys[ring->count];
    const char *colon = memchr(p, ':', n);
    if (n == 0)
        return fail(-1, err, errlen, "PULSE_JWT_KEYS entry %zu is empty", pos);
    if (colon == NULL)
        return fail(-1, err, errlen, "PULSE_JWT_KEYS entry %zu: expected kid:base64secret[@not_after]", pos);
    if (!kid_ok(p, (size_t)(colon - p)))
        return fail(-1, err, errlen, "PULSE_JWT_KEYS entry %zu: kid must be 1-%d characters of [A-Za-z0-9._-]", pos,
                    PULSE_TOKEN_KID_MAX);
    memcpy(k->kid, p, (size_t)(colon - p));
    k->kid[colon - p] = '\0';
    for (size_t i = 0; i < ring->count; i++) {
        if (strcmp(ring->keys[i].kid, k->kid) == 0)
            return fail(-1, err, errlen, "PULSE_JWT_KEYS entry %zu (kid \"%s\"): duplicate kid", pos, k->kid);
    }
    const char *s = colon + 1, *se = p + n, *at = memchr(s, '@', (size_t)(se - s));
    if (at != NULL) {
        if (parse_not_after(at + 1, (size_t)(se - at - 1), &k->not_after) != 0)
            return fail(-1, err, errlen, "PULSE_JWT_KEYS entry %zu (kid \"%s\"): not_after after '@' must be unix seconds", pos,
                        k->kid);
        se = at;
    }
    long len = b64_decode(s, (size_t)(se - s), k->secret, sizeof(k->secret), 0);
    if (len == -2)
        return fail(-1, err, errlen, "PULSE_JWT_KEYS entry %zu (kid \"%s\"): secret is longer than %d bytes", pos, k->kid,
                    PULSE_TOKEN_SECRET_MAX);
    if (len < 0)
        return fail(-1, err, errlen, "PULSE_JWT_KEYS entry %zu (kid \"%s\"): secret is not valid base64", pos, k->kid);
    if (len < PULSE_TOKEN_SECRET_MIN)
        return fail(-1, err, errlen,
                    "PULSE_JWT_KEYS entry %zu (kid \"%s\"): secret is %ld bytes after base64 decoding, need at least %d", pos,
                    k->kid, len, PULSE_TOKEN_SECRET_MIN);
    k->secret_len = (size_t)len;
    ring->count++; /* counted before prepare so free releases half-built contexts */
    if (key_prepare(k) != 0)
        return fail(-1, err, errlen, "PULSE_JWT_KEYS entry %zu (kid \"%s\"): cannot prepare HMAC state", pos, k->kid);
    return 0;
}

static int pick_current(pulse_token_keys_t *ring, char *err, size_t errlen)
{
    size_t found = 0;
    for (size_t i = 0; i < ring->count; i++) {
        if (ring->keys[i].not_after != 0)
            continue;
        if (found++ > 0)
            return fail(-1, err, errlen,
                        "PULSE_JWT_KEYS: kids \"%s\" and \"%s\" are both current; give the retired one an @not_after",
                        ring->keys[ring->current].kid, ring->keys[i].kid);
        ring->current = i;
    }
    if (found == 0)
        return fail(-1, err, errlen, "PULSE_JWT_KEYS: no current key (every entry has an @not_after)");
    return 0;
}

static int parse_entries(pulse_token_keys_t *ring, const char *spec, char *err, size_t errlen)
{
    const char *p = spec;
    for (size_t pos = 1;; pos++) {
        while (*p == ' ')
            p++;
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (ring->count == PULSE_TOKEN_MAX_KEYS)
            return fail(-1, err, errlen, "PULSE_JWT_KEYS: more than %d keys", PULSE_TOKEN_MAX_KEYS);
        if (parse_entry(ring, p, n, pos, err, errlen) != 0)
            return -1;
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

pulse_token_keys_t *pulse_token_keys_parse(const char *spec, const char *issuer, const char *audience, char *err, size_t errlen)
{
    if (spec == NULL || *spec == '\0') {
        fail(-1, err, errlen, "PULSE_JWT_KEYS is empty");
        return NULL;
    }
    if (issuer == NULL || audience == NULL || !printable_ok(issuer, PULSE_TOKEN_NAME_MAX) ||
        !printable_ok(audience, PULSE_TOKEN_NAME_MAX)) {
        fail(-1, err, errlen, "token issuer and audience must be 1-%d printable characters", PULSE_TOKEN_NAME_MAX);
        return NULL;
    }
    pulse_token_keys_t *ring = calloc(1, sizeof(*ring));
    if (ring == NULL) {
        fprintf(stderr, "pulse: out of memory allocating a key ring\n");
        abort();
    }
    strcpy(ring->iss, issuer);
    strcpy(ring->aud, audience);
    if (parse_entries(ring, spec, err, errlen) != 0 || pick_current(ring, err, errlen) != 0) {
        pulse_token_keys_free(ring);
        return NULL;
    }
    return ring;
}

void pulse_token_keys_free(pulse_token_keys_t *keys)
{
    if (keys == NULL)
        return;
    for (size_t i = 0; i < keys->count; i++) {
        EVP_MD_CTX_free(keys->keys[i].inner);
        EVP_MD_CTX_free(keys->keys[i].outer);
    }
    OPENSSL_cleanse(keys, sizeof(*keys));
    free(keys);
}

size_t pulse_token_keys_count(const pulse_token_keys_t *keys)
{
    return keys->count;
}

const char *pulse_token_keys_current_kid(const pulse_token_keys_t *keys)
{
    return keys->keys[keys->current].kid;
}

/* ---- signing ---- */

static int random_jti(char out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[16];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return -1;
    for (size_t i = 0; i < sizeof(rnd); i++) {
        out[2 * i] = hex[rnd[i] >> 4];
        out[2 * i + 1] = hex[rnd[i] & 15];
    }
    out[32] = '\0';
    return 0;
}

static int check_sign_input(const pulse_token_claims_t *c, int ttl_seconds, char *err, size_t errlen)
{
    if (ttl_seconds <= 0)
        return fail(-1, err, errlen, "token ttl must be positive");
    if (!printable_ok(c->sub, PULSE_TOKEN_SUB_MAX))
        return fail(-1, err, errlen, "token sub must be 1-%d printable characters without quotes or backslashes",
                    PULSE_TOKEN_SUB_MAX);
    if (!uuid_ok(c->tenant))
        return fail(-1, err, errlen, "token tenant must be a uuid");
    if (!role_ok(c->role))
        return fail(-1, err, errlen, "token role must be owner, analyst or viewer");
    return 0;
}

int pulse_token_sign(const pulse_token_keys_t *keys, const pulse_token_claims_t *claims, int64_t now, int ttl_seconds, char **out,
                     char *err, size_t errlen)
{
    const token_key_t *k = &keys->keys[keys->current];
    char jti[33];
    jwt_t *j = NULL;
    *out = NULL;
    if (check_sign_input(claims, ttl_seconds, err, errlen) != 0)
        return -1;
    if (random_jti(jti) != 0)
        return fail(-1, err, errlen, "RAND_bytes failed");
    int rc = jwt_new(&j);
    rc = rc || jwt_add_header(j, "kid", k->kid) || jwt_add_grant(j, "iss", keys->iss) || jwt_add_grant(j, "aud", keys->aud) ||
         jwt_add_grant(j, "sub", claims->sub) || jwt_add_grant(j, "tenant", claims->tenant) ||
         jwt_add_grant(j, "role", claims->role) || jwt_add_grant(j, "jti", jti) || jwt_add_grant_int(j, "iat", (long)now) ||
         jwt_add_grant_int(j, "exp", (long)(now + ttl_seconds)) || jwt_set_alg(j, JWT_ALG_HS256, k->secret, (int)k->secret_len);
    char *tok = rc == 0 ? jwt_encode_str(j) : NULL;
    jwt_free(j);
    if (tok == NULL)
        return fail(-1, err, errlen, "libjwt could not encode the token");
    *out = tok;
    return 0;
}

/* ---- verification ---- */

enum { H_ALG = 1, H_KID = 2, H_TYP = 4 };

typedef struct {
    unsigned seen;
    char kid[PULSE_TOKEN_KID_MAX + 1];
} header_t;

static int on_header(void *ctx, const char *key, const json_val_t *v, const char **msg)
{
    header_t *h = ctx;
    unsigned bit = strcmp(key, "alg") == 0 ? H_ALG : strcmp(key, "kid") == 0 ? H_KID : strcmp(key, "typ") == 0 ? H_TYP : 0;
    *msg = bit == 0          ? "unsupported header parameter"
           : (h->seen & bit) ? "duplicate header parameter"
                             : "header values must be strings";
    if (bit == 0 || (h->seen & bit) || v->is_int)
        return PULSE_TOKEN_MALFORMED;
    h->seen |= bit;
    if (bit == H_ALG && strcmp(v->str, "HS256") != 0)
        return (*msg = "alg must be HS256", PULSE_TOKEN_BAD_ALG);
    if (bit == H_KID && !kid_ok(v->str, v->len))
        return (*msg = "unknown kid", PULSE_TOKEN_UNKNOWN_KID);
    if (bit == H_KID)
        memcpy(h->kid, v->str, v->len + 1);
    if (bit == H_TYP && strcmp(v->str, "JWT") != 0)
        return (*msg = "typ must be JWT", PULSE_TOKEN_MALFORMED);
    return 0;
}

static int parse_header(const char *b64, size_t n, header_t *h, char *err, size_t errlen)
{
    unsigned char buf[256];
    const char *msg;
    long len = b64_decode(b64, n, buf, sizeof(buf), 1);
    if (len < 0)
        return fail(PULSE_TOKEN_MALFORMED, err, errlen, "token header is not base64url");
    int rc = json_flat_object((const char *)buf, (size_t)len, on_header, h, &msg);
    if (rc != 0)
        return fail(rc, err, errlen, "token header: %s", msg);
    if (!(h->seen & H_ALG))
        return fail(PULSE_TOKEN_BAD_ALG, err, errlen, "token header has no alg");
    if (!(h->seen & H_KID))
        return fail(PULSE_TOKEN_UNKNOWN_KID, err, errlen, "token header has no kid");
    return 0;
}

static const token_key_t *find_key(const pulse_token_keys_t *keys, const char *kid, int64_t now, char *err, size_t errlen)
{
    for (size_t i = 0; i < keys->count; i++) {
        const token_key_t *k = &keys->keys[i];
        if (strcmp(k->kid, kid) != 0)
            continue;
        if (k->not_after != 0 && k->not_after <= now) {
            fail(0, err, errlen, "signing key has been retired");
            return NULL;
        }
        return k;
    }
    fail(0, err, errlen, "unknown kid");
    return NULL;
}

static int hmac_matches(const token_key_t *k, const char *msg, size_t n, const unsigned char sig[32])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c == NULL) {
        fprintf(stderr, "pulse: out of memory allocating a digest context\n");
        abort();
    }
    int ok = EVP_MD_CTX_copy_ex(c, k->inner) && EVP_DigestUpdate(c, msg, n) && EVP_DigestFinal_ex(c, md, &mdlen) &&
             EVP_MD_CTX_copy_ex(c, k->outer) && EVP_DigestUpdate(c, md, mdlen) && EVP_DigestFinal_ex(c, md, &mdlen);
    EVP_MD_CTX_free(c);
    return ok && mdlen == 32 && CRYPTO_memcmp(md, sig, 32) == 0;
}

enum { C_ISS, C_AUD, C_SUB, C_TENANT, C_ROLE, C_JTI, C_IAT, C_EXP, C_NBF, C_COUNT };
static const char *const claim_names[C_COUNT] = {"iss", "aud", "sub", "tenant", "role", "jti", "iat", "exp", "nbf"};
#define C_REQUIRED ((1u << C_NBF) - 1)

typedef struct {
    unsigned seen;
    const char *claim; /* the claim a failure is about */
    pulse_token_claims_t c;
    char iss[PULSE_TOKEN_NAME_MAX + 1];
    char aud[PULSE_TOKEN_NAME_MAX + 1];
    int64_t nbf;
} payload_t;

static int64_t *claim_int(payload_t *pl, int i)
{
    return i == C_IAT ? &pl->c.iat : i == C_EXP ? &pl->c.exp : &pl->nbf;
}

static char *claim_str(payload_t *pl, int i, size_t *cap)
{
    char *dst[] = {pl->iss, pl->aud, pl->c.sub, pl->c.tenant, pl->c.role, pl->c.jti};
    size_t caps[] = {sizeof(pl->iss),      sizeof(pl->aud),    sizeof(pl->c.sub),
                     sizeof(pl->c.tenant), sizeof(pl->c.role), sizeof(pl->c.jti)};
    *cap = caps[i];
    return dst[i];
}

static int on_payload(void *ctx, const char *key, const json_val_t *v, const char **msg)
{
    payload_t *pl = ctx;
    int i = 0;
    while (i < C_COUNT && strcmp(claim_names[i], key) != 0)
        i++;
    if (i == C_COUNT)
        return 0; /* claims we do not use are ignored */
    pl->claim = claim_names[i];
    if (pl->seen & (1u << i))
        return (*msg = "duplicate claim", PULSE_TOKEN_MALFORMED);
    pl->seen |= 1u << i;
    if (v->is_int != (i >= C_IAT))
        return (*msg = "claim has the wrong type", PULSE_TOKEN_BAD_CLAIM);
    if (v->is_int) {
        *claim_int(pl, i) = v->num;
        return 0;
    }
    size_t cap;
    char *dst = claim_str(pl, i, &cap);
    if (v->len >= cap)
        return (*msg = "claim is too long", PULSE_TOKEN_BAD_CLAIM);
    memcpy(dst, v->str, v->len + 1);
    return 0;
}

static int check_claims(const pulse_token_keys_t *keys, payload_t *pl, int64_t now, char *err, size_t errlen)
{
    static const int order[] = {C_EXP, C_IAT, C_ISS, C_AUD, C_SUB, C_TENANT, C_ROLE, C_JTI};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if (!(pl->seen & (1u << order[i])))
            return fail(PULSE_TOKEN_MISSING_CLAIM, err, errlen, "token has no %s claim", claim_names[order[i]]);
    }
    if (now >= pl->c.exp)
        return fail(PULSE_TOKEN_EXPIRED, err, errlen, "token has expired");
    if (pl->c.iat > now + PULSE_TOKEN_IAT_LEEWAY || ((pl->seen & (1u << C_NBF)) && pl->nbf > now + PULSE_TOKEN_IAT_LEEWAY))
        return fail(PULSE_TOKEN_NOT_YET_VALID, err, errlen, "token is not valid yet");
    if (strcmp(pl->iss, keys->iss) != 0)
        return fail(PULSE_TOKEN_BAD_ISSUER, err, errlen, "token has the wrong issuer");
    if (strcmp(pl->aud, keys->aud) != 0)
        return fail(PULSE_TOKEN_BAD_AUDIENCE, err, errlen, "token has the wrong audience");
    const char *bad = !printable_ok(pl->c.sub, PULSE_TOKEN_SUB_MAX) ? "sub"
                      : !uuid_ok(pl->c.tenant)                      ? "tenant"
                      : !role_ok(pl->c.role)                        ? "role"
                      : !jti_ok(pl->c.jti)                          ? "jti"
                                                                    : NULL;
    if (bad != NULL)
        return fail(PULSE_TOKEN_BAD_CLAIM, err, errlen, "token claim %s is malformed", bad);
    return 0;
}

static int parse_payload(const char *b64, size_t n, payload_t *pl, char *err, size_t errlen)
{
    unsigned char buf[PULSE_TOKEN_MAX_LEN * 3 / 4];
    const char *msg;
    long len = b64_decode(b64, n, buf, sizeof(buf), 1);
    if (len < 0)
        return fail(PULSE_TOKEN_MALFORMED, err, errlen, "token payload is not base64url");
    int rc = json_flat_object((const char *)buf, (size_t)len, on_payload, pl, &msg);
    if (rc == PULSE_TOKEN_MALFORMED || rc == 0)
        return rc == 0 ? 0 : fail(rc, err, errlen, "token payload: %s", msg);
    return fail(rc, err, errlen, "token claim %s: %s", pl->claim, msg);
}

static int verify_parts(const pulse_token_keys_t *keys, const char *token, size_t n, int64_t now, payload_t *pl, char *err,
                        size_t errlen)
{
    const char *end = token + n, *d1 = memchr(token, '.', n);
    const char *d2 = d1 != NULL ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
    if (d2 == NULL || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) != NULL)
        return fail(PULSE_TOKEN_MALFORMED, err, errlen, "token is not three dot-separated parts");
    header_t h = {0};
    int rc = parse_header(token, (size_t)(d1 - token), &h, err, errlen);
    if (rc != 0)
        return rc;
    const token_key_t *k = find_key(keys, h.kid, now, err, errlen);
    if (k == NULL)
        return PULSE_TOKEN_UNKNOWN_KID;
    unsigned char sig[33];
    if (b64_decode(d2 + 1, (size_t)(end - d2 - 1), sig, sizeof(sig), 1) != 32 || !hmac_matches(k, token, (size_t)(d2 - token), sig))
        return fail(PULSE_TOKEN_BAD_SIGNATURE, err, errlen, "token signature does not match");
    if ((rc = parse_payload(d1 + 1, (size_t)(d2 - d1 - 1), pl, err, errlen)) != 0)
        return rc;
    if ((rc = check_claims(keys, pl, now, err, errlen)) != 0)
        return rc;
    memcpy(pl->c.kid, k->kid, sizeof(pl->c.kid));
    return 0;
}

int pulse_token_verify(const pulse_token_keys_t *keys, const char *token, int64_t now, pulse_token_claims_t *out, char *err,
                       size_t errlen)
{
    payload_t pl;
    memset(&pl, 0, sizeof(pl));
    size_t n = token != NULL ? strnlen(token, PULSE_TOKEN_MAX_LEN + 1) : 0;
    int rc = n == 0 ? fail(PULSE_TOKEN_MALFORMED, err, errlen, "token is empty")
             : n > PULSE_TOKEN_MAX_LEN
                 ? fail(PULSE_TOKEN_MALFORMED, err, errlen, "token is longer than %d bytes", PULSE_TOKEN_MAX_LEN)
                 : verify_parts(keys, token, n, now, &pl, err, errlen);
    if (out != NULL) {
        if (rc == 0)
            *out = pl.c;
        else
            memset(out, 0, sizeof(*out));
    }
    return rc;
}

const char *pulse_token_strerror(int code)
{
    static const char *const names[] = {"ok",       "malformed",     "bad_alg",    "unknown_kid",  "bad_signature",
                                        "expired",  "not_yet_valid", "bad_issuer", "bad_audience", "missing_claim",
                                        "bad_claim"};
    if (code > 0 || code < PULSE_TOKEN_BAD_CLAIM)
        return "unknown";
    return names[-code];
}
