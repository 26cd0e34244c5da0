/* Byte encoding of the model formats (see bytes.h). */
#include "ml/bytes.h"

#include <string.h>

void pulse_ml_put_u8(pulse_buf_t *b, uint8_t v)
{
    pulse_buf_append(b, &v, 1);
}

void pulse_ml_put_u32(pulse_buf_t *b, uint32_t v)
{
    unsigned char t[4];
    for (int i = 0; i < 4; i++)
        t[i] = (unsigned char)(v >> (8 * i));
    pulse_buf_append(b, t, 4);
}

void pulse_ml_put_u64(pulse_buf_t *b, uint64_t v)
{
    unsigned char t[8];
    for (int i = 0; i < 8; i++)
        t[i] = (unsigned char)(v >> (8 * i));
    pulse_buf_append(b, t, 8);
}

void pulse_ml_put_f64(pulse_buf_t *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    pulse_ml_put_u64(b, u);
}

void pulse_ml_put_str(pulse_buf_t *b, const char *s, size_t n)
{
    pulse_ml_put_u32(b, (uint32_t)n);
    if (n > 0)
        pulse_buf_append(b, s, n);
}

void pulse_ml_reader_init(pulse_ml_reader_t *r, const unsigned char *p, size_t len)
{
    r->p = p;
    r->left = len;
    r->failed = 0;
}

static int need(pulse_ml_reader_t *r, size_t n)
{
    if (r->failed || r->left < n) {
        r->failed = 1;
        return -1;
    }
    return 0;
}

int pulse_ml_get_u8(pulse_ml_reader_t *r, uint8_t *v)
{
    if (need(r, 1) != 0)
        return -1;
    *v = r->p[0];
    r->p++;
    r->left--;
    return 0;
}

int pulse_ml_get_u32(pulse_ml_reader_t *r, uint32_t *v)
{
    if (need(r, 4) != 0)
        return -1;
    uint32_t x = 0;
    for (int i = 0; i < 4; i++)
        x |= (uint32_t)r->p[i] << (8 * i);
    *v = x;
    r->p += 4;
    r->left -= 4;
    return 0;
}

int pulse_ml_get_u64(pulse_ml_reader_t *r, uint64_t *v)
{
    if (need(r, 8) != 0)
        return -1;
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x |= (uint64_t)r->p[i] << (8 * i);
    *v = x;
    r->p += 8;
    r->left -= 8;
    return 0;
}

int pulse_ml_get_f64(pulse_ml_reader_t *r, double *v)
{
    uint64_t u;
    if (pulse_ml_get_u64(r, &u) != 0)
        return -1;
    memcpy(v, &u, 8);
    return 0;
}

int pulse_ml_get_str(pulse_ml_reader_t *r, size_t max, const char **out, size_t *n)
{
    uint32_t len;
    if (pulse_ml_get_u32(r, &len) != 0)
        return -1;
    if (len > max) {
        r->failed = 1;
        return -1;
    }
    const unsigned char *p;
    if (pulse_ml_get_bytes(r, len, &p) != 0)
        return -1;
    *out = (const char *)p;
    *n = len;
    return 0;
}

int pulse_ml_get_bytes(pulse_ml_reader_t *r, size_t n, const unsigned char **out)
{
    if (need(r, n) != 0)
        return -1;
    *out = r->p;
    r->p += n;
    r->left -= n;
    return 0;
}

uint32_t pulse_ml_crc32(uint32_t crc, const void *p, size_t n)
{
    /* Bitwise with a 16-entry table: models are kilobytes, this is not a hot path, and it keeps
     * the loader free of zlib so the fuzz target links on its own. */
    static const uint32_t tab[16] = {0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
                                     0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
                                     0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c};
    const unsigned char *s = p;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= s[i];
        crc = (crc >> 4) ^ tab[crc & 15];
        crc = (crc >> 4) ^ tab[crc & 15];
    }
    return ~crc;
}
