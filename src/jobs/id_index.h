/* Finding the row of a customer id among millions: a direct table over the ids' span when they are
 * dense enough (the identity ids of one tenant mostly are), else a binary search over the ids
 * sorted. Jobs that read several COPY streams keyed by customer id join them here, which costs the
 * server nothing (a join of two 3.5 M-row tables was most of the segment job's read).
 *
 *     pulse_id_index_t x;
 *     pulse_id_index_build(&x, ids, n);     rows 0..n-1; ids <= 0 mark empty rows
 *     long row = pulse_id_index_find(&x, id);   -1: not there
 *     pulse_id_index_free(&x); */
#ifndef PULSE_JOBS_ID_INDEX_H
#define PULSE_JOBS_ID_INDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct pulse_id_index_t {
    int64_t min_id;
    size_t n_slots;
    uint32_t *slot; /* direct: slot[id - min_id] = row + 1, 0 = none; NULL when sparse */
    size_t n;
    int64_t *sorted_ids; /* sparse: the ids in order, and their rows */
    uint32_t *sorted_rows;
} pulse_id_index_t;

/* ids: n entries (n < UINT32_MAX), copied; the same id twice keeps the last row. */
void pulse_id_index_build(pulse_id_index_t *x, const int64_t *ids, size_t n);
long pulse_id_index_find(const pulse_id_index_t *x, int64_t id);
void pulse_id_index_free(pulse_id_index_t *x);

#endif
