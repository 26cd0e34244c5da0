/* Cluster personas (see persona.h). */
#include "analytics/persona.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

#define MENTION_Z 0.4 /* below this a centroid is "about average" on that feature */
#define MAX_MENTIONS 4

typedef enum { K_RECENCY, K_FREQUENCY, K_MONETARY, K_TENURE, K_BASKET, K_RETURNS, K_TREND, K_OTHER } kind_t;

/* Where the phrase goes: before the noun ("frequent"), as the noun ("high spenders"), or after it
 * (", recently active"). */
typedef enum { P_ADJ, P_NOUN, P_TAIL } place_t;

/* Name fragments, first match wins: "avg_order_value" is a basket before it is a value. */
static const struct {
    const char *frag;
    kind_t kind;
} known[] = {
    {"recency", K_RECENCY},     {"days_since_last", K_RECENCY}, {"since_last", K_RECENCY},  {"last_seen", K_RECENCY},
    {"inactive", K_RECENCY},    {"basket", K_BASKET},           {"aov", K_BASKET},          {"order_value", K_BASKET},
    {"return", K_RETURNS},      {"refund", K_RETURNS},          {"trend", K_TREND},         {"growth", K_TREND},
    {"tenure", K_TENURE},       {"since_first", K_TENURE},      {"customer_age", K_TENURE}, {"frequency", K_FREQUENCY},
    {"freq", K_FREQUENCY},      {"orders", K_FREQUENCY},        {"visits", K_FREQUENCY},    {"transactions", K_FREQUENCY},
    {"purchases", K_FREQUENCY}, {"monetary", K_MONETARY},       {"spend", K_MONETARY},      {"revenue", K_MONETARY},
    {"amount", K_MONETARY},     {"sales", K_MONETARY},          {"value", K_MONETARY},      {"ltv", K_MONETARY},
    {"clv", K_MONETARY},
};

static kind_t kind_of(const char *name)
{
    char low[96];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof(low); i++)
        low[i] = (char)tolower((unsigned char)name[i]);
    low[i] = '\0';
    for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
        if (strstr(low, known[k].frag) != NULL)
            return known[k].kind;
    return K_OTHER;
}

/* "support_tickets" -> "support tickets" */
static void spaced(const char *name, char *out, size_t len)
{
    size_t i = 0;
    for (; name[i] && i + 1 < len; i++)
        out[i] = name[i] == '_' || name[i] == '-' ? ' ' : name[i];
    out[i] = '\0';
}

static place_t phrase(kind_t kind, const char *name, double z, char *out, size_t len)
{
    int up = z > 0;
    char sp[80];
    switch (kind) {
    case K_RECENCY:
        if (!up) {
            snprintf(out, len, "recently active");
            return P_TAIL;
        }
        if (z > 1.2) {
            snprintf(out, len, "inactive for a long time");
            return P_TAIL;
        }
        snprintf(out, len, "lapsed");
        return P_ADJ;
    case K_FREQUENCY:
        snprintf(out, len, up ? "frequent" : "occasional");
        return P_ADJ;
    case K_MONETARY:
        snprintf(out, len, up ? "high spenders" : "low spenders");
        return P_NOUN;
    case K_TENURE:
        snprintf(out, len, up ? "long-standing" : "new");
        return P_ADJ;
    case K_BASKET:
        snprintf(out, len, up ? "with big baskets" : "with small baskets");
        return P_TAIL;
    case K_RETURNS:
        snprintf(out, len, up ? "with many returns" : "with few returns");
        return P_TAIL;
    case K_TREND:
        snprintf(out, len, up ? "trending up" : "trending down");
        return P_TAIL;
    case K_OTHER:
        break;
    }
    spaced(name, sp, sizeof(sp));
    snprintf(out, len, "with %s %s", up ? "high" : "low", sp);
    return P_TAIL;
}

/* A comparison between two clusters that otherwise read the same. */
static void comparative(kind_t kind, const char *name, int more, char *out, size_t len)
{
    char sp[80];
    switch (kind) {
    case K_RECENCY:
        snprintf(out, len, more ? "less recently active" : "more recently active");
        return;
    case K_FREQUENCY:
        snprintf(out, len, more ? "more frequent" : "less frequent");
        return;
    case K_MONETARY:
        snprintf(out, len, more ? "higher spend" : "lower spend");
        return;
    case K_TENURE:
        snprintf(out, len, more ? "longer tenure" : "shorter tenure");
        return;
    case K_BASKET:
        snprintf(out, len, more ? "bigger baskets" : "smaller baskets");
        return;
    case K_RETURNS:
        snprintf(out, len, more ? "more returns" : "fewer returns");
        return;
    case K_TREND:
        snprintf(out, len, more ? "stronger trend" : "weaker trend");
        return;
    case K_OTHER:
        break;
    }
    spaced(name, sp, sizeof(sp));
    snprintf(out, len, "%s %s", more ? "higher" : "lower", sp);
}

static void append(char *dst, size_t len, const char *sep, const char *s)
{
    size_t n = strlen(dst);
    if (n < len)
        snprintf(dst + n, len - n, "%s%s", n ? sep : "", s);
}

