/* Unit tests for src/ingest/xlsx.c. There is no .xlsx fixture in the repository: each test writes
 * a minimal workbook with libzip (the library the reader uses), part by part, so every quirk under
 * test (gaps, prefixes, rich text, 1904 dates, formulas) is visible in this file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <zip.h>

#include "core/buf.h"
#include "ingest/xlsx.h"

#define NS_MAIN "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
#define NS_REL "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
#define NS_PKG "http://schemas.openxmlformats.org/package/2006/relationships"

static char tmpdir[64];

typedef struct part_t {
    const char *name;
    const char *xml;  /* contents, or NULL to take them from file */
    const char *file; /* streamed into the archive by libzip */
} part_t;

static const char *fixture_path(const char *name)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    return path;
}

static void write_zip(const char *path, const part_t *parts, size_t n)
{
    int ze;
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &ze);
    assert_non_null(z);
    for (size_t i = 0; i < n; i++) {
        zip_source_t *src =
            parts[i].xml ? zip_source_buffer(z, parts[i].xml, strlen(parts[i].xml), 0) : zip_source_file(z, parts[i].file, 0, -1);
        assert_non_null(src);
        assert_true(zip_file_add(z, parts[i].name, src, ZIP_FL_OVERWRITE) >= 0);
    }
    assert_int_equal(zip_close(z), 0);
}

