/* Benchmark of the churn training pipeline (see train_bench.h). */
#include "ml/train_bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "ml/table.h"
#include "ml/train.h"

#define SEEDS 5

static int usage(void)
{
    fprintf(stderr, "usage: pulse bench train FILE.csv --label COLUMN [--id COLUMN] [--seed S]\n");
    return 2;
}

int pulse_train_bench(int argc, char **argv, FILE *out)
{
    const char *file = NULL;
    pulse_ml_table_options_t topt = {NULL, NULL};
    pulse_ml_train_options_t o;
    pulse_ml_train_options_init(&o);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--label") == 0 && i + 1 < argc)
            topt.label = argv[++i];
        else if (strcmp(argv[i], "--id") == 0 && i + 1 < argc)
            topt.id = argv[++i];
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            char *end;
            o.seed = strtoull(argv[++i], &end, 10);
            if (*end != '\0')
                return usage();
        } else if (argv[i][0] != '-' && file == NULL)
            file = argv[i];
        else
            return usage();
    }
    if (file == NULL || topt.label == NULL)
        return usage();

    char err[256];
    pulse_ml_table_t *t;
    double t0 = pulse_now_s();
    if (pulse_ml_table_load_csv(file, &topt, &t, err, sizeof(err)) != 0) {
        fprintf(stderr, "pulse bench train: %s\n", err);
        return 1;
    }
    double load_s = pulse_now_s() - t0;
    size_t n_cat = 0;
    for (size_t j = 0; j < t->data.n_cols; j++)
        n_cat += t->data.categorical[j];
    fprintf(out, "%s: %zu rows, %zu features (%zu categorical), id column %s, %zu churned (%.1f%%), loaded in %.3f s\n", file,
            t->data.n_rows, t->data.n_cols, n_cat, t->id ? t->id : "(none)", t->n_positive,
            100.0 * (double)t->n_positive / (double)t->data.n_rows, load_s);
    if (!pulse_ml_train_have_gbdt())
        fprintf(out, "(this build has no gradient-boosted trees: logistic regression only)\n");

    pulse_ml_train_result_t r;
    if (pulse_ml_train_churn(t, &o, &r, err, sizeof(err)) != 0) {
        fprintf(stderr, "pulse bench train: %s\n", err);
        pulse_ml_table_free(t);
        return 1;
    }
    fprintf(out, "seed %llu: train %zu, validation %zu, test %zu rows (stratified)\n\n", (unsigned long long)o.seed, r.n_train,
            r.n_valid, r.n_test);
    fprintf(out, "%-8s %9s %9s %9s %9s %9s %9s %9s %8s %8s\n", "model", "valid AUC", "test AUC", "AUC cal.", "PR AUC", "log-loss",
            "Brier", "F1", "train s", "CPU s");
    for (size_t k = 0; k < r.n_cand; k++) {
        const pulse_ml_candidate_t *c = &r.cand[k];
        fprintf(out, "%-8s %9.4f %9.4f %9.4f %9.4f %9.4f %9.4f %9.4f %8.4f %8.4f  (calibration: %s, %d %s)\n", c->name,
                c->valid_auc, c->test_auc_raw, c->test.roc_auc, c->test.pr_auc, c->test.log_loss, c->test.brier, c->test.f1,
                c->train_seconds, c->train_cpu_seconds, pulse_ml_calibration_name(c->calibration.kind), c->iterations,
                c->kind == PULSE_ML_CHURN_LOGREG ? "Newton steps" : "trees");
        if (c->kind == PULSE_ML_CHURN_BLEND)
            fprintf(out, "%-8s (log-odds blend: %.2f x logreg + %.2f x gbdt)\n", "", c->blend_logreg_weight,
                    1 - c->blend_logreg_weight);
    }
    const pulse_ml_candidate_t *ch = &r.cand[r.chosen];
    unsigned char *bytes;
    size_t len;
    pulse_ml_model_save(r.model, &bytes, &len);
    free(bytes);
    fprintf(out, "\nchosen: %s (best validation ROC AUC); threshold %.3f (max F1), container %zu bytes; pipeline %.3f s\n",
            ch->name, ch->test.threshold, len, r.seconds);
    fprintf(out, "top features (%s):", ch->name);
    for (int shown = 0, lim = 5; shown < lim; shown++) {
        size_t best = 0;
        double bv = -1;
        for (size_t j = 0; j < r.n_features; j++) {
            int taken = 0;
            /* the 5 largest shares, without sorting a copy */
            for (size_t q = 0; q < r.n_features; q++)
                if (ch->importance[q] > ch->importance[j] || (ch->importance[q] == ch->importance[j] && q < j))
                    taken++;
            if (taken == shown) {
                best = j;
                bv = ch->importance[j];
            }
        }
        if (bv < 0)
            break;
        fprintf(out, " %s %.1f%%%s", t->data.names[best], 100 * bv, shown + 1 < lim ? "," : "\n");
    }
    pulse_ml_train_result_free(&r);

    double sum[3] = {0, 0, 0}, sq[3] = {0, 0, 0}, secs[3] = {0, 0, 0};
    int wins[3] = {0, 0, 0};
    size_t nc = 0;
    const char *names[3] = {"", "", ""};
    for (int s = 0; s < SEEDS; s++) {
        o.seed = (unsigned long long)s + 1;
        if (pulse_ml_train_churn(t, &o, &r, err, sizeof(err)) != 0) {
            fprintf(stderr, "pulse bench train: seed %d: %s\n", s + 1, err);
            pulse_ml_table_free(t);
            return 1;
        }
        nc = r.n_cand;
        for (size_t k = 0; k < r.n_cand; k++) {
            names[k] = r.cand[k].name;
            sum[k] += r.cand[k].test_auc_raw;
            sq[k] += r.cand[k].test_auc_raw * r.cand[k].test_auc_raw;
            secs[k] += r.cand[k].train_seconds;
        }
        wins[r.chosen]++;
        pulse_ml_train_result_free(&r);
    }
    fprintf(out, "\ntest ROC AUC over seeds 1-%d:\n", SEEDS);
    for (size_t k = 0; k < nc; k++) {
        double m = sum[k] / SEEDS, sd = sqrt(fmax(0, sq[k] / SEEDS - m * m));
        fprintf(out, "  %-8s mean %.4f  sd %.4f  mean train %.4f s wall  chosen %d/%d\n", names[k], m, sd, secs[k] / SEEDS, wins[k],
                SEEDS);
    }
    pulse_ml_table_free(t);
    return 0;
}
