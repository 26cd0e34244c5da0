/* Benchmark of the feature path (see features_bench.h). */
#include "analytics/features_bench.h"

#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "analytics/features.h"
#include "analytics/txfile.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/procstat.h"

#define BLOCK 262144u /* customers per feature block: 19 columns x 1 MB */

int pulse_features_bench(int argc, char **argv, FILE *out)
{
    const char *path = NULL;
    int threads = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (argv[i][0] != '-' && path == NULL)
            path = argv[i];
        else
            path = NULL, i = argc;
    }
    if (path == NULL || threads < 1) {
        fprintf(stderr, "Usage: pulse bench features FILE [--threads N]\n");
        return 2;
    }
    char err[256];
    pulse_txfile_plan_t plan;
    if (pulse_txfile_plan_guess_file(path, &plan, err, sizeof(err)) != 0) {
        fprintf(stderr, "pulse bench features: %s\n", err);
        return 1;
    }
    plan.threads = threads;
    fprintf(out, "file: %s\nplan: sep '%c' header %d customer %d date %d (%s) amount %d quantity %d category %d, %d threads\n",
            path, plan.sep, plan.has_header, plan.col_customer, plan.col_date, pulse_date_format_name(plan.date_format),
            plan.col_amount, plan.col_quantity, plan.col_category, threads);

    pulse_txstore_t st;
    pulse_txstore_init(&st);
    pulse_txfile_stats_t stats;
    long f0 = pulse_minor_faults();
    double t0 = pulse_now_s(), c0 = pulse_cpu_s();
    if (pulse_txfile_read(path, &plan, &st, &stats, err, sizeof(err)) != 0) {
        fprintf(stderr, "pulse bench features: %s\n", err);
        return 1;
    }
    double t1 = pulse_now_s(), c1 = pulse_cpu_s();
    fprintf(out, "read:     %7.3f s (cpu %.3f)  %7.1f MB/s  %llu rows, %u customers, %llu bad rows%s  (RSS %.0f MB)\n", t1 - t0,
            c1 - c0, (double)stats.bytes / 1048576.0 / (t1 - t0), (unsigned long long)stats.rows, st.customers.n,
            (unsigned long long)stats.bad_rows, stats.csv_fallback ? ", CSV parser (quotes)" : "", pulse_rss_mb());
    fprintf(out, "  of which parse %.3f s, merge of the per-thread tables %.3f s; %ld page faults\n", stats.parse_seconds,
            stats.merge_seconds, pulse_minor_faults() - f0);
    for (size_t k = 0; k < stats.nbad; k++)
        fprintf(out, "  bad line %llu: %s: %s\n", (unsigned long long)stats.bad[k].line, stats.bad[k].reason, stats.bad[k].text);
    pulse_txstore_finish(&st);
    double t2 = pulse_now_s(), c2 = pulse_cpu_s();
    fprintf(out, "group:    %7.3f s (cpu %.3f)  (RSS %.0f MB)\n", t2 - t1, c2 - c1, pulse_rss_mb());

    uint32_t nc = st.customers.n;
    float *rfm = pulse_xmalloc(((size_t)nc + 1) * 3 * sizeof(float));
    pulse_features_opts_t opt;
    memset(&opt, 0, sizeof(opt));
    opt.threads = threads;
    double checksum = 0;
    size_t ncols = pulse_features_ncols(&opt);
    float *x = pulse_xmalloc((size_t)BLOCK * ncols * sizeof(float)); /* one block buffer, reused */
    for (uint32_t c = 0; c < nc; c += BLOCK) {
        uint32_t cnt = nc - c < BLOCK ? nc - c : BLOCK;
        if (pulse_features_compute_into(&st, &opt, c, cnt, x, NULL, err, sizeof(err)) != 0) {
            fprintf(stderr, "pulse bench features: %s\n", err);
            return 1;
        }
        memcpy(rfm + c, x + PULSE_FEAT_RECENCY * (size_t)cnt, cnt * sizeof(float));
        memcpy(rfm + nc + c, x + PULSE_FEAT_FREQUENCY * (size_t)cnt, cnt * sizeof(float));
        memcpy(rfm + 2 * (size_t)nc + c, x + PULSE_FEAT_MONETARY * (size_t)cnt, cnt * sizeof(float));
        for (size_t k = 0; k < (size_t)cnt * ncols; k += 97)
            if (!isnan(x[k]))
                checksum += x[k];
    }
    free(x);
    double t3 = pulse_now_s(), c3 = pulse_cpu_s();
    fprintf(out, "features: %7.3f s (cpu %.3f)  %7.1f M customers/s, %d columns  (RSS %.0f MB, checksum %.6g)\n", t3 - t2, c3 - c2,
            nc / 1e6 / (t3 - t2), PULSE_FEAT_COUNT, pulse_rss_mb(), checksum);

    uint8_t *scores = pulse_xmalloc(((size_t)nc + 1) * 3);
    /* R, F, M are the matrix's first three columns: a 3-column matrix over rfm scores them (R and F
     * by counting on one thread while M is sorted on the other) */
    pulse_feature_matrix_t whole = {0, nc, 3, rfm, NULL, 0};
    pulse_features_rfm_scores(&whole, scores, scores + nc, scores + 2 * (size_t)nc);
    double t4 = pulse_now_s(), c4 = pulse_cpu_s();
    size_t hist[3][6] = {{0}};
    for (int k = 0; k < 3; k++)
        for (uint32_t c = 0; c < nc; c++)
            hist[k][scores[(size_t)k * nc + c]]++;
    fprintf(out, "rfm:      %7.3f s (cpu %.3f)  (RSS %.0f MB)\n", t4 - t3, c4 - c3, pulse_rss_mb());
    for (int k = 0; k < 3; k++)
        fprintf(out, "  %c scores 1-5: %zu %zu %zu %zu %zu\n", "RFM"[k], hist[k][1], hist[k][2], hist[k][3], hist[k][4],
                hist[k][5]);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(out, "total:    %7.3f s (cpu %.3f)  read + group + features + rfm, peak RSS %.1f MB\n", t4 - t0, c4 - c0,
            (double)ru.ru_maxrss / 1024.0);
    free(scores);
    free(rfm);
    pulse_txstore_free(&st);
    return 0;
}