static const char content_types[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                                    "<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"/>";
static const char root_rels[] = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>"
                                "<Relationships xmlns=\"" NS_PKG "\">"
                                "<Relationship Id=\"rId1\" Type=\"" NS_REL "/officeDocument\" Target=\"xl/workbook.xml\"/>"
                                "</Relationships>";
static const char wb_rels[] = "<Relationships xmlns=\"" NS_PKG "\">"
                              "<Relationship Id=\"rId2\" Type=\"" NS_REL "/worksheet\" Target=\"worksheets/sheet2.xml\"/>"
                              "<Relationship Id=\"rId1\" Type=\"" NS_REL "/worksheet\" Target=\"/xl/worksheets/sheet1.xml\"/>"
                              "<Relationship Id=\"rId3\" Type=\"" NS_REL "/sharedStrings\" Target=\"sharedStrings.xml\"/>"
                              "<Relationship Id=\"rId4\" Type=\"" NS_REL "/styles\" Target=\"styles.xml\"/>"
                              "</Relationships>";
static const char workbook[] = "<workbook xmlns=\"" NS_MAIN "\" xmlns:r=\"" NS_REL "\"><workbookPr/><sheets>"
                               "<sheet name=\"Data\" sheetId=\"1\" r:id=\"rId1\"/>"
                               "<sheet name=\"Other\" sheetId=\"2\" r:id=\"rId2\"/>"
                               "</sheets></workbook>";
static const char workbook1904[] = "<workbook xmlns=\"" NS_MAIN "\" xmlns:r=\"" NS_REL "\"><workbookPr date1904=\"1\"/><sheets>"
                                   "<sheet name=\"Data\" sheetId=\"1\" r:id=\"rId1\"/>"
                                   "<sheet name=\"Other\" sheetId=\"2\" r:id=\"rId2\"/>"
                                   "</sheets></workbook>";
static const char shared[] = "<sst xmlns=\"" NS_MAIN "\" count=\"4\" uniqueCount=\"4\">"
                             "<si><t>hello</t></si>"
                             "<si><r><rPr><b/></rPr><t>Bold</t></r><r><t xml:space=\"preserve\"> part</t></r>"
                             "<rPh sb=\"0\" eb=\"1\"><t>ignored</t></rPh></si>"
                             "<si><t/></si>"
                             "<si><t>a_x000D_b &amp; c</t></si>"
                             "</sst>";
/* cellXfs: 0 General, 1 date (14), 2 custom date-time, 3 a "d" in quotes (not a date),
 * 4 elapsed hours (a duration), 5 0.00, 6 h:mm (time). cellStyleXfs must not shift the indexes. */
static const char styles[] = "<styleSheet xmlns=\"" NS_MAIN "\"><numFmts count=\"3\">"
                             "<numFmt numFmtId=\"164\" formatCode=\"yyyy\\-mm\\-dd\\ hh:mm\"/>"
                             "<numFmt numFmtId=\"165\" formatCode=\"0.00&quot; d&quot;\"/>"
                             "<numFmt numFmtId=\"166\" formatCode=\"[h]:mm\"/></numFmts>"
                             "<cellStyleXfs count=\"1\"><xf numFmtId=\"14\"/></cellStyleXfs>"
                             "<cellXfs count=\"7\"><xf numFmtId=\"0\"/><xf numFmtId=\"14\"/><xf numFmtId=\"164\"/>"
                             "<xf numFmtId=\"165\"/><xf numFmtId=\"166\"/><xf numFmtId=\"2\"/><xf numFmtId=\"20\"/></cellXfs>"
                             "</styleSheet>";
static const char sheet1[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<worksheet xmlns=\"" NS_MAIN "\"><dimension ref=\"A1:F7\"/><sheetData>\n"
    "<row r=\"1\"><c r=\"A1\" t=\"s\"><v>0</v></c><c r=\"B1\" t=\"inlineStr\"><is><t>inline</t></is></c>"
    "<c r=\"D1\"><v>42.5</v></c></row>\n"
    "<row r=\"3\"><c r=\"A3\" s=\"1\"><v>45356</v></c><c r=\"B3\" s=\"2\"><v>45356.572916666664</v></c>"
    "<c r=\"C3\" s=\"3\"><v>1.5</v></c><c r=\"D3\" s=\"4\"><v>1.5</v></c><c r=\"E3\" s=\"6\"><v>0.5</v></c>"
    "<c r=\"F3\" s=\"5\"><v>1E-3</v></c></row>\n"
    "<row r=\"4\"><c r=\"A4\" t=\"b\"><v>1</v></c><c r=\"B4\" t=\"b\"><v>0</v></c><c r=\"C4\"><f>SUM(1,2)</f><v>3</v></c>"
    "<c r=\"D4\" t=\"str\"><f>\"a\"&amp;\"bc\"</f><v>abc</v></c><c r=\"E4\" t=\"e\"><f>NA()</f><v>#N/A</v></c>"
    "<c r=\"F4\" t=\"s\"><v>1</v></c><c r=\"G4\"><f>A1</f></c></row>\n"
    "<row r=\"5\"><c r=\"A5\" s=\"1\"/><c r=\"B5\" t=\"s\"><v>2</v></c></row>\n"
    "<row><c><v>1</v></c><c><v>2</v></c></row>\n"
    "<row r=\"7\"><c r=\"C7\" t=\"s\"><v>3</v></c><c r=\"D7\" s=\"1\"/>"
    "<c r=\"E7\" t=\"inlineStr\"><is><r><t>ri</t></r><r><t>ch</t></r></is></c><c r=\"F7\" s=\"1\"/></row>\n"
    "</sheetData><mergeCells count=\"0\"/></worksheet>";
static const char sheet2[] =
    "<x:worksheet xmlns:x=\"" NS_MAIN "\"><x:sheetData>"
    "<x:row r=\"2\"><x:c r=\"B2\" s=\"1\"><x:v>0</x:v></x:c><x:c r=\"C2\" t=\"s\"><x:v>0</x:v></x:c></x:row>"
    "</x:sheetData></x:worksheet>";

static void write_book(const char *name, const char *wb, const char *s2)
{
    part_t parts[] = {
        {"[Content_Types].xml", content_types, NULL},  {"_rels/.rels", root_rels, NULL},       {"xl/workbook.xml", wb, NULL},
        {"xl/_rels/workbook.xml.rels", wb_rels, NULL}, {"xl/sharedStrings.xml", shared, NULL}, {"xl/styles.xml", styles, NULL},
        {"xl/worksheets/sheet1.xml", sheet1, NULL},    {"xl/worksheets/sheet2.xml", s2, NULL},
    };
    write_zip(fixture_path(name), parts, sizeof(parts) / sizeof(parts[0]));
}

/* Collects rows as "row:cell|cell|..." lines. */
static int collect(void *ud, uint32_t row, const pulse_xlsx_cell_t *cells, size_t n)
{
    pulse_buf_t *b = ud;
    pulse_buf_printf(b, "%u:", row);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(strlen(cells[i].p), cells[i].len);
        pulse_buf_printf(b, "%s%s", i ? "|" : "", cells[i].p);
    }
    pulse_buf_putc(b, '\n');
    return 0;
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/pulse-xlsx-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    write_book("book.xlsx", workbook, sheet2);
    write_book("book1904.xlsx", workbook1904, sheet2);
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_sheet_listing(void **state)
{
    char err[256];
    pulse_xlsx_t *x = pulse_xlsx_open(fixture_path("book.xlsx"), err, sizeof(err));
    assert_non_null(x);
    const char *const *names;
    assert_int_equal(pulse_xlsx_sheets(x, &names), 2);
    assert_string_equal(names[0], "Data");
    assert_string_equal(names[1], "Other");
    pulse_xlsx_close(x);
}

static void test_first_sheet_values(void **state)
{
    char err[256];
    pulse_xlsx_t *x = pulse_xlsx_open(fixture_path("book.xlsx"), err, sizeof(err));
    assert_non_null(x);
    pulse_buf_t b = PULSE_BUF_INIT;
    assert_int_equal(pulse_xlsx_read(x, NULL, collect, &b, err, sizeof(err)), 0);
    assert_string_equal(b.data, "1:hello|inline||42.5\n"
                                "3:2024-03-05|2024-03-05T13:45:00|1.5|1.5|12:00:00|1E-3\n"
                                "4:TRUE|FALSE|3|abc|#N/A|Bold part\n"
                                "6:1|2\n"
                                "7:||a\rb & c||rich\n");
    pulse_buf_free(&b);
    pulse_xlsx_close(x);
}

static void test_named_sheet_and_prefixes(void **state)
{
    char err[256];
    pulse_xlsx_t *x = pulse_xlsx_open(fixture_path("book.xlsx"), err, sizeof(err));
    assert_non_null(x);
    pulse_buf_t b = PULSE_BUF_INIT;
    assert_int_equal(pulse_xlsx_read(x, "Other", collect, &b, err, sizeof(err)), 0);
    assert_string_equal(b.data, "2:|1899-12-31|hello\n");
    /* a second read on the same handle reuses the loaded tables */
    pulse_buf_reset(&b);
    assert_int_equal(pulse_xlsx_read(x, "Data", collect, &b, err, sizeof(err)), 0);
    assert_true(strncmp(b.data, "1:hello|", 8) == 0);
    pulse_buf_free(&b);
    pulse_xlsx_close(x);
}

static void test_date1904(void **state)
{
    char err[256];
    pulse_xlsx_t *x = pulse_xlsx_open(fixture_path("book1904.xlsx"), err, sizeof(err));
    assert_non_null(x);
    pulse_buf_t b = PULSE_BUF_INIT;
    assert_int_equal(pulse_xlsx_read(x, "Other", collect, &b, err, sizeof(err)), 0);
    assert_string_equal(b.data, "2:|1904-01-01|hello\n");
    pulse_buf_reset(&b);
    assert_int_equal(pulse_xlsx_read(x, NULL, collect, &b, err, sizeof(err)), 0);
    assert_non_null(strstr(b.data, "3:2028-03-06|2028-03-06T13:45:00|"));
    pulse_buf_free(&b);
    pulse_xlsx_close(x);
}

static void test_serial_to_iso(void **state)
{
    char s[32];
    assert_int_equal(pulse_xlsx_serial_to_iso(1, 0, 0, 0, s, sizeof(s)), 10);
    assert_string_equal(s, "1900-01-01");
    pulse_xlsx_serial_to_iso(59, 0, 0, 0, s, sizeof(s));
    assert_string_equal(s, "1900-02-28");
    pulse_xlsx_serial_to_iso(61, 0, 0, 0, s, sizeof(s));
    assert_string_equal(s, "1900-03-01");
    pulse_xlsx_serial_to_iso(45356, 0, 0, 0, s, sizeof(s));
    assert_string_equal(s, "2024-03-05");
    pulse_xlsx_serial_to_iso(43894, 1, 0, 0, s, sizeof(s));
    assert_string_equal(s, "2024-03-05");
    pulse_xlsx_serial_to_iso(45356.99999999, 0, 1, 0, s, sizeof(s));
    assert_string_equal(s, "2024-03-06T00:00:00");
    pulse_xlsx_serial_to_iso(2958465.5, 0, 1, 0, s, sizeof(s));
    assert_string_equal(s, "9999-12-31T12:00:00");
    assert_int_equal(pulse_xlsx_serial_to_iso(-1, 0, 0, 0, s, sizeof(s)), -1);
    assert_int_equal(pulse_xlsx_serial_to_iso(2958466, 0, 0, 0, s, sizeof(s)), -1);
}

static void test_unknown_sheet(void **state)
{
    char err[256];
    pulse_xlsx_t *x = pulse_xlsx_open(fixture_path("book.xlsx"), err, sizeof(err));
    assert_non_null(x);
    pulse_buf_t b = PULSE_BUF_INIT;
    assert_int_equal(pulse_xlsx_read(x, "Nope", collect, &b, err, sizeof(err)), -1);
    assert_string_equal(err, "no sheet named 'Nope' in the workbook (sheets: 'Data', 'Other')");
    pulse_buf_free(&b);
    pulse_xlsx_close(x);
}

static int stop_at_4(void *ud, uint32_t row, const pulse_xlsx_cell_t *cells, size_t n)
{
    (*(int *)ud)++;
    return row == 4 ? 7 : 0;
}

static void test_callback_stops(void **state)
{
    char err[256];
    pulse_xlsx_t *x = pulse_xlsx_open(fixture_path("book.xlsx"), err, sizeof(err));
    assert_non_null(x);
    int calls = 0;
    assert_int_equal(pulse_xlsx_read(x, NULL, stop_at_4, &calls, err, sizeof(err)), 7);
    assert_int_equal(calls, 3);
    pulse_xlsx_close(x);
}

static void test_not_a_zip(void **state)
{
    char err[256];
    const char *p = fixture_path("plain.xlsx");
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("a,b,c\n1,2,3\n", f);
    fclose(f);
    assert_null(pulse_xlsx_open(p, err, sizeof(err)));
    assert_non_null(strstr(err, "is not an .xlsx file (not a zip archive)"));
    assert_null(pulse_xlsx_open(fixture_path("absent.xlsx"), err, sizeof(err)));
    assert_non_null(strstr(err, "cannot open"));
}

static void test_missing_parts(void **state)
{
    char err[256];
    part_t only[] = {{"hello.txt", "hi", NULL}};
    write_zip(fixture_path("empty.xlsx"), only, 1);
    assert_null(pulse_xlsx_open(fixture_path("empty.xlsx"), err, sizeof(err)));
    assert_string_equal(err, "not an .xlsx workbook: the archive has no xl/workbook.xml");

    part_t norels[] = {{"xl/workbook.xml", workbook, NULL}};
    write_zip(fixture_path("norels.xlsx"), norels, 1);
    assert_null(pulse_xlsx_open(fixture_path("norels.xlsx"), err, sizeof(err)));
    assert_string_equal(err, "not an .xlsx workbook: the archive has no xl/_rels/workbook.xml.rels");

    part_t nosheet[] = {{"xl/workbook.xml", workbook, NULL}, {"xl/_rels/workbook.xml.rels", wb_rels, NULL}};
    write_zip(fixture_path("nosheet.xlsx"), nosheet, 2);
    pulse_xlsx_t *x = pulse_xlsx_open(fixture_path("nosheet.xlsx"), err, sizeof(err));
    assert_non_null(x);
    pulse_buf_t b = PULSE_BUF_INIT;
    assert_int_equal(pulse_xlsx_read(x, NULL, collect, &b, err, sizeof(err)), -1);
    assert_string_equal(err, "the workbook names xl/sharedStrings.xml, which the archive lacks");
    pulse_buf_free(&b);
    pulse_xlsx_close(x);
}

static void test_malformed_xml(void **state)
{
    char err[256];
    write_book("bad.xlsx", workbook, "<worksheet><sheetData>\n<row r=\"1\"><c><v>1</v></row></sheetData></worksheet>");
    pulse_xlsx_t *x = pulse_xlsx_open(fixture_path("bad.xlsx"), err, sizeof(err));
    assert_non_null(x);
    pulse_buf_t b = PULSE_BUF_INIT;
    assert_int_equal(pulse_xlsx_read(x, "Other", collect, &b, err, sizeof(err)), -1);
    assert_string_equal(err, "malformed XML in xl/worksheets/sheet2.xml at line 2: mismatched tag");
    pulse_xlsx_close(x);

    write_book("dtd.xlsx", workbook, "<!DOCTYPE x [<!ENTITY a \"aaaa\">]><worksheet><sheetData/></worksheet>");
    x = pulse_xlsx_open(fixture_path("dtd.xlsx"), err, sizeof(err));
    assert_non_null(x);
    assert_int_equal(pulse_xlsx_read(x, "Other", collect, &b, err, sizeof(err)), -1);
    assert_string_equal(err, "xl/worksheets/sheet2.xml: DTDs are not allowed in .xlsx parts");
    pulse_xlsx_close(x);
    pulse_buf_free(&b);
}

/* ---- a 200k-row sheet, read in bounded memory ---- */

#define BIG_ROWS 200000
#define BIG_STRINGS 1000

typedef struct big_t {
    size_t rows;
    size_t bytes;
    int ok;
} big_t;

static int big_row(void *ud, uint32_t row, const pulse_xlsx_cell_t *cells, size_t n)
{
    big_t *b = ud;
    b->rows++;
    for (size_t i = 0; i < n; i++)
        b->bytes += cells[i].len;
    if (row == 123457) {
        char s[32];
        snprintf(s, sizeof(s), "str%u", row % BIG_STRINGS);
        b->ok = n == 6 && strcmp(cells[0].p, s) == 0 && strcmp(cells[1].p, "row 123457") == 0 &&
                strcmp(cells[2].p, "61728.5") == 0 && strcmp(cells[3].p, "2010-10-06") == 0 && strcmp(cells[4].p, "TRUE") == 0 &&
                strcmp(cells[5].p, "x") == 0;
    }
    return 0;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Decompression limits: a part inflating past the limit, and shared strings past theirs, are
 * errors that say so (the book's parts are a few hundred bytes: tiny limits stand in for big
 * files). */
static void test_decompression_limits(void **state)
{
    char err[256];
    pulse_buf_t b = PULSE_BUF_INIT;
    pulse_xlsx_t *x = pulse_xlsx_open(fixture_path("book.xlsx"), err, sizeof(err));
    assert_non_null(x);
    pulse_xlsx_set_limits(PULSE_XLSX_MAX_PART_BYTES, 8); /* shared strings: 8 bytes */
    assert_int_equal(pulse_xlsx_read(x, NULL, collect, &b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "shared strings table is larger than"));
    pulse_xlsx_close(x);

    x = pulse_xlsx_open(fixture_path("book.xlsx"), err, sizeof(err));
    assert_non_null(x);
    pulse_xlsx_set_limits(64, PULSE_XLSX_MAX_SHARED_BYTES); /* any part: 64 bytes */
    assert_int_equal(pulse_xlsx_read(x, NULL, collect, &b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "once decompressed"));
    pulse_xlsx_close(x);

    pulse_xlsx_set_limits(PULSE_XLSX_MAX_PART_BYTES, PULSE_XLSX_MAX_SHARED_BYTES);
    pulse_buf_free(&b);
}

static void test_big_sheet_bounded_memory(void **state)
{
    char xml[128], sst[128];
    snprintf(xml, sizeof(xml), "%s/big_sheet.xml", tmpdir);
    snprintf(sst, sizeof(sst), "%s/big_sst.xml", tmpdir);
    FILE *f = fopen(sst, "w");
    assert_non_null(f);
    fprintf(f, "<sst xmlns=\"" NS_MAIN "\" uniqueCount=\"%d\">", BIG_STRINGS);
    for (int i = 0; i < BIG_STRINGS; i++)
        fprintf(f, "<si><t>str%d</t></si>", i);
    fputs("</sst>", f);
    fclose(f);
    f = fopen(xml, "w");
    assert_non_null(f);
    fputs("<worksheet xmlns=\"" NS_MAIN "\"><sheetData>", f);
    for (unsigned r = 1; r <= BIG_ROWS; r++)
        fprintf(f,
                "<row r=\"%u\"><c r=\"A%u\" t=\"s\"><v>%u</v></c><c r=\"B%u\" t=\"inlineStr\"><is><t>row %u</t></is></c>"
                "<c r=\"C%u\"><v>%g</v></c><c r=\"D%u\" s=\"1\"><v>%u</v></c><c r=\"E%u\" t=\"b\"><v>%u</v></c>"
                "<c r=\"F%u\" t=\"str\"><f>\"x\"</f><v>x</v></c></row>\n",
                r, r, r % BIG_STRINGS, r, r, r, r * 0.5, r, 40000 + r % 3000, r, r % 2, r);
    fputs("</sheetData></worksheet>", f);
    long xml_bytes = ftell(f);
    fclose(f);
    part_t parts[] = {
        {"_rels/.rels", root_rels, NULL},
        {"xl/workbook.xml", workbook, NULL},
        {"xl/_rels/workbook.xml.rels", wb_rels, NULL},
        {"xl/sharedStrings.xml", NULL, sst},
        {"xl/styles.xml", styles, NULL},
        {"xl/worksheets/sheet1.xml", NULL, xml},
        {"xl/worksheets/sheet2.xml", sheet2, NULL},
    };
    const char *path = fixture_path("big.xlsx");
    write_zip(path, parts, sizeof(parts) / sizeof(parts[0]));

    long rss_before = peak_rss_kb();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char err[256];
    pulse_xlsx_t *x = pulse_xlsx_open(path, err, sizeof(err));
    assert_non_null(x);
    big_t b = {0};
    assert_int_equal(pulse_xlsx_read(x, NULL, big_row, &b, err, sizeof(err)), 0);
    pulse_xlsx_close(x);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long rss_after = peak_rss_kb();
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_int_equal(b.rows, BIG_ROWS);
    assert_true(b.ok);
    print_message("xlsx: %d rows (%.1f MB of sheet XML) in %.3f s = %.0f rows/s; peak RSS %ld KB -> %ld KB (+%ld KB)\n", BIG_ROWS,
                  (double)xml_bytes / 1e6, secs, BIG_ROWS / secs, rss_before, rss_after, rss_after - rss_before);
    /* the sheet XML is ~40 MB; reading it must not grow the process by more than a few buffers */
    assert_true(rss_after - rss_before < 8 * 1024);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sheet_listing),
        cmocka_unit_test(test_first_sheet_values),
        cmocka_unit_test(test_named_sheet_and_prefixes),
        cmocka_unit_test(test_date1904),
        cmocka_unit_test(test_serial_to_iso),
        cmocka_unit_test(test_unknown_sheet),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_not_a_zip),
        cmocka_unit_test(test_missing_parts),
        cmocka_unit_test(test_malformed_xml),
        cmocka_unit_test(test_decompression_limits),
        cmocka_unit_test(test_big_sheet_bounded_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
