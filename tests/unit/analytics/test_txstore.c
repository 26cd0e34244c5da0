/* Unit tests for src/analytics/txstore.c: interning, grouping by customer and day, merging stores. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/txstore.h"

static void add(pulse_txstore_t *st, const char *ref, int32_t day, double amount, const char *cat, unsigned flags)
{
    pulse_tx_row_t r = {ref, strlen(ref), day, amount, NAN, cat, NULL, cat ? strlen(cat) : 0, 0, flags};
    pulse_txstore_add_transaction(st, &r);
}

static void test_days_from_civil(void **state)
{
    assert_int_equal(pulse_txstore_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(pulse_txstore_days_from_civil(1969, 12, 31), -1);
    assert_int_equal(pulse_txstore_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(pulse_txstore_days_from_civil(2024, 2, 29), 19782);
}

static void test_intern_first_appearance(void **state)
{
    pulse_strtab_t t;
    memset(&t, 0, sizeof(t));
    char buf[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(buf, sizeof(buf), "cust-%d", i);
        assert_int_equal(pulse_strtab_intern(&t, buf, strlen(buf)), i);
    }
    for (int i = 4999; i >= 0; i--) {
        snprintf(buf, sizeof(buf), "cust-%d", i);
        assert_int_equal(pulse_strtab_intern(&t, buf, strlen(buf)), i);
        size_t len;
        const char *s = pulse_strtab_get(&t, (uint32_t)i, &len);
        assert_int_equal(len, strlen(buf));
        assert_memory_equal(s, buf, len);
    }
    assert_int_equal(pulse_strtab_intern(&t, "", 0), 5000); /* the empty string is a string */
    pulse_txstore_t st;
    pulse_txstore_init(&st);
    st.customers = t; /* freed with the store */
    pulse_txstore_free(&st);
}

/* The numeric path (direct array) and the hash path must agree with a naive table whatever the mix:
 * leading zeros ("7" vs "007"), falling ids, ids sparse enough to move everything to the hash. */
static void check_against_naive(const char *const *refs, size_t n)
{
    pulse_strtab_t t;
    memset(&t, 0, sizeof(t));
    uint32_t *want = malloc(n * sizeof(uint32_t));
    uint32_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        want[i] = UINT32_MAX;
        for (size_t j = 0; j < i && want[i] == UINT32_MAX; j++)
            if (strcmp(refs[j], refs[i]) == 0)
                want[i] = want[j];
        if (want[i] == UINT32_MAX)
            want[i] = distinct++;
        uint32_t got = pulse_strtab_intern(&t, refs[i], strlen(refs[i]));
        if (got != want[i])
            fail_msg("ref %zu '%s': id %u, want %u", i, refs[i], got, want[i]);
    }
    assert_int_equal(t.n, distinct);
    for (size_t i = 0; i < n; i++) /* lookups after everything is in */
        assert_int_equal(pulse_strtab_intern(&t, refs[i], strlen(refs[i])), want[i]);
    free(want);
    pulse_txstore_t st;
    pulse_txstore_init(&st);
    st.customers = t;
    pulse_txstore_free(&st);
}

static void test_intern_numeric_paths(void **state)
{
    enum { N = 6000 };
    static char buf[N][16];
    static const char *refs[N];
    uint64_t x = 9;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < N; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            unsigned r = (unsigned)(x >> 33);
            switch (round) {
            case 0: /* dense, falling, some with leading zeros and some text */
                snprintf(buf[i], 16, r % 5 == 0 ? "%07u" : r % 11 == 0 ? "c%u" : "%u", 900000u - (unsigned)i / 2 + r % 3);
                break;
            case 1: /* sparse: the direct array gives up part way */
                snprintf(buf[i], 16, "%u", i < 3000 ? 5000u + r % 4000 : r % 1000000000u);
                break;
            case 2: /* "7", "07", "007" are three customers */
                snprintf(buf[i], 16, "%0*u", 1 + (int)(r % 3), r % 50);
                break;
            default: /* ten digits: never numeric-direct, mixed with nine-digit ones */
                snprintf(buf[i], 16, r % 2 ? "%010u" : "%09u", r % 200);
            }
            refs[i] = buf[i];
        }
        check_against_naive(refs, N);
    }
}

