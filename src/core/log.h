/* Structured logs: one JSON object per line on stderr, written with a single write(2) so lines
 * from different threads never interleave. Secrets are never passed here. */
#ifndef PULSE_CORE_LOG_H
#define PULSE_CORE_LOG_H

#include <stddef.h>

typedef enum { PULSE_LOG_DEBUG, PULSE_LOG_INFO, PULSE_LOG_WARN, PULSE_LOG_ERROR } pulse_log_level_t;

/* Sets the minimum level written ("debug", "info", "warn", "error"); returns -1 if unknown. */
int pulse_log_set_level(const char *name);
int pulse_log_enabled(pulse_log_level_t level);
/* {"ts":..,"level":..,"event":event,"msg":formatted} */
void pulse_log(pulse_log_level_t level, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Writes a complete, already formatted chunk of log lines (each ending in '\n'). */
void pulse_log_write(const char *lines, size_t len);
/* Appends the current UTC time as ISO 8601 with milliseconds (no quotes). */
struct pulse_buf_t;
void pulse_log_timestamp(struct pulse_buf_t *b);

#endif
