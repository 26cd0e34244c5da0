/* Unit tests for src/core/ratelimit.c: GCRA arithmetic with injected time, key independence,
 * bounded memory under a flood of distinct and long keys, and exact totals under 4 threads.
 * Prints ns per take (figures only; nothing fails on a time). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ratelimit.h"

static int take(pulse_ratelimit_t *rl, const char *key, double rate, double burst, double now, double *retry)
{
    return pulse_ratelimit_take(rl, key, strlen(key), rate, burst, now, retry);
}

static void test_burst_then_refuse(void **state)
{
    pulse_ratelimit_t *rl = pulse_ratelimit_create(1000);
    double retry = -1;
    for (int i = 0; i < 5; i++)
        assert_int_equal(take(rl, "login_ip:1.2.3.4", 1.0, 5, 100.0, &retry), 1);
    assert_int_equal(take(rl, "login_ip:1.2.3.4", 1.0, 5, 100.0, &retry), 0);
    assert_true(fabs(retry - 1.0) < 1e-6);
    /* refused takes cost nothing: still one second to wait */
    for (int i = 0; i < 100; i++)
        assert_int_equal(take(rl, "login_ip:1.2.3.4", 1.0, 5, 100.0, &retry), 0);
    assert_true(fabs(retry - 1.0) < 1e-6);
    pulse_ratelimit_destroy(rl);
}

static void test_refill_over_time(void **state)
{
    pulse_ratelimit_t *rl = pulse_ratelimit_create(1000);
    double retry;
    for (int i = 0; i < 5; i++)
        assert_int_equal(take(rl, "k", 1.0, 5, 100.0, NULL), 1);
    assert_int_equal(take(rl, "k", 1.0, 5, 100.999, &retry), 0);
    assert_true(fabs(retry - 0.001) < 1e-6);
    assert_int_equal(take(rl, "k", 1.0, 5, 101.0, NULL), 1);
    assert_int_equal(take(rl, "k", 1.0, 5, 101.0, NULL), 0);
    /* 2.5 s later: two whole units back */
    assert_int_equal(take(rl, "k", 1.0, 5, 103.5, NULL), 1);
    assert_int_equal(take(rl, "k", 1.0, 5, 103.5, NULL), 1);
    assert_int_equal(take(rl, "k", 1.0, 5, 103.5, &retry), 0);
    assert_true(fabs(retry - 0.5) < 1e-6);
    /* a long pause refills up to burst, never beyond */
    int allowed = 0;
    for (int i = 0; i < 50; i++)
        allowed += take(rl, "k", 1.0, 5, 1000.0, NULL);
    assert_int_equal(allowed, 5);
    pulse_ratelimit_destroy(rl);
}

static void test_retry_after(void **state)
{
    pulse_ratelimit_t *rl = pulse_ratelimit_create(1000);
    double retry;
    /* 5 per minute, burst 3 */
    double rate = 5.0 / 60.0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(take(rl, "reg", rate, 3, 10.0, NULL), 1);
    assert_int_equal(take(rl, "reg", rate, 3, 10.0, &retry), 0);
    assert_true(fabs(retry - 12.0) < 1e-6);
    assert_int_equal(take(rl, "reg", rate, 3, 17.0, &retry), 0);
    assert_true(fabs(retry - 5.0) < 1e-6);
    /* waiting exactly retry_after is enough, a hair less is not */
    assert_int_equal(take(rl, "reg", rate, 3, 21.999, &retry), 0);
    assert_int_equal(take(rl, "reg", rate, 3, 22.0, NULL), 1);
    assert_int_equal(take(rl, "reg", rate, 3, 22.0, &retry), 0);
    assert_true(fabs(retry - 12.0) < 1e-6);
    /* fractional burst: 2.5 allows 2 now, the third after half an interval */
    for (int i = 0; i < 2; i++)
        assert_int_equal(take(rl, "frac", 1.0, 2.5, 50.0, NULL), 1);
    assert_int_equal(take(rl, "frac", 1.0, 2.5, 50.0, &retry), 0);
    assert_true(fabs(retry - 0.5) < 1e-6);
    /* invalid parameters */
    assert_int_equal(take(rl, "bad", 0.0, 1, 1.0, NULL), -1);
    assert_int_equal(take(rl, "bad", -1.0, 1, 1.0, NULL), -1);
    assert_int_equal(take(rl, "bad", NAN, 1, 1.0, NULL), -1);
    assert_int_equal(take(rl, "bad", 1.0, 0.5, 1.0, NULL), -1);
    assert_int_equal(take(rl, "bad", 1.0, NAN, 1.0, NULL), -1);
    /* extreme but valid parameters do not overflow */
    assert_int_equal(take(rl, "slow", 1e-30, 1, 1.0, NULL), 1);
    assert_int_equal(take(rl, "slow", 1e-30, 1, 1.0, &retry), 0);
    assert_true(retry > 1e9);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(take(rl, "fast", 1e30, 1e30, 1.0, NULL), 1);
    pulse_ratelimit_destroy(rl);
}

