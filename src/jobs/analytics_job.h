/* What the analytics jobs (segment_job.c, cluster_job.c) and `pulse segment` share: reading the
 * segments lookup table and the behaviour declaration from Lua values (the job's params JSON, or
 * rules.segment_table_of and industries.get in the CLI), the job's params, and statements in the
 * tenant's transaction. The job row bookkeeping is jobs/jobrun.h. */
#ifndef PULSE_JOBS_ANALYTICS_JOB_H
#define PULSE_JOBS_ANALYTICS_JOB_H

#include <libpq-fe.h>
#include <lua.h>
#include <stddef.h>

#include "analytics/segment.h"
#include "jobs/jobs.h"

#define PULSE_SPEC_MAX 64

/* The pipeline's inputs; strings are borrowed from the Lua tables they were read from (keep them,
 * and the state, alive while the spec is used). */
typedef struct pulse_segment_spec_t {
    pulse_segment_table_t table;
    pulse_behaviour_t behaviour;
    pulse_agg_spec_t aggs[PULSE_SPEC_MAX];
    pulse_score_term_t terms[PULSE_SPEC_MAX];
    pulse_signal_t signals[PULSE_SPEC_MAX];
} pulse_segment_spec_t;

/* Reads {names, segment = [500], score = [500], churn_bands = {medium, high}, version} at seg and
 * {aggregates, score, trend, signals} at beh (0: none) into s. Returns 0 or -1 with a message. */
int pulse_segment_spec_from_lua(lua_State *L, int seg, int beh, pulse_segment_spec_t *s, char *err, size_t errlen);

/* Decodes the params JSON onto L's stack (a table). Returns 0 or -1 with a message. */
int pulse_ajob_params(lua_State *L, const char *json, char *err, size_t errlen);
/* BEGIN + the tenant setting on c. Returns 0 or -1 with a message. */
int pulse_ajob_begin(PGconn *c, const char *tenant, char *err, size_t errlen);
/* The same in a repeatable-read transaction, in the exported snapshot when snapshot is not NULL
 * (pg_export_snapshot of another transaction: both then read the same data). */
int pulse_ajob_begin_snapshot(PGconn *c, const char *tenant, const char *snapshot, char *err, size_t errlen);
/* Runs sql with params on c inside the current transaction; NULL with a message on failure. */
PGresult *pulse_ajob_exec(PGconn *c, const char *sql, int n, const char *const *params, char *err, size_t errlen);

#endif
