/* A fast reader of a transactions file straight into a txstore (pulse segment FILE and its bench):
 * the file is mapped, cut into per-thread ranges at line boundaries and parsed by a tight loop
 * specialised for the plan (no per-field callbacks); files with quotes go through the general CSV
 * parser instead. Bad rows are counted and the first ones kept, never fatal. Customer indexes are
 * those of a single sequential pass whatever the thread count (per-thread tables merged in order). */
#ifndef PULSE_ANALYTICS_TXFILE_H
#define PULSE_ANALYTICS_TXFILE_H

#include <stddef.h>
#include <stdint.h>

#include "analytics/txstore.h"
#include "ingest/types.h"

typedef struct pulse_txfile_plan_t {
    char sep;                                                 /* ',' ';' '\t' '|' or PULSE_CSV_SEP_WHITESPACE (runs of blanks) */
    int has_header;                                           /* the first non-blank line names the columns: skipped */
    int col_customer, col_date, col_amount;                   /* 0-based, required */
    int col_quantity, col_category, col_product, col_invoice; /* -1: absent */
    pulse_date_format_t date_format;
    int decimal_comma;
    char cancel_prefix[8]; /* an invoice starting with it is a cancellation ("C" in the UCI retail set); "" none */
    int threads;           /* 0 = 2 */
} pulse_txfile_plan_t;

#define PULSE_TXFILE_BAD_KEPT 5

typedef struct pulse_txfile_bad_t {
    uint64_t line; /* 1-based physical line */
    char reason[48];
    char text[100]; /* the line's start */
} pulse_txfile_bad_t;

typedef struct pulse_txfile_stats_t {
    uint64_t bytes;
    uint64_t rows;     /* rows stored */
    uint64_t bad_rows; /* rows skipped: missing field, unreadable date or amount, empty customer */
    size_t nbad;       /* kept in bad[], lowest line first */
    pulse_txfile_bad_t bad[PULSE_TXFILE_BAD_KEPT];
    int csv_fallback;                    /* the file had quotes: read by the general CSV parser, one thread */
    int threads;                         /* threads used */
    double parse_seconds, merge_seconds; /* wall time of the parallel parse and of the ordered merge */
} pulse_txfile_stats_t;

/* All columns absent, ',' separator, 2 threads. */
void pulse_txfile_plan_init(pulse_txfile_plan_t *plan);

/* Guesses a plan from the start of a file: a header naming the columns (CustomerID/customer_id,
 * TransactionDate/date/InvoiceDate, TransactionAmount/amount/dollar_value, Quantity/number_of_cds,
 * ProductCategory/category, product/StockCode, InvoiceNo/invoice), as `pulse gen --industry
 * ecommerce` writes; or CDNOW's headerless `customer_id date(YYYYMMDD) quantity amount` separated
 * by blanks. The date format is the first that reads the first data row. Returns 0 or -1. */
int pulse_txfile_plan_guess(const char *buf, size_t len, pulse_txfile_plan_t *plan, char *err, size_t errlen);
/* The same from the first 64 KiB of the file at path ("cannot read PATH" when it cannot). */
int pulse_txfile_plan_guess_file(const char *path, pulse_txfile_plan_t *plan, char *err, size_t errlen);

/* Reads buf[0..len) into st (initialised, not finished; rows are appended). stats may be NULL.
 * Returns 0 (bad rows counted in stats), or -1 with a message (bad plan, CSV error). */
int pulse_txfile_read_buffer(const char *buf, size_t len, const pulse_txfile_plan_t *plan, pulse_txstore_t *st,
                             pulse_txfile_stats_t *stats, char *err, size_t errlen);
/* The same from a file, mapped (pages already parsed are released as the threads go, so a
 * 400 MB file does not stay resident). */
int pulse_txfile_read(const char *path, const pulse_txfile_plan_t *plan, pulse_txstore_t *st, pulse_txfile_stats_t *stats,
                      char *err, size_t errlen);

#endif