static void test_finish_groups_and_orders(void **state)
{
    pulse_txstore_t st;
    pulse_txstore_init(&st);
    uint64_t x = 42;
    char ref[16];
    for (int i = 0; i < 3000; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        snprintf(ref, sizeof(ref), "c%u", (unsigned)(x >> 33) % 200);
        /* amount = append position: checks that equal days keep append order */
        add(&st, ref, (int32_t)((x >> 20) % 30), i, i % 7 == 0 ? "cat" : NULL, i % 11 == 0 ? PULSE_TX_RETURN : 0);
    }
    uint32_t nc = st.customers.n;
    uint32_t orig[3000];
    memcpy(orig, st.tx_customer, sizeof(orig));
    pulse_txstore_finish(&st);
    assert_true(st.finished);
    assert_int_equal(st.tx_first[0], 0);
    assert_int_equal(st.tx_first[nc], 3000);
    for (uint32_t c = 0; c < nc; c++) {
        assert_true(st.tx_first[c + 1] > st.tx_first[c]); /* every customer had a row */
        for (uint32_t i = st.tx_first[c]; i < st.tx_first[c + 1]; i++) {
            int pos = (int)st.tx_amount[i];
            assert_int_equal(orig[pos], c);
            assert_int_equal(st.tx_category[i] == PULSE_TXSTORE_NONE, pos % 7 != 0);
            assert_int_equal(st.tx_flags[i] == PULSE_TX_RETURN, pos % 11 == 0);
            if (i > st.tx_first[c]) {
                assert_true(st.tx_day[i] >= st.tx_day[i - 1]);
                if (st.tx_day[i] == st.tx_day[i - 1])
                    assert_true(st.tx_amount[i] > st.tx_amount[i - 1]);
            }
        }
    }
    assert_null(st.customers.slots); /* indexes dropped */
    assert_null(st.customers.dpages);
    assert_null(st.tx_customer);
    /* a lookup after finish rebuilds an index: no duplicate */
    assert_int_equal(pulse_strtab_intern(&st.customers, "c7", 2) < nc, 1);
    assert_int_equal(st.customers.n, nc);
    pulse_txstore_free(&st);
}

static void test_merge_equals_single_pass(void **state)
{
    pulse_txstore_t one, a, b;
    pulse_txstore_init(&one);
    pulse_txstore_init(&a);
    pulse_txstore_init(&b);
    char ref[16], cat[16];
    for (int i = 0; i < 2000; i++) {
        snprintf(ref, sizeof(ref), "r%d", (i * 37) % 301);
        snprintf(cat, sizeof(cat), "k%d", (i * 13) % 9);
        const char *c = i >= 1200 ? cat : NULL; /* the category column appears in the second half only */
        add(&one, ref, i, i * 0.5, c, 0);
        add(i < 1000 ? &a : &b, ref, i, i * 0.5, c, 0);
        if (i % 5 == 0) {
            pulse_txstore_add_event(&one, ref, strlen(ref), i, i % 2 ? "login" : "call", 4, i, NAN);
            pulse_txstore_add_event(i < 1000 ? &a : &b, ref, strlen(ref), i, i % 2 ? "login" : "call", 4, i, NAN);
        }
    }
    pulse_txstore_t m;
    pulse_txstore_init(&m);
    pulse_txstore_merge(&m, &a); /* into an empty store: a move */
    pulse_txstore_merge(&m, &b);
    assert_int_equal(b.ntx, 0);
    assert_int_equal(m.ntx, one.ntx);
    assert_int_equal(m.nev, one.nev);
    assert_int_equal(m.customers.n, one.customers.n);
    assert_int_equal(m.categories.n, one.categories.n);
    assert_int_equal(m.event_types.n, one.event_types.n);
    assert_memory_equal(m.tx_customer, one.tx_customer, one.ntx * sizeof(uint32_t));
    assert_memory_equal(m.tx_day, one.tx_day, one.ntx * sizeof(int32_t));
    assert_memory_equal(m.tx_amount, one.tx_amount, one.ntx * sizeof(float));
    assert_memory_equal(m.tx_category, one.tx_category, one.ntx * sizeof(uint32_t));
    assert_memory_equal(m.ev_customer, one.ev_customer, one.nev * sizeof(uint32_t));
    assert_memory_equal(m.ev_type, one.ev_type, one.nev * sizeof(uint32_t));
    for (uint32_t c = 0; c < one.customers.n; c++) {
        size_t l1, l2;
        const char *s1 = pulse_strtab_get(&one.customers, c, &l1), *s2 = pulse_strtab_get(&m.customers, c, &l2);
        assert_int_equal(l1, l2);
        assert_memory_equal(s1, s2, l1);
    }
    assert_int_equal(m.tx_min_day, 0);
    assert_int_equal(m.tx_max_day, 1999);
    pulse_txstore_free(&one);
    pulse_txstore_free(&m);
}

