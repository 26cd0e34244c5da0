/* Reason sentences (see reason_text.h). */
#include "ml/reason_text.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define ANALYTICS_PREFIX "analytics."

/* The feature's name without the prefix stored features carry. */
static const char *plain(const char *name)
{
    size_t n = strlen(ANALYTICS_PREFIX);
    return strncmp(name, ANALYTICS_PREFIX, n) == 0 ? name + n : name;
}

/* Index of a feature by plain name, or n_features when the model lacks it. */
static size_t index_of(const pulse_ml_model_t *m, const char *name)
{
    size_t j = 0;
    while (j < m->n_features && strcmp(plain(m->features[j].name), name) != 0)
        j++;
    return j;
}

/* The feature the recency sentence compares with ("than usual"). */
#define USUAL_GAP "interpurchase_mean"

/* Value of another feature of the same row by plain name, NaN when the model lacks it. */
static double other(const pulse_ml_model_t *m, const float *row, const char *name)
{
    size_t j = index_of(m, name);
    return j < m->n_features ? row[j] : NAN;
}

size_t pulse_ml_reason_context(const pulse_ml_model_t *m, size_t j, size_t *out)
{
    if (j >= m->n_features || m->features[j].categorical || strcmp(plain(m->features[j].name), "recency_days") != 0)
        return 0;
    size_t k = index_of(m, USUAL_GAP);
    if (k >= m->n_features)
        return 0;
    out[0] = k;
    return 1;
}

/* A count or day figure: "1", "140"; other numbers with up to 4 significant digits. */
static void figure(double v, char *out, size_t outlen)
{
    if (fabs(v - round(v)) < 1e-9 && fabs(v) < 1e15)
        snprintf(out, outlen, "%.0f", v);
    else
        snprintf(out, outlen, "%.4g", v);
}

static void money(double v, char *out, size_t outlen)
{
    snprintf(out, outlen, "%.2f", v);
}

static void percent(double v, char *out, size_t outlen)
{
    snprintf(out, outlen, "%.0f%%", fabs(v) * 100.0 < 0.5 ? 0.0 : v * 100.0);
}

static void recency_words(const pulse_ml_model_t *m, const float *row, double v, char *out, size_t outlen)
{
    double usual = other(m, row, USUAL_GAP);
    if (isfinite(usual) && usual >= 1 && v >= 1.5 * usual)
        snprintf(out, outlen, "no purchase for %.0f days, %.1f× longer than usual", v, v / usual);
    else if (isfinite(usual) && usual >= 1 && v <= 0.5 * usual)
        snprintf(out, outlen, "bought %.0f days ago, sooner than their usual %.0f days", v, usual);
    else
        snprintf(out, outlen, "last purchase %.0f days ago", v);
}

static void trend_words(double v, char *out, size_t outlen)
{
    char pct[32];
    percent(fabs(v), pct, sizeof(pct));
    if (fabs(v) < 0.005)
        snprintf(out, outlen, "as many purchase days in the last 90 days as in the 90 before");
    else
        snprintf(out, outlen, "purchase days %s %s in the last 90 days against the 90 before", v < 0 ? "down" : "up", pct);
}

/* How a value is written into a template's %s. */
typedef enum { AS_COUNT, AS_MONEY, AS_PERCENT } shape_t;

/* The plain phrasings: one value into one sentence. */
static const struct {
    const char *name, *words;
    shape_t shape;
} PLAIN[] = {
    {"monetary", "spent %s in all (net of returns)", AS_MONEY},
    {"avg_basket", "an average basket of %s", AS_MONEY},
    {"unique_products", "%s different products bought", AS_COUNT},
    {"unique_categories", "bought in %s product categories", AS_COUNT},
    {"interpurchase_mean", "buys every %s days on average", AS_COUNT},
    {"span_days", "bought over %s days, first to last purchase", AS_COUNT},
    {"tenure_days", "a customer for %s days", AS_COUNT},
    {"return_rate", "returns %s of purchases", AS_PERCENT},
    {"discount_share", "%s of purchases with a discount", AS_PERCENT},
    {"active_days_30", "%s purchase days in the last 30 days", AS_COUNT},
    {"active_days_60", "%s purchase days in the last 60 days", AS_COUNT},
    {"active_days_90", "%s purchase days in the last 90 days", AS_COUNT},
    {"active_days_prev90", "%s purchase days in the 90 days before the last 90", AS_COUNT},
    {"quantity", "%s units bought", AS_COUNT},
};

