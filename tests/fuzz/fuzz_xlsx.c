/* libFuzzer target for src/ingest/xlsx.c. An input that starts with "PK" is a whole .xlsx archive;
 * any other input is the XML of the parts, NUL-separated, in the order of part_names below, which
 * this target stores (uncompressed) in a fresh archive, so the fuzzer mutates the XML itself rather
 * than deflate streams. The archive goes to a memfd (pulse_xlsx_open takes a path: /proc/self/fd/N)
 * and is opened under small limits; the first sheet and every named sheet are read. Every cell
 * must be NUL-terminated at its length. Also checks pulse_xlsx_serial_to_iso on input-derived
 * serials. Seeds: tests/fuzz/corpus/xlsx/ (regenerate with tests/fuzz/gen_xlsx_seeds.py). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zip.h>

#include "ingest/xlsx.h"

static const char *const part_names[] = {
    "_rels/.rels",   "xl/workbook.xml",          "xl/_rels/workbook.xml.rels", "xl/sharedStrings.xml",
    "xl/styles.xml", "xl/worksheets/sheet1.xml", "xl/worksheets/sheet2.xml"};
#define NPARTS (sizeof(part_names) / sizeof(part_names[0]))

typedef struct {
    size_t rows, cells, stop_after;
} count_t;

static int count_row(void *ud, uint32_t row, const pulse_xlsx_cell_t *cells, size_t ncells)
{
    count_t *c = ud;
    if (row == 0 || ncells == 0)
        abort();
    for (size_t i = 0; i < ncells; i++)
        if (cells[i].p == NULL || cells[i].p[cells[i].len] != '\0')
            abort();
    c->rows++;
    c->cells += ncells;
    return c->stop_after && c->rows >= c->stop_after ? 7 : 0;
}

/* Builds an archive of the NUL-separated parts in data; returns it (malloc'd) and its size. */
static uint8_t *build_zip(const uint8_t *data, size_t size, size_t *outlen)
{
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &ze);
    if (!src)
        abort();
    zip_source_keep(src);
    zip_t *z = zip_open_from_source(src, ZIP_TRUNCATE, &ze);
    if (!z)
        abort();
    size_t pos = 0;
    for (size_t i = 0; i < NPARTS && pos <= size; i++) {
        const uint8_t *end = memchr(data + pos, '\0', size - pos);
        size_t n = end ? (size_t)(end - (data + pos)) : size - pos;
        zip_source_t *s = zip_source_buffer(z, data + pos, n, 0);
        zip_int64_t idx = s ? zip_file_add(z, part_names[i], s, ZIP_FL_OVERWRITE) : -1;
        if (idx < 0 || zip_set_file_compression(z, (zip_uint64_t)idx, ZIP_CM_STORE, 0) != 0)
            abort();
        pos += n + 1;
    }
    if (zip_close(z) != 0)
        abort();
    uint8_t *out = NULL;
    *outlen = 0;
    if (zip_source_open(src) == 0) {
        zip_source_seek(src, 0, SEEK_END);
        zip_int64_t len = zip_source_tell(src);
        zip_source_seek(src, 0, SEEK_SET);
        out = malloc(len > 0 ? (size_t)len : 1);
        if (!out || (len > 0 && zip_source_read(src, out, (zip_uint64_t)len) != len))
            abort();
        *outlen = (size_t)len;
        zip_source_close(src);
    }
    zip_source_free(src);
    zip_error_fini(&ze);
    return out;
}

static void check_serials(const uint8_t *data, size_t size)
{
    double v[3];
    memset(v, 0, sizeof(v));
    memcpy(v, data, size < sizeof(v[0]) ? size : sizeof(v[0])); /* any bit pattern: nan, inf, negative */
    uint32_t u = 0;
    for (size_t i = 0; i < size && i < 4; i++)
        u = u << 8 | data[i];
    v[1] = u / 16.0; /* 0 .. 2.7e8: crosses the 9999-12-31 limit */
    v[2] = (u % 3000000) + (u % 86400) / 86400.0;
    for (size_t i = 0; i < 3; i++) {
        for (int mode = 0; mode < 8; mode++) {
            char out[40];
            int with_time = mode & 2, time_only = mode & 4;
            int n = pulse_xlsx_serial_to_iso(v[i], mode & 1, with_time, time_only, out, sizeof(out));
            if (n < 0)
                continue;
            int want = time_only ? 8 : with_time ? 19 : 10;
            if (n != want || strlen(out) != (size_t)n)
                abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz_xlsx", 0);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        pulse_xlsx_set_limits(8u << 20, 1u << 20); /* zip bombs are refused fast */
    }
    check_serials(data, size);

    const uint8_t *zip = data;
    size_t ziplen = size;
    uint8_t *built = NULL;
    if (size < 2 || data[0] != 'P' || data[1] != 'K')
        zip = built = build_zip(data, size, &ziplen);
    if (ftruncate(fd, 0) != 0 || (ziplen && pwrite(fd, zip, ziplen, 0) != (ssize_t)ziplen)) {
        perror("fuzz_xlsx: memfd");
        abort();
    }
    free(built);

    char err[512];
    pulse_xlsx_t *x = pulse_xlsx_open(path, err, sizeof(err));
    if (!x)
        return 0;
    const char *const *names;
    int n = pulse_xlsx_sheets(x, &names);
    if (n <= 0)
        abort();                          /* open refuses a workbook without sheets */
    count_t c = {.stop_after = size % 4}; /* 0: read all rows */
    if (pulse_xlsx_read(x, NULL, count_row, &c, err, sizeof(err)) == 0 && c.stop_after && c.rows >= c.stop_after)
        abort();                           /* stopping must return the callback's value */
    for (int i = 0; i < n && i < 8; i++) { /* to the end this time */
        count_t all = {0};
        (void)pulse_xlsx_read(x, names[i], count_row, &all, err, sizeof(err));
    }
    if (pulse_xlsx_read(x, "\x01 no such sheet", count_row, &c, err, sizeof(err)) != -1)
        abort();
    pulse_xlsx_close(x);
    return 0;
}
