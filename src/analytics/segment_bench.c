/* Benchmark of the segmentation path (see segment_bench.h). */
#include "analytics/segment_bench.h"

#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "analytics/cluster.h"
#include "analytics/txfile.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/procstat.h"

int pulse_segment_bench(int argc, char **argv, const pulse_segment_table_t *table, const pulse_behaviour_t *behaviour, FILE *out)
{
    const char *path = NULL;
    int threads = 2, k = 4;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--k") == 0 && i + 1 < argc)
            k = atoi(argv[++i]);
        else if (argv[i][0] != '-' && path == NULL)
            path = argv[i];
        else
            path = NULL, i = argc;
    }
    if (path == NULL || threads < 1 || k < 2) {
        fprintf(stderr, "Usage: pulse bench segment FILE [--threads N] [--k K]\n");
        return 2;
    }
    char err[256];
    pulse_txfile_plan_t plan;
    if (pulse_txfile_plan_guess_file(path, &plan, err, sizeof(err)) != 0) {
        fprintf(stderr, "pulse bench segment: %s\n", err);
        return 1;
    }
    plan.threads = threads;
    fprintf(out, "file: %s, %d threads, %zu segments, %zu behaviour signals\n", path, threads, table->nnames,
            behaviour ? behaviour->nsignals : 0);
    pulse_txstore_t st;
    pulse_txstore_init(&st);
    pulse_txfile_stats_t stats;
    double t0 = pulse_now_s(), c0 = pulse_cpu_s();
    if (pulse_txfile_read(path, &plan, &st, &stats, err, sizeof(err)) != 0) {
        fprintf(stderr, "pulse bench segment: %s\n", err);
        return 1;
    }
    double t1 = pulse_now_s(), c1 = pulse_cpu_s();
    fprintf(out, "parse:    %7.3f s  %7.1f MB/s  %llu rows, %u customers  (cpu %.3f s, RSS %.0f MB, peak %.0f MB)\n", t1 - t0,
            (double)stats.bytes / 1048576.0 / (t1 - t0), (unsigned long long)stats.rows, st.customers.n, c1 - c0, pulse_rss_mb(),
            pulse_peak_rss_mb());
    fprintf(out, "          threads %.3f s, ordered merge %.3f s\n", stats.parse_seconds, stats.merge_seconds);
    pulse_txstore_finish(&st);
    double t2 = pulse_now_s(), c2 = pulse_cpu_s();
    fprintf(out, "group:    %7.3f s  (cpu %.3f s, RSS %.0f MB, peak %.0f MB)\n", t2 - t1, c2 - c1, pulse_rss_mb(),
            pulse_peak_rss_mb());
    pulse_segment_opts_t so;
    memset(&so, 0, sizeof(so));
    so.threads = threads;
    so.table = table;
    so.behaviour = behaviour;
    pulse_segment_result_t res;
    if (pulse_segment_run(&st, &so, &res, err, sizeof(err)) != 0) {
        fprintf(stderr, "pulse bench segment: %s\n", err);
        return 1;
    }
    double t3 = pulse_now_s(), c3 = pulse_cpu_s();
    fprintf(out, "features: %7.3f s  (with behaviour score, trend, signals; RSS %.0f MB, peak %.0f MB)\n", res.features_seconds,
            pulse_rss_mb(), pulse_peak_rss_mb());
    fprintf(out, "          features + rfm + segments: cpu %.3f s\n", c3 - c2);
    fprintf(out, "rfm:      %7.3f s\n", res.rfm_seconds);
    fprintf(out, "segments: %7.3f s  (lookup; %u segmented)\n", res.segment_seconds, res.segmented);
    for (size_t s = 0; s < table->nnames; s++)
        fprintf(out, "  %-22s %9zu\n", table->names[s], res.counts[s + 1]);
    /* k-means on the customers with a purchase; the store is not needed by it (nor by the
     * inputs, which come from res): freed first, the inputs' 85 MB do not add to it */
    pulse_txstore_free(&st);
    size_t n = 0;
    double *x = pulse_xmalloc(((size_t)res.n + 1) * 3 * sizeof(double));
    for (uint32_t i = 0; i < res.n; i++) {
        if (!isfinite(res.recency[i]) || !isfinite(res.monetary[i]))
            continue;
        x[n * 3] = res.recency[i];
        x[n * 3 + 1] = res.frequency[i];
        x[n * 3 + 2] = res.monetary[i] < 0 ? 0 : res.monetary[i];
        n++;
    }
    pulse_segment_result_free(&res);
    double t4 = pulse_now_s(), c4 = pulse_cpu_s();
    pulse_cluster_opts_t co;
    pulse_cluster_opts_init(&co);
    co.k = k;
    co.threads = threads;
    static const char *names[] = {"recency_days", "frequency", "monetary"};
    pulse_cluster_result_t cr;
    if (pulse_cluster_run(x, n, 3, names, &co, &cr, err, sizeof(err)) != 0) {
        fprintf(stderr, "pulse bench segment: %s\n", err);
        free(x);
        return 1;
    }
    double t5 = pulse_now_s(), c5 = pulse_cpu_s();
    fprintf(out, "kmeans:   %7.3f s  k = %zu on %zu customers (prepare %.3f s)  (cpu %.3f s, RSS %.0f MB, peak %.0f MB)\n", t5 - t4,
            cr.k, n, cr.prep_seconds, c5 - c4, pulse_rss_mb(), pulse_peak_rss_mb());
    for (size_t c = 0; c < cr.k; c++)
        fprintf(out, "  %zu %9zu  %s\n", c, cr.sizes[c], cr.personas[c].label);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(out, "total:    %7.3f s (cpu %.3f)  parse + group + features + rfm + segments + kmeans, peak RSS %.1f MB\n", t5 - t0,
            c5 - c0, (double)ru.ru_maxrss / 1024.0);
    (void)t3;
    pulse_cluster_result_free(&cr);
    free(x);
    return 0;
}
