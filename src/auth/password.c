/* Password hashing (argon2id) and policy (see password.h). */
#include "auth/password.h"
#include "core/buf.h"

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- hashing --- */

int pulse_password_hash(const char *pw, size_t len, char *out, size_t outlen, char *err, size_t errlen)
{
    unsigned char salt[PULSE_PASSWORD_SALT_LEN];
    if (len > PULSE_PASSWORD_MAX_BYTES)
        return pulse_fail(err, errlen, "password longer than %d bytes", PULSE_PASSWORD_MAX_BYTES);
    if (outlen < argon2_encodedlen(PULSE_PASSWORD_T_COST, PULSE_PASSWORD_M_COST_KIB, PULSE_PASSWORD_PARALLELISM,
                                   PULSE_PASSWORD_SALT_LEN, PULSE_PASSWORD_HASH_LEN, Argon2_id))
        return pulse_fail(err, errlen, "output buffer too small for an encoded hash");
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return pulse_fail(err, errlen, "no randomness for the salt");
    int rc = argon2id_hash_encoded(PULSE_PASSWORD_T_COST, PULSE_PASSWORD_M_COST_KIB, PULSE_PASSWORD_PARALLELISM, pw, len, salt,
                                   sizeof(salt), PULSE_PASSWORD_HASH_LEN, out, outlen);
    if (rc != ARGON2_OK)
        return pulse_fail(err, errlen, "argon2id: %s", argon2_error_message(rc));
    return 0;
}

static int parse_uint(const char **p, const char *prefix, uint32_t *v)
{
    size_t n = strlen(prefix);
    if (strncmp(*p, prefix, n) != 0)
        return -1;
    const char *s = *p + n;
    uint64_t x = 0;
    if (*s < '0' || *s > '9')
        return -1;
    while (*s >= '0' && *s <= '9') {
        x = x * 10 + (uint64_t)(*s++ - '0');
        if (x > UINT32_MAX)
            return -1;
    }
    *v = (uint32_t)x;
    *p = s;
    return 0;
}

/* Reads the parameters of "$argon2id$v=19$m=..,t=..,p=..$"; libargon2 checks the rest. */
static int parse_params(const char *encoded, uint32_t *m, uint32_t *t, uint32_t *p)
{
    uint32_t version;
    const char *s = encoded;
    if (encoded == NULL || strncmp(s, "$argon2id", 9) != 0)
        return -1;
    s += 9;
    if (parse_uint(&s, "$v=", &version) != 0 || version != ARGON2_VERSION_13 || parse_uint(&s, "$m=", m) != 0 ||
        parse_uint(&s, ",t=", t) != 0 || parse_uint(&s, ",p=", p) != 0 || *s != '$')
        return -1;
    return 0;
}

int pulse_password_verify(const char *encoded, const char *pw, size_t len)
{
    uint32_t m, t, p;
    if (parse_params(encoded, &m, &t, &p) != 0)
        return -1;
    if (m > 4 * PULSE_PASSWORD_M_COST_KIB || t > 4 * PULSE_PASSWORD_T_COST || p > 4 * PULSE_PASSWORD_PARALLELISM)
        return -1;
    if (len > PULSE_PASSWORD_MAX_BYTES) /* never accepted by the policy: cannot match, but cost the same */
        return pulse_password_verify_dummy(pw, PULSE_PASSWORD_MAX_BYTES);
    int rc = argon2id_verify(encoded, pw, len);
    if (rc == ARGON2_OK)
        return 1;
    return rc == ARGON2_VERIFY_MISMATCH ? 0 : -1;
}

static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static char dummy_hash[PULSE_PASSWORD_ENCODED_MAX];
static int dummy_ok;

/* An encoded hash with our parameters, a random salt and a random digest: no password has it, and
 * verifying against it costs exactly a real verify. Built without hashing, so start-up does not
 * spend (and keep in its peak memory) a 46 MiB argon2 run. */
static void b64_unpadded(char *out, const unsigned char *in, int n)
{
    int len = EVP_EncodeBlock((unsigned char *)out, in, n);
    while (len > 0 && out[len - 1] == '=')
        out[--len] = '\0';
}

