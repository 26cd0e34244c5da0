/* Loads one tenant's transactions and events from PostgreSQL into a txstore with COPY ... TO STDOUT
 * (binary format, read as it streams: no per-row query results, no text parsing). Runs on a connection already inside
 * the tenant's transaction (Row-Level Security applies). A tenant with events but no transactions
 * (telecom, banking) gets its events as activity rows too (amount = revenue_impact, 0 when null),
 * so recency, frequency and monetary, and with them RFM segments, exist for event-only data. */
#ifndef PULSE_ANALYTICS_PGLOAD_H
#define PULSE_ANALYTICS_PGLOAD_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "analytics/txstore.h"

typedef struct pulse_pgload_stats_t {
    uint64_t transactions, events; /* rows loaded */
    int events_as_activity;        /* no transactions: events were also stored as activity rows */
    double seconds;
} pulse_pgload_stats_t;

/* Called about every 256 K rows; non-zero cancels the load (the COPY is cancelled and drained). */
typedef int (*pulse_pgload_progress_cb)(void *ud, uint64_t rows);

/* Appends the tenant's rows to st (initialised, not finished). tenant: the organization's uuid
 * (checked: it is inlined in the COPY, which takes no parameters). Returns 0, 1 when cancelled, or
 * -1 with a message. */
int pulse_pgload_tenant(PGconn *c, const char *tenant, pulse_txstore_t *st, pulse_pgload_progress_cb cb, void *ud,
                        pulse_pgload_stats_t *stats, char *err, size_t errlen);

#endif
