/* multipart/form-data splitting: see multipart.h. */
#include "ingest/multipart.h"
#include "core/buf.h"

#include <string.h>
#include <strings.h>

#define VALUE_CAP (2 * PULSE_MULTIPART_MAX_HEADER + 1) /* ISO-8859-1 filename* may double in UTF-8 */

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char **s, const char **e)
{
    while (*s < *e && is_ws(**s))
        (*s)++;
    while (*e > *s && is_ws((*e)[-1]))
        (*e)--;
}

/* Reads the next ";"-separated parameter of a header value at *pp: its key, and its value (a
 * token, or a quoted-string with \" and \\ unescaped; other backslashes are kept, as browsers send
 * Windows paths unescaped) copied into val. Returns 1 when one was read, 0 at the end. */
static int next_param(const char **pp, const char *end, const char **key, size_t *klen, char *val, size_t cap, size_t *vlen)
{
    const char *p = *pp;
    for (;;) {
        while (p < end && (is_ws(*p) || *p == ';'))
            p++;
        if (p >= end) {
            *pp = p;
            return 0;
        }
        const char *k = p;
        while (p < end && *p != '=' && *p != ';')
            p++;
        const char *ke = p;
        trim(&k, &ke);
        if (p >= end || *p == ';' || ke == k) {
            if (p < end && *p == '=')
                p++;  /* "=value" with no key: step over the '=', or this loops forever */
            continue; /* a bare token (the disposition type) or junk: skip */
        }
        p++; /* '=' */
        while (p < end && is_ws(*p))
            p++;
        size_t n = 0;
        if (p < end && *p == '"') {
            p++;
            while (p < end && *p != '"') {
                if (*p == '\\' && p + 1 < end && (p[1] == '"' || p[1] == '\\'))
                    p++;
                if (n + 1 < cap)
                    val[n++] = *p;
                p++;
            }
            if (p < end)
                p++; /* closing quote */
            while (p < end && *p != ';')
                p++;
        } else {
            const char *v = p;
            while (p < end && *p != ';')
                p++;
            const char *ve = p;
            trim(&v, &ve);
            n = (size_t)(ve - v) < cap - 1 ? (size_t)(ve - v) : cap - 1;
            memcpy(val, v, n);
        }
        val[n] = '\0';
        *key = k;
        *klen = (size_t)(ke - k);
        *vlen = n;
        *pp = p;
        return 1;
    }
}

