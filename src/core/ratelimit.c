/* Process-wide GCRA rate limiter: 64 shards, each a mutex over a fixed open-addressing table that
 * behaves like a set-associative cache (see ratelimit.h). */
#include "core/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define SHARD_BITS 6
#define NSHARDS (1u << SHARD_BITS)
#define WINDOW 16       /* slots probed from a key's home slot; also the eviction candidates */
#define INLINE_KEY 40   /* keys up to this many bytes live in the entry, longer ones on the heap */
#define DIGEST_LEN 16   /* stored form of keys longer than PULSE_RATELIMIT_MAX_KEY */
#define FLAG_DIGEST 1u  /* the stored key is a digest, never equal to a raw key of the same bytes */
#define MAX_NOW_NS 4e18 /* ~127 years: keeps every sum below INT64_MAX */
#define MAX_TAU_NS 2e18 /* longest remembered debt (~63 years) */

/* One bucket, one cache line. tat is GCRA's theoretical arrival time: the bucket is full again at
 * tat, and holds burst - (tat - now) / interval units before that. */
typedef struct entry_t {
    int64_t tat;
    int64_t touched; /* now of the last take, for least-recently-touched eviction */
    uint32_t len;
    uint32_t flags;
    union {
        char small[INLINE_KEY];
        char *big; /* owned by the entry, len bytes */
    } k;
} entry_t;

typedef struct shard_t {
    pthread_mutex_t mu;
    uint64_t *hashes; /* 0 = empty slot; slots are overwritten in place, never emptied */
    entry_t *entries;
    uint32_t n; /* slots */
    uint32_t window;
    size_t used;
    size_t key_bytes;
} __attribute__((aligned(64))) shard_t;

struct pulse_ratelimit_t {
    shard_t shards[NSHARDS];
    uint64_t sip[3][2]; /* keys: table hash, digest halves; random per instance (no hash flooding) */
};

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL) {
        fprintf(stderr, "pulse: out of memory allocating %zu bytes\n", n * size);
        abort();
    }
    return p;
}

/* SipHash-2-4 (Aumasson and Bernstein), keyed: clients choose the keys, so the table hash must not
 * be predictable. */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                                                   \
    do {                                                                                                                           \
        v0 += v1;                                                                                                                  \
        v1 = ROTL(v1, 13);                                                                                                         \
        v1 ^= v0;                                                                                                                  \
        v0 = ROTL(v0, 32);                                                                                                         \
        v2 += v3;                                                                                                                  \
        v3 = ROTL(v3, 16);                                                                                                         \
        v3 ^= v2;                                                                                                                  \
        v0 += v3;                                                                                                                  \
        v3 = ROTL(v3, 21);                                                                                                         \
        v3 ^= v0;                                                                                                                  \
        v2 += v1;                                                                                                                  \
        v1 = ROTL(v1, 17);                                                                                                         \
        v1 ^= v2;                                                                                                                  \
        v2 = ROTL(v2, 32);                                                                                                         \
    } while (0)

