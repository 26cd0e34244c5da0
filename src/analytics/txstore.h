/* The in-memory columnar store of one tenant's transactions and events, for feature computation:
 * customer refs (and categories, products, event types) interned to dense uint32 indexes, rows as
 * structure-of-arrays. The DB loader and the file reader append rows through the same API; a finish
 * step groups rows by customer, sorted by day, so features are one cache-friendly pass per customer. */
#ifndef PULSE_ANALYTICS_TXSTORE_H
#define PULSE_ANALYTICS_TXSTORE_H

#include <stddef.h>
#include <stdint.h>

#define PULSE_TXSTORE_NONE UINT32_MAX /* category/product of a row that has none */
#define PULSE_TX_RETURN 1u            /* a return or cancellation (amount is negative or taken as such) */
#define PULSE_TX_DISCOUNTED 2u        /* bought with a discount */

/* Strings interned to 0..n-1 in order of first appearance (so two loads of the same rows give the
 * same indexes). Two indexes: a hash table, and for numeric refs ("12345", up to 9 digits) a paged
 * direct array by value while the values are dense enough (allocated pages cover at most 8 x the
 * count + 1 M values; past that they move to the hash table for good): no hashing, no probing,
 * sequential on files sorted by id, and no copying as it grows. The indexes are dropped by
 * pulse_txstore_finish (the strings stay). */
typedef struct pulse_strtab_t {
    char *bytes; /* all strings back to back, not NUL-terminated */
    size_t nbytes, bytes_cap;
    uint32_t *off; /* n+1 offsets into bytes */
    uint32_t n, cap;
    /* open addressing: hash << 32 | (id + 1), 0 = empty; the hash in the slot spares a cache miss
     * per probe on 3.5 M-customer tables. NULL until used or once dropped. */
    uint64_t *slots;
    uint32_t mask, nhash;
    uint32_t **dpages; /* dpages[v >> 16][v & 0xffff] = id + 1; NULL pages where no value fell */
    uint32_t ndpages_cap, ndpages, ndirect;
    int direct_off; /* numeric refs go to the hash table (too sparse, or indexes dropped) */
} pulse_strtab_t;

uint32_t pulse_strtab_intern(pulse_strtab_t *t, const char *s, size_t len);
/* Makes room for n strings in all without growing the hash index again. */
void pulse_strtab_reserve(pulse_strtab_t *t, uint32_t n);
const char *pulse_strtab_get(const pulse_strtab_t *t, uint32_t id, size_t *len);

/* One appended transaction. Strings are copied. */
typedef struct pulse_tx_row_t {
    const char *customer;
    size_t customer_len;
    int32_t day;                    /* days since 1970-01-01 UTC */
    double amount;                  /* negative: return/cancellation */
    double quantity;                /* NAN: not given */
    const char *category, *product; /* NULL: not given */
    size_t category_len, product_len;
    unsigned flags; /* PULSE_TX_* */
} pulse_tx_row_t;

/* Columns are public and read-only for the feature code. Amounts and values are floats: 4 bytes a
 * row instead of 8 keeps 10 M rows in ~170 MB; a float holds 7 significant digits (a cent on amounts
 * up to ~100 000) and every sum is accumulated in double, so a customer's net total is off by far
 * less than a cent. The money of record stays in PostgreSQL numeric; this store feeds segmentation
 * and models. Optional columns are NULL until a row carries the value (backfilled then). */
typedef struct pulse_txstore_t {
    pulse_strtab_t customers, categories, products, event_types;
    /* transactions */
    uint32_t ntx, tx_cap;
    uint32_t *tx_customer; /* freed by finish: tx_first says whose rows are whose */
    int32_t *tx_day;
    float *tx_amount;
    float *tx_quantity;     /* NULL: no row had one; NAN per row without */
    uint32_t *tx_category;  /* NULL: none; PULSE_TXSTORE_NONE per row without */
    uint32_t *tx_product;   /* likewise */
    uint8_t *tx_flags;      /* NULL: no row had a flag */
    unsigned tx_flags_seen; /* OR of every row's flags (discount share is 0 without the flag) */
    /* events */
    uint32_t nev, ev_cap;
    uint32_t *ev_customer; /* freed by finish */
    int32_t *ev_day;
    uint32_t *ev_type;
    float *ev_value;    /* revenue impact or amount */
    float *ev_quantity; /* NAN when not given */
    /* after pulse_txstore_finish: customer c's rows are tx_first[c]..tx_first[c+1]-1 (day order,
     * ties in append order), likewise ev_first; ncustomers entries + 1 */
    uint32_t *tx_first, *ev_first;
    int finished;
    int32_t tx_min_day, tx_max_day, ev_min_day, ev_max_day; /* valid when ntx/nev > 0 */
} pulse_txstore_t;

void pulse_txstore_init(pulse_txstore_t *st);
void pulse_txstore_free(pulse_txstore_t *st);

/* Makes room for ntx transactions and nev events in all (a reader that knows the size avoids the
 * reallocations, and with them page faults and TLB shootdowns). */
void pulse_txstore_reserve(pulse_txstore_t *st, uint32_t ntx, uint32_t nev);

/* Appends a row; returns its customer index. OOM (or more than 4 G rows) aborts. Must not be
 * called after pulse_txstore_finish. */
uint32_t pulse_txstore_add_transaction(pulse_txstore_t *st, const pulse_tx_row_t *row);
/* The same with the customer already interned in st->customers: a reader skips the lookup when
 * consecutive rows share a customer (files are often grouped by customer). */
void pulse_txstore_add_transaction_at(pulse_txstore_t *st, uint32_t customer, const pulse_tx_row_t *row);
/* Appends an event: value (revenue impact), quantity (NAN: none). */
uint32_t pulse_txstore_add_event(pulse_txstore_t *st, const char *customer, size_t customer_len, int32_t day,
                                 const char *event_type, size_t event_type_len, double value, double quantity);

/* Appends all of src's rows to dst, renaming src's indexes into dst's tables as if src's rows had
 * been appended one by one (so merging per-thread stores in order gives the indexes of a single
 * pass; into an empty dst, src is simply moved). Takes src's memory: src is freed (and re-initialised), one column at a time to
 * bound the peak. Neither may be finished. */
void pulse_txstore_merge(pulse_txstore_t *dst, pulse_txstore_t *src);

/* Groups rows by customer (counting sort, stable) and orders each customer's rows by day; a store
 * already in that order is left as it is. Builds tx_first/ev_first, frees tx_customer/ev_customer
 * (redundant with them), drops the indexes of the string tables and trims their arrays. */
void pulse_txstore_finish(pulse_txstore_t *st);

/* After finish: the first customer in [lo, hi) whose rows (transactions and events together)
 * start at or past row number target, hi if none. Splits customers into ranges of about equal
 * work for threads. */
static inline uint32_t pulse_txstore_customer_at_row(const pulse_txstore_t *st, uint32_t lo, uint32_t hi, uint64_t target)
{
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if ((uint64_t)st->tx_first[mid] + st->ev_first[mid] < target)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static inline uint32_t pulse_txstore_ncustomers(const pulse_txstore_t *st)
{
    return st->customers.n;
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
int32_t pulse_txstore_days_from_civil(int y, unsigned m, unsigned d);

#endif
