/* Benchmark of rule calls through the sandbox (pulse bench sandbox): microseconds per call for a
 * trivial function, a profile-in/offer-out call with deep copies both ways, and a segments rule
 * evaluated over the 125 RFM combinations. Prints figures; never fails on a time. */
#ifndef PULSE_SCRIPT_SANDBOX_BENCH_H
#define PULSE_SCRIPT_SANDBOX_BENCH_H

#include <stdio.h>

/* Returns 0, or -1 (with a line on out) if a rule could not be loaded or called. */
int pulse_sandbox_bench(FILE *out);

#endif
