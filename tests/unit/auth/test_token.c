/* Unit tests for src/auth/token.c: key ring parsing, sign/verify round trips, interoperability
 * with libjwt in both directions, and every rejection the verifier promises. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/token.h"

#define NOW 1800000000LL
#define ISS "https://pulse.example/"
#define AUD "pulse-api"
#define TENANT "3f2b8c1e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"

/* 32-byte secrets: A is the current key k2, B the older key k1. */
static const char SECRET_A[] = "0123456789abcdef0123456789abcdef";
static const char SECRET_B[] = "fedcba9876543210fedcba9876543210";

static char b64_a[64], b64_b[64];

static void b64std(const void *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* Standard base64 to unpadded base64url, in place. */
static void to_url(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '=')
            continue;
        *w++ = *r == '+' ? '-' : *r == '/' ? '_' : *r;
    }
    *w = '\0';
}

static void b64url(const void *in, size_t n, char *out)
{
    b64std(in, n, out);
    to_url(out);
}

/* A token over arbitrary header and payload JSON, HMAC-SHA256 with secret (NULL: empty signature). */
static char *craft(const char *header, const char *payload, const char *secret)
{
    size_t hn = strlen(header), pn = strlen(payload);
    char *tok = malloc(hn * 2 + pn * 2 + 100);
    b64url(header, hn, tok);
    strcat(tok, ".");
    b64url(payload, pn, tok + strlen(tok));
    size_t signed_len = strlen(tok);
    strcat(tok, ".");
    if (secret != NULL) {
        unsigned char md[32];
        unsigned int mdlen;
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)tok, signed_len, md, &mdlen);
        b64url(md, mdlen, tok + strlen(tok));
    }
    return tok;
}

#define HDR_K2 "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k2\"}"
#define HDR_K1 "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}"

/* A valid payload at NOW with one claim's text replaced: name is the claim, value its raw JSON
 * value, or NULL to leave it out. */
static void payload_with(char *out, size_t outlen, const char *name, const char *value)
{
    static const char *const names[] = {"iss", "aud", "sub", "tenant", "role", "jti", "iat", "exp"};
    const char *values[] = {"\"" ISS "\"",    "\"" AUD "\"", "\"42\"",
                            "\"" TENANT "\"", "\"viewer\"",  "\"00112233445566778899aabbccddeeff\"",
                            "1800000000",     "1800000900"};
    size_t o = (size_t)snprintf(out, outlen, "{");
    for (size_t i = 0; i < 8; i++) {
        int replaced = name != NULL && strcmp(names[i], name) == 0;
        if (replaced && value == NULL)
            continue;
        o += (size_t)snprintf(out + o, outlen - o, "%s\"%s\":%s", o > 1 ? "," : "", names[i], replaced ? value : values[i]);
    }
    snprintf(out + o, outlen - o, "}");
}

static pulse_token_keys_t *ring_with_k1_until(int64_t not_after)
{
    char spec[256], err[256];
    snprintf(spec, sizeof(spec), "k2:%s, k1:%s@%lld", b64_a, b64_b, (long long)not_after);
    pulse_token_keys_t *keys = pulse_token_keys_parse(spec, ISS, AUD, err, sizeof(err));
    assert_non_null(keys);
    return keys;
}

static void assert_no_secret(const char *msg)
{
    assert_null(strstr(msg, SECRET_A));
    assert_null(strstr(msg, SECRET_B));
    assert_null(strstr(msg, b64_a));
    assert_null(strstr(msg, b64_b));
    assert_null(strstr(msg, "MDEyMzQ1")); /* any prefix of b64_a */
    assert_null(strstr(msg, "ZmVkY2Jh")); /* any prefix of b64_b */
}