static int plain_words(const char *name, double v, char *out, size_t outlen)
{
    for (size_t k = 0; k < sizeof(PLAIN) / sizeof(PLAIN[0]); k++) {
        if (strcmp(name, PLAIN[k].name) != 0)
            continue;
        char a[48];
        if (PLAIN[k].shape == AS_MONEY)
            money(v, a, sizeof(a));
        else if (PLAIN[k].shape == AS_PERCENT)
            percent(v, a, sizeof(a));
        else
            snprintf(a, sizeof(a), "%.0f", v);
        snprintf(out, outlen, PLAIN[k].words, a);
        return 1;
    }
    return 0;
}

/* Phrasing of the features Pulse computes (src/analytics/features.c); 0 if name is not one. */
static int known_words(const pulse_ml_model_t *m, const float *row, const char *name, double v, char *out, size_t outlen)
{
    if (strcmp(name, "recency_days") == 0)
        recency_words(m, row, v, out, outlen);
    else if (strcmp(name, "days_overdue") == 0 && v > 0)
        snprintf(out, outlen, "%.0f days past their usual next purchase", v);
    else if (strcmp(name, "days_overdue") == 0)
        snprintf(out, outlen, "not yet due for their next purchase");
    else if (strcmp(name, "trend_90") == 0)
        trend_words(v, out, outlen);
    else if (strcmp(name, "frequency") == 0 && v == 1)
        snprintf(out, outlen, "a single purchase day");
    else if (strcmp(name, "frequency") == 0)
        snprintf(out, outlen, "%.0f purchase days", v);
    else
        return plain_words(name, v, out, outlen);
    return 1;
}

/* "MonthlyCharges" -> "Monthly charges", "payment_delays_180d" -> "Payment delays 180d". */
static void humanize(const char *name, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; name[i] && o + 2 < outlen; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '_' || c == '.' || c == '-') {
            if (o > 0 && out[o - 1] != ' ')
                out[o++] = ' ';
            continue;
        }
        int word_start = i > 0 && isupper(c) && islower((unsigned char)name[i - 1]);
        if (word_start && out[o - 1] != ' ')
            out[o++] = ' ';
        char ch = (char)(o == 0 ? toupper(c) : word_start ? tolower(c) : c);
        out[o++] = ch;
    }
    out[o] = '\0';
}

int pulse_ml_level_index(const pulse_ml_feature_t *f, double x)
{
    /* compared as a double first: converting a value out of int's range is undefined */
    return f->levels != NULL && x >= 0 && x < (double)f->n_levels ? (int)x : -1;
}

void pulse_ml_reason_text(const pulse_ml_model_t *m, const float *row, size_t j, double effect, char *out, size_t outlen)
{
    const pulse_ml_feature_t *f = &m->features[j];
    const char *name = plain(f->name);
    double v = row[j];
    char phrase[256], label[128], val[64];
    if (isnan(v) || !(f->categorical || known_words(m, row, name, v, phrase, sizeof(phrase)))) {
        humanize(name, label, sizeof(label));
        if (isnan(v))
            snprintf(val, sizeof(val), "not known");
        else
            figure(v, val, sizeof(val));
        snprintf(phrase, sizeof(phrase), "%s: %s", label, val);
    } else if (f->categorical) {
        humanize(name, label, sizeof(label));
        int level = pulse_ml_level_index(f, v);
        snprintf(phrase, sizeof(phrase), "%s: %s", label, level >= 0 ? f->levels[level] : "another value");
    }
    int n = snprintf(out, outlen, "%s — %s the risk", phrase, effect > 0 ? "raises" : "lowers");
    if (n >= 0 && (size_t)n >= outlen && outlen > 1) { /* cut: never in the middle of a UTF-8 character */
        size_t end = outlen - 1, lead = end - 1;
        while (lead > 0 && ((unsigned char)out[lead] & 0xC0) == 0x80)
            lead--;
        unsigned char c = (unsigned char)out[lead];
        size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (lead + len > end)
            out[lead] = '\0';
    }
}