static void make_dummy(void)
{
    unsigned char salt[PULSE_PASSWORD_SALT_LEN], digest[PULSE_PASSWORD_HASH_LEN];
    char salt64[64], digest64[64];
    if (RAND_bytes(salt, sizeof(salt)) != 1 || RAND_bytes(digest, sizeof(digest)) != 1)
        return; /* dummy_ok stays 0: verify_dummy then hashes instead, at the same cost */
    b64_unpadded(salt64, salt, sizeof(salt));
    b64_unpadded(digest64, digest, sizeof(digest));
    int n = snprintf(dummy_hash, sizeof(dummy_hash), "$argon2id$v=19$m=%u,t=%u,p=%u$%s$%s", PULSE_PASSWORD_M_COST_KIB,
                     PULSE_PASSWORD_T_COST, PULSE_PASSWORD_PARALLELISM, salt64, digest64);
    dummy_ok = n > 0 && (size_t)n < sizeof(dummy_hash);
}

int pulse_password_init(void)
{
    pthread_once(&dummy_once, make_dummy);
    return dummy_ok ? 0 : -1;
}

int pulse_password_verify_dummy(const char *pw, size_t len)
{
    pthread_once(&dummy_once, make_dummy);
    if (len > PULSE_PASSWORD_MAX_BYTES)
        len = PULSE_PASSWORD_MAX_BYTES;
    if (dummy_ok) {
        (void)argon2id_verify(dummy_hash, pw, len);
    } else { /* same work without the stored hash */
        unsigned char salt[PULSE_PASSWORD_SALT_LEN] = {0}, out[PULSE_PASSWORD_HASH_LEN];
        (void)argon2id_hash_raw(PULSE_PASSWORD_T_COST, PULSE_PASSWORD_M_COST_KIB, PULSE_PASSWORD_PARALLELISM, pw, len, salt,
                                sizeof(salt), out, sizeof(out));
    }
    return 0;
}

int pulse_password_needs_rehash(const char *encoded)
{
    uint32_t m, t, p;
    if (parse_params(encoded, &m, &t, &p) != 0)
        return -1;
    return m != PULSE_PASSWORD_M_COST_KIB || t != PULSE_PASSWORD_T_COST || p != PULSE_PASSWORD_PARALLELISM;
}

/* --- blocklist: an open-addressing set of lowercase strings --- */

static struct {
    char **slots;
    size_t cap, count;
} blocklist;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int blocklist_contains(const char *s, size_t n)
{
    if (blocklist.count == 0 || n == 0)
        return 0;
    for (size_t i = hash_bytes(s, n) & (blocklist.cap - 1);; i = (i + 1) & (blocklist.cap - 1)) {
        const char *e = blocklist.slots[i];
        if (e == NULL)
            return 0;
        if (strlen(e) == n && memcmp(e, s, n) == 0)
            return 1;
    }
}

static void blocklist_insert(char *owned, size_t n)
{
    if ((blocklist.count + 1) * 2 > blocklist.cap) {
        size_t cap = blocklist.cap ? blocklist.cap * 2 : 1024;
        char **slots = calloc(cap, sizeof(char *));
        if (slots == NULL) {
            fprintf(stderr, "pulse: out of memory (%zu bytes)\n", cap * sizeof(char *));
            abort();
        }
        for (size_t i = 0; i < blocklist.cap; i++) {
            char *e = blocklist.slots[i];
            if (e == NULL)
                continue;
            size_t j = hash_bytes(e, strlen(e)) & (cap - 1);
            while (slots[j] != NULL)
                j = (j + 1) & (cap - 1);
            slots[j] = e;
        }
        free(blocklist.slots);
        blocklist.slots = slots;
        blocklist.cap = cap;
    }
    size_t i = hash_bytes(owned, n) & (blocklist.cap - 1);
    while (blocklist.slots[i] != NULL)
        i = (i + 1) & (blocklist.cap - 1);
    blocklist.slots[i] = owned;
    blocklist.count++;
}

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