static void test_independent_keys(void **state)
{
    pulse_ratelimit_t *rl = pulse_ratelimit_create(1000);
    const char a[] = "login_ip\0001.2.3.4", b[] = "login_ip\0001.2.3.5", c[] = "login_account\0001.2.3.4";
    assert_int_equal(pulse_ratelimit_take(rl, a, sizeof(a) - 1, 1.0, 1, 5.0, NULL), 1);
    assert_int_equal(pulse_ratelimit_take(rl, a, sizeof(a) - 1, 1.0, 1, 5.0, NULL), 0);
    assert_int_equal(pulse_ratelimit_take(rl, b, sizeof(b) - 1, 1.0, 1, 5.0, NULL), 1);
    assert_int_equal(pulse_ratelimit_take(rl, c, sizeof(c) - 1, 1.0, 1, 5.0, NULL), 1);
    /* a key that is a prefix of another is another key */
    assert_int_equal(pulse_ratelimit_take(rl, a, sizeof(a) - 2, 1.0, 1, 5.0, NULL), 1);
    /* the empty key is a key */
    assert_int_equal(pulse_ratelimit_take(rl, "", 0, 1.0, 1, 5.0, NULL), 1);
    assert_int_equal(pulse_ratelimit_take(rl, "", 0, 1.0, 1, 5.0, NULL), 0);
    pulse_ratelimit_stats_t st;
    pulse_ratelimit_stats(rl, &st);
    assert_int_equal(st.entries, 5);
    pulse_ratelimit_destroy(rl);
}

/* 1M distinct keys into 10k slots: occupancy and key heap stay bounded, and a key in use survives
 * the flood (expired or stale entries are the ones forgotten). */
static void flood(int expiring)
{
    pulse_ratelimit_t *rl = pulse_ratelimit_create(10000);
    pulse_ratelimit_stats_t st;
    pulse_ratelimit_stats(rl, &st);
    assert_true(st.capacity >= 10000 && st.capacity < 10000 + 64);
    double now = 1000.0, retry;
    assert_int_equal(take(rl, "hot", 1.0 / 3600, 1, now, NULL), 1);
    char key[200];
    memset(key, 'x', sizeof(key));
    for (int i = 0; i < 1000000; i++) {
        /* one key in four is long enough for the heap (> 40 bytes inline) */
        int n = snprintf(key, sizeof(key), "flood:%d", i);
        size_t len = (i & 3) == 0 ? 120 : (size_t)n;
        now += 1e-6;
        /* expiring: refilled after 1 ms; else never within the test */
        double rate = expiring ? 1000.0 : 1e-6;
        assert_int_equal(pulse_ratelimit_take(rl, key, len, rate, 1, now, NULL), 1);
        if (i % 64 == 0)
            assert_int_equal(take(rl, "hot", 1.0 / 3600, 1, now, &retry), 0);
    }
    pulse_ratelimit_stats(rl, &st);
    assert_true(st.entries <= st.capacity);
    assert_true(st.entries > st.capacity / 2);
    assert_true(st.key_bytes <= st.entries * 120);
    assert_int_equal(take(rl, "hot", 1.0 / 3600, 1, now, &retry), 0);
    assert_true(retry > 3500);
    printf("# flood (%s): %zu entries of %zu slots, %zu key heap bytes\n", expiring ? "expiring" : "stale", st.entries, st.capacity,
           st.key_bytes);
    pulse_ratelimit_destroy(rl);
}

