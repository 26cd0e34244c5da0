/* Unit tests for src/db/migrate.c, scanning only (no database): ordering, checksums, file name
 * rules, duplicate versions, empty and missing folders. Each test works in its own mkdtemp folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db/migrate.h"

static const char sha_select1[] = "b4e0497804e46e0a0b0b8c31975b062152d551bac49c3c2e80932567b4085dcd"; /* "SELECT 1;\n" */
static const char sha_empty[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

static int setup_dir(void **state)
{
    char *dir = strdup("/tmp/pulse-test-migrate-XXXXXX");
    assert_non_null(dir);
    assert_non_null(mkdtemp(dir));
    *state = dir;
    return 0;
}

static int teardown_dir(void **state)
{
    char *dir = *state;
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char path[PATH_MAX];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            if (unlink(path) != 0)
                rmdir(path);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
    return 0;
}

static void put(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_sorted_by_version(void **state)
{
    const char *dir = *state;
    put(dir, "0010_ten.sql", "SELECT 10;\n");
    put(dir, "0002_two.sql", "SELECT 2;\n");
    put(dir, "10000_big.sql", "SELECT 10000;\n");
    put(dir, "0001_one.sql", "SELECT 1;\n");
    pulse_migration_t *list;
    size_t n;
    char err[512] = "";
    assert_int_equal(pulse_migrate_scan(dir, &list, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 4);
    assert_int_equal(list[0].version, 1);
    assert_string_equal(list[0].name, "0001_one");
    assert_int_equal(list[1].version, 2);
    assert_int_equal(list[2].version, 10);
    assert_int_equal(list[3].version, 10000);
    assert_string_equal(list[3].name, "10000_big");
    char expect[PATH_MAX];
    snprintf(expect, sizeof(expect), "%s/0002_two.sql", dir);
    assert_string_equal(list[1].path, expect);
    assert_string_equal(list[1].sql, "SELECT 2;\n");
    assert_int_equal(list[1].sql_len, strlen("SELECT 2;\n"));
    pulse_migrate_free(list, n);
}

static void test_checksum_stable_and_content_based(void **state)
{
    const char *dir = *state;
    put(dir, "0001_one.sql", "SELECT 1;\n");
    put(dir, "0002_empty.sql", "");
    pulse_migration_t *list;
    size_t n;
    char err[512] = "";
    assert_int_equal(pulse_migrate_scan(dir, &list, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].checksum, sha_select1);
    assert_string_equal(list[1].checksum, sha_empty);
    pulse_migrate_free(list, n);

    /* a second scan gives the same checksum; a one-byte edit changes it */
    assert_int_equal(pulse_migrate_scan(dir, &list, &n, err, sizeof(err)), 0);
    assert_string_equal(list[0].checksum, sha_select1);
    pulse_migrate_free(list, n);
    put(dir, "0001_one.sql", "SELECT 1; \n");
    assert_int_equal(pulse_migrate_scan(dir, &list, &n, err, sizeof(err)), 0);
    assert_string_not_equal(list[0].checksum, sha_select1);
    assert_int_equal(strlen(list[0].checksum), 64);
    pulse_migrate_free(list, n);
}

static void expect_bad_name(const char *dir, const char *name)
{
    put(dir, "0001_ok.sql", "SELECT 1;\n");
    put(dir, name, "SELECT 1;\n");
    pulse_migration_t *list = (pulse_migration_t *)1;
    size_t n = 99;
    char err[512] = "";
    assert_int_equal(pulse_migrate_scan(dir, &list, &n, err, sizeof(err)), -1);
    assert_null(list);
    assert_int_equal(n, 0);
    if (strstr(err, name) == NULL || strstr(err, "NNNN_name.sql") == NULL)
        fail_msg("error for '%s' does not name the file and the rule: %s", name, err);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    unlink(path);
}

static void test_bad_file_names(void **state)
{
    const char *dir = *state;
    static const char *const bad[] = {
        "001_short.sql",      /* 3 digits */
        "0002_Upper.sql",     /* uppercase */
        "0002-dash.sql",      /* no underscore */
        "0002_.sql",          /* empty name */
        "0002_x.SQL",         /* extension case */
        "0002_x.sql.bak",     /* not .sql */
        "README.md",          /* anything else */
        "0002_with-dash.sql", /* '-' in the name */
        "0002_sp ace.sql",    /* space */
        "abcd_x.sql",         /* no version */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad_name(dir, bad[i]);
}

static void test_hidden_files_ignored(void **state)
{
    const char *dir = *state;
    put(dir, ".gitkeep", "");
    put(dir, ".0001_one.sql.swp", "junk");
    put(dir, "0001_one.sql", "SELECT 1;\n");
    pulse_migration_t *list;
    size_t n;
    char err[512] = "";
    assert_int_equal(pulse_migrate_scan(dir, &list, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    pulse_migrate_free(list, n);
}

static void test_duplicate_version(void **state)
{
    const char *dir = *state;
    put(dir, "0001_one.sql", "SELECT 1;\n");
    put(dir, "0002_users.sql", "SELECT 2;\n");
    put(dir, "00002_accounts.sql", "SELECT 2;\n"); /* same version, more digits */
    pulse_migration_t *list;
    size_t n;
    char err[512] = "";
    assert_int_equal(pulse_migrate_scan(dir, &list, &n, err, sizeof(err)), -1);
    assert_null(list);
    assert_non_null(strstr(err, "0002_users.sql"));
    assert_non_null(strstr(err, "00002_accounts.sql"));
    assert_non_null(strstr(err, "same version 2"));
}

static void test_nul_byte_refused(void **state)
{
    const char *dir = *state;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/0001_bin.sql", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite("SELECT\0 1;", 1, 10, f);
    fclose(f);
    pulse_migration_t *list;
    size_t n;
    char err[512] = "";
    assert_int_equal(pulse_migrate_scan(dir, &list, &n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "0001_bin.sql"));
}

static void test_empty_dir(void **state)
{
    const char *dir = *state;
    pulse_migration_t *list = (pulse_migration_t *)1;
    size_t n = 99;
    char err[512] = "";
    assert_int_equal(pulse_migrate_scan(dir, &list, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
    pulse_migrate_free(list, n);
}

static void test_missing_dir(void **state)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/nope", (const char *)*state);
    pulse_migration_t *list;
    size_t n;
    char err[512] = "";
    assert_int_equal(pulse_migrate_scan(path, &list, &n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, path));
}

static void test_repository_migrations_scan(void **state)
{
    (void)state;
    /* the repository's own folder must always pass its rules; found from this file's path */
    const char *cut = strstr(__FILE__, "/tests/unit/");
    if (cut == NULL)
        skip();
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%.*s/migrations", (int)(cut - __FILE__), __FILE__);
    pulse_migration_t *list;
    size_t n;
    char err[1024] = "";
    if (pulse_migrate_scan(dir, &list, &n, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_true(n >= 1);
    assert_int_equal(list[0].version, 1);
    assert_string_equal(list[0].name, "0001_foundation");
    pulse_migrate_free(list, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sorted_by_version, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_checksum_stable_and_content_based, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_bad_file_names, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_hidden_files_ignored, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_duplicate_version, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_nul_byte_refused, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_empty_dir, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_missing_dir, setup_dir, teardown_dir),
        cmocka_unit_test(test_repository_migrations_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