static uint64_t siphash(const uint64_t k[2], const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t v0 = k[0] ^ 0x736f6d6570736575ULL, v1 = k[1] ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k[0] ^ 0x6c7967656e657261ULL, v3 = k[1] ^ 0x7465646279746573ULL;
    uint64_t b = (uint64_t)len << 56, m;
    const unsigned char *end = p + (len & ~(size_t)7);
    for (; p != end; p += 8) {
        memcpy(&m, p, 8); /* little-endian hosts only, like the rest of the server */
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    switch (len & 7) {
    case 7:
        b |= (uint64_t)p[6] << 48; /* fallthrough */
    case 6:
        b |= (uint64_t)p[5] << 40; /* fallthrough */
    case 5:
        b |= (uint64_t)p[4] << 32; /* fallthrough */
    case 4:
        b |= (uint64_t)p[3] << 24; /* fallthrough */
    case 3:
        b |= (uint64_t)p[2] << 16; /* fallthrough */
    case 2:
        b |= (uint64_t)p[1] << 8; /* fallthrough */
    case 1:
        b |= (uint64_t)p[0];
        break;
    case 0:
        break;
    }
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static void fill_random(void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = getrandom((char *)buf + got, len - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got < len) { /* no getrandom: still unpredictable enough to spread keys, not secret */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)buf;
        for (size_t i = got; i < len; i++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            ((unsigned char *)buf)[i] = (unsigned char)(seed >> 56);
        }
    }
}

pulse_ratelimit_t *pulse_ratelimit_create(size_t max_entries)
{
    if (max_entries == 0)
        max_entries = PULSE_RATELIMIT_DEFAULT_ENTRIES;
    size_t per = (max_entries + NSHARDS - 1) / NSHARDS;
    if (per > UINT32_MAX)
        per = UINT32_MAX;
    pulse_ratelimit_t *rl;
    if (posix_memalign((void **)&rl, 64, sizeof(*rl)) != 0) {
        fprintf(stderr, "pulse: out of memory allocating the rate limiter\n");
        abort();
    }
    memset(rl, 0, sizeof(*rl));
    fill_random(rl->sip, sizeof(rl->sip));
    for (unsigned i = 0; i < NSHARDS; i++) {
        shard_t *sh = &rl->shards[i];
        pthread_mutex_init(&sh->mu, NULL);
        sh->n = (uint32_t)per;
        sh->window = per < WINDOW ? (uint32_t)per : WINDOW;
        /* calloc: the pages of an unused table stay untouched (not resident) until keys arrive */
        sh->hashes = xcalloc(per, sizeof(*sh->hashes));
        sh->entries = xcalloc(per, sizeof(*sh->entries));
    }
    return rl;
}

void pulse_ratelimit_destroy(pulse_ratelimit_t *rl)
{
    if (rl == NULL)
        return;
    for (unsigned i = 0; i < NSHARDS; i++) {
        shard_t *sh = &rl->shards[i];
        for (uint32_t j = 0; j < sh->n; j++)
            if (sh->hashes[j] != 0 && sh->entries[j].len > INLINE_KEY)
                free(sh->entries[j].k.big);
        free(sh->hashes);
        free(sh->entries);
        pthread_mutex_destroy(&sh->mu);
    }
    free(rl);
}

static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static pulse_ratelimit_t *default_rl;

static void create_default(void)
{
    default_rl = pulse_ratelimit_create(PULSE_RATELIMIT_DEFAULT_ENTRIES);
}

pulse_ratelimit_t *pulse_ratelimit_default(void)
{
    pthread_once(&default_once, create_default);
    return default_rl;
}

double pulse_ratelimit_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *entry_key(const entry_t *e)
{
    return e->len > INLINE_KEY ? e->k.big : e->k.small;
}

static void entry_set_key(shard_t *sh, entry_t *e, const char *key, uint32_t len, uint32_t flags)
{
    if (e->len > INLINE_KEY) {
        free(e->k.big);
        sh->key_bytes -= e->len;
    }
    e->len = len;
    e->flags = flags;
    if (len > INLINE_KEY) {
        e->k.big = xcalloc(1, len);
        memcpy(e->k.big, key, len);
        sh->key_bytes += len;
    } else {
        memcpy(e->k.small, key, len);
    }
}

static int64_t to_ns(double seconds)
{
    double ns = seconds * 1e9;
    if (!(ns > 0))
        return 0;
    return ns > MAX_NOW_NS ? (int64_t)MAX_NOW_NS : (int64_t)(ns + 0.5);
}

int pulse_ratelimit_take(pulse_ratelimit_t *rl, const char *key, size_t keylen, double rate_per_sec, double burst, double now,
                         double *retry_after)
{
    if (!(rate_per_sec > 0) || !(burst >= 1))
        return -1;
    /* GCRA: one unit per `interval`, at most `tau` of debt (burst units) ahead of now */
    double interval_d = 1e9 / rate_per_sec;
    int64_t interval = interval_d < 1 ? 1 : interval_d > MAX_TAU_NS ? (int64_t)MAX_TAU_NS : (int64_t)(interval_d + 0.5);
    double tau_d = burst * (double)interval;
    int64_t tau = tau_d > MAX_TAU_NS ? (int64_t)MAX_TAU_NS : (int64_t)(tau_d + 0.5);
    if (tau < interval)
        tau = interval;
    int64_t now_ns = to_ns(now);

    uint64_t h = siphash(rl->sip[0], key, keylen);
    if (h == 0)
        h = 1;
    char digest[DIGEST_LEN];
    uint32_t flags = 0;
    if (keylen > PULSE_RATELIMIT_MAX_KEY) {
        uint64_t d0 = siphash(rl->sip[1], key, keylen), d1 = siphash(rl->sip[2], key, keylen);
        memcpy(digest, &d0, 8);
        memcpy(digest + 8, &d1, 8);
        key = digest;
        keylen = DIGEST_LEN;
        flags = FLAG_DIGEST;
    }

    shard_t *sh = &rl->shards[h >> (64 - SHARD_BITS)];
    uint32_t home = (uint32_t)(((uint64_t)(uint32_t)h * sh->n) >> 32);
    int allowed;

    pthread_mutex_lock(&sh->mu);
    entry_t *e = NULL;
    uint32_t i = home, empty = UINT32_MAX;
    for (uint32_t w = 0; w < sh->window; w++) {
        uint64_t hh = sh->hashes[i];
        if (hh == 0) {
            empty = i;
            break;
        }
        entry_t *c = &sh->entries[i];
        if (hh == h && c->len == keylen && c->flags == flags && memcmp(entry_key(c), key, keylen) == 0) {
            e = c;
            break;
        }
        i = i + 1 == sh->n ? 0 : i + 1;
    }
    if (e == NULL) {
        uint32_t slot = empty;
        if (slot == UINT32_MAX) {
            /* window full: a refilled bucket is as good as none; else forget the stalest */
            uint32_t oldest = home;
            i = home;
            for (uint32_t w = 0; w < sh->window; w++) {
                if (sh->entries[i].tat <= now_ns) {
                    oldest = i;
                    break;
                }
                if (sh->entries[i].touched < sh->entries[oldest].touched)
                    oldest = i;
                i = i + 1 == sh->n ? 0 : i + 1;
            }
            slot = oldest;
        } else {
            sh->used++;
        }
        e = &sh->entries[slot];
        sh->hashes[slot] = h;
        entry_set_key(sh, e, key, (uint32_t)keylen, flags);
        e->tat = now_ns;
    }
    int64_t tat = e->tat > now_ns ? e->tat : now_ns;
    int64_t new_tat = tat + interval;
    if (new_tat - now_ns <= tau) {
        e->tat = new_tat;
        allowed = 1;
    } else {
        allowed = 0;
        if (retry_after != NULL)
            *retry_after = (double)(new_tat - tau - now_ns) * 1e-9;
    }
    e->touched = now_ns;
    pthread_mutex_unlock(&sh->mu);
    return allowed;
}

void pulse_ratelimit_stats(pulse_ratelimit_t *rl, pulse_ratelimit_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < NSHARDS; i++) {
        shard_t *sh = &rl->shards[i];
        pthread_mutex_lock(&sh->mu);
        out->entries += sh->used;
        out->capacity += sh->n;
        out->key_bytes += sh->key_bytes;
        pthread_mutex_unlock(&sh->mu);
    }
}
