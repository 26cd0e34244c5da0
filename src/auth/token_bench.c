/* Micro-benchmark for access tokens (see token_bench.h). */
#include "auth/token_bench.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth/token.h"
#include "core/clock.h"

#define BENCH_ITERATIONS 200000

/* A two-key ring with fresh random secrets: "bench2" current, "bench1" in its grace period. */
static pulse_token_keys_t *bench_keys(int64_t now, unsigned char secret[32], char *err, size_t errlen)
{
    unsigned char other[32], b64a[64], b64b[64];
    char spec[256];
    if (RAND_bytes(secret, 32) != 1 || RAND_bytes(other, 32) != 1)
        return NULL;
    EVP_EncodeBlock(b64a, secret, 32);
    EVP_EncodeBlock(b64b, other, 32);
    snprintf(spec, sizeof(spec), "bench2:%s,bench1:%s@%lld", (char *)b64a, (char *)b64b, (long long)now + 3600);
    return pulse_token_keys_parse(spec, "pulse-bench", "pulse-api", err, errlen);
}

static void bench_sign(FILE *out, const pulse_token_keys_t *keys, const pulse_token_claims_t *claims, int64_t now)
{
    char err[256];
    double t0 = pulse_now_s();
    for (int i = 0; i < BENCH_ITERATIONS; i++) {
        char *tok = NULL;
        if (pulse_token_sign(keys, claims, now, 900, &tok, err, sizeof(err)) == 0)
            free(tok);
    }
    fprintf(out, "token sign (libjwt)     %8.3f us/op\n", (pulse_now_s() - t0) / BENCH_ITERATIONS * 1e6);
}

static int bench_verify(FILE *out, const pulse_token_keys_t *keys, const char *tok, int64_t now)
{
    pulse_token_claims_t c;
    char err[256];
    int failures = 0;
    double t0 = pulse_now_s();
    for (int i = 0; i < BENCH_ITERATIONS; i++)
        failures += pulse_token_verify(keys, tok, now, &c, err, sizeof(err)) != 0;
    fprintf(out, "token verify (pulse)    %8.3f us/op\n", (pulse_now_s() - t0) / BENCH_ITERATIONS * 1e6);
    return failures == 0 ? 0 : -1;
}

/* Only the signature check and JSON parse; claims would still have to be checked on top. */
static void bench_libjwt_decode(FILE *out, const char *tok, const unsigned char secret[32])
{
    double t0 = pulse_now_s();
    for (int i = 0; i < BENCH_ITERATIONS; i++) {
        jwt_t *j = NULL;
        if (jwt_decode(&j, tok, secret, 32) == 0)
            jwt_free(j);
    }
    fprintf(out, "token jwt_decode (libjwt, for comparison) %8.3f us/op\n", (pulse_now_s() - t0) / BENCH_ITERATIONS * 1e6);
}

int pulse_token_bench(FILE *out)
{
    int64_t now = (int64_t)time(NULL);
    unsigned char secret[32];
    char err[256], *tok = NULL;
    pulse_token_claims_t claims = {.sub = "1234567", .tenant = "3f2b8c1e-5a6b-4c7d-8e9f-0a1b2c3d4e5f", .role = "analyst"};
    pulse_token_keys_t *keys = bench_keys(now, secret, err, sizeof(err));
    if (keys == NULL || pulse_token_sign(keys, &claims, now, 900, &tok, err, sizeof(err)) != 0) {
        fprintf(out, "token bench: setup failed: %s\n", keys == NULL ? "key ring" : err);
        pulse_token_keys_free(keys);
        return -1;
    }
    fprintf(out, "token bench: %d iterations, token %zu bytes\n", BENCH_ITERATIONS, strlen(tok));
    bench_sign(out, keys, &claims, now);
    int rc = bench_verify(out, keys, tok, now);
    bench_libjwt_decode(out, tok, secret);
    if (rc != 0)
        fprintf(out, "token bench: verification failed\n");
    free(tok);
    pulse_token_keys_free(keys);
    return rc;
}
