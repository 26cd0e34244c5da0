/* Unit tests for src/ml/split.c: exact stratification, disjoint cover, determinism per seed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "ml/split.h"

static void test_stratified(void **state)
{
    (void)state;
    enum { N = 1000 };
    float y[N];
    for (int i = 0; i < N; i++)
        y[i] = i % 4 == 0; /* 250 positives, 750 negatives */
    pulse_ml_split_t s;
    char err[128];
    assert_int_equal(pulse_ml_split_stratified(y, N, 0.2, 0.25, 7, &s, err, sizeof(err)), 0);
    /* positives: 50 test, 50 valid, 150 train; negatives: 150, 150, 450 */
    size_t pos[3] = {0, 0, 0};
    int seen[N];
    memset(seen, 0, sizeof(seen));
    size_t *parts[3] = {s.train, s.valid, s.test}, np[3] = {s.n_train, s.n_valid, s.n_test};
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < np[k]; i++) {
            seen[parts[k][i]]++;
            pos[k] += y[parts[k][i]] == 1.0f;
            if (i > 0)
                assert_true(parts[k][i] > parts[k][i - 1]);
        }
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(s.n_test, 200);
    assert_int_equal(s.n_valid, 200);
    assert_int_equal(s.n_train, 600);
    assert_int_equal(pos[2], 50);
    assert_int_equal(pos[1], 50);
    assert_int_equal(pos[0], 150);

    pulse_ml_split_t s2, s3;
    assert_int_equal(pulse_ml_split_stratified(y, N, 0.2, 0.25, 7, &s2, err, sizeof(err)), 0);
    assert_memory_equal(s.test, s2.test, s.n_test * sizeof(size_t));
    assert_memory_equal(s.train, s2.train, s.n_train * sizeof(size_t));
    assert_int_equal(pulse_ml_split_stratified(y, N, 0.2, 0.25, 8, &s3, err, sizeof(err)), 0);
    assert_true(memcmp(s.test, s3.test, s.n_test * sizeof(size_t)) != 0);
    pulse_ml_split_free(&s);
    pulse_ml_split_free(&s2);
    pulse_ml_split_free(&s3);
}

static void test_refused(void **state)
{
    (void)state;
    float y[3] = {0, 1, 2};
    pulse_ml_split_t s;
    char err[128];
    assert_int_equal(pulse_ml_split_stratified(y, 3, 0.2, 0.2, 1, &s, err, sizeof(err)), -1);
    assert_int_equal(pulse_ml_split_stratified(y, 2, 1.0, 0.2, 1, &s, err, sizeof(err)), -1);
}

static void test_subset(void **state)
{
    (void)state;
    float x[6] = {1, 2, 3, 10, 20, 30}, y[3] = {0, 1, 0};
    char *names[2] = {"a", "b"};
    pulse_ml_data_t d = {3, 2, x, y, NULL, names, NULL, NULL}, sub;
    size_t rows[2] = {2, 0};
    pulse_ml_subset(&d, rows, 2, &sub);
    assert_int_equal(sub.n_rows, 2);
    assert_true(pulse_ml_at(&sub, 0, 0) == 3 && pulse_ml_at(&sub, 0, 1) == 30 && pulse_ml_at(&sub, 1, 1) == 10);
    assert_true(sub.y[0] == 0 && sub.y[1] == 0);
    pulse_ml_subset_free(&sub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stratified),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_subset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