static void test_eviction_bounded_expiring(void **state)
{
    flood(1);
}

static void test_eviction_bounded_stale(void **state)
{
    flood(0);
}

static void test_long_keys(void **state)
{
    pulse_ratelimit_t *rl = pulse_ratelimit_create(1000);
    size_t n = 100000;
    char *a = malloc(n), *b = malloc(n);
    memset(a, 'k', n);
    memcpy(b, a, n);
    b[n - 1] = 'j';
    assert_int_equal(pulse_ratelimit_take(rl, a, n, 1.0, 1, 1.0, NULL), 1);
    assert_int_equal(pulse_ratelimit_take(rl, a, n, 1.0, 1, 1.0, NULL), 0);
    /* differs only in the last byte: another bucket */
    assert_int_equal(pulse_ratelimit_take(rl, b, n, 1.0, 1, 1.0, NULL), 1);
    /* at the limit the key is stored as is; one byte over, as a digest */
    assert_int_equal(pulse_ratelimit_take(rl, a, PULSE_RATELIMIT_MAX_KEY, 1.0, 1, 1.0, NULL), 1);
    assert_int_equal(pulse_ratelimit_take(rl, a, PULSE_RATELIMIT_MAX_KEY, 1.0, 1, 1.0, NULL), 0);
    assert_int_equal(pulse_ratelimit_take(rl, a, PULSE_RATELIMIT_MAX_KEY + 1, 1.0, 1, 1.0, NULL), 1);
    assert_int_equal(pulse_ratelimit_take(rl, a, PULSE_RATELIMIT_MAX_KEY + 1, 1.0, 1, 1.0, NULL), 0);
    pulse_ratelimit_stats_t st;
    pulse_ratelimit_stats(rl, &st);
    assert_int_equal(st.entries, 4);
    assert_int_equal(st.key_bytes, PULSE_RATELIMIT_MAX_KEY); /* digests fit in the entry */
    free(a);
    free(b);
    pulse_ratelimit_destroy(rl);
}

typedef struct hammer_t {
    pulse_ratelimit_t *rl;
    const char *key; /* NULL: a distinct key per take */
    int iterations;
    int thread;
    double now; /* < 0: the monotonic clock; else fixed, or advancing 1 us per take if step */
    int step;
    double rate, burst;
    long allowed;
} hammer_t;

static void *hammer(void *arg)
{
    hammer_t *h = arg;
    /* distinct keys are built before the loop so that benchmarks time the take alone */
    enum { NKEYS = 65536 };
    char(*keys)[32] = NULL;
    size_t *lens = NULL;
    if (h->key == NULL) {
        keys = malloc(sizeof(*keys) * NKEYS);
        lens = malloc(sizeof(*lens) * NKEYS);
        for (int i = 0; i < NKEYS; i++)
            lens[i] = (size_t)snprintf(keys[i], sizeof(keys[i]), "api_key:t%d-%d", h->thread, i);
    }
    size_t keylen = h->key != NULL ? strlen(h->key) : 0;
    for (int i = 0; i < h->iterations; i++) {
        double now = h->now < 0 ? pulse_ratelimit_now() : h->now + (h->step ? i * 1e-6 : 0);
        if (h->key != NULL)
            h->allowed += pulse_ratelimit_take(h->rl, h->key, keylen, h->rate, h->burst, now, NULL);
        else
            h->allowed += pulse_ratelimit_take(h->rl, keys[i & (NKEYS - 1)], lens[i & (NKEYS - 1)], h->rate, h->burst, now, NULL);
    }
    free(keys);
    free(lens);
    return NULL;
}

