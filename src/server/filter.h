/* The response filter for answers the Lua application did not make: static files and the
 * errors h2o produces itself (a body past the transport cap, a POST to a static file...). They
 * get the same request id and access-log line as API answers, and errors get the
 * application/problem+json shape instead of h2o's plain text. */
#ifndef PULSE_SERVER_FILTER_H
#define PULSE_SERVER_FILTER_H

#include <h2o.h>

/* Registers the filter on pathconf; call before other filters (compression) are registered. */
void pulse_filter_register(h2o_pathconf_t *pathconf);

#endif
