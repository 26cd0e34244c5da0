/* A growable byte buffer: the one string builder of the C core (JSON encoding, log lines,
 * SQL parameters). Out of memory aborts with a message, as everywhere in Pulse. */
#ifndef PULSE_CORE_BUF_H
#define PULSE_CORE_BUF_H

#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>

typedef struct pulse_buf_t {
    char *data; /* always NUL-terminated once anything was appended; owned by the buffer */
    size_t len;
    size_t cap;
} pulse_buf_t;

#define PULSE_BUF_INIT                                                                                                             \
    {                                                                                                                              \
        NULL, 0, 0                                                                                                                 \
    }

void pulse_buf_reserve(pulse_buf_t *b, size_t extra);
void pulse_buf_append(pulse_buf_t *b, const void *p, size_t n);
void pulse_buf_putc(pulse_buf_t *b, char c);
void pulse_buf_puts(pulse_buf_t *b, const char *s);
void pulse_buf_printf(pulse_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pulse_buf_vprintf(pulse_buf_t *b, const char *fmt, va_list ap);
/* Appends s as the inside of a JSON string (escapes quotes, backslashes, control bytes). */
void pulse_buf_json_escape(pulse_buf_t *b, const char *s, size_t n);
/* Appends v as a JSON number (10 significant digits), or null when it is not finite (JSON has no
 * NaN nor infinity). */
void pulse_buf_json_number(pulse_buf_t *b, double v);
/* Appends v in decimal (no printf: this is on the per-request path). */
void pulse_buf_put_uint(pulse_buf_t *b, uint64_t v);
void pulse_buf_reset(pulse_buf_t *b);
void pulse_buf_free(pulse_buf_t *b);

/* Formats a message into err (the error-message convention of the C core) and returns -1. */
int pulse_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Allocation that aborts on failure (with the size in the message). */
void *pulse_xmalloc(size_t n);
void *pulse_xrealloc(void *p, size_t n);
char *pulse_xstrdup(const char *s);

#endif
