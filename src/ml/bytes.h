/* Little-endian byte encoding shared by the model formats of src/ml/ (logistic regression,
 * calibration, the model container): a writer that grows a buffer and a reader that checks every
 * length against what is left, so a truncated or corrupted blob fails cleanly, plus CRC-32. */
#ifndef PULSE_ML_BYTES_H
#define PULSE_ML_BYTES_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

void pulse_ml_put_u8(pulse_buf_t *b, uint8_t v);
void pulse_ml_put_u32(pulse_buf_t *b, uint32_t v);
void pulse_ml_put_u64(pulse_buf_t *b, uint64_t v);
void pulse_ml_put_f64(pulse_buf_t *b, double v);
/* u32 length then the bytes. */
void pulse_ml_put_str(pulse_buf_t *b, const char *s, size_t n);

typedef struct pulse_ml_reader_t {
    const unsigned char *p;
    size_t left;
    int failed; /* sticky: once a read ran past the end every later read fails too */
} pulse_ml_reader_t;

void pulse_ml_reader_init(pulse_ml_reader_t *r, const unsigned char *p, size_t len);
/* Each returns 0, or -1 (and sets failed) when fewer bytes are left than the value needs. */
int pulse_ml_get_u8(pulse_ml_reader_t *r, uint8_t *v);
int pulse_ml_get_u32(pulse_ml_reader_t *r, uint32_t *v);
int pulse_ml_get_u64(pulse_ml_reader_t *r, uint64_t *v);
int pulse_ml_get_f64(pulse_ml_reader_t *r, double *v);
/* A length-prefixed string of at most max bytes: *out points into the input (not copied, not
 * NUL-terminated). */
int pulse_ml_get_str(pulse_ml_reader_t *r, size_t max, const char **out, size_t *n);
/* n raw bytes pointing into the input. */
int pulse_ml_get_bytes(pulse_ml_reader_t *r, size_t n, const unsigned char **out);

/* CRC-32 (IEEE 802.3, the zlib/PNG one) of p[0..n), continuing from crc (0 to start). */
uint32_t pulse_ml_crc32(uint32_t crc, const void *p, size_t n);

#endif
