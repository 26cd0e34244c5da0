/* Benchmark of the churn training pipeline (pulse bench train FILE.csv --label L [--id C]
 * [--seed S]): loads the CSV, splits it stratified 80/20 (a fifth of the 80 for validation),
 * trains every model, prints per model the test ROC AUC, PR AUC, log-loss and training time, the
 * chosen model, then the test ROC AUC over 5 seeds (one split is noisy). Never fails on a figure. */
#ifndef PULSE_ML_TRAIN_BENCH_H
#define PULSE_ML_TRAIN_BENCH_H

#include <stdio.h>

/* argv[0] is "train". Returns the process exit code (0 ok, 1 failure, 2 usage). */
int pulse_train_bench(int argc, char **argv, FILE *out);

#endif
