/* The import loader: one uploaded file (CSV or .xlsx) plus a plan (which column is which canonical
 * field, date formats, derivations) -> rows in transactions, events or customers, in one
 * transaction, with a data-quality report. Rows are parsed, cleaned and keyed in C and streamed
 * with COPY into a temporary staging table (COPY cannot write through Row-Level Security), then
 * moved into the real tables with INSERT ... SELECT in key order (plain INSERT for keys first seen
 * in the file when the tenant has none of that kind yet, ON CONFLICT DO NOTHING for the rest).
 * The per-row part (the "mapper") needs no database: tests and the in-memory benchmark drive it. */
#ifndef PULSE_INGEST_LOAD_H
#define PULSE_INGEST_LOAD_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "ingest/csv.h"
#include "ingest/types.h"

typedef enum pulse_import_kind_t { PULSE_IMPORT_TRANSACTIONS, PULSE_IMPORT_EVENTS, PULSE_IMPORT_CUSTOMERS } pulse_import_kind_t;

#define PULSE_IMPORT_MAX_FIELDS 16
#define PULSE_IMPORT_MAX_ATTRS 128
#define PULSE_IMPORT_MAX_COLUMN 16383 /* highest 0-based column a plan may name (xlsx's limit) */

/* A canonical field (names as in the industries/ files) read from a 0-based column. date_format is
 * used for transaction_date / event_date only. */
typedef struct pulse_import_field_t {
    char name[48];
    int column;
    pulse_date_format_t date_format;
} pulse_import_field_t;

typedef enum pulse_import_attr_type_t {
    PULSE_ATTR_TEXT,
    PULSE_ATTR_INTEGER,
    PULSE_ATTR_DECIMAL,
    PULSE_ATTR_BOOLEAN,
    PULSE_ATTR_DATE
} pulse_import_attr_type_t;

/* An extra column of a customers file, merged into customers.attributes under name. Dates use
 * date_format (PULSE_DATE_NONE: ISO date or date-time) and are stored as ISO strings. */
typedef struct pulse_import_attr_t {
    int column;
    char name[128];
    pulse_import_attr_type_t type;
    pulse_date_format_t date_format;
} pulse_import_attr_t;

typedef struct pulse_import_plan_t {
    pulse_import_kind_t kind;
    int xlsx;                    /* 1: .xlsx workbook, 0: CSV */
    char sheet[256];             /* xlsx: sheet name, "" = the first */
    pulse_csv_dialect_t dialect; /* CSV: sep, quote, decimal_comma (has_header is ignored: see below) */
    int has_header;              /* the first row names the columns: skipped (CSV and xlsx) */
    pulse_import_field_t fields[PULSE_IMPORT_MAX_FIELDS];
    int n_fields;
    int derive_amount_from_qty_price; /* amount = quantity * unit_price (amount not mapped) */
    char cancellation_field[48];      /* "" or a mapped text field, e.g. "invoice_no" */
    char cancellation_prefix[8];      /* e.g. "C": such rows are returns (negative amount) */
    pulse_import_attr_t attrs[PULSE_IMPORT_MAX_ATTRS];
    int n_attrs;
    double max_error_rate; /* rejected/read above this aborts the upload; default 0.01 */
    int64_t now_epoch;     /* "today" for the future-date check; 0 = time(NULL) */
} pulse_import_plan_t;

/* Defaults: transactions, CSV with dialect defaults and a header, nothing mapped, 0.01. */
void pulse_import_plan_init(pulse_import_plan_t *plan);
/* Checks a plan: known field names for its kind (the message names unknown ones), required fields
 * mapped (amount may be derived), columns in range, no field twice, date formats present, the
 * cancellation field mapped, attributes only for customers and not colliding with a mapped
 * column. Returns 0 or -1 with a message in err. */
int pulse_import_plan_check(const pulse_import_plan_t *plan, char *err, size_t errlen);
const char *pulse_import_kind_name(pulse_import_kind_t kind); /* "transactions", ... */

/* ---------------------------------------------------------------------------------------------
 * Progress, result, the whole run. */

typedef struct pulse_import_progress_t {
    const char *phase; /* "reading", "storing", "merging customers", "done" */
    uint64_t bytes_done, bytes_total;
    uint64_t rows_read, rows_accepted, rows_rejected;
} pulse_import_progress_t;

/* Called at each phase change and about every 64 K rows while reading. Return non-zero to cancel:
 * the import rolls back and returns PULSE_IMPORT_CANCELLED. */
typedef int (*pulse_import_progress_cb)(void *ud, const pulse_import_progress_t *p);

typedef enum pulse_import_status_t {
    PULSE_IMPORT_OK,
    PULSE_IMPORT_REJECTED, /* too many bad rows: nothing stored (error_code "too_many_bad_rows") */
    PULSE_IMPORT_CANCELLED,
    PULSE_IMPORT_FAILED /* error_code: "empty_file", "malformed", "io", "database", "bad_plan" */
} pulse_import_status_t;

