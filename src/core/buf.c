/* Growable byte buffer and aborting allocators. */
#include "core/buf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pulse_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

void *pulse_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "pulse: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return p;
}

void *pulse_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        fprintf(stderr, "pulse: out of memory reallocating %zu bytes\n", n);
        abort();
    }
    return q;
}

char *pulse_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(pulse_xmalloc(n), s, n);
}

void pulse_buf_reserve(pulse_buf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = pulse_xrealloc(b->data, cap);
    b->cap = cap;
}

void pulse_buf_append(pulse_buf_t *b, const void *p, size_t n)
{
    pulse_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void pulse_buf_putc(pulse_buf_t *b, char c)
{
    pulse_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void pulse_buf_puts(pulse_buf_t *b, const char *s)
{
    pulse_buf_append(b, s, strlen(s));
}

void pulse_buf_vprintf(pulse_buf_t *b, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    pulse_buf_reserve(b, 64);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    if (n >= 0 && (size_t)n >= b->cap - b->len) {
        pulse_buf_reserve(b, (size_t)n);
        n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, copy);
    }
    va_end(copy);
    if (n > 0)
        b->len += (size_t)n;
}

void pulse_buf_printf(pulse_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pulse_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void pulse_buf_json_number(pulse_buf_t *b, double v)
{
    if (isfinite(v))
        pulse_buf_printf(b, "%.10g", v);
    else
        pulse_buf_puts(b, "null");
}

void pulse_buf_json_escape(pulse_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    pulse_buf_reserve(b, n + 2);
    size_t run = 0; /* start of the pending run of bytes that need no escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        pulse_buf_append(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            pulse_buf_append(b, "\\\"", 2);
            break;
        case '\\':
            pulse_buf_append(b, "\\\\", 2);
            break;
        case '\n':
            pulse_buf_append(b, "\\n", 2);
            break;
        case '\r':
            pulse_buf_append(b, "\\r", 2);
            break;
        case '\t':
            pulse_buf_append(b, "\\t", 2);
            break;
        case '\b':
            pulse_buf_append(b, "\\b", 2);
            break;
        case '\f':
            pulse_buf_append(b, "\\f", 2);
            break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            pulse_buf_append(b, u, 6);
        }
        }
    }
    pulse_buf_append(b, s + run, n - run);
}

void pulse_buf_put_uint(pulse_buf_t *b, uint64_t v)
{
    char tmp[24], *p = tmp + sizeof(tmp);
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    pulse_buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

void pulse_buf_reset(pulse_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void pulse_buf_free(pulse_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