static void label_of(const double *z, size_t d, const char *const *names, const kind_t *kinds, char *out, size_t len)
{
    size_t order[64], m = 0;
    for (size_t j = 0; j < d && m < 64; j++)
        if (fabs(z[j]) > MENTION_Z)
            order[m++] = j;
    for (size_t i = 1; i < m; i++) /* by |z|, strongest first; stable for equal values */
        for (size_t j = i; j > 0 && fabs(z[order[j]]) > fabs(z[order[j - 1]]); j--) {
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    if (m > MAX_MENTIONS)
        m = MAX_MENTIONS;
    if (m == 0) {
        snprintf(out, len, "typical customers");
        return;
    }
    char adj[192] = "", noun[96] = "", tail[192] = "", p[96];
    for (size_t i = 0; i < m; i++) {
        size_t j = order[i];
        place_t pl = phrase(kinds[j], names[j], z[j], p, sizeof(p));
        if (pl == P_NOUN && noun[0] == '\0')
            snprintf(noun, sizeof(noun), "%s", p);
        else if (pl == P_ADJ)
            append(adj, sizeof(adj), " ", p);
        else
            append(tail, sizeof(tail), ", ", p);
    }
    if (noun[0] == '\0')
        snprintf(noun, sizeof(noun), "customers");
    out[0] = '\0';
    append(out, len, " ", adj);
    append(out, len, " ", noun);
    if (tail[0])
        append(out, len, adj[0] || strcmp(noun, "customers") != 0 ? ", " : " ", tail);
}

static void action_of(const double *z, size_t d, const kind_t *kinds, char *out, size_t len)
{
    double value = 0, activity = 0, tenure = 0, returns = 0;
    int nv = 0, have_recency = 0;
    for (size_t j = 0; j < d; j++) {
        switch (kinds[j]) {
        case K_MONETARY:
        case K_FREQUENCY:
        case K_BASKET:
            value += z[j];
            nv++;
            break;
        case K_RECENCY:
            activity = -z[j];
            have_recency = 1;
            break;
        case K_TREND:
            if (!have_recency)
                activity = z[j];
            break;
        case K_TENURE:
            tenure = z[j];
            break;
        case K_RETURNS:
            returns = z[j];
            break;
        case K_OTHER:
            break;
        }
    }
    if (nv)
        value /= nv;
    const char *a;
    if (value > MENTION_Z && activity >= -MENTION_Z)
        a = "Reward and upsell: loyalty perks, early access, premium bundles";
    else if (value > MENTION_Z)
        a = "Win back now: personal outreach and a strong offer, they are worth it";
    else if (activity < -MENTION_Z && value < -MENTION_Z)
        a = "Low-cost win-back: an automated email with a small discount";
    else if (activity < -MENTION_Z)
        a = "Re-engage: a reminder campaign with a modest offer";
    else if (returns > 2 * MENTION_Z)
        a = "Review returns: better product information before offering discounts";
    else if (activity > MENTION_Z && tenure < -MENTION_Z)
        a = "Onboard: a welcome series and a nudge toward the next purchase";
    else if (activity > MENTION_Z)
        a = "Grow: cross-sell and a frequency incentive";
    else if (value < -MENTION_Z)
        a = "Nurture cheaply: content and low-cost offers";
    else
        a = "Keep engaged: regular newsletter, no discount needed";
    snprintf(out, len, "%s", a);
}

void pulse_cluster_persona(const double *centroids_z, size_t k, size_t d, const char *const *names, const size_t *sizes,
                           pulse_cluster_persona_t *out)
{
    kind_t *kinds = pulse_xmalloc((d ? d : 1) * sizeof(kind_t));
    for (size_t j = 0; j < d; j++)
        kinds[j] = kind_of(names[j]);
    for (size_t q = 0; q < k; q++) {
        label_of(centroids_z + q * d, d, names, kinds, out[q].label, sizeof(out[q].label));
        action_of(centroids_z + q * d, d, kinds, out[q].action, sizeof(out[q].action));
    }
    /* Two clusters that read the same are told apart by the feature on which they differ most,
     * compared with the group's mean; a few rounds cover groups of three or more. */
    char *done = pulse_xmalloc(k ? k : 1), *used = pulse_xmalloc(d ? d : 1);
    memset(used, 0, d);
    for (int round = 0; round < 4; round++) {
        int again = 0;
        memset(done, 0, k);
        for (size_t q = 0; q < k; q++) {
            if (done[q])
                continue;
            size_t group[64], g = 0;
            for (size_t p = q; p < k && g < 64; p++)
                if (strcmp(out[p].label, out[q].label) == 0)
                    group[g++] = p;
            for (size_t i = 0; i < g; i++)
                done[group[i]] = 1;
            if (g < 2)
                continue;
            again = 1;
            size_t best = 0;
            double spread = -1;
            for (size_t j = 0; j < d; j++) {
                if (used[j] && round < 3)
                    continue; /* a feature that already split a group would only repeat itself */
                double lo = INFINITY, hi = -INFINITY;
                for (size_t i = 0; i < g; i++) {
                    double v = centroids_z[group[i] * d + j];
                    lo = v < lo ? v : lo;
                    hi = v > hi ? v : hi;
                }
                if (hi - lo > spread) {
                    spread = hi - lo;
                    best = j;
                }
            }
            used[best] = 1;
            double mean = 0;
            for (size_t i = 0; i < g; i++)
                mean += centroids_z[group[i] * d + best];
            mean /= (double)g;
            for (size_t i = 0; i < g; i++) {
                char c[96], p[104];
                comparative(kinds[best], names[best], centroids_z[group[i] * d + best] > mean, c, sizeof(c));
                if (round == 3) /* still equal after three features: their sizes tell them apart */
                    snprintf(c, sizeof(c), "group of %zu", sizes ? sizes[group[i]] : group[i] + 1);
                snprintf(p, sizeof(p), " (%s)", c);
                append(out[group[i]].label, sizeof(out[group[i]].label), "", p);
            }
        }
        if (!again)
            break;
    }
    free(done);
    free(used);
    free(kinds);
}
