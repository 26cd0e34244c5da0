/* A process-wide rate limiter shared by all event-loop threads: named buckets (one string key such
 * as "login_ip\0203.0.113.9") checked with GCRA (a token bucket kept as one timestamp per key).
 * The table is split into 64 mutex-guarded shards of fixed size, so memory is bounded whatever
 * clients send: when a shard's probe window is full, a refilled bucket (which carries no
 * information) or else the least recently touched one is forgotten. Keys longer than
 * PULSE_RATELIMIT_MAX_KEY bytes are stored as a 128-bit keyed digest. */
#ifndef PULSE_CORE_RATELIMIT_H
#define PULSE_CORE_RATELIMIT_H

#include <stddef.h>

#define PULSE_RATELIMIT_DEFAULT_ENTRIES 100000
#define PULSE_RATELIMIT_MAX_KEY 256

typedef struct pulse_ratelimit_t pulse_ratelimit_t;

/* A limiter holding at most max_entries buckets (rounded up to a multiple of the shard count; 0
 * means the default). The caller owns it; free with pulse_ratelimit_destroy. OOM aborts. */
pulse_ratelimit_t *pulse_ratelimit_create(size_t max_entries);
void pulse_ratelimit_destroy(pulse_ratelimit_t *rl);

/* The process-wide instance (PULSE_RATELIMIT_DEFAULT_ENTRIES), created on first use by any thread
 * and never freed. */
pulse_ratelimit_t *pulse_ratelimit_default(void);

/* Takes one unit from the bucket `key` (any bytes), which refills at rate_per_sec up to burst.
 * now is in seconds on a clock shared by all callers (CLOCK_MONOTONIC; tests inject it).
 * Returns 1 if allowed, 0 if refused (*retry_after, if not NULL, = seconds until one unit is
 * available again), -1 if rate_per_sec <= 0 or burst < 1 (or NaN). A key should always be used
 * with the same parameters. Thread-safe. */
int pulse_ratelimit_take(pulse_ratelimit_t *rl, const char *key, size_t keylen, double rate_per_sec, double burst, double now,
                         double *retry_after);

/* Occupancy, for tests and metrics: buckets stored, slots available, heap bytes held by keys. */
typedef struct pulse_ratelimit_stats_t {
    size_t entries;
    size_t capacity;
    size_t key_bytes;
} pulse_ratelimit_stats_t;
void pulse_ratelimit_stats(pulse_ratelimit_t *rl, pulse_ratelimit_stats_t *out);

/* Seconds on CLOCK_MONOTONIC: the `now` the Lua binding uses. */
double pulse_ratelimit_now(void);

#endif