/* Verifies token against the grace-period ring at now and checks the result code. */
static void expect_verify(const char *token, int64_t now, int want)
{
    pulse_token_keys_t *keys = ring_with_k1_until(NOW + 3600);
    pulse_token_claims_t c;
    char err[256] = "";
    int rc = pulse_token_verify(keys, token, now, &c, err, sizeof(err));
    if (rc != want)
        fail_msg("want %s, got %s (%s)", pulse_token_strerror(want), pulse_token_strerror(rc), err);
    if (rc != 0) {
        assert_true(err[0] != '\0');
        assert_int_equal(c.sub[0], '\0');
        assert_int_equal(c.exp, 0);
    }
    assert_no_secret(err);
    pulse_token_keys_free(keys);
}

static void expect_crafted(const char *header, const char *payload, const char *secret, int want)
{
    char *tok = craft(header, payload, secret);
    expect_verify(tok, NOW, want);
    free(tok);
}

static char *sign_default(const pulse_token_keys_t *keys, int64_t now)
{
    pulse_token_claims_t in = {.sub = "42", .tenant = TENANT, .role = "analyst"};
    char err[256], *tok = NULL;
    assert_int_equal(pulse_token_sign(keys, &in, now, 900, &tok, err, sizeof(err)), 0);
    assert_non_null(tok);
    return tok;
}

static int setup(void **state)
{
    b64std(SECRET_A, 32, b64_a);
    b64std(SECRET_B, 32, b64_b);
    return 0;
}

/* ---- round trips and interoperability ---- */

static void test_round_trip(void **state)
{
    pulse_token_keys_t *keys = ring_with_k1_until(NOW + 3600);
    assert_int_equal(pulse_token_keys_count(keys), 2);
    assert_string_equal(pulse_token_keys_current_kid(keys), "k2");
    char *tok = sign_default(keys, NOW);
    pulse_token_claims_t c;
    char err[256];
    assert_int_equal(pulse_token_verify(keys, tok, NOW + 10, &c, err, sizeof(err)), 0);
    assert_string_equal(c.sub, "42");
    assert_string_equal(c.tenant, TENANT);
    assert_string_equal(c.role, "analyst");
    assert_string_equal(c.kid, "k2");
    assert_int_equal(c.iat, NOW);
    assert_int_equal(c.exp, NOW + 900);
    assert_int_equal(strlen(c.jti), 32);
    assert_int_equal(pulse_token_verify(keys, tok, NOW, NULL, NULL, 0), 0);

    char *tok2 = sign_default(keys, NOW);
    pulse_token_claims_t c2;
    assert_int_equal(pulse_token_verify(keys, tok2, NOW, &c2, err, sizeof(err)), 0);
    assert_string_not_equal(c.jti, c2.jti);
    free(tok2);
    free(tok);
    pulse_token_keys_free(keys);
}

static void test_signed_token_decodes_with_libjwt(void **state)
{
    pulse_token_keys_t *keys = ring_with_k1_until(NOW + 3600);
    char *tok = sign_default(keys, NOW);
    jwt_t *j = NULL;
    assert_int_equal(jwt_decode(&j, tok, (const unsigned char *)SECRET_A, 32), 0);
    assert_int_equal(jwt_get_alg(j), JWT_ALG_HS256);
    assert_string_equal(jwt_get_header(j, "kid"), "k2");
    assert_string_equal(jwt_get_grant(j, "iss"), ISS);
    assert_string_equal(jwt_get_grant(j, "aud"), AUD);
    assert_string_equal(jwt_get_grant(j, "tenant"), TENANT);
    assert_int_equal(jwt_get_grant_int(j, "exp"), NOW + 900);
    jwt_free(j);
    free(tok);
    pulse_token_keys_free(keys);
}

/* A token made by libjwt directly; alg is HS256 unless told otherwise. */
static char *libjwt_token(jwt_alg_t alg, const char *kid, const char *secret)
{
    jwt_t *j = NULL;
    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_add_header(j, "kid", kid), 0);
    char payload[512];
    payload_with(payload, sizeof(payload), NULL, NULL);
    assert_int_equal(jwt_add_grants_json(j, payload), 0);
    assert_int_equal(jwt_set_alg(j, alg, (const unsigned char *)secret, (int)strlen(secret)), 0);
    char *tok = jwt_encode_str(j);
    jwt_free(j);
    assert_non_null(tok);
    return tok;
}

