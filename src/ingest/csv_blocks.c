/* Structural bit masks of 64-byte blocks (see csv_blocks.h). */
#include "ingest/csv_blocks.h"

#include <stdatomic.h>

#include "ingest/csv.h"

#if defined(__x86_64__) && defined(__SSE2__)
#define BLOCKS_X86 1
#include <immintrin.h>
#else
#define BLOCKS_X86 0
#endif

static void block_portable(const char *p, char sep, char quote, pulse_csv_masks_t *m)
{
    const int ws = sep == PULSE_CSV_SEP_WHITESPACE;
    uint64_t s = 0, nl = 0, cr = 0, q = 0, ctl = 0, high = 0;
    for (int i = 0; i < 64; i++) {
        unsigned char c = (unsigned char)p[i];
        uint64_t bit = UINT64_C(1) << i;
        s |= (ws ? c == ' ' || c == '\t' : c == (unsigned char)sep) ? bit : 0;
        nl |= c == '\n' ? bit : 0;
        cr |= c == '\r' ? bit : 0;
        q |= quote && c == (unsigned char)quote ? bit : 0;
        ctl |= c <= 0x20 ? bit : 0;
        high |= c >= 0x80 ? bit : 0;
    }
    m->sep = s;
    m->nl = nl;
    m->cr = cr;
    m->quote = q;
    m->ctl = ctl;
    m->high = high;
}

#if BLOCKS_X86
/* 16 bytes: one bit per byte in each mask, at bit 16 * k. */
static inline void lane_sse2(__m128i v, int ws, __m128i sc, __m128i qu, int quote, int k, pulse_csv_masks_t *m)
{
    __m128i s =
        ws ? _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\t'))) : _mm_cmpeq_epi8(v, sc);
    int sh = 16 * k;
    m->sep |= (uint64_t)(uint16_t)_mm_movemask_epi8(s) << sh;
    m->nl |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\n'))) << sh;
    m->cr |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\r'))) << sh;
    if (quote)
        m->quote |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, qu)) << sh;
    __m128i sp = _mm_set1_epi8(0x20);
    m->ctl |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v, sp), v)) << sh;
    m->high |= (uint64_t)(uint16_t)_mm_movemask_epi8(v) << sh;
}

static void block_sse2(const char *p, char sep, char quote, pulse_csv_masks_t *m)
{
    const int ws = sep == PULSE_CSV_SEP_WHITESPACE;
    const __m128i sc = _mm_set1_epi8(sep), qu = _mm_set1_epi8(quote);
    *m = (pulse_csv_masks_t){0};
    for (int k = 0; k < 4; k++)
        lane_sse2(_mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k)), ws, sc, qu, quote != 0, k, m);
}

__attribute__((target("avx2"))) static inline uint64_t bits_avx2(__m256i lo, __m256i hi)
{
    return (uint64_t)(uint32_t)_mm256_movemask_epi8(lo) | (uint64_t)(uint32_t)_mm256_movemask_epi8(hi) << 32;
}

__attribute__((target("avx2"))) static void block_avx2(const char *p, char sep, char quote, pulse_csv_masks_t *m)
{
    const __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)p);
    const __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
    if (sep == PULSE_CSV_SEP_WHITESPACE) {
        const __m256i sp = _mm256_set1_epi8(' '), tab = _mm256_set1_epi8('\t');
        m->sep = bits_avx2(_mm256_or_si256(_mm256_cmpeq_epi8(a, sp), _mm256_cmpeq_epi8(a, tab)),
                           _mm256_or_si256(_mm256_cmpeq_epi8(b, sp), _mm256_cmpeq_epi8(b, tab)));
    } else {
        const __m256i sc = _mm256_set1_epi8(sep);
        m->sep = bits_avx2(_mm256_cmpeq_epi8(a, sc), _mm256_cmpeq_epi8(b, sc));
    }
    const __m256i nl = _mm256_set1_epi8('\n'), cr = _mm256_set1_epi8('\r'), ctl = _mm256_set1_epi8(0x20);
    m->nl = bits_avx2(_mm256_cmpeq_epi8(a, nl), _mm256_cmpeq_epi8(b, nl));
    m->cr = bits_avx2(_mm256_cmpeq_epi8(a, cr), _mm256_cmpeq_epi8(b, cr));
    if (quote) {
        const __m256i qu = _mm256_set1_epi8(quote);
        m->quote = bits_avx2(_mm256_cmpeq_epi8(a, qu), _mm256_cmpeq_epi8(b, qu));
    } else
        m->quote = 0;
    m->ctl = bits_avx2(_mm256_cmpeq_epi8(_mm256_min_epu8(a, ctl), a), _mm256_cmpeq_epi8(_mm256_min_epu8(b, ctl), b));
    m->high = bits_avx2(a, b);
}
#endif

static atomic_int forced = -1;

/* The level asked for, or the best one the CPU and the build have when it has not that one. */
static int usable(int level)
{
    int best = 0;
#if BLOCKS_X86
    best = __builtin_cpu_supports("avx2") ? 2 : 1;
#endif
    return level < 0 || level > best ? best : level;
}

int pulse_csv_scan_level(int level)
{
    atomic_store(&forced, level);
    return usable(level);
}

void pulse_csv_scanner_init(pulse_csv_scanner_t *s, char sep, char quote)
{
    s->sep = sep;
    s->quote = quote;
    int level = usable(atomic_load(&forced));
    s->block = block_portable;
#if BLOCKS_X86
    if (level == 2)
        s->block = block_avx2;
    else if (level == 1)
        s->block = block_sse2;
#else
    (void)level;
#endif
}
