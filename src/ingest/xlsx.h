/* Streaming .xlsx reader for data ingestion: lists the sheets of a workbook and hands the rows of
 * one sheet to a callback, one row at a time, cells as text (dates as ISO 8601). Memory is the
 * shared-strings table plus one row, whatever the sheet's size. It reads values, never formulas
 * (the cached result is used), and refuses DTDs. libzip (Debian libzip-dev) streams each part
 * through inflate; expat (libexpat1-dev) parses it SAX-style: both are small, long-maintained
 * and already in every Debian base, so we keep no zip or XML code of our own. */
#ifndef PULSE_INGEST_XLSX_H
#define PULSE_INGEST_XLSX_H

#include <stddef.h>
#include <stdint.h>

/* Limits against decompression bombs: no part of the archive is inflated past
 * PULSE_XLSX_MAX_PART_BYTES, and the shared strings (kept in memory) stop at
 * PULSE_XLSX_MAX_SHARED_BYTES; both are errors that say so. */
#define PULSE_XLSX_MAX_PART_BYTES (UINT64_C(512) << 20)
#define PULSE_XLSX_MAX_SHARED_BYTES ((size_t)64 << 20)
/* Replaces both limits (process-wide; tests use small ones). */
void pulse_xlsx_set_limits(uint64_t part_bytes, size_t shared_bytes);

typedef struct pulse_xlsx_t pulse_xlsx_t;

/* One cell's text: NUL-terminated, len excludes the NUL. Valid only during the callback. */
typedef struct pulse_xlsx_cell_t {
    const char *p;
    size_t len;
} pulse_xlsx_cell_t;

/* Called once per row that has at least one non-empty cell. row is the sheet's own 1-based row
 * number (rows may skip numbers); cells[i] is column i+1 ("A" is cells[0]); empty cells between
 * values are "" and trailing empty cells are dropped, so ncells is the last non-empty column.
 * Return 0 to continue, anything else to stop reading (pulse_xlsx_read then returns it). */
typedef int (*pulse_xlsx_row_cb)(void *ud, uint32_t row, const pulse_xlsx_cell_t *cells, size_t ncells);

/* Opens the workbook at path and reads its sheet list (shared strings and styles are loaded on the
 * first read). Returns NULL with a message in err (not a zip, not a workbook, malformed XML).
 * The caller owns the result; free it with pulse_xlsx_close. */
pulse_xlsx_t *pulse_xlsx_open(const char *path, char *err, size_t errlen);

/* Sets *names to the sheet names in workbook order and returns how many there are. The names
 * are owned by x and live until pulse_xlsx_close. */
int pulse_xlsx_sheets(pulse_xlsx_t *x, const char *const **names);

/* Streams the rows of the named sheet (NULL: the first sheet) to cb. Returns 0 once the sheet
 * is read, the callback's value if it stopped early, or -1 with a message in err (unknown sheet
 * name — the message lists the sheets —, missing part, malformed XML, corrupt archive). */
int pulse_xlsx_read(pulse_xlsx_t *x, const char *sheet, pulse_xlsx_row_cb cb, void *ud, char *err, size_t errlen);

void pulse_xlsx_close(pulse_xlsx_t *x);

/* Converts an Excel serial date (1900 system with its 1900-02-29 bug, or the 1904 system) to
 * ISO 8601 text in out: "2024-03-05", "2024-03-05T13:45:00" (with_time) or "13:45:00"
 * (time_only). Returns the length, or -1 if the serial is out of range (negative, past 9999). */
int pulse_xlsx_serial_to_iso(double serial, int date1904, int with_time, int time_only, char *out, size_t outlen);

#endif
