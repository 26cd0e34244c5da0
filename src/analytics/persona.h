/* Cluster personas: a plain-English label ("frequent high spenders, recently active") and a
 * recommended retention action for each cluster, read from its centroid's z-scores against the
 * overall mean. Knows the usual customer features by name (recency, frequency, monetary, tenure,
 * basket, returns, trend) and says "high <name>" for the others; labels are unique in a result. */
#ifndef PULSE_ANALYTICS_PERSONA_H
#define PULSE_ANALYTICS_PERSONA_H

#include <stddef.h>

#include "analytics/cluster.h"

/* centroids_z: k*d standardised centroids (0 = the overall mean); names: d feature names;
 * sizes: k cluster sizes (tie-breaking only, may be NULL). Fills out[0..k-1]. */
void pulse_cluster_persona(const double *centroids_z, size_t k, size_t d, const char *const *names, const size_t *sizes,
                           pulse_cluster_persona_t *out);

#endif