static long run_threads(int nthreads, hammer_t proto)
{
    pthread_t th[8];
    hammer_t hs[8];
    for (int t = 0; t < nthreads; t++) {
        hs[t] = proto;
        hs[t].thread = t;
        hs[t].allowed = 0;
        assert_int_equal(pthread_create(&th[t], NULL, hammer, &hs[t]), 0);
    }
    long total = 0;
    for (int t = 0; t < nthreads; t++) {
        pthread_join(th[t], NULL);
        total += hs[t].allowed;
    }
    return total;
}

static void test_threads_exact_total(void **state)
{
    pulse_ratelimit_t *rl = pulse_ratelimit_create(1000);
    hammer_t h = {.rl = rl, .key = "login_ip:shared", .iterations = 20000, .now = 1000.0, .rate = 10.0, .burst = 100};
    assert_int_equal(run_threads(4, h), 100);
    h.now = 1005.0; /* 5 s at 10/s */
    assert_int_equal(run_threads(4, h), 50);
    h.now = 2000.0; /* refilled, capped at burst */
    assert_int_equal(run_threads(4, h), 100);

    /* real clock: never more than burst + rate * elapsed */
    h.key = "login_ip:clock";
    h.now = -1;
    h.rate = 1000.0;
    h.burst = 50;
    h.iterations = 200000;
    double t0 = pulse_ratelimit_now();
    long total = run_threads(4, h);
    double elapsed = pulse_ratelimit_now() - t0;
    assert_true(total >= 50);
    assert_true(total <= 50 + (long)(1000.0 * elapsed) + 1);
    printf("# real clock: %ld allowed in %.3f s (bound %ld)\n", total, elapsed, 50 + (long)(1000.0 * elapsed) + 1);
    pulse_ratelimit_destroy(rl);
}

static void bench(const char *what, int nthreads, hammer_t h)
{
    double t0 = pulse_ratelimit_now();
    run_threads(nthreads, h);
    double elapsed = pulse_ratelimit_now() - t0;
    long takes = (long)h.iterations * nthreads;
    printf("# bench %-32s %d thread(s): %6.1f ns/take (wall / total takes), %.1f ns per take per thread\n", what, nthreads,
           elapsed * 1e9 / (double)takes, elapsed * 1e9 / (double)h.iterations);
}

static void test_bench(void **state)
{
    pulse_ratelimit_t *rl = pulse_ratelimit_create(0);
    hammer_t same = {
        .rl = rl, .key = "login_ip:203.0.113.9", .iterations = 2000000, .now = 1.0, .step = 1, .rate = 1e6, .burst = 10};
    hammer_t distinct = {.rl = rl, .key = NULL, .iterations = 2000000, .now = 1.0, .step = 1, .rate = 1e6, .burst = 10};
    bench("same key", 1, same);
    bench("distinct keys (64k per thread)", 1, distinct);
    bench("same key", 4, same);
    bench("distinct keys (64k per thread)", 4, distinct);
    same.now = -1;
    bench("same key, with clock_gettime", 1, same);
    pulse_ratelimit_destroy(rl);
}

static void test_default_instance(void **state)
{
    pulse_ratelimit_t *rl = pulse_ratelimit_default();
    assert_non_null(rl);
    assert_ptr_equal(rl, pulse_ratelimit_default());
    pulse_ratelimit_stats_t st;
    pulse_ratelimit_stats(rl, &st);
    assert_true(st.capacity >= PULSE_RATELIMIT_DEFAULT_ENTRIES && st.capacity < PULSE_RATELIMIT_DEFAULT_ENTRIES + 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refuse),
        cmocka_unit_test(test_refill_over_time),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_independent_keys),
        cmocka_unit_test(test_eviction_bounded_expiring),
        cmocka_unit_test(test_eviction_bounded_stale),
        cmocka_unit_test(test_long_keys),
        cmocka_unit_test(test_threads_exact_total),
        cmocka_unit_test(test_default_instance),
        cmocka_unit_test(test_bench),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
