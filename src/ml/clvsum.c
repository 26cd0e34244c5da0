/* Lifetime-value summaries (see clvsum.h): one pass over each customer's day-ordered rows. Days,
 * not invoices, are the purchase unit, as for the frequency feature: several lines of one basket
 * are one purchase for BG/NBD, whose model is of visits. */
#include "ml/clvsum.h"

#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

static int is_purchase(const pulse_txstore_t *st, uint32_t k)
{
    return st->tx_amount[k] >= 0 && (st->tx_flags == NULL || (st->tx_flags[k] & PULSE_TX_RETURN) == 0);
}

void pulse_clvsum_build(const pulse_txstore_t *st, pulse_clvsum_t *out)
{
    pulse_clvsum_build_before(st, st->ntx > 0 && st->finished ? st->tx_max_day + 1 : 0, out);
}

void pulse_clvsum_build_before(const pulse_txstore_t *st, int32_t end_day, pulse_clvsum_t *out)
{
    memset(out, 0, sizeof(*out));
    uint32_t nc = pulse_txstore_ncustomers(st);
    size_t cap = (size_t)nc + 1;
    out->customer = pulse_xmalloc(cap * sizeof(uint32_t));
    out->x = pulse_xmalloc(cap * sizeof(double));
    out->t_x = pulse_xmalloc(cap * sizeof(double));
    out->T = pulse_xmalloc(cap * sizeof(double));
    out->zbar = pulse_xmalloc(cap * sizeof(double));
    if (st->ntx == 0 || !st->finished)
        return;
    out->end_day = end_day;
    for (uint32_t c = 0; c < nc; c++) {
        int32_t first = 0, last = 0;
        size_t days = 0;
        double repeat_spend = 0;
        for (uint32_t k = st->tx_first[c]; k < st->tx_first[c + 1]; k++) {
            if (!is_purchase(st, k))
                continue;
            int32_t d = st->tx_day[k];
            if (d >= end_day)
                break; /* rows are in day order */
            if (days == 0)
                first = d;
            if (days == 0 || d != last)
                days++;
            last = d;
            if (d != first)
                repeat_spend += st->tx_amount[k];
        }
        if (days == 0)
            continue;
        size_t i = out->n++;
        out->customer[i] = c;
        out->x[i] = (double)(days - 1);
        out->t_x[i] = (double)(last - first);
        out->T[i] = (double)(out->end_day - first);
        out->zbar[i] = days > 1 ? repeat_spend / (double)(days - 1) : 0;
    }
}

void pulse_clvsum_window(const pulse_txstore_t *st, uint32_t c, int32_t from, int32_t to, double *purchase_days, double *spend)
{
    *purchase_days = 0;
    *spend = 0;
    int32_t last = 0;
    for (uint32_t k = st->tx_first[c]; k < st->tx_first[c + 1]; k++) {
        int32_t d = st->tx_day[k];
        if (d < from || !is_purchase(st, k))
            continue;
        if (d >= to)
            break;
        if (*purchase_days == 0 || d != last)
            *purchase_days += 1;
        last = d;
        *spend += st->tx_amount[k];
    }
}

void pulse_clvsum_free(pulse_clvsum_t *s)
{
    free(s->customer), free(s->x), free(s->t_x), free(s->T), free(s->zbar);
    memset(s, 0, sizeof(*s));
}
