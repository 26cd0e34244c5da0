/* This process's memory as the benchmarks report it: resident now, peak resident (the kernel's
 * high-water mark, the figure the issues' memory targets are about), and minor page faults (how
 * much memory was touched for the first time). */
#ifndef PULSE_CORE_PROCSTAT_H
#define PULSE_CORE_PROCSTAT_H

#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

static inline double pulse_peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static inline double pulse_rss_mb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static inline long pulse_minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

#endif