/* A store already in customer and day order, past the size where two threads fill tx_first, with
 * customers without a transaction at the start, inside and at the end; and the same with the
 * very last row out of day order (found by the second thread after both filled): tx_first is
 * the count of the rows before each customer either way. */
static void check_ordered_store(int last_out_of_order)
{
    enum { NC = 800000 };
    pulse_txstore_t st;
    pulse_txstore_init(&st);
    char ref[16];
    uint32_t *expect = malloc((NC + 1) * sizeof(uint32_t));
    uint32_t rows = 0;
    for (uint32_t c = 0; c < NC; c++) {
        snprintf(ref, sizeof(ref), "k%u", c);
        unsigned k = c % 5 == 0 || c >= NC - 3 ? 0 : 1 + c % 3; /* 0-3 rows */
        expect[c] = rows;
        if (k == 0)
            pulse_txstore_add_event(&st, ref, strlen(ref), 10, "visit", 5, 1.0, NAN);
        for (unsigned i = 0; i < k; i++)
            add(&st, ref, (int32_t)(100 + i), (double)rows++, NULL, 0);
    }
    expect[NC] = rows;
    assert_true(rows > (1u << 20));
    if (last_out_of_order) { /* the last transaction row moves before its predecessor's day */
        snprintf(ref, sizeof(ref), "k%u", NC - 4);
        add(&st, ref, 50, (double)rows, NULL, 0);
        expect[NC - 3] = ++rows;
        expect[NC - 2] = expect[NC - 1] = expect[NC] = rows;
    }
    assert_int_equal(st.customers.n, NC);
    pulse_txstore_finish(&st);
    assert_memory_equal(st.tx_first, expect, (NC + 1) * sizeof(uint32_t));
    for (uint32_t c = 0; c < NC; c++)
        for (uint32_t i = st.tx_first[c] + 1; i < st.tx_first[c + 1]; i++)
            assert_true(st.tx_day[i] >= st.tx_day[i - 1]);
    if (last_out_of_order)
        assert_float_equal(st.tx_amount[st.tx_first[NC - 4]], (double)(rows - 1), 0); /* day 50 comes first */
    assert_int_equal(st.ev_first[0], 0);
    assert_int_equal(st.ev_first[1], 1);
    assert_int_equal(st.ev_first[NC], st.nev);
    free(expect);
    pulse_txstore_free(&st);
}

static void test_finish_ordered_rows_on_threads(void **state)
{
    (void)state;
    check_ordered_store(0);
    check_ordered_store(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_days_from_civil),          cmocka_unit_test(test_intern_first_appearance),
        cmocka_unit_test(test_intern_numeric_paths),     cmocka_unit_test(test_finish_groups_and_orders),
        cmocka_unit_test(test_merge_equals_single_pass), cmocka_unit_test(test_finish_ordered_rows_on_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
