/* Unit tests for src/ml/table.c: the shipped fixture (numbers, categories, blanks, Yes/No label,
 * id column), id detection, in-memory columns, and refused inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "ml/table.h"

static const pulse_ml_table_options_t churn_opt = {"Churn", "customerID"};

static void test_fixture(void **state)
{
    (void)state;
    char err[256];
    pulse_ml_table_t *t;
    if (pulse_ml_table_load_csv(PULSE_TEST_DATA_DIR "/ml_churn_small.csv", &churn_opt, &t, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    const pulse_ml_data_t *d = &t->data;
    assert_int_equal(d->n_rows, 12);
    assert_int_equal(d->n_cols, 5); /* id and label dropped */
    assert_string_equal(t->id, "customerID");
    assert_int_equal(t->n_positive, 3);
    assert_true(d->y[2] == 1.0f && d->y[0] == 0.0f);

    int g = pulse_ml_table_find(t, "gender"), c = pulse_ml_table_find(t, "Contract");
    int tc = pulse_ml_table_find(t, "TotalCharges"), ten = pulse_ml_table_find(t, "tenure");
    assert_true(g >= 0 && c >= 0 && tc >= 0 && ten >= 0);
    assert_int_equal(pulse_ml_table_find(t, "Churn"), -1);
    assert_int_equal(pulse_ml_table_find(t, "customerID"), -1);

    assert_true(d->categorical[c]);
    assert_int_equal(d->n_categories[c], 3);
    /* sorted dictionary: codes do not depend on row order */
    assert_string_equal(t->levels[c][0], "Month-to-month");
    assert_string_equal(t->levels[c][1], "One year");
    assert_string_equal(t->levels[c][2], "Two year");
    assert_true(pulse_ml_at(d, 0, c) == 0.0f && pulse_ml_at(d, 1, c) == 1.0f && pulse_ml_at(d, 5, c) == 2.0f);
    assert_int_equal(d->n_categories[g], 2);
    assert_true(isnan(pulse_ml_at(d, 9, g))); /* blank category: missing */

    assert_false(d->categorical[tc]);
    assert_true(isnan(pulse_ml_at(d, 5, tc)));  /* " " */
    assert_true(isnan(pulse_ml_at(d, 11, tc))); /* "" */
    assert_float_equal(pulse_ml_at(d, 1, tc), 1889.5, 1e-3);
    assert_float_equal(pulse_ml_at(d, 6, ten), 22, 0);
    pulse_ml_table_free(t);
}

static void test_id_detected(void **state)
{
    (void)state;
    char err[256];
    pulse_ml_table_t *t;
    pulse_ml_table_options_t o = {"Churn", NULL};
    if (pulse_ml_table_load_csv(PULSE_TEST_DATA_DIR "/ml_churn_small.csv", &o, &t, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_non_null(t->id);
    assert_string_equal(t->id, "customerID");
    assert_int_equal(t->data.n_cols, 5);
    pulse_ml_table_free(t);
    pulse_ml_table_options_t lower = {"churn", "customerid"};
    if (pulse_ml_table_load_csv(PULSE_TEST_DATA_DIR "/ml_churn_small.csv", &lower, &t, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(t->label, "Churn"); /* the header's spelling */
    assert_int_equal(t->data.n_cols, 5);
    pulse_ml_table_free(t);
}

static int parse(const char *csv, const char *label, char *err, size_t errlen)
{
    pulse_ml_table_t *t = NULL;
    pulse_ml_table_options_t o = {label, NULL};
    int rc = pulse_ml_table_parse_csv(csv, strlen(csv), &o, &t, err, errlen);
    pulse_ml_table_free(t);
    return rc;
}

static void test_bad_inputs(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(parse("a,b,Churn\n1,x,Yes\n2,y,\n3,z,No\n", "Churn", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "line 3"));
    assert_non_null(strstr(err, "missing"));
    assert_int_equal(parse("a,b,Churn\n1,x,Yes\n2,y,Maybe\n", "Churn", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "line 3"));
    assert_non_null(strstr(err, "Maybe"));
    assert_int_equal(parse("a,b,Churn\n1,x,Yes\n", "Exited", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "Exited"));
    assert_int_equal(parse("a,b,Churn\n1,x,Yes\n2,y\n", "Churn", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "line 3"));
    assert_int_equal(parse("", "Churn", err, sizeof(err)), -1);
    pulse_ml_table_t *t;
    assert_int_equal(pulse_ml_table_load_csv("/nonexistent/x.csv", &churn_opt, &t, err, sizeof(err)), -1);
    /* label words */
    assert_int_equal(parse("a,Churn\n1,true\n2,FALSE\n3,1\n4,0\n5,churned\n6,Retained\n", "Churn", err, sizeof(err)), 0);
}

static void test_from_columns(void **state)
{
    (void)state;
    double age[4] = {30, NAN, 50, 61};
    const char *plan[4] = {"basic", "pro", NULL, "basic"};
    double churn[4] = {1, 0, 0, 1};
    pulse_ml_column_t cols[3] = {{"age", age, NULL}, {"plan", NULL, plan}, {"churned", churn, NULL}};
    pulse_ml_table_options_t o = {"churned", NULL};
    pulse_ml_table_t *t;
    char err[256];
    if (pulse_ml_table_from_columns(cols, 3, 4, &o, &t, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(t->data.n_cols, 2);
    assert_null(t->id); /* fewer than 10 rows: no id guessing */
    assert_true(isnan(pulse_ml_at(&t->data, 1, 0)));
    assert_int_equal(t->data.n_categories[1], 2);
    assert_string_equal(t->levels[1][1], "pro");
    assert_true(isnan(pulse_ml_at(&t->data, 2, 1)));
    assert_int_equal(t->n_positive, 2);
    pulse_ml_table_free(t);

    churn[2] = 2;
    assert_int_equal(pulse_ml_table_from_columns(cols, 3, 4, &o, &t, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "row 3"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture),
        cmocka_unit_test(test_id_detected),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_from_columns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