static void test_libjwt_token_verifies(void **state)
{
    char *tok = libjwt_token(JWT_ALG_HS256, "k2", SECRET_A);
    expect_verify(tok, NOW, 0);
    free(tok);
}

static void test_long_secret_is_hashed_like_hmac(void **state)
{
    char raw[101], b64[200], spec[300], err[256], *tok = NULL;
    memset(raw, 'z', 100);
    raw[100] = '\0';
    b64std(raw, 100, b64);
    to_url(b64); /* the URL alphabet without padding is accepted in the config too */
    snprintf(spec, sizeof(spec), "long:%s", b64);
    pulse_token_keys_t *keys = pulse_token_keys_parse(spec, ISS, AUD, err, sizeof(err));
    assert_non_null(keys);
    pulse_token_claims_t in = {.sub = "7", .tenant = TENANT, .role = "owner"}, out;
    assert_int_equal(pulse_token_sign(keys, &in, NOW, 60, &tok, err, sizeof(err)), 0);
    assert_int_equal(pulse_token_verify(keys, tok, NOW, &out, err, sizeof(err)), 0);
    assert_string_equal(out.role, "owner");
    jwt_t *j = NULL;
    assert_int_equal(jwt_decode(&j, tok, (const unsigned char *)raw, 100), 0);
    jwt_free(j);
    free(tok);
    pulse_token_keys_free(keys);
}

static void test_crafted_valid_token_verifies(void **state)
{
    char payload[512];
    payload_with(payload, sizeof(payload), NULL, NULL);
    expect_crafted(HDR_K2, payload, SECRET_A, 0);
    /* whitespace, escapes, header order and extra claims are fine */
    expect_crafted(" { \"kid\" : \"k2\" , \"alg\" : \"HS256\" } ",
                   "{\"iss\":\"https:\\/\\/pulse.example\\/\",\"aud\":\"pulse-\\u0061pi\",\"sub\":\"42\",\"tenant\":\"" TENANT
                   "\",\"role\":\"viewer\",\"jti\":\"00112233445566778899aabbccddeeff\",\"iat\":1800000000,"
                   "\"exp\":1800000900,\"extra\":\"x\",\"n\":-5,\"nbf\":1800000000}",
                   SECRET_A, 0);
}

/* ---- algorithm and key selection ---- */

static void test_alg_none_rejected(void **state)
{
    char payload[512];
    payload_with(payload, sizeof(payload), NULL, NULL);
    expect_crafted("{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"k2\"}", payload, NULL, PULSE_TOKEN_BAD_ALG);
    expect_crafted("{\"alg\":\"none\"}", payload, NULL, PULSE_TOKEN_BAD_ALG);
    expect_crafted("{\"alg\":\"hs256\",\"kid\":\"k2\"}", payload, SECRET_A, PULSE_TOKEN_BAD_ALG);
    expect_crafted("{\"kid\":\"k2\"}", payload, SECRET_A, PULSE_TOKEN_BAD_ALG);
    expect_verify("e30.e30.", NOW, PULSE_TOKEN_BAD_ALG); /* header {} */
    /* libjwt makes the same alg:none token when given no key */
    jwt_t *j = NULL;
    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_add_header(j, "kid", "k2"), 0);
    assert_int_equal(jwt_add_grants_json(j, payload), 0);
    char *tok = jwt_encode_str(j);
    jwt_free(j);
    expect_verify(tok, NOW, PULSE_TOKEN_BAD_ALG);
    free(tok);
}

static void test_hs384_with_same_secret_rejected(void **state)
{
    char *tok = libjwt_token(JWT_ALG_HS384, "k2", SECRET_A);
    jwt_t *j = NULL;
    assert_int_equal(jwt_decode(&j, tok, (const unsigned char *)SECRET_A, 32), 0); /* libjwt alone accepts it */
    jwt_free(j);
    expect_verify(tok, NOW, PULSE_TOKEN_BAD_ALG);
    free(tok);
    tok = libjwt_token(JWT_ALG_HS512, "k2", SECRET_A);
    expect_verify(tok, NOW, PULSE_TOKEN_BAD_ALG);
    free(tok);
}

