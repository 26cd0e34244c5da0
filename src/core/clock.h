/* The clocks timings and benchmarks read, in seconds as doubles: wall time that never jumps
 * (monotonic) and the CPU time of the whole process (all threads), which a shared machine's load
 * disturbs less. */
#ifndef PULSE_CORE_CLOCK_H
#define PULSE_CORE_CLOCK_H

#include <time.h>

static inline double pulse_timespec_s(const struct timespec *ts)
{
    return (double)ts->tv_sec + (double)ts->tv_nsec / 1e9;
}

static inline double pulse_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return pulse_timespec_s(&ts);
}

static inline double pulse_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return pulse_timespec_s(&ts);
}

#endif