size_t pulse_password_blocklist_load(const char *text, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + 1;
        while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            n--;
        if (n == 0 || line[0] == '#')
            continue;
        char *e = pulse_xmalloc(n + 1);
        for (size_t i = 0; i < n; i++)
            e[i] = ascii_lower(line[i]);
        e[n] = '\0';
        if (blocklist_contains(e, n))
            free(e);
        else
            blocklist_insert(e, n);
    }
    return blocklist.count;
}

void pulse_password_blocklist_clear(void)
{
    for (size_t i = 0; i < blocklist.cap; i++)
        free(blocklist.slots[i]);
    free(blocklist.slots);
    memset(&blocklist, 0, sizeof(blocklist));
}

/* --- policy --- */

/* Counts the code points of valid UTF-8 (no overlongs, surrogates or NULs), or -1. */
static long utf8_chars(const unsigned char *s, size_t n)
{
    long count = 0;
    for (size_t i = 0; i < n; count++) {
        unsigned c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c == 0)
            return -1;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return -1;
        }
        if (i + k >= n)
            return -1;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return -1;
        i += k + 1;
    }
    return count;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int is_filler(char c) /* what people put around a common password */
{
    return (c >= '0' && c <= '9') || (c >= 0x21 && c <= 0x2f) || (c >= 0x3a && c <= 0x40) || (c >= 0x5b && c <= 0x60) ||
           (c >= 0x7b && c <= 0x7e) || c == ' ';
}

/* s (lowercase) with common letter-for-digit swaps undone; one_as is what '1' becomes. */
static void unleet(const char *s, size_t n, char *out, char one_as)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        switch (c) {
        case '0':
            c = 'o';
            break;
        case '1':
        case '!':
        case '|':
            c = one_as;
            break;
        case '3':
            c = 'e';
            break;
        case '4':
        case '@':
            c = 'a';
            break;
        case '5':
        case '$':
            c = 's';
            break;
        case '7':
        case '+':
            c = 't';
            break;
        case '8':
            c = 'b';
            break;
        case '9':
            c = 'g';
            break;
        }
        out[i] = c;
    }
}

/* Whether s, or s with the swaps undone, is a blocklisted password. */
static int is_common(const char *s, size_t n)
{
    char tmp[PULSE_PASSWORD_MAX_BYTES];
    if (n == 0)
        return 0;
    if (blocklist_contains(s, n))
        return 1;
    unleet(s, n, tmp, 'i');
    if (blocklist_contains(tmp, n))
        return 1;
    unleet(s, n, tmp, 'l');
    return blocklist_contains(tmp, n);
}

/* 1: s itself is common; 2: a common password with digits or symbols before or after it. */
static int common_kind(const char *s, size_t n)
{
    if (is_common(s, n))
        return 1;
    size_t start = 0, end = n;
    while (end > 0 && is_filler(s[end - 1]))
        end--;
    while (start < end && is_filler(s[start]))
        start++;
    if ((start > 0 || end < n) && end > start) {
        /* try the stripped core, then each way of keeping digits on one side (le3tspeak ends) */
        if (is_common(s + start, end - start))
            return 2;
        if (start > 0 && is_common(s, end))
            return 2;
        if (end < n && is_common(s + start, n - start))
            return 2;
    }
    /* a filler run may also hide a swapped letter at the end ("passw0rd", "p4ssword1"): strip digits only */
    end = n;
    while (end > 0 && s[end - 1] >= '0' && s[end - 1] <= '9')
        end--;
    if (end < n && end > 0 && is_common(s, end))
        return 2;
    return 0;
}

/* s repeats a unit of up to 4 bytes ("aaaa…", "ababab…", "éééé…", "abcabcabc…"). */
static int is_repetition(const char *s, size_t n)
{
    for (size_t p = 1; p <= 4 && 2 * p <= n; p++) {
        size_t i = p;
        while (i < n && s[i] == s[i - p])
            i++;
        if (i == n)
            return 1;
    }
    return 0;
}

