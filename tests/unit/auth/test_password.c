/* Unit tests for src/auth/password.c: argon2id round trips, malformed hashes, the dummy
 * verification's timing, and the password policy against the shipped blocklist. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/password.h"

#define S(lit) lit, sizeof(lit) - 1

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The shipped list, found next to the sources (__FILE__ is absolute in CMake builds). */
static int load_shipped_blocklist(void **state)
{
    char path[4096];
    const char *file = __FILE__, *slash = strrchr(file, '/');
    int dirlen = slash ? (int)(slash - file) : 1;
    snprintf(path, sizeof(path), "%.*s/../../../src/auth/common_passwords.txt", dirlen, slash ? file : ".");
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    static char text[65536];
    size_t n = fread(text, 1, sizeof(text), f);
    fclose(f);
    size_t count = pulse_password_blocklist_load(text, n);
    return count >= 500 ? 0 : -1;
}

static int clear_blocklist(void **state)
{
    pulse_password_blocklist_clear();
    return 0;
}

static void test_hash_verify_round_trip(void **state)
{
    char enc[PULSE_PASSWORD_ENCODED_MAX], enc2[PULSE_PASSWORD_ENCODED_MAX], err[128];
    assert_int_equal(pulse_password_hash(S("correct horse battery"), enc, sizeof(enc), err, sizeof(err)), 0);
    char expect[64];
    snprintf(expect, sizeof(expect), "$argon2id$v=19$m=%u,t=%u,p=%u$", PULSE_PASSWORD_M_COST_KIB, PULSE_PASSWORD_T_COST,
             PULSE_PASSWORD_PARALLELISM);
    assert_memory_equal(enc, expect, strlen(expect));
    assert_int_equal(pulse_password_verify(enc, S("correct horse battery")), 1);
    assert_int_equal(pulse_password_needs_rehash(enc), 0);
    /* a fresh salt every time */
    assert_int_equal(pulse_password_hash(S("correct horse battery"), enc2, sizeof(enc2), err, sizeof(err)), 0);
    assert_string_not_equal(enc, enc2);
    assert_int_equal(pulse_password_verify(enc2, S("correct horse battery")), 1);
}

static void test_wrong_password(void **state)
{
    char enc[PULSE_PASSWORD_ENCODED_MAX], err[128];
    assert_int_equal(pulse_password_hash(S("correct horse battery"), enc, sizeof(enc), err, sizeof(err)), 0);
    assert_int_equal(pulse_password_verify(enc, S("correct horse batterY")), 0);
    assert_int_equal(pulse_password_verify(enc, S("correct horse battery ")), 0);
    assert_int_equal(pulse_password_verify(enc, S("")), 0);
    /* bytes after a NUL count: the length is what is hashed */
    assert_int_equal(pulse_password_verify(enc, "correct horse battery\0x", 23), 0);
}

static void test_binary_and_long_passwords(void **state)
{
    char enc[PULSE_PASSWORD_ENCODED_MAX], err[128];
    char big[PULSE_PASSWORD_MAX_BYTES + 1];
    memset(big, 'k', sizeof(big));
    assert_int_equal(pulse_password_hash(big, PULSE_PASSWORD_MAX_BYTES, enc, sizeof(enc), err, sizeof(err)), 0);
    assert_int_equal(pulse_password_verify(enc, big, PULSE_PASSWORD_MAX_BYTES), 1);
    assert_int_equal(pulse_password_verify(enc, big, PULSE_PASSWORD_MAX_BYTES + 1), 0);
    assert_int_equal(pulse_password_hash(big, sizeof(big), enc, sizeof(enc), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "1024"));
    assert_int_equal(pulse_password_hash(S("abc"), enc, 20, err, sizeof(err)), -1);
}