typedef struct pulse_import_result_t {
    pulse_import_status_t status;
    /* rows_read = rows_accepted + rows_rejected + rows_duplicate; rows_accepted = rows_inserted +
     * rows_existing (rows_existing: records already stored by an earlier upload; for the customers
     * kind: customers updated). rows_duplicate: repeated records inside the file (customers kind:
     * earlier rows of a customer the file names again; the last row wins). */
    uint64_t rows_read, rows_accepted, rows_rejected, rows_duplicate, rows_existing, rows_inserted;
    uint64_t customers_created;
    char *report_json; /* malloc'd, owned by the caller (free()); set unless the plan was refused */
    char error[512];
    char error_code[64];
} pulse_import_result_t;

/* Loads the file at path into the tenant's tables following plan. conn: a blocking libpq
 * connection acting as pulse_app, idle (no open transaction): this function runs BEGIN ...
 * COMMIT itself, sets pulse.tenant_id to tenant_id for the transaction, and rolls everything back
 * on any failure, rejection or cancel. tenant_id and import_id are UUID strings. It never writes
 * the jobs or imports rows. Returns out->status (0 = OK); out->report_json is the caller's. */
int pulse_import_run(PGconn *conn, const char *tenant_id, const char *import_id, const pulse_import_plan_t *plan, const char *path,
                     pulse_import_progress_cb cb, void *ud, pulse_import_result_t *out);

/* ---------------------------------------------------------------------------------------------
 * The per-row engine, without a database (tests, the in-memory benchmark, pulse_import_run). */

typedef struct pulse_import_mapper_t pulse_import_mapper_t;

/* One cell of a row: bytes (not NUL-terminated), and whether the reader found it invalid UTF-8. */
typedef struct pulse_import_cell_t {
    const char *p;
    size_t n;
    int bad_utf8;
} pulse_import_cell_t;

/* Checks and compiles the plan (NULL with a message in err if pulse_import_plan_check refuses it).
 * The plan is copied. Free with pulse_import_mapper_free. */
pulse_import_mapper_t *pulse_import_mapper_new(const pulse_import_plan_t *plan, char *err, size_t errlen);
void pulse_import_mapper_free(pulse_import_mapper_t *m);

/* The staging table's data columns, comma-separated, as named in the target table ("row_key,
 * customer_ref, ..."), and its CREATE TEMP TABLE statement. Static strings owned
 * by the mapper. */
const char *pulse_import_stage_columns(const pulse_import_mapper_t *m);
const char *pulse_import_stage_ddl(const pulse_import_mapper_t *m);
/* The COPY column list: "line, " + the columns above (+ ", maybe_dup" for transactions and events:
 * true when the row's key may have appeared earlier in the file, a Bloom filter's answer). */
const char *pulse_import_stage_copy_columns(const pulse_import_mapper_t *m);

/* Maps one data row (line: its 1-based line or sheet row, reported in issues): cleans it and, if
 * accepted, appends one line of COPY text to copy (NULL: only decide). Returns 1 accepted, 0
 * rejected (counted in the report under its issue). */
int pulse_import_map_row(pulse_import_mapper_t *m, uint64_t line, const pulse_import_cell_t *cells, size_t ncells,
                         pulse_buf_t *copy);

/* From now on the maybe_dup flag of the last few accepted rows (at most 8) is left as a
 * placeholder in their COPY text, so that the Bloom filter's memory for a row is fetched while the
 * next rows are mapped instead of stalling this one: the caller must call pulse_import_map_settle
 * before it sends, reads or resets that buffer (and before it passes another one). Kinds without
 * the flag (customers): no effect. */
void pulse_import_map_defer(pulse_import_mapper_t *m);
/* Writes the flags still pending. */
void pulse_import_map_settle(pulse_import_mapper_t *m);

/* The natural key of the last accepted row (two 64-bit halves), as written in its COPY line. */
void pulse_import_last_key(const pulse_import_mapper_t *m, uint64_t key[2]);

typedef struct pulse_import_counts_t {
    uint64_t rows_read, rows_accepted, rows_rejected, returns;
} pulse_import_counts_t;
void pulse_import_counts(const pulse_import_mapper_t *m, pulse_import_counts_t *c);

/* The outlier rule over the amounts seen so far (transactions: amount; events: revenue_impact):
 * |x - median| > 10 * MAD over a reservoir sample of at most 100 000 values. Returns 0 and sets
 * *lo and *hi (values outside [lo, hi] are outliers), or -1 when there is no rule (fewer than 20
 * values, or MAD 0). */
int pulse_import_outlier_bounds(pulse_import_mapper_t *m, double *lo, double *hi);

/* Counted issues found after mapping (by the database steps). first_lines may be NULL. */
void pulse_import_note(pulse_import_mapper_t *m, const char *code, uint64_t count, const uint64_t *first_lines, size_t nlines);

/* Appends the report JSON to out (see the import docs for its shape). r supplies the final
 * counts (rows_duplicate, rows_existing, customers_created); aborted: the upload was not stored. */
void pulse_import_report(pulse_import_mapper_t *m, const pulse_import_result_t *r, int aborted, double elapsed_s, pulse_buf_t *out);

/* Formats a 128-bit key as a UUID string (36 chars + NUL) into out. */
void pulse_import_key_uuid(const uint64_t key[2], char out[37]);

#endif