static int is_sequence(const char *s, size_t n)
{
    static const char *const rows[] = {
        "1234567890-=",
        "qwertyuiop[]",
        "asdfghjkl;'",
        "zxcvbnm,./",
        "1234567890qwertyuiopasdfghjklzxcvbnm",
        "qazwsxedcrfvtgbyhnujmikolp",
        "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik,9ol.0p;/",
        "0123456789",
        "abcdefghijklmnopqrstuvwxyz",
    };
    char rev[PULSE_PASSWORD_MAX_BYTES + 1];
    if (n < 3)
        return 0;
    /* constant step of +1 or -1 through digits or letters, digits wrapping (…7890123…) */
    int step = 0, ok = 1;
    for (size_t i = 1; i < n && ok; i++) {
        int a = (unsigned char)s[i - 1], b = (unsigned char)s[i], d = b - a;
        int digits = a >= '0' && a <= '9' && b >= '0' && b <= '9';
        int letters = a >= 'a' && a <= 'z' && b >= 'a' && b <= 'z';
        if (digits && a == '9' && b == '0')
            d = 1;
        if (digits && a == '0' && b == '9')
            d = -1;
        if (!(digits || letters) || (d != 1 && d != -1) || (step != 0 && d != step))
            ok = 0;
        step = d;
    }
    if (ok)
        return 1;
    for (size_t i = 0; i < n; i++)
        rev[i] = s[n - 1 - i];
    rev[n] = '\0';
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        size_t rl = strlen(rows[r]);
        if (n > rl)
            continue;
        for (size_t off = 0; off + n <= rl; off++)
            if (memcmp(rows[r] + off, s, n) == 0 || memcmp(rows[r] + off, rev, n) == 0)
                return 1;
    }
    return 0;
}

static int contains_ci(const char *hay, size_t hn, const char *needle)
{
    size_t nn = strlen(needle);
    if (nn == 0 || nn > hn)
        return 0;
    for (size_t i = 0; i + nn <= hn; i++) {
        size_t j = 0;
        while (j < nn && hay[i + j] == ascii_lower(needle[j]))
            j++;
        if (j == nn)
            return 1;
    }
    return 0;
}

static int refuse(char *why, size_t whylen, const char *msg)
{
    if (why != NULL && whylen > 0)
        snprintf(why, whylen, "%s", msg);
    return -1;
}

int pulse_password_check_policy_ctx(const char *pw, size_t len, const char *const *words, size_t nwords, char *why, size_t whylen)
{
    char low[PULSE_PASSWORD_MAX_BYTES + 1];
    if (len > PULSE_PASSWORD_MAX_BYTES)
        return refuse(why, whylen, "Use a password of at most 1024 bytes.");
    long chars = utf8_chars((const unsigned char *)pw, len);
    if (chars < 0)
        return refuse(why, whylen, "Use a password of valid UTF-8 text without NUL characters.");
    if (chars < PULSE_PASSWORD_MIN_CHARS)
        return refuse(why, whylen, "Use at least 10 characters; a few unrelated words make a good password.");
    size_t spaces = 0;
    for (size_t i = 0; i < len; i++) {
        low[i] = ascii_lower(pw[i]);
        spaces += is_space(pw[i]);
    }
    low[len] = '\0';
    if (spaces == len)
        return refuse(why, whylen, "Use a password with something other than spaces.");
    if (is_repetition(low, len))
        return refuse(why, whylen, "Avoid repeating one character or a short pattern; choose a longer, less regular password.");
    if (is_sequence(low, len))
        return refuse(why, whylen, "Avoid sequences such as 1234567890, abcdefghij or keyboard rows; choose another password.");
    switch (common_kind(low, len)) {
    case 1:
        return refuse(why, whylen, "This is one of the most common passwords; choose another (a few unrelated words work well).");
    case 2:
        return refuse(why, whylen,
                      "This is a common password with a few characters added; choose another (a few unrelated words work "
                      "well).");
    }
    for (size_t i = 0; i < nwords; i++) {
        if (words[i] != NULL && strlen(words[i]) >= 4 && contains_ci(low, len, words[i]))
            return refuse(why, whylen, "Do not use your user name, e-mail address or the name of this service in the password.");
    }
    return 0;
}

int pulse_password_check_policy(const char *pw, size_t len, char *why, size_t whylen)
{
    return pulse_password_check_policy_ctx(pw, len, NULL, 0, why, whylen);
}
