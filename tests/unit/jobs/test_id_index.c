/* The customer-id index (jobs/id_index.h): the same answers whether the ids are dense (direct
 * table) or sparse (binary search), with empty rows, repeats and ids that are not there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "jobs/id_index.h"

/* The row of id by looking at every row (the last one wins, as the index promises). */
static long slow_find(const int64_t *ids, size_t n, int64_t id)
{
    long row = -1;
    for (size_t i = 0; i < n; i++)
        if (ids[i] > 0 && ids[i] == id)
            row = (long)i;
    return row;
}

static void check_against_slow(const int64_t *ids, size_t n, int64_t probe_lo, int64_t probe_hi, int expect_direct)
{
    pulse_id_index_t x;
    pulse_id_index_build(&x, ids, n);
    assert_int_equal(x.slot != NULL, expect_direct);
    for (int64_t id = probe_lo; id <= probe_hi; id++)
        assert_int_equal(pulse_id_index_find(&x, id), slow_find(ids, n, id));
    for (size_t i = 0; i < n; i++)
        if (ids[i] > 0)
            assert_int_equal(pulse_id_index_find(&x, ids[i]), slow_find(ids, n, ids[i]));
    pulse_id_index_free(&x);
}

static void dense_ids_in_any_order(void **state)
{
    (void)state;
    int64_t ids[2000];
    for (size_t i = 0; i < 2000; i++)
        ids[i] = 1000 + (int64_t)((i * 7919) % 2000); /* a permutation of 1000..2999 */
    ids[5] = 0;                                       /* rows with no customer */
    ids[6] = -3;
    ids[7] = ids[8]; /* a repeat: the later row */
    check_against_slow(ids, 2000, 990, 3010, 1);
}

static void sparse_ids(void **state)
{
    (void)state;
    int64_t ids[500];
    for (size_t i = 0; i < 500; i++)
        ids[i] = (int64_t)(((i * 104729) % 500) * 1000003 + 17);
    ids[10] = 0;
    ids[20] = ids[30];
    check_against_slow(ids, 500, 0, 3000, 0);
    pulse_id_index_t x;
    pulse_id_index_build(&x, ids, 500);
    assert_int_equal(pulse_id_index_find(&x, INT64_MAX), -1);
    assert_int_equal(pulse_id_index_find(&x, ids[499] + 1), -1);
    pulse_id_index_free(&x);
}

static void nothing_to_index(void **state)
{
    (void)state;
    int64_t ids[3] = {0, 0, -1};
    pulse_id_index_t x;
    pulse_id_index_build(&x, ids, 3);
    assert_int_equal(pulse_id_index_find(&x, 0), -1);
    assert_int_equal(pulse_id_index_find(&x, 1), -1);
    pulse_id_index_free(&x);
    pulse_id_index_build(&x, NULL, 0);
    assert_int_equal(pulse_id_index_find(&x, 5), -1);
    pulse_id_index_free(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dense_ids_in_any_order),
        cmocka_unit_test(sparse_ids),
        cmocka_unit_test(nothing_to_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
