/* libFuzzer target for pulse_gbdt_load (src/ml/gbdt.c): any bytes either fail with a message or
 * give a model that scores a row (row scorer, batch scorer, contributions) without a fault, agrees
 * between the scorers, and saves back to exactly the bytes it was loaded from.
 *
 * Build and run (clang only): scripts/fuzz.sh, or
 *   cmake -B build-fuzz -DCMAKE_C_COMPILER=clang -DPULSE_FUZZ=ON && cmake --build build-fuzz --target fuzz_gbdt
 *   build-fuzz/tests/fuzz/fuzz_gbdt -max_total_time=60 -max_len=8192 tests/fuzz/corpus/gbdt */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ml/gbdt.h"

static void die(const char *what)
{
    fprintf(stderr, "fuzz_gbdt: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    err[0] = 0;
    pulse_gbdt_t *m = pulse_gbdt_load(data, size, err, sizeof(err));
    if (!m) {
        if (!err[0])
            die("load failed without a message");
        return 0;
    }
    size_t nf = pulse_gbdt_n_features(m);
    if (nf > 4096) {
        pulse_gbdt_free(m);
        return 0;
    }
    float *row = malloc((nf + 1) * sizeof(float));
    double *contrib = malloc((nf + 1) * sizeof(double));
    /* values spread over the byte range so splits go both ways; column 0 missing */
    for (size_t j = 0; j < nf; j++)
        row[j] = j == 0 ? NAN : (float)((int)(j * 37 % 11) - 3);
    double margin = pulse_gbdt_predict_row(m, row, 0);
    pulse_ml_data_t d = {0};
    d.n_rows = 1;
    d.n_cols = nf;
    d.x = row;
    double batch;
    pulse_gbdt_predict(m, &d, &batch, 0);
    if (memcmp(&batch, &margin, sizeof(double)) != 0)
        die("batch scorer and row scorer disagree");
    pulse_gbdt_contributions(m, row, contrib);
    unsigned char *bytes = NULL;
    size_t len = 0;
    pulse_gbdt_save(m, &bytes, &len);
    if (len != size || memcmp(bytes, data, size) != 0)
        die("save does not give back the loaded bytes");
    free(bytes);
    free(row);
    free(contrib);
    pulse_gbdt_free(m);
    return 0;
}
