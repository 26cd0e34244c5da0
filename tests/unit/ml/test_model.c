/* Unit tests for src/ml/model.c: the container round trip, and every single-byte corruption and
 * truncation of a small container refused with a message (never a crash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "ml/model.h"

static pulse_ml_model_t *small_model(int isotonic)
{
    pulse_ml_model_t *m = pulse_ml_model_new(PULSE_ML_CHURN_LOGREG);
    char *levels[3] = {"Month-to-month", "One year", "Two year"};
    pulse_ml_model_add_feature(m, "tenure", 0, 0, NULL);
    pulse_ml_model_add_feature(m, "Contract", 1, 3, levels);
    static const unsigned char payload[6] = {'P', 'L', 'R', 'G', 0, 1};
    pulse_ml_model_set_payload(m, payload, sizeof(payload));
    pulse_ml_model_set_meta(m, "{\"roc_auc\":0.84}");
    if (isotonic) {
        m->calibration.kind = PULSE_ML_CAL_ISOTONIC;
        m->calibration.n_points = 2;
        m->calibration.x = malloc(2 * sizeof(double));
        m->calibration.y = malloc(2 * sizeof(double));
        m->calibration.x[0] = 0.1, m->calibration.x[1] = 0.9;
        m->calibration.y[0] = 0.05, m->calibration.y[1] = 0.8;
    } else {
        m->calibration.kind = PULSE_ML_CAL_PLATT;
        m->calibration.a = 0.9;
        m->calibration.b = -0.1;
    }
    return m;
}

static void test_round_trip(void **state)
{
    (void)state;
    for (int iso = 0; iso < 2; iso++) {
        pulse_ml_model_t *m = small_model(iso);
        unsigned char *bytes;
        size_t len;
        char err[256];
        assert_int_equal(pulse_ml_model_save(m, &bytes, &len), 0);
        assert_memory_equal(bytes, "PMDL", 4);
        pulse_ml_model_t *r = pulse_ml_model_load(bytes, len, err, sizeof(err));
        if (r == NULL)
            fail_msg("%s", err);
        assert_int_equal(r->kind, PULSE_ML_CHURN_LOGREG);
        assert_string_equal(pulse_ml_model_kind_name(r->kind), "churn_logreg");
        assert_int_equal(r->n_features, 2);
        assert_string_equal(r->features[1].name, "Contract");
        assert_int_equal(r->features[1].categorical, 1);
        assert_int_equal(r->features[1].n_levels, 3);
        assert_string_equal(r->features[1].levels[2], "Two year");
        assert_int_equal(r->features[0].categorical, 0);
        assert_string_equal(r->meta, "{\"roc_auc\":0.84}");
        assert_int_equal(r->payload_len, 6);
        assert_memory_equal(r->payload, m->payload, 6);
        assert_int_equal(r->calibration.kind, m->calibration.kind);
        assert_true(pulse_ml_calibration_apply(&r->calibration, 0.3) == pulse_ml_calibration_apply(&m->calibration, 0.3));
        /* saving the loaded one gives the same bytes */
        unsigned char *again;
        size_t len2;
        pulse_ml_model_save(r, &again, &len2);
        assert_int_equal(len, len2);
        assert_memory_equal(bytes, again, len);
        free(again);
        free(bytes);
        pulse_ml_model_free(r);
        pulse_ml_model_free(m);
    }
}

static void test_every_byte_flipped(void **state)
{
    (void)state;
    pulse_ml_model_t *m = small_model(1);
    unsigned char *bytes;
    size_t len;
    char err[256];
    pulse_ml_model_save(m, &bytes, &len);
    unsigned char *copy = malloc(len);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, bytes, len);
            copy[i] ^= (unsigned char)(1u << bit);
            err[0] = '\0';
            pulse_ml_model_t *r = pulse_ml_model_load(copy, len, err, sizeof(err));
            if (r != NULL)
                fail_msg("byte %zu bit %d: corruption accepted", i, bit);
            assert_true(err[0] != '\0');
            /* past the magic and version, the checksum is what catches it */
            if (i >= 8 && strstr(err, "checksum") == NULL)
                fail_msg("byte %zu bit %d: %s", i, bit, err);
        }
    }
    for (size_t cut = 0; cut < len; cut++) {
        memcpy(copy, bytes, cut);
        assert_null(pulse_ml_model_load(copy, cut, err, sizeof(err)));
    }
    free(copy);
    free(bytes);
    pulse_ml_model_free(m);
}

static void test_messages(void **state)
{
    (void)state;
    char err[256];
    assert_null(pulse_ml_model_load((const unsigned char *)"GIF89a", 6, err, sizeof(err)));
    assert_non_null(strstr(err, "not a Pulse model"));
    pulse_ml_model_t *m = small_model(0);
    unsigned char *bytes;
    size_t len;
    pulse_ml_model_save(m, &bytes, &len);
    bytes[4] = 2;
    assert_null(pulse_ml_model_load(bytes, len, err, sizeof(err)));
    assert_non_null(strstr(err, "version 2"));
    free(bytes);
    pulse_ml_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_every_byte_flipped),
        cmocka_unit_test(test_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
