/* Small deterministic PRNG for the data generator: splitmix64 seeds xoshiro256**, plus the few
 * distributions the generator draws from. Same seed, same stream on every platform (the
 * floating-point draws go through libm's log/exp, so the same binary gives the same bytes).
 * Never rand(): streams are per customer, so output does not depend on generation order. */
#ifndef PULSE_GEN_RNG_H
#define PULSE_GEN_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct pulse_rng_t {
    uint64_t s[4];
} pulse_rng_t;

static inline uint64_t pulse_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Seeds a stream from (seed, stream, index): independent streams for each customer and purpose. */
static inline void pulse_rng_seed(pulse_rng_t *r, uint64_t seed, uint64_t stream, uint64_t index)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL);
    x = pulse_splitmix64(&x) ^ index;
    for (int i = 0; i < 4; i++)
        r->s[i] = pulse_splitmix64(&x);
}

static inline uint64_t pulse_rng_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t pulse_rng_next(pulse_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = pulse_rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = pulse_rng_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1). */
static inline double pulse_rng_uniform(pulse_rng_t *r)
{
    return (double)(pulse_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, n), n > 0 (multiply-shift; bias is below 2^-32 for the small n used). */
static inline uint32_t pulse_rng_below(pulse_rng_t *r, uint32_t n)
{
    return (uint32_t)(((pulse_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Exponential with the given mean. */
static inline double pulse_rng_exp(pulse_rng_t *r, double mean)
{
    return -mean * log(1.0 - pulse_rng_uniform(r));
}

/* Standard normal (Box-Muller, one value per call). */
static inline double pulse_rng_normal(pulse_rng_t *r)
{
    double u = 1.0 - pulse_rng_uniform(r), v = pulse_rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Log-normal with the given median and log-space spread: right-skewed, always positive. */
static inline double pulse_rng_lognormal(pulse_rng_t *r, double median, double sigma)
{
    return median * exp(sigma * pulse_rng_normal(r));
}

#endif
