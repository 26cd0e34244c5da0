/* Micro-benchmark for column type inference (see types_bench.h). */
#include "ingest/types_bench.h"
#include "ingest/types.h"
#include "core/clock.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_VALUES 2000000

typedef struct {
    char *data;    /* all values, NUL-separated; owned */
    uint32_t *off; /* start of value i; off[n] is the end; owned */
    size_t n;
} values_t;

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void values_make(values_t *v, int kind, uint64_t seed)
{
    size_t cap = (size_t)BENCH_VALUES * 32, len = 0;
    v->data = malloc(cap);
    v->off = malloc(sizeof(uint32_t) * (BENCH_VALUES + 1));
    if (v->data == NULL || v->off == NULL) {
        fprintf(stderr, "pulse: out of memory\n");
        abort();
    }
    for (size_t i = 0; i < BENCH_VALUES; i++) {
        uint64_t r = rng_next(&seed);
        int y = 1990 + (int)(r % 35), m = 1 + (int)((r >> 8) % 12), d = 1 + (int)((r >> 16) % 28);
        v->off[i] = (uint32_t)len;
        switch (kind) {
        case 0: /* integer */
            len += (size_t)snprintf(v->data + len, 32, "%llu", (unsigned long long)(r % 1000000000));
            break;
        case 1: /* decimal */
            len += (size_t)snprintf(v->data + len, 32, "%llu.%02u", (unsigned long long)(r % 100000), (unsigned)((r >> 40) % 100));
            break;
        case 2: /* ISO date */
            len += (size_t)snprintf(v->data + len, 32, "%04d-%02d-%02d", y, m, d);
            break;
        case 3: /* DD/MM/YYYY */
            len += (size_t)snprintf(v->data + len, 32, "%02d/%02d/%04d", d, m, y);
            break;
        case 4: /* ISO datetime with zone */
            len += (size_t)snprintf(v->data + len, 32, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d, (int)((r >> 24) % 24),
                                    (int)((r >> 32) % 60), (int)((r >> 44) % 60));
            break;
        default: /* text */
            len += (size_t)snprintf(v->data + len, 32, "Product %c%llu", 'A' + (int)(r % 26), (unsigned long long)(r % 9999));
            break;
        }
    }
    v->off[BENCH_VALUES] = (uint32_t)len;
    v->n = BENCH_VALUES;
}

int pulse_types_bench(FILE *out)
{
    static const struct {
        const char *name;
        pulse_column_kind_t want;
    } cases[] = {{"integer", PULSE_COL_INTEGER},      {"decimal", PULSE_COL_DECIMAL},         {"date YYYY-MM-DD", PULSE_COL_DATE},
                 {"date DD/MM/YYYY", PULSE_COL_DATE}, {"datetime ISO+Z", PULSE_COL_DATETIME}, {"text", PULSE_COL_TEXT}};
    int rc = 0;
    for (int k = 0; k < 6; k++) {
        values_t v;
        values_make(&v, k, 0x9e3779b97f4a7c15ull + (uint64_t)k);
        pulse_column_stats_t st;
        double best = 1e9;
        for (int rep = 0; rep < 3; rep++) {
            pulse_column_init(&st);
            double t0 = pulse_now_s();
            for (size_t i = 0; i < v.n; i++)
                pulse_column_observe(&st, v.data + v.off[i], v.off[i + 1] - v.off[i]);
            double t = pulse_now_s() - t0;
            if (t < best)
                best = t;
        }
        pulse_column_type_t ct;
        pulse_column_decide(&st, NULL, &ct);
        fprintf(out, "observe %-18s %7.1f M values/s (%s%s)\n", cases[k].name, (double)v.n / best / 1e6,
                pulse_column_kind_name(ct.type), ct.ambiguous ? ", ambiguous" : "");
        if (ct.type != cases[k].want) {
            fprintf(out, "  unexpected type %s, wanted %s\n", pulse_column_kind_name(ct.type),
                    pulse_column_kind_name(cases[k].want));
            rc = -1;
        }
        if (k == 1 || k == 2) {
            double t0 = pulse_now_s(), sum = 0;
            int64_t es = 0;
            for (size_t i = 0; i < v.n; i++) {
                double d = 0;
                int64_t ep = 0;
                if (k == 1 && pulse_number_parse(v.data + v.off[i], v.off[i + 1] - v.off[i], 0, &d) == 0)
                    sum += d;
                if (k == 2 && pulse_date_parse(v.data + v.off[i], v.off[i + 1] - v.off[i], PULSE_DATE_ISO, &ep, NULL) == 0)
                    es += ep;
            }
            double t = pulse_now_s() - t0;
            fprintf(out, "parse   %-18s %7.1f M values/s (checksum %g)\n", k == 1 ? "pulse_number_parse" : "pulse_date_parse",
                    (double)v.n / t / 1e6, k == 1 ? sum : (double)es);
        }
        free(v.data);
        free(v.off);
    }
    return rc;
}
