/* multipart/form-data bodies (RFC 7578 over RFC 2046) for uploads: the boundary from the
 * Content-Type, then one callback per part with its Content-Disposition name/filename and its
 * Content-Type. Part bodies are not copied (they point into the request body, binary-safe); only
 * the small decoded header values are. CRLF line endings; preamble and epilogue are ignored.
 * Refuses: a missing boundary, no closing delimiter, a header line over the limit, too many parts. */
#ifndef PULSE_INGEST_MULTIPART_H
#define PULSE_INGEST_MULTIPART_H

#include <stddef.h>

#define PULSE_MULTIPART_MAX_BOUNDARY 70 /* RFC 2046 */
#define PULSE_MULTIPART_MAX_HEADER 1024 /* one header line of a part, CRLF excluded */
#define PULSE_MULTIPART_MAX_HEADERS 16  /* header lines per part */
#define PULSE_MULTIPART_MAX_PARTS 100

typedef struct pulse_multipart_part_t {
    const char *data; /* the part's body, inside the input; not NUL-terminated */
    size_t len;
    /* Decoded, NUL-terminated; valid during the callback only. */
    const char *name;         /* Content-Disposition name; "" when missing */
    const char *filename;     /* filename* (RFC 5987, UTF-8 or ISO-8859-1) or filename, directory
                                 path removed; NULL when the part has neither (a plain field) */
    const char *content_type; /* the part's Content-Type, trimmed; "" when missing */
    int has_disposition;      /* a Content-Disposition header was present */
} pulse_multipart_part_t;

/* Called once per part, in order (index from 0). Return 0 to continue, non-zero to stop
 * (pulse_multipart_parse then returns that value). */
typedef int (*pulse_multipart_cb)(void *ud, size_t index, const pulse_multipart_part_t *part);

/* Copies the boundary parameter of a Content-Type value (quoted or not; the type must be
 * multipart/...) into out (NUL-terminated; cap >= PULSE_MULTIPART_MAX_BOUNDARY + 1).
 * Returns its length, or -1 with a message in err. */
int pulse_multipart_boundary(const char *content_type, size_t ctlen, char *out, size_t cap, char *err, size_t errlen);

/* Splits body[0..len) on the boundary and calls cb per part. Returns 0 when the closing delimiter
 * was reached, the callback's non-zero value if it stopped, or -1 with a message in err. */
int pulse_multipart_parse(const char *body, size_t len, const char *boundary, size_t blen, pulse_multipart_cb cb, void *ud,
                          char *err, size_t errlen);

#endif