static void test_unknown_or_missing_kid(void **state)
{
    char payload[512];
    payload_with(payload, sizeof(payload), NULL, NULL);
    expect_crafted("{\"alg\":\"HS256\",\"kid\":\"k9\"}", payload, SECRET_A, PULSE_TOKEN_UNKNOWN_KID);
    expect_crafted("{\"alg\":\"HS256\"}", payload, SECRET_A, PULSE_TOKEN_UNKNOWN_KID);
    expect_crafted("{\"alg\":\"HS256\",\"kid\":\"../../etc/passwd\"}", payload, SECRET_A, PULSE_TOKEN_UNKNOWN_KID);
    char *tok = libjwt_token(JWT_ALG_HS256, "k3", SECRET_A);
    expect_verify(tok, NOW, PULSE_TOKEN_UNKNOWN_KID);
    free(tok);
}

static void test_grace_period_and_retired_key(void **state)
{
    char payload[512], err[256];
    payload_with(payload, sizeof(payload), NULL, NULL);
    char *tok = craft(HDR_K1, payload, SECRET_B);
    pulse_token_claims_t c;

    pulse_token_keys_t *grace = ring_with_k1_until(NOW + 1);
    assert_int_equal(pulse_token_verify(grace, tok, NOW, &c, err, sizeof(err)), 0);
    assert_string_equal(c.kid, "k1");
    /* at not_after the grace period is over */
    assert_int_equal(pulse_token_verify(grace, tok, NOW + 1, &c, err, sizeof(err)), PULSE_TOKEN_UNKNOWN_KID);
    pulse_token_keys_free(grace);

    pulse_token_keys_t *retired = ring_with_k1_until(NOW - 1);
    assert_int_equal(pulse_token_verify(retired, tok, NOW, &c, err, sizeof(err)), PULSE_TOKEN_UNKNOWN_KID);
    assert_non_null(strstr(err, "retired"));
    /* the new key still signs and verifies */
    char *fresh = sign_default(retired, NOW);
    assert_int_equal(pulse_token_verify(retired, fresh, NOW, &c, err, sizeof(err)), 0);
    assert_string_equal(c.kid, "k2");
    free(fresh);
    pulse_token_keys_free(retired);
    free(tok);
}

static void test_wrong_key_right_kid(void **state)
{
    char payload[512];
    payload_with(payload, sizeof(payload), NULL, NULL);
    expect_crafted(HDR_K2, payload, SECRET_B, PULSE_TOKEN_BAD_SIGNATURE);
    expect_crafted(HDR_K1, payload, SECRET_A, PULSE_TOKEN_BAD_SIGNATURE);
    expect_crafted(HDR_K2, payload, "0123456789abcdef0123456789abcdeF", PULSE_TOKEN_BAD_SIGNATURE);
}

/* ---- time ---- */

static void test_expiry_and_iat(void **state)
{
    pulse_token_keys_t *keys = ring_with_k1_until(NOW + 3600);
    char *tok = sign_default(keys, NOW);
    expect_verify(tok, NOW + 899, 0);
    expect_verify(tok, NOW + 900, PULSE_TOKEN_EXPIRED); /* exp is the first invalid second */
    expect_verify(tok, NOW + 901, PULSE_TOKEN_EXPIRED);
    expect_verify(tok, NOW - 60, 0); /* iat within the leeway */
    expect_verify(tok, NOW - 61, PULSE_TOKEN_NOT_YET_VALID);
    free(tok);
    pulse_token_keys_free(keys);

    char payload[512];
    payload_with(payload, sizeof(payload), "exp", "1800000899");
    expect_crafted(HDR_K2, payload, SECRET_A, 0);
    payload_with(payload, sizeof(payload), "exp", "1799999999");
    expect_crafted(HDR_K2, payload, SECRET_A, PULSE_TOKEN_EXPIRED);
    payload_with(payload, sizeof(payload), "iat", "1800000061");
    expect_crafted(HDR_K2, payload, SECRET_A, PULSE_TOKEN_NOT_YET_VALID);
    payload_with(payload, sizeof(payload), "iss", "\"" ISS "\",\"nbf\":1800000100");
    expect_crafted(HDR_K2, payload, SECRET_A, PULSE_TOKEN_NOT_YET_VALID);
}

