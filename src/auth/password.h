/* Password hashing and password policy. Hashes are argon2id (libargon2) in the standard encoded
 * form; verification compares in constant time, and unknown users get a dummy verification that
 * costs the same. The policy follows NIST SP 800-63B: length and a blocklist of common
 * passwords, no composition rules. Hashing is deliberately slow: run it on the worker pool
 * (core/workers.h), never on a loop thread. */
#ifndef PULSE_AUTH_PASSWORD_H
#define PULSE_AUTH_PASSWORD_H

#include <stddef.h>

/* argon2id parameters (OWASP 2023 lists m=46 MiB, t=1, p=1 as a minimum; we take t=2). One hash
 * takes ~65 ms on the development machine (Xeon VM, 2 cores) and holds 46 MiB while it runs: the
 * worker pool bounds the memory to threads × 46 MiB, however many logins arrive at once.
 * Changing them is safe: stored hashes carry their own parameters (see needs_rehash). */
#define PULSE_PASSWORD_M_COST_KIB 47104u
#define PULSE_PASSWORD_T_COST 2u
#define PULSE_PASSWORD_PARALLELISM 1u
#define PULSE_PASSWORD_SALT_LEN 16u
#define PULSE_PASSWORD_HASH_LEN 32u
/* Room for an encoded hash with the parameters above (about 97 bytes) and some growth. */
#define PULSE_PASSWORD_ENCODED_MAX 160

#define PULSE_PASSWORD_MIN_CHARS 10 /* UTF-8 characters (code points) */
#define PULSE_PASSWORD_MAX_BYTES 1024

/* Hashes pw (len bytes, any bytes) with a fresh random 16-byte salt into out as a NUL-terminated
 * "$argon2id$v=19$m=...,t=...,p=...$salt$hash" string. outlen should be PULSE_PASSWORD_ENCODED_MAX.
 * Returns 0, or -1 with a message in err (longer than PULSE_PASSWORD_MAX_BYTES, no randomness,
 * out of memory in argon2). Slow on purpose. */
int pulse_password_hash(const char *pw, size_t len, char *out, size_t outlen, char *err, size_t errlen);
/* 1 when pw matches the encoded hash, 0 when it does not, -1 when encoded is not an argon2id hash
 * this build accepts (malformed, or parameters beyond 4× ours: a stored hash must not make us
 * allocate gigabytes). The comparison is constant-time (libargon2). Slow on purpose. */
int pulse_password_verify(const char *encoded, const char *pw, size_t len);
/* For an unknown user: does the work of a verification with the current parameters against a
 * fixed hash and returns 0, so the answer and its timing match a wrong password. The first call
 * in the process also computes that hash (once); pulse_password_init does it up front. */
int pulse_password_verify_dummy(const char *pw, size_t len);
/* Computes the dummy hash now (call at startup, off the loop threads). Returns 0 or -1. */
int pulse_password_init(void);
/* 1 when encoded was made with other parameters than the current ones (hash again after a
 * successful login), 0 when they match, -1 when it cannot be parsed. */
int pulse_password_needs_rehash(const char *encoded);

/* Checks a new password. Returns 0 when it is acceptable, or -1 with a sentence for the user in
 * why saying what to do: fewer than 10 characters, more than 1024 bytes, not UTF-8 or with a NUL,
 * only whitespace, a common password (case-insensitive, also with digits or symbols around it or
 * with simple letter-for-digit swaps such as p@ssw0rd), one character or a short pattern repeated,
 * an alphabet/digit sequence or keyboard row. Reads the blocklist: load it first. */
int pulse_password_check_policy(const char *pw, size_t len, char *why, size_t whylen);
/* Same, and also refuses passwords containing one of the words (case-insensitive, words of 4
 * bytes or more; e.g. the user name, the local part of the e-mail address, the product name). */
int pulse_password_check_policy_ctx(const char *pw, size_t len, const char *const *words, size_t nwords, char *why, size_t whylen);

/* Adds the passwords of a text (one a line, '#' starts a comment line, case folded to lowercase)
 * to the process-wide blocklist; the text is copied. Call before starting threads: lookups take
 * no lock. Returns the number of entries in the blocklist. */
size_t pulse_password_blocklist_load(const char *text, size_t len);
/* Empties the blocklist and frees its memory. */
void pulse_password_blocklist_clear(void);

#endif
