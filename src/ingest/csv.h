/* CSV ingestion: dialect sniffing from a prefix of an upload, and a streaming parser that takes the
 * file in chunks of any size (a quote, CRLF or UTF-8 sequence may straddle two chunks) and hands
 * out one record at a time. Memory is bounded by the longest record (max_row), never the file.
 * Separators `,` `;` tab `|` or runs of spaces/tabs; RFC 4180 quoting; CRLF/LF/CR; UTF-8 BOM. */
#ifndef PULSE_INGEST_CSV_H
#define PULSE_INGEST_CSV_H

#include <stddef.h>
#include <stdint.h>

/* `sep` value meaning "runs of spaces and tabs separate fields; leading/trailing blanks ignored". */
#define PULSE_CSV_SEP_WHITESPACE ' '
#define PULSE_CSV_DEFAULT_MAX_ROW ((size_t)1 << 20)

typedef struct pulse_csv_dialect_t {
    char sep;          /* ',' ';' '\t' '|' or PULSE_CSV_SEP_WHITESPACE */
    char quote;        /* '"' or 0 (no quoting: quote characters are data) */
    int has_header;    /* sniffed: the first record names the columns */
    int has_bom;       /* sniffed: the input starts with a UTF-8 BOM (the parser strips it anyway) */
    int crlf;          /* sniffed: records end with CRLF (the parser accepts LF, CRLF and CR anyway) */
    int decimal_comma; /* sniffed: numbers are written 1.234,56 (only when sep is not ',') */
    int strict;        /* parser: a stray quote is an error instead of a counted warning */
    size_t max_row;    /* parser: longest record in bytes (field bytes + one per field); 0 = default */
    size_t nfields;    /* sniffed: the most common field count */
    size_t rows_sampled;
    double confidence; /* sniffed: 0..1, share of sampled records with nfields fields, lowered on ties */
    int ambiguous;     /* sniffed: no clear decision; reason says why (the fields hold the best guess) */
    char reason[160];
} pulse_csv_dialect_t;

/* Defaults: ',' and '"', lenient, max_row 1 MiB, nothing sniffed. */
void pulse_csv_dialect_init(pulse_csv_dialect_t *d);

/* Decides the dialect from the first bytes of a file (64 KiB is plenty; the last, possibly cut,
 * record is ignored unless it is the only one). Chooses the separator and quote whose parse gives
 * the most consistent field counts (quoted newlines handled), then the header, BOM, line ending and
 * decimal comma. Returns 0 (check out->ambiguous: e.g. a single column) or -1 with a message in err
 * when the input is empty or binary (NUL bytes). */
int pulse_csv_sniff(const char *buf, size_t len, pulse_csv_dialect_t *out, char *err, size_t errlen);

typedef struct pulse_csv_field_t {
    const char *ptr; /* field bytes (quotes removed, "" unescaped); valid during the callback only */
    size_t len;
    unsigned char quoted;   /* the field was enclosed in quotes */
    unsigned char bad_utf8; /* the field is not valid UTF-8 (bytes delivered as they are) */
} pulse_csv_field_t;

/* Called once per non-blank record. row_number is the 1-based physical record number (blank lines
 * count but are not delivered). Returns 0 to continue, non-zero to stop the parse. */
typedef int (*pulse_csv_row_cb)(void *ud, size_t row_number, const pulse_csv_field_t *fields, size_t nfields);

typedef struct pulse_csv_stats_t {
    uint64_t bytes;             /* input bytes consumed, BOM included */
    uint64_t records;           /* physical records seen, blank ones included */
    uint64_t rows;              /* records delivered to the callback */
    uint64_t stray_quotes;      /* lenient mode: quotes inside unquoted fields / text after a closing quote */
    uint64_t first_stray_quote; /* record number of the first one, 0 if none */
    uint64_t bad_utf8_rows;     /* records with at least one field that is not valid UTF-8 */
    uint64_t first_bad_utf8;    /* record number of the first one, 0 if none */
} pulse_csv_stats_t;

typedef struct pulse_csv_parser_t pulse_csv_parser_t;

/* The dialect is copied. OOM aborts. Free with pulse_csv_free. */
pulse_csv_parser_t *pulse_csv_parser_new(const pulse_csv_dialect_t *d, pulse_csv_row_cb cb, void *ud);
void pulse_csv_free(pulse_csv_parser_t *p);

/* Feeds the next chunk. Returns 0, 1 if the callback asked to stop (later calls keep returning 1),
 * or -1 on a fatal error (message from pulse_csv_error, with the record number and byte offset;
 * later calls keep returning -1). Fatal: a record over max_row; in strict mode a stray quote. */
int pulse_csv_feed(pulse_csv_parser_t *p, const char *chunk, size_t len);
/* Ends the input: delivers a last record without a trailing newline. Unterminated quote: -1. */
int pulse_csv_finish(pulse_csv_parser_t *p);

const char *pulse_csv_error(const pulse_csv_parser_t *p);
const pulse_csv_stats_t *pulse_csv_stats(const pulse_csv_parser_t *p);
/* The 1-based line on which the current record (the one in the callback) starts. */
uint64_t pulse_csv_line(const pulse_csv_parser_t *p);

#endif