/* ---- claims ---- */

static void test_missing_claims(void **state)
{
    static const char *const required[] = {"exp", "iat", "iss", "aud", "sub", "tenant", "role", "jti"};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        char payload[512], err[256];
        payload_with(payload, sizeof(payload), required[i], NULL);
        char *tok = craft(HDR_K2, payload, SECRET_A);
        pulse_token_keys_t *keys = ring_with_k1_until(NOW + 3600);
        assert_int_equal(pulse_token_verify(keys, tok, NOW, NULL, err, sizeof(err)), PULSE_TOKEN_MISSING_CLAIM);
        assert_non_null(strstr(err, required[i]));
        pulse_token_keys_free(keys);
        free(tok);
    }
    expect_crafted(HDR_K2, "{}", SECRET_A, PULSE_TOKEN_MISSING_CLAIM);
}

static void test_wrong_issuer_and_audience(void **state)
{
    char payload[512];
    payload_with(payload, sizeof(payload), "iss", "\"https://evil.example/\"");
    expect_crafted(HDR_K2, payload, SECRET_A, PULSE_TOKEN_BAD_ISSUER);
    payload_with(payload, sizeof(payload), "iss", "\"\"");
    expect_crafted(HDR_K2, payload, SECRET_A, PULSE_TOKEN_BAD_ISSUER);
    payload_with(payload, sizeof(payload), "aud", "\"other-api\"");
    expect_crafted(HDR_K2, payload, SECRET_A, PULSE_TOKEN_BAD_AUDIENCE);
    payload_with(payload, sizeof(payload), "aud", "\"pulse-api \"");
    expect_crafted(HDR_K2, payload, SECRET_A, PULSE_TOKEN_BAD_AUDIENCE);
    /* a token for another audience, signed by our own key ring configuration */
    char err[256], spec[128];
    snprintf(spec, sizeof(spec), "k2:%s", b64_a);
    pulse_token_keys_t *other = pulse_token_keys_parse(spec, ISS, "admin-api", err, sizeof(err));
    assert_non_null(other);
    char *tok = sign_default(other, NOW);
    expect_verify(tok, NOW, PULSE_TOKEN_BAD_AUDIENCE);
    free(tok);
    pulse_token_keys_free(other);
}