static int key_is(const char *k, size_t klen, const char *want)
{
    return strlen(want) == klen && strncasecmp(k, want, klen) == 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* RFC 5987 ext-value (charset'lang'pct-encoded) decoded in place into UTF-8. Returns 0, or -1
 * when it is not an ext-value. ISO-8859-1 is converted; other charsets are taken as UTF-8. */
static int decode_ext_value(char *v, size_t cap)
{
    char *q1 = strchr(v, '\'');
    char *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
    if (q2 == NULL)
        return -1;
    int latin1 = (size_t)(q1 - v) == 10 && strncasecmp(v, "iso-8859-1", 10) == 0;
    char tmp[VALUE_CAP];
    size_t n = 0;
    for (const char *s = q2 + 1; *s && n + 2 < sizeof(tmp); s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
            c = (unsigned char)(hexval(s[1]) * 16 + hexval(s[2]));
            s += 2;
        }
        if (latin1 && c >= 0x80) {
            tmp[n++] = (char)(0xC0 | (c >> 6));
            tmp[n++] = (char)(0x80 | (c & 0x3F));
        } else {
            tmp[n++] = (char)c;
        }
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(v, tmp, n);
    v[n] = '\0';
    return 0;
}

/* RFC 7578 4.2: directory information in a filename is not to be used. */
static const char *basename_of(const char *s)
{
    const char *b = s;
    for (const char *p = s; *p; p++)
        if (*p == '/' || *p == '\\')
            b = p + 1;
    return b;
}

int pulse_multipart_boundary(const char *ct, size_t ctlen, char *out, size_t cap, char *err, size_t errlen)
{
    const char *end = ct + ctlen;
    const char *p = ct;
    while (p < end && is_ws(*p))
        p++;
    if ((size_t)(end - p) < 10 || strncasecmp(p, "multipart/", 10) != 0)
        return pulse_fail(err, errlen, "the content type is not multipart/form-data");
    p = memchr(p, ';', (size_t)(end - p));
    if (p == NULL)
        return pulse_fail(err, errlen, "missing boundary in the content type");
    const char *key;
    size_t klen, vlen;
    char val[VALUE_CAP];
    while (next_param(&p, end, &key, &klen, val, sizeof(val), &vlen)) {
        if (!key_is(key, klen, "boundary"))
            continue;
        if (vlen == 0 || vlen > PULSE_MULTIPART_MAX_BOUNDARY || vlen + 1 > cap || memchr(val, '\0', vlen) ||
            memchr(val, '\r', vlen) || memchr(val, '\n', vlen))
            return pulse_fail(err, errlen, "invalid boundary in the content type (1 to 70 characters)");
        memcpy(out, val, vlen + 1);
        return (int)vlen;
    }
    return pulse_fail(err, errlen, "missing boundary in the content type");
}

/* 1 when what follows a boundary at body[after] makes it a delimiter: "--", or transport
 * padding and CRLF. */
static int delim_tail_ok(const char *body, size_t len, size_t after)
{
    if (after + 2 <= len && body[after] == '-' && body[after + 1] == '-')
        return 1;
    while (after < len && is_ws(body[after]))
        after++;
    return after + 2 <= len && body[after] == '\r' && body[after + 1] == '\n';
}

/* The next delimiter ("\r\n--" boundary, followed as delim_tail_ok says) at or after from, or
 * -1. The boundary text inside data not followed that way is data. */
static long find_delim(const char *body, size_t len, size_t from, const char *delim, size_t dlen)
{
    while (from < len) {
        const char *q = memmem(body + from, len - from, delim, dlen);
        if (q == NULL)
            return -1;
        if (delim_tail_ok(body, len, (size_t)(q - body) + dlen))
            return q - body;
        from = (size_t)(q - body) + 1;
    }
    return -1;
}

int pulse_multipart_parse(const char *body, size_t len, const char *boundary, size_t blen, pulse_multipart_cb cb, void *ud,
                          char *err, size_t errlen)
{
    if (blen == 0 || blen > PULSE_MULTIPART_MAX_BOUNDARY)
        return pulse_fail(err, errlen, "invalid boundary (1 to 70 characters)");
    char delim[4 + PULSE_MULTIPART_MAX_BOUNDARY];
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, boundary, blen);
    size_t dlen = 4 + blen;

    /* the first delimiter may open the body without the CRLF (no preamble) */
    size_t pos;
    if (len >= dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0 && delim_tail_ok(body, len, dlen - 2))
        pos = dlen - 2;
    else {
        long d = find_delim(body, len, 0, delim, dlen);
        if (d < 0)
            return pulse_fail(err, errlen, "no multipart boundary delimiter in the body");
        pos = (size_t)d + dlen;
    }

    char name[VALUE_CAP], filename[VALUE_CAP], filename_star[VALUE_CAP], ctype[VALUE_CAP];
    for (size_t index = 0;; index++) {
        /* pos is just after a delimiter, which find_delim checked */
        if (pos + 2 <= len && body[pos] == '-' && body[pos + 1] == '-')
            return 0; /* closing delimiter; the epilogue is ignored */
        if (index >= PULSE_MULTIPART_MAX_PARTS)
            return pulse_fail(err, errlen, "more than %d parts", PULSE_MULTIPART_MAX_PARTS);
        while (pos < len && is_ws(body[pos]))
            pos++;
        pos += 2; /* CRLF */

        pulse_multipart_part_t part = {0};
        int has_filename = 0, has_star = 0;
        name[0] = filename[0] = filename_star[0] = ctype[0] = '\0';
        for (int nlines = 0;; nlines++) {
            size_t avail = len - pos;
            size_t scan = avail < PULSE_MULTIPART_MAX_HEADER + 2 ? avail : PULSE_MULTIPART_MAX_HEADER + 2;
            const char *eol = memmem(body + pos, scan, "\r\n", 2);
            if (eol == NULL)
                return scan == avail ? pulse_fail(err, errlen, "part %zu: unterminated header", index + 1)
                                     : pulse_fail(err, errlen, "part %zu: header line longer than %d bytes", index + 1,
                                                  PULSE_MULTIPART_MAX_HEADER);
            const char *line = body + pos, *lend = eol;
            pos = (size_t)(eol - body) + 2;
            if (line == lend)
                break;
            if (nlines >= PULSE_MULTIPART_MAX_HEADERS)
                return pulse_fail(err, errlen, "part %zu: more than %d header lines", index + 1, PULSE_MULTIPART_MAX_HEADERS);
            const char *colon = memchr(line, ':', (size_t)(lend - line));
            if (colon == NULL)
                return pulse_fail(err, errlen, "part %zu: malformed header line", index + 1);
            const char *hn = line, *hne = colon, *v = colon + 1, *ve = lend;
            trim(&hn, &hne);
            trim(&v, &ve);
            const char *key;
            size_t klen, vlen;
            char val[VALUE_CAP];
            if (key_is(hn, (size_t)(hne - hn), "content-disposition")) {
                part.has_disposition = 1;
                const char *p = v;
                while (next_param(&p, ve, &key, &klen, val, sizeof(val), &vlen)) {
                    if (key_is(key, klen, "name")) {
                        memcpy(name, val, vlen + 1);
                    } else if (key_is(key, klen, "filename")) {
                        memcpy(filename, val, vlen + 1);
                        has_filename = 1;
                    } else if (key_is(key, klen, "filename*") && decode_ext_value(val, sizeof(val)) == 0) {
                        memcpy(filename_star, val, strlen(val) + 1);
                        has_star = 1;
                    }
                }
            } else if (key_is(hn, (size_t)(hne - hn), "content-type")) {
                size_t n = (size_t)(ve - v);
                memcpy(ctype, v, n);
                ctype[n] = '\0';
            }
        }

        long d = find_delim(body, len, pos >= 2 ? pos - 2 : 0, delim, dlen);
        /* an empty body: the delimiter's CRLF is the header block's last one */
        if (d >= 0 && (size_t)d + 2 == pos) {
            part.data = body + pos;
            part.len = 0;
        } else {
            d = find_delim(body, len, pos, delim, dlen);
            if (d < 0)
                return pulse_fail(err, errlen, "part %zu: no closing boundary delimiter", index + 1);
            part.data = body + pos;
            part.len = (size_t)d - pos;
        }
        part.name = name;
        part.filename = has_star ? basename_of(filename_star) : has_filename ? basename_of(filename) : NULL;
        part.content_type = ctype;
        int rc = cb(ud, index, &part);
        if (rc != 0)
            return rc;
        pos = (size_t)d + dlen;
    }
}