static void test_malformed_encoded(void **state)
{
    char enc[PULSE_PASSWORD_ENCODED_MAX], err[128], bad[PULSE_PASSWORD_ENCODED_MAX + 32];
    assert_int_equal(pulse_password_hash(S("correct horse battery"), enc, sizeof(enc), err, sizeof(err)), 0);
    const char *cases[] = {
        NULL,
        "",
        "$",
        "plain text",
        "$argon2i$v=19$m=47104,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA",
        "$argon2id$v=16$m=47104,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
        "$argon2id$v=19$m=,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA",
        "$argon2id$v=19$m=47104,t=2,p=1",
        "$argon2id$v=19$m=47104,t=2,p=1$",
        "$argon2id$v=19$m=47104,t=2,p=1$!!!!$????",
        "$argon2id$v=19$m=99999999999,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
        /* parameters that would make us allocate 4 GiB or spin for minutes */
        "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
        "$argon2id$v=19$m=47104,t=1000,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(pulse_password_verify(cases[i], S("correct horse battery")), -1);
    /* the real hash cut inside its salt, or with its hash part emptied */
    snprintf(bad, sizeof(bad), "%.*s", (int)(strchr(enc + 20, '$') - enc + 6), enc);
    assert_int_equal(pulse_password_verify(bad, S("correct horse battery")), -1);
    snprintf(bad, sizeof(bad), "%.*s", (int)(strrchr(enc, '$') - enc + 1), enc);
    assert_int_equal(pulse_password_verify(bad, S("correct horse battery")), -1);
    assert_int_equal(pulse_password_needs_rehash("nonsense"), -1);
    assert_int_equal(pulse_password_needs_rehash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA"), 1);
}

static void test_dummy_costs_like_a_real_verify(void **state)
{
    char enc[PULSE_PASSWORD_ENCODED_MAX], err[128];
    assert_int_equal(pulse_password_init(), 0);
    assert_int_equal(pulse_password_hash(S("correct horse battery"), enc, sizeof(enc), err, sizeof(err)), 0);
    double real = 1e9, dummy = 1e9;
    for (int i = 0; i < 3; i++) { /* best of three each: the least disturbed by the machine */
        double t = now_ms();
        assert_int_equal(pulse_password_verify(enc, S("wrong horse battery")), 0);
        double d = now_ms() - t;
        real = d < real ? d : real;
        t = now_ms();
        assert_int_equal(pulse_password_verify_dummy(S("wrong horse battery")), 0);
        d = now_ms() - t;
        dummy = d < dummy ? d : dummy;
    }
    print_message("verify %.1f ms, dummy %.1f ms\n", real, dummy);
    assert_true(dummy > 0.5 * real && dummy < 2.0 * real);
    /* the dummy never matches, not even the empty password */
    assert_int_equal(pulse_password_verify_dummy(S("")), 0);
}

#define ASSERT_OK(lit)                                                                                                             \
    do {                                                                                                                           \
        char why_[256] = "";                                                                                                       \
        if (pulse_password_check_policy(S(lit), why_, sizeof(why_)) != 0)                                                          \
            fail_msg("'%s' refused: %s", lit, why_);                                                                               \
    } while (0)

#define ASSERT_REFUSED(lit, word)                                                                                                  \
    do {                                                                                                                           \
        char why_[256] = "";                                                                                                       \
        if (pulse_password_check_policy(S(lit), why_, sizeof(why_)) != -1)                                                         \
            fail_msg("'%s' accepted", lit);                                                                                        \
        if (strstr(why_, word) == NULL)                                                                                            \
            fail_msg("'%s': '%s' does not mention '%s'", lit, why_, word);                                                         \
    } while (0)

static void test_policy_length(void **state)
{
    ASSERT_REFUSED("", "at least 10");
    ASSERT_REFUSED("x7#kQ9", "at least 10");
    ASSERT_REFUSED("x7#kQ9zL2", "at least 10");
    ASSERT_OK("x7#kQ9zL2m");
    char big[PULSE_PASSWORD_MAX_BYTES + 2], why[256];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + (i * 7 + i / 26) % 26);
    assert_int_equal(pulse_password_check_policy(big, PULSE_PASSWORD_MAX_BYTES + 1, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "1024"));
    assert_int_equal(pulse_password_check_policy(big, PULSE_PASSWORD_MAX_BYTES, why, sizeof(why)), 0);
}

static void test_policy_utf8_counts_characters(void **state)
{
    /* 9 characters in 18 bytes: too short although more than 10 bytes */
    ASSERT_REFUSED("\xc3\xa9t\xc3\xa9 \xc3\xa0 \xc3\xa9t\xc3\xa9", "at least 10");
    ASSERT_REFUSED("日本語のパスワ", "at least 10"); /* 7 characters, 21 bytes */
    ASSERT_OK("日本語のパスワードです");             /* 11 characters */
    ASSERT_OK("été à la mer!");
    ASSERT_OK("🐙🦑🐠🐳🐬🦈🐡🦞🦀🐚"); /* 10 characters of 4 bytes */
    ASSERT_REFUSED("\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5", "UTF-8");
    ASSERT_REFUSED("abcdefghij\xc3", "UTF-8");           /* truncated sequence */
    ASSERT_REFUSED("abcdefghi\xc0\xafxyz", "UTF-8");     /* overlong '/' */
    ASSERT_REFUSED("abcdefghi\xed\xa0\x80xyz", "UTF-8"); /* surrogate */
    char why[256];
    assert_int_equal(pulse_password_check_policy("tulip\0garden", 12, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "NUL"));
}

static void test_policy_whitespace(void **state)
{
    ASSERT_REFUSED("            ", "spaces");
    ASSERT_REFUSED(" \t \t \t \t \t \t", "spaces");
    ASSERT_OK("  spaced   out  fine  ");
}

static void test_policy_blocklist(void **state)
{
    ASSERT_REFUSED("qwertyuiop123", "common");
    ASSERT_REFUSED("1q2w3e4r5t", "common");
    ASSERT_REFUSED("iloveyou12", "common");
    ASSERT_REFUSED("football123", "common");
    ASSERT_REFUSED("baseball11", "common");
    ASSERT_REFUSED("sunshine2024", "common");
    ASSERT_REFUSED("starwars!!", "common");
    ASSERT_REFUSED("michelle1234", "common");
}

static void test_policy_case_variants(void **state)
{
    ASSERT_REFUSED("PASSWORD123", "common");
    ASSERT_REFUSED("Password1234", "common");
    ASSERT_REFUSED("ILoveYou!!", "common");
    ASSERT_REFUSED("QwErTy123456", "common");
    ASSERT_REFUSED("Administrator", "common");
    ASSERT_REFUSED("HarryPotter", "common");
}

static void test_policy_derived_forms(void **state)
{
    ASSERT_REFUSED("password123", "common");
    ASSERT_REFUSED("password2024!", "common");
    ASSERT_REFUSED("123password", "common");
    ASSERT_REFUSED("!!password!!", "common");
    ASSERT_REFUSED("P@ssw0rd123", "common");
    ASSERT_REFUSED("p4ssw0rd!!", "common");
    ASSERT_REFUSED("dragon1234", "common");
    ASSERT_REFUSED("monkey12345", "common");
    ASSERT_REFUSED("superman99", "common");
    ASSERT_REFUSED("l3tm31n2024", "common");
    /* a common word inside a longer passphrase is fine */
    ASSERT_OK("my password is long and odd");
    ASSERT_OK("dragonfly orchard 7");
}

static void test_policy_repeated(void **state)
{
    ASSERT_REFUSED("aaaaaaaaaa", "repeating");
    ASSERT_REFUSED("AAAAAAAAAAAAAAAA", "repeating");
    ASSERT_REFUSED("1111111111111", "repeating");
    ASSERT_REFUSED("abababababab", "repeating");
    ASSERT_REFUSED("abcabcabcabc", "repeating");
    ASSERT_REFUSED("xyz1xyz1xyz1", "repeating");
    ASSERT_REFUSED("éééééééééé", "repeating");
    ASSERT_REFUSED("🐙🐙🐙🐙🐙🐙🐙🐙🐙🐙", "repeating");
}

static void test_policy_sequences(void **state)
{
    ASSERT_REFUSED("1234567890", "sequence");
    ASSERT_REFUSED("0123456789", "sequence");
    ASSERT_REFUSED("9876543210", "sequence");
    ASSERT_REFUSED("4567890123", "sequence");
    ASSERT_REFUSED("abcdefghij", "sequence");
    ASSERT_REFUSED("ABCDEFGHIJKLMNOP", "sequence");
    ASSERT_REFUSED("zyxwvutsrqpo", "sequence");
    ASSERT_REFUSED("asdfghjkl;'", "sequence");
    ASSERT_REFUSED("qwertyuiopasdf", "sequence");
    ASSERT_REFUSED("poiuytrewq", "sequence");
    ASSERT_REFUSED("1qaz2wsx3edc", "sequence");
    ASSERT_REFUSED("mnbvcxzlkjhgfdsa", "sequence");
}

static void test_policy_accepts_good_passwords(void **state)
{
    ASSERT_OK("correct horse battery staple");
    ASSERT_OK("Tr0ub4dor&3x");
    ASSERT_OK("blue-kettle-42-orbit");
    ASSERT_OK("x7#kQ9zL2m!p");
    ASSERT_OK("unsalted peanuts and jam");
    ASSERT_OK("1357924680x");
}

static void test_policy_context_words(void **state)
{
    const char *words[] = {"alice", "pulse", NULL, "bob"};
    char why[256];
    assert_int_equal(pulse_password_check_policy_ctx(S("ALICE wonderland 9"), words, 4, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "user name"));
    assert_int_equal(pulse_password_check_policy_ctx(S("my pulse account"), words, 4, why, sizeof(why)), -1);
    /* words under 4 bytes are ignored: too many innocent passwords contain them */
    assert_int_equal(pulse_password_check_policy_ctx(S("bobsled racing team"), words, 4, why, sizeof(why)), 0);
    assert_int_equal(pulse_password_check_policy_ctx(S("orange tulip garden"), words, 4, why, sizeof(why)), 0);
}

static void test_blocklist_load_format(void **state)
{
    pulse_password_blocklist_clear();
    const char text[] = "# comment\r\n\nHunter2Hunter2\r\nsecretphrase  \nsecretphrase\nlast-line-without-newline";
    assert_int_equal(pulse_password_blocklist_load(text, sizeof(text) - 1), 3);
    ASSERT_REFUSED("hunter2hunter2", "common");
    ASSERT_REFUSED("SecretPhrase", "common");
    ASSERT_REFUSED("last-line-without-newline", "common");
    ASSERT_OK("# comment is fine");
    pulse_password_blocklist_clear();
    ASSERT_OK("SecretPhrase");
    assert_int_equal(load_shipped_blocklist(state), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_verify_round_trip),
        cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_binary_and_long_passwords),
        cmocka_unit_test(test_malformed_encoded),
        cmocka_unit_test(test_dummy_costs_like_a_real_verify),
        cmocka_unit_test(test_policy_length),
        cmocka_unit_test(test_policy_utf8_counts_characters),
        cmocka_unit_test(test_policy_whitespace),
        cmocka_unit_test(test_policy_blocklist),
        cmocka_unit_test(test_policy_case_variants),
        cmocka_unit_test(test_policy_derived_forms),
        cmocka_unit_test(test_policy_repeated),
        cmocka_unit_test(test_policy_sequences),
        cmocka_unit_test(test_policy_accepts_good_passwords),
        cmocka_unit_test(test_policy_context_words),
        cmocka_unit_test(test_blocklist_load_format),
    };
    return cmocka_run_group_tests(tests, load_shipped_blocklist, clear_blocklist);
}
