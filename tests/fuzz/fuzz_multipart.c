/* libFuzzer target for src/ingest/multipart.c: the first byte sizes a boundary taken from the
 * input, the rest is the body. Every part must lie inside the body, and its decoded header values
 * must be NUL-terminated within the header limit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/multipart.h"

typedef struct {
    const char *body;
    size_t len;
} span_t;

static int check_part(void *ud, size_t index, const pulse_multipart_part_t *p)
{
    const span_t *s = ud;
    if (index >= PULSE_MULTIPART_MAX_PARTS || p->data < s->body || p->len > s->len || (size_t)(p->data - s->body) > s->len - p->len)
        abort();
    if (strlen(p->name) > 2 * PULSE_MULTIPART_MAX_HEADER || strlen(p->content_type) > PULSE_MULTIPART_MAX_HEADER ||
        (p->filename && strlen(p->filename) > 2 * PULSE_MULTIPART_MAX_HEADER))
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t blen = data[0] % 8 + 1;
    data++, size--;
    if (blen > size)
        return 0;
    char boundary[PULSE_MULTIPART_MAX_BOUNDARY + 1], err[256];
    memcpy(boundary, data, blen);
    boundary[blen] = '\0';
    /* the body as its own allocation so ASan catches any read past it */
    size_t len = size - blen;
    char *body = malloc(len ? len : 1);
    memcpy(body, data + blen, len);
    span_t s = {body, len};
    pulse_multipart_parse(body, len, boundary, blen, check_part, &s, err, sizeof(err));

    /* the Content-Type parameter parser over the same bytes */
    char ct[PULSE_MULTIPART_MAX_BOUNDARY + 1];
    int n = pulse_multipart_boundary(body, len, ct, sizeof(ct), err, sizeof(err));
    if (n > PULSE_MULTIPART_MAX_BOUNDARY || (n >= 0 && strlen(ct) != (size_t)n))
        abort();
    free(body);
    return 0;
}
