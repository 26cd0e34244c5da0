/* The uploaded churn-score reader (src/jobs/churn_scores.c): column lookup by name, probabilities,
 * percentages and decimal commas, and every bad row failing the whole file before anything is
 * delivered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "jobs/churn_scores.h"

typedef struct got_t {
    int n;
    char ids[8][16];
    float p[8];
} got_t;

static int collect(void *ud, const char *ref, size_t len, float p)
{
    got_t *g = ud;
    if (g->n < 8) {
        snprintf(g->ids[g->n], sizeof(g->ids[0]), "%.*s", (int)len, ref);
        g->p[g->n] = p;
    }
    g->n++;
    return 0;
}

/* Writes text to a temporary file and reads it with the given column names. */
static int64_t read_text(const char *text, const char *id, const char *score, got_t *g, char *err, size_t errlen)
{
    char path[] = "/tmp/pulse-churn-scores-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    memset(g, 0, sizeof(*g));
    int64_t n = pulse_churn_scores_read(path, id, score, collect, g, err, errlen);
    unlink(path);
    return n;
}

static void test_reads_probabilities_and_percentages(void **state)
{
    (void)state;
    got_t g;
    char err[256];
    int64_t n = read_text("name,churn_score,customer_id\nAnn,0.25,C1\n\"Bo, Jr\",85%,C2\nCy,1,C3\n", "customer_id", "churn_score",
                          &g, err, sizeof(err));
    assert_int_equal(n, 3);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.ids[1], "C2");
    assert_float_equal(g.p[0], 0.25f, 1e-6);
    assert_float_equal(g.p[1], 0.85f, 1e-6);
    assert_float_equal(g.p[2], 1.0f, 1e-6);
}

static void test_decimal_comma_with_semicolons(void **state)
{
    (void)state;
    got_t g;
    char err[256];
    assert_int_equal(read_text("id;score\nA;0,5\nB;0,125\n", "id", "score", &g, err, sizeof(err)), 2);
    assert_float_equal(g.p[1], 0.125f, 1e-6);
}

static void test_bad_rows_fail_the_file_before_delivery(void **state)
{
    (void)state;
    static const struct {
        const char *text, *message;
    } cases[] = {
        {"customer_id,churn_score\nA,0.2\nB,1.5\n", "line 3: 'churn_score' is '1.5'"},
        {"customer_id,churn_score\nA,0.2\nB,high\n", "line 3: 'churn_score' is 'high'"},
        {"customer_id,churn_score\nA,-0.1\n", "line 2: 'churn_score' is '-0.1'"},
        {"customer_id,churn_score\n,0.3\n", "line 2: 'customer_id' is empty"},
        {"customer_id,churn_score\nA\n", "line 2: 1 fields"},
        {"customer_id,value\nA,0.3\n", "no column 'churn_score'"},
        {"", "empty"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        got_t g;
        char err[256];
        assert_int_equal(read_text(cases[i].text, "customer_id", "churn_score", &g, err, sizeof(err)), -1);
        assert_int_equal(g.n, 0); /* nothing delivered */
        if (strstr(err, cases[i].message) == NULL)
            fail_msg("case %zu: '%s' does not say '%s'", i, err, cases[i].message);
    }
}

static void test_missing_file(void **state)
{
    (void)state;
    got_t g = {0};
    char err[256];
    assert_int_equal(pulse_churn_scores_read("/nonexistent/scores.csv", "a", "b", collect, &g, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_probabilities_and_percentages),
        cmocka_unit_test(test_decimal_comma_with_semicolons),
        cmocka_unit_test(test_bad_rows_fail_the_file_before_delivery),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
