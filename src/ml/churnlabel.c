/* Behavioural churn labels (see churnlabel.h). The label looks only at the window's rows and the
 * features only at rows before the cutoff (pulse_features_compute ignores rows on/after as_of):
 * the two never share a row, which is what makes the labels leak-free. */
#include "ml/churnlabel.h"

#include "analytics/features.h"
#include "core/buf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int is_purchase(const pulse_txstore_t *st, uint32_t k)
{
    return st->tx_amount[k] >= 0 && (st->tx_flags == NULL || (st->tx_flags[k] & PULSE_TX_RETURN) == 0);
}

static void day_str(int32_t day, char out[16])
{
    time_t s = (time_t)day * 86400;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

int pulse_churnlabel_table(const pulse_txstore_t *st, int32_t horizon, pulse_ml_table_t **out, pulse_churnlabel_info_t *info,
                           char *err, size_t errlen)
{
    memset(info, 0, sizeof(*info));
    *out = NULL;
    if (horizon < 1 || horizon > 3650)
        return pulse_fail(err, errlen, "the churn horizon must be 1 to 3650 days, not %d", (int)horizon);
    if (!st->finished || st->ntx == 0)
        return pulse_fail(err, errlen, "behavioural churn labels need transactions: import a transactions file first");
    int32_t end = st->tx_max_day + 1, span = end - st->tx_min_day, need = horizon + PULSE_CHURNLABEL_MIN_HISTORY;
    if (span < need) {
        char a[16], b[16];
        day_str(st->tx_min_day, a), day_str(st->tx_max_day, b);
        return pulse_fail(err, errlen,
                          "not enough history for behavioural churn labels: the transactions span %d days (%s to %s); a "
                          "%d-day churn horizon needs at least %d days (%d days of history before the label window)",
                          (int)span, a, b, (int)horizon, (int)need, PULSE_CHURNLABEL_MIN_HISTORY);
    }
    info->horizon = horizon;
    info->cutoff = end - horizon;
    info->first_day = st->tx_min_day;
    info->end_day = end;

    pulse_features_opts_t fo;
    memset(&fo, 0, sizeof(fo));
    fo.as_of = info->cutoff;
    pulse_feature_matrix_t fm;
    if (pulse_features_compute(st, &fo, 0, 0, &fm, err, errlen) != 0)
        return -1;

    /* rows: customers with a purchase before the cutoff (the others are new in the window: there
     * is nothing to predict from, and they are not churn candidates) */
    uint32_t nc = pulse_txstore_ncustomers(st);
    info->customer = pulse_xmalloc(((size_t)nc + 1) * sizeof(uint32_t));
    double *label = pulse_xmalloc(((size_t)nc + 1) * sizeof(double));
    size_t n = 0;
    for (uint32_t c = 0; c < nc; c++) {
        int before = 0, in_window = 0;
        for (uint32_t k = st->tx_first[c]; k < st->tx_first[c + 1]; k++) {
            if (!is_purchase(st, k))
                continue;
            if (st->tx_day[k] < info->cutoff)
                before = 1;
            else if (st->tx_day[k] < info->cutoff + horizon)
                in_window = 1;
        }
        if (!before)
            continue;
        info->customer[n] = c;
        label[n] = in_window ? 0.0 : 1.0;
        info->n_churned += !in_window;
        n++;
    }
    info->n_customers = n;
    if (n == 0) {
        free(label);
        free(info->customer);
        info->customer = NULL;
        pulse_features_matrix_free(&fm);
        return pulse_fail(err, errlen, "no customer bought anything before the cutoff");
    }

    pulse_ml_column_t *cols = pulse_xmalloc((fm.n_cols + 1) * sizeof(*cols));
    double *vals = pulse_xmalloc(fm.n_cols * n * sizeof(double));
    char(*names)[80] = pulse_xmalloc(fm.n_cols * sizeof(*names));
    for (size_t j = 0; j < fm.n_cols; j++) {
        snprintf(names[j], sizeof(names[j]), "analytics.%s", fm.info[j].name);
        for (size_t i = 0; i < n; i++)
            vals[j * n + i] = fm.x[j * fm.n_rows + info->customer[i]];
        cols[j].name = names[j];
        cols[j].num = vals + j * n;
        cols[j].text = NULL;
    }
    cols[fm.n_cols].name = "churned";
    cols[fm.n_cols].num = label;
    cols[fm.n_cols].text = NULL;
    pulse_ml_table_options_t opt = {"churned", NULL};
    int rc = pulse_ml_table_from_columns(cols, fm.n_cols + 1, n, &opt, out, err, errlen);
    free(cols), free(vals), free(names), free(label);
    pulse_features_matrix_free(&fm);
    if (rc != 0) {
        free(info->customer);
        info->customer = NULL;
    }
    return rc;
}
