/* Micro-benchmark for access tokens: sign and verify µs/op with our verifier, and libjwt's
 * jwt_decode on the same token for comparison. Prints figures; never fails on a time. */
#ifndef PULSE_AUTH_TOKEN_BENCH_H
#define PULSE_AUTH_TOKEN_BENCH_H

#include <stdio.h>

/* Runs ~200k iterations of each operation and prints one line per figure to out. Returns 0, or
 * -1 (with a line on out) if a token could not be made or did not verify. */
int pulse_token_bench(FILE *out);

#endif