static void test_bad_claims(void **state)
{
    static const struct {
        const char *name, *value;
        int want;
    } cases[] = {
        {"tenant", "\"not-a-uuid\"", PULSE_TOKEN_BAD_CLAIM},
        {"tenant", "\"3f2b8c1e-5a6b-4c7d-8e9f-0a1b2c3d4e5\"", PULSE_TOKEN_BAD_CLAIM},
        {"role", "\"admin\"", PULSE_TOKEN_BAD_CLAIM},
        {"role", "\"Owner\"", PULSE_TOKEN_BAD_CLAIM},
        {"sub", "\"\"", PULSE_TOKEN_BAD_CLAIM},
        {"sub", "\"a\\\"b\"", PULSE_TOKEN_BAD_CLAIM},
        {"sub", "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"", PULSE_TOKEN_BAD_CLAIM},
        {"sub", "42", PULSE_TOKEN_BAD_CLAIM},
        {"jti", "\"short\"", PULSE_TOKEN_BAD_CLAIM},
        {"exp", "\"1800000900\"", PULSE_TOKEN_BAD_CLAIM},
        {"exp", "1.8e9", PULSE_TOKEN_MALFORMED},
        {"exp", "18000009000000000000", PULSE_TOKEN_MALFORMED},
        {"exp", "true", PULSE_TOKEN_MALFORMED},
        {"aud", "[\"pulse-api\"]", PULSE_TOKEN_MALFORMED},
        {"role", "{\"x\":1}", PULSE_TOKEN_MALFORMED},
        {"role", "\"owner\",\"role\":\"viewer\"", PULSE_TOKEN_MALFORMED}, /* duplicate claim */
        {"sub", "\"a\\u00e9\"", PULSE_TOKEN_MALFORMED},
        {"sub", "\"a\\u0000\"", PULSE_TOKEN_MALFORMED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char payload[512];
        payload_with(payload, sizeof(payload), cases[i].name, cases[i].value);
        expect_crafted(HDR_K2, payload, SECRET_A, cases[i].want);
    }
}

/* ---- garbage ---- */

static void test_garbage(void **state)
{
    static const char *const inputs[] = {
        "", ".", "..", "a.b", "a.b.c.d", "!!!.???.***", "eyJhbGciOiJIUzI1NiJ9", " . . ", "e30.e30.e30.", "e3.e30.",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
        expect_verify(inputs[i], NOW, PULSE_TOKEN_MALFORMED);
    expect_verify(NULL, NOW, PULSE_TOKEN_MALFORMED);

    char *huge = malloc(1 << 20);
    memset(huge, 'A', (1 << 20) - 1);
    huge[1000] = '.';
    huge[2000] = '.';
    huge[(1 << 20) - 1] = '\0';
    expect_verify(huge, NOW, PULSE_TOKEN_MALFORMED);
    free(huge);

    char payload[512];
    payload_with(payload, sizeof(payload), NULL, NULL);
    static const char *const headers[] = {
        "[\"alg\",\"HS256\"]",
        "\"HS256\"",
        "42",
        "",
        "{",
        "{\"alg\":\"HS256\",\"kid\":\"k2\"} x",
        "{\"alg\":\"HS256\",\"kid\":\"k2\",}",
        "{\"alg\":\"HS256\",\"kid\":\"k2\",\"crit\":\"exp\"}",
        "{\"alg\":\"HS256\",\"kid\":\"k2\",\"typ\":\"JWE\"}",
        "{\"alg\":\"HS256\",\"alg\":\"HS256\",\"kid\":\"k2\"}",
        "{\"alg\":\"HS256\",\"kid\":\"k2\",\"x5u\":1}",
    };
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++)
        expect_crafted(headers[i], payload, SECRET_A, PULSE_TOKEN_MALFORMED);
    static const char *const payloads[] = {"[]", "\"x\"", "", "{\"sub\":\"42\"", "{\"sub\" \"42\"}", "null"};
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++)
        expect_crafted(HDR_K2, payloads[i], SECRET_A, PULSE_TOKEN_MALFORMED);
}

static void test_tampering(void **state)
{
    pulse_token_keys_t *keys = ring_with_k1_until(NOW + 3600);
    char *tok = sign_default(keys, NOW);
    pulse_token_keys_free(keys);
    char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');

    /* payload swapped for one claiming role owner, signature kept */
    char payload[512], enc[1024], forged[2048];
    payload_with(payload, sizeof(payload), "role", "\"owner\"");
    b64url(payload, strlen(payload), enc);
    snprintf(forged, sizeof(forged), "%.*s.%s%s", (int)(d1 - tok), tok, enc, d2);
    expect_verify(forged, NOW, PULSE_TOKEN_BAD_SIGNATURE);

    /* one payload character flipped */
    strcpy(forged, tok);
    forged[d1 - tok + 5] ^= 1;
    expect_verify(forged, NOW, PULSE_TOKEN_BAD_SIGNATURE);

    /* signature: flipped, truncated, extended, or a non-canonical last character */
    strcpy(forged, tok);
    forged[d2 - tok + 3] = forged[d2 - tok + 3] == 'A' ? 'B' : 'A';
    expect_verify(forged, NOW, PULSE_TOKEN_BAD_SIGNATURE);
    strcpy(forged, tok);
    forged[strlen(forged) - 1] = '\0';
    expect_verify(forged, NOW, PULSE_TOKEN_BAD_SIGNATURE);
    snprintf(forged, sizeof(forged), "%sAAAA", tok);
    expect_verify(forged, NOW, PULSE_TOKEN_BAD_SIGNATURE);
    strcpy(forged, tok);
    char *last = forged + strlen(forged) - 1; /* 43rd character carries 2 unused bits */
    const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int v = (int)(strchr(alphabet, *last) - alphabet);
    *last = alphabet[v ^ 1];
    expect_verify(forged, NOW, PULSE_TOKEN_BAD_SIGNATURE);
    snprintf(forged, sizeof(forged), "%s=", tok);
    expect_verify(forged, NOW, PULSE_TOKEN_BAD_SIGNATURE);
    free(tok);
}

/* ---- signing input ---- */

static void test_sign_rejects_bad_input(void **state)
{
    pulse_token_keys_t *keys = ring_with_k1_until(NOW + 3600);
    char err[256], *tok = (char *)1;
    pulse_token_claims_t c = {.sub = "42", .tenant = TENANT, .role = "admin"};
    assert_int_equal(pulse_token_sign(keys, &c, NOW, 900, &tok, err, sizeof(err)), -1);
    assert_null(tok);
    strcpy(c.role, "owner");
    strcpy(c.tenant, "nope");
    assert_int_equal(pulse_token_sign(keys, &c, NOW, 900, &tok, err, sizeof(err)), -1);
    strcpy(c.tenant, TENANT);
    strcpy(c.sub, "a\"b");
    assert_int_equal(pulse_token_sign(keys, &c, NOW, 900, &tok, err, sizeof(err)), -1);
    strcpy(c.sub, "42");
    assert_int_equal(pulse_token_sign(keys, &c, NOW, 0, &tok, err, sizeof(err)), -1);
    assert_no_secret(err);
    assert_int_equal(pulse_token_sign(keys, &c, NOW, 1, &tok, err, sizeof(err)), 0);
    free(tok);
    pulse_token_keys_free(keys);
}

/* ---- key ring ---- */

static void expect_ring_error(const char *spec, const char *needle)
{
    char err[256] = "";
    pulse_token_keys_t *keys = pulse_token_keys_parse(spec, ISS, AUD, err, sizeof(err));
    if (keys != NULL)
        fail_msg("spec accepted; wanted an error containing \"%s\"", needle);
    if (strstr(err, needle) == NULL)
        fail_msg("error \"%s\" does not contain \"%s\"", err, needle);
    assert_no_secret(err);
}

static void test_key_ring_errors(void **state)
{
    char spec[1024], short_b64[64];
    b64std("0123456789abcdef", 16, short_b64);
    snprintf(spec, sizeof(spec), "k2:%s,k1:%s", b64_a, short_b64);
    expect_ring_error(spec, "entry 2 (kid \"k1\"): secret is 16 bytes");
    snprintf(spec, sizeof(spec), "k 2:%s", b64_a);
    expect_ring_error(spec, "entry 1: kid must be");
    snprintf(spec, sizeof(spec), ":%s", b64_a);
    expect_ring_error(spec, "entry 1: kid must be");
    snprintf(spec, sizeof(spec), "k2:%s,%s", b64_a, b64_b); /* secret without a kid: its text must not leak */
    expect_ring_error(spec, "entry 2: expected kid:base64secret");
    snprintf(spec, sizeof(spec), "k2:%s,%s:x", b64_a, b64_b);
    expect_ring_error(spec, "entry 2: kid must be");
    snprintf(spec, sizeof(spec), "k2:%s,k1:%s", b64_a, b64_b);
    expect_ring_error(spec, "\"k2\" and \"k1\" are both current");
    snprintf(spec, sizeof(spec), "k2:%s@1800000000,k1:%s@1700000000", b64_a, b64_b);
    expect_ring_error(spec, "no current key");
    snprintf(spec, sizeof(spec), "k2:%s,k2:%s@1700000000", b64_a, b64_b);
    expect_ring_error(spec, "entry 2 (kid \"k2\"): duplicate kid");
    snprintf(spec, sizeof(spec), "k2:%s,k1:%s@soon", b64_a, b64_b);
    expect_ring_error(spec, "entry 2 (kid \"k1\"): not_after");
    snprintf(spec, sizeof(spec), "k2:%s,k1:%s@", b64_a, b64_b);
    expect_ring_error(spec, "not_after");
    snprintf(spec, sizeof(spec), "k2:%s!", b64_a);
    expect_ring_error(spec, "entry 1 (kid \"k2\"): secret is not valid base64");
    snprintf(spec, sizeof(spec), "k2:%s,", b64_a);
    expect_ring_error(spec, "entry 2 is empty");
    expect_ring_error("", "PULSE_JWT_KEYS is empty");
    expect_ring_error("k2:", "entry 1 (kid \"k2\"): secret is 0 bytes");
    snprintf(spec, sizeof(spec), "abcdefghijabcdefghijabcdefghijabc:%s", b64_a);
    expect_ring_error(spec, "entry 1: kid must be");

    char big[400];
    memset(big, 'A', 200);
    big[200] = '\0';
    snprintf(spec, sizeof(spec), "k2:%s", big);
    expect_ring_error(spec, "longer than 128 bytes");

    size_t o = 0;
    for (int i = 0; i < 9; i++)
        o += (size_t)snprintf(spec + o, sizeof(spec) - o, "%sk%d:%s%s", i ? "," : "", i, b64_a, i ? "@1900000000" : "");
    expect_ring_error(spec, "more than 8 keys");

    char err[256];
    snprintf(spec, sizeof(spec), "k2:%s", b64_a);
    assert_null(pulse_token_keys_parse(spec, "", AUD, err, sizeof(err)));
    assert_null(pulse_token_keys_parse(spec, ISS, "a\"b", err, sizeof(err)));
    pulse_token_keys_free(NULL);
}

static void test_key_ring_accepts_eight_keys(void **state)
{
    char spec[1024], err[256];
    size_t o = 0;
    for (int i = 0; i < 8; i++)
        o += (size_t)snprintf(spec + o, sizeof(spec) - o, "%sk%d:%s%s", i ? ", " : "", i, b64_a, i ? "@1900000000" : "");
    pulse_token_keys_t *keys = pulse_token_keys_parse(spec, ISS, AUD, err, sizeof(err));
    assert_non_null(keys);
    assert_int_equal(pulse_token_keys_count(keys), 8);
    assert_string_equal(pulse_token_keys_current_kid(keys), "k0");
    pulse_token_keys_free(keys);
}

static void test_strerror(void **state)
{
    assert_string_equal(pulse_token_strerror(0), "ok");
    assert_string_equal(pulse_token_strerror(PULSE_TOKEN_EXPIRED), "expired");
    assert_string_equal(pulse_token_strerror(PULSE_TOKEN_BAD_CLAIM), "bad_claim");
    assert_string_equal(pulse_token_strerror(-99), "unknown");
    assert_string_equal(pulse_token_strerror(1), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_signed_token_decodes_with_libjwt),
        cmocka_unit_test(test_libjwt_token_verifies),
        cmocka_unit_test(test_long_secret_is_hashed_like_hmac),
        cmocka_unit_test(test_crafted_valid_token_verifies),
        cmocka_unit_test(test_alg_none_rejected),
        cmocka_unit_test(test_hs384_with_same_secret_rejected),
        cmocka_unit_test(test_unknown_or_missing_kid),
        cmocka_unit_test(test_grace_period_and_retired_key),
        cmocka_unit_test(test_wrong_key_right_kid),
        cmocka_unit_test(test_expiry_and_iat),
        cmocka_unit_test(test_missing_claims),
        cmocka_unit_test(test_wrong_issuer_and_audience),
        cmocka_unit_test(test_bad_claims),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_tampering),
        cmocka_unit_test(test_sign_rejects_bad_input),
        cmocka_unit_test(test_key_ring_errors),
        cmocka_unit_test(test_key_ring_accepts_eight_keys),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
