/* The customer-id index (see id_index.h). */
#include "jobs/id_index.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

/* Direct while the table is at most 4 slots a row (16 bytes a row, on top of the rows' own). */
#define MAX_SLOTS_PER_ROW 4
#define SLACK_SLOTS 4096

typedef struct id_row_t {
    int64_t id;
    uint32_t row;
} id_row_t;

static int by_id_then_row(const void *a, const void *b)
{
    const id_row_t *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

static void build_sorted(pulse_id_index_t *x, const int64_t *ids, size_t n)
{
    id_row_t *pairs = pulse_xmalloc((n ? n : 1) * sizeof(*pairs));
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] > 0)
            pairs[m++] = (id_row_t){ids[i], (uint32_t)i};
    qsort(pairs, m, sizeof(*pairs), by_id_then_row);
    x->sorted_ids = pulse_xmalloc((m ? m : 1) * sizeof(int64_t));
    x->sorted_rows = pulse_xmalloc((m ? m : 1) * sizeof(uint32_t));
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        if (k > 0 && x->sorted_ids[k - 1] == pairs[i].id)
            k--; /* a repeated id: its last row */
        x->sorted_ids[k] = pairs[i].id;
        x->sorted_rows[k++] = pairs[i].row;
    }
    x->n = k;
    free(pairs);
}

void pulse_id_index_build(pulse_id_index_t *x, const int64_t *ids, size_t n)
{
    memset(x, 0, sizeof(*x));
    int64_t lo = INT64_MAX, hi = 0;
    size_t present = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] > 0) {
            lo = ids[i] < lo ? ids[i] : lo;
            hi = ids[i] > hi ? ids[i] : hi;
            present++;
        }
    if (present == 0)
        return;
    uint64_t span = (uint64_t)(hi - lo) + 1;
    if (span > MAX_SLOTS_PER_ROW * (uint64_t)present + SLACK_SLOTS) {
        build_sorted(x, ids, n);
        return;
    }
    x->min_id = lo;
    x->n_slots = (size_t)span;
    x->slot = calloc(x->n_slots, sizeof(uint32_t));
    if (x->slot == NULL)
        abort();
    for (size_t i = 0; i < n; i++)
        if (ids[i] > 0)
            x->slot[ids[i] - lo] = (uint32_t)i + 1;
}

long pulse_id_index_find(const pulse_id_index_t *x, int64_t id)
{
    if (x->slot != NULL) {
        if (id < x->min_id || (uint64_t)(id - x->min_id) >= x->n_slots)
            return -1;
        return (long)x->slot[id - x->min_id] - 1;
    }
    size_t lo = 0, hi = x->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (x->sorted_ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < x->n && x->sorted_ids[lo] == id ? (long)x->sorted_rows[lo] : -1;
}

void pulse_id_index_free(pulse_id_index_t *x)
{
    free(x->slot);
    free(x->sorted_ids);
    free(x->sorted_rows);
    memset(x, 0, sizeof(*x));
}
