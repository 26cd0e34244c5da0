/* In-memory columnar transaction store (see txstore.h). */
#include "analytics/txstore.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

/* ---------------------------------------------------------------------------------------------
 * String tables */

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, s, n);
    h = (h ^ v) * 0x94d049bb133111ebULL;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    return (uint32_t)(h >> 32);
}

/* Slots are written at once (malloc + memset, not calloc): calloc's lazily mapped zero pages would
 * fault twice, the second time with a TLB shootdown across the threads of the reader. */
static void strtab_rehash(pulse_strtab_t *t, uint64_t nslots)
{
    uint64_t *old = t->slots;
    uint64_t oldn = old ? (uint64_t)t->mask + 1 : 0;
    if (nslots > ((uint64_t)1 << 32)) {
        fprintf(stderr, "pulse: string table over 2 G entries\n");
        abort();
    }
    t->slots = pulse_xmalloc(nslots * sizeof(uint64_t));
    memset(t->slots, 0, nslots * sizeof(uint64_t));
    t->mask = (uint32_t)(nslots - 1);
    for (uint64_t k = 0; k < oldn; k++) {
        uint64_t e = old[k];
        if (e == 0)
            continue;
        uint32_t i = (uint32_t)(e >> 32) & t->mask;
        while (t->slots[i] != 0)
            i = (i + 1) & t->mask;
        t->slots[i] = e;
    }
    free(old);
}

static uint64_t slots_for(uint64_t n)
{
    uint64_t ns = 1024;
    while (n * 2 > ns) /* load factor at most 1/2: probes stay short */
        ns *= 2;
    return ns;
}

static void hash_put(pulse_strtab_t *t, uint32_t id)
{
    const char *s = t->bytes + t->off[id];
    uint64_t h = hash_bytes(s, t->off[id + 1] - t->off[id]);
    uint32_t i = (uint32_t)h & t->mask;
    while (t->slots[i] != 0)
        i = (i + 1) & t->mask;
    t->slots[i] = h << 32 | (uint64_t)(id + 1);
    t->nhash++;
}

static void hash_reserve(pulse_strtab_t *t, uint32_t n)
{
    if (t->slots != NULL && (uint64_t)n * 2 <= (uint64_t)t->mask + 1)
        return;
    strtab_rehash(t, slots_for(n));
}

#define DPAGE_BITS 16
#define DPAGE ((uint32_t)1 << DPAGE_BITS)
#define DIRECT_SLACK ((uint64_t)1 << 20)

static void direct_free(pulse_strtab_t *t)
{
    for (uint32_t k = 0; k < t->ndpages_cap; k++)
        free(t->dpages[k]);
    free(t->dpages);
    t->dpages = NULL;
    t->ndpages_cap = t->ndpages = t->ndirect = 0;
}

/* Drops both indexes (the strings stay; pulse_strtab_reserve or the next intern rebuilds a hash
 * index of everything) and gives back the unused tail of the string arrays. */
static void drop_index(pulse_strtab_t *t)
{
    free(t->slots);
    t->slots = NULL;
    t->mask = t->nhash = 0;
    direct_free(t);
    t->direct_off = 1;
    if (t->n > 0) {
        t->bytes = pulse_xrealloc(t->bytes, t->nbytes ? t->nbytes : 1);
        t->bytes_cap = t->nbytes ? t->nbytes : 1;
        t->off = pulse_xrealloc(t->off, ((size_t)t->n + 1) * sizeof(uint32_t));
        t->cap = t->n;
    }
}

/* Numeric refs leave the direct array for the hash table (the values are too sparse). */
static void direct_give_up(pulse_strtab_t *t)
{
    t->direct_off = 1;
    if (t->dpages == NULL)
        return;
    hash_reserve(t, t->nhash + t->ndirect);
    for (uint32_t k = 0; k < t->ndpages_cap; k++)
        for (uint32_t i = 0; t->dpages[k] && i < DPAGE; i++)
            if (t->dpages[k][i] != 0)
                hash_put(t, t->dpages[k][i] - 1);
    direct_free(t);
}

void pulse_strtab_reserve(pulse_strtab_t *t, uint32_t n)
{
    if (t->slots == NULL && t->dpages == NULL && t->n > 0) {
        /* dropped indexes: everything goes back to the hash table */
        t->direct_off = 1;
        t->nhash = 0;
        hash_reserve(t, n > t->n ? n : t->n);
        for (uint32_t id = 0; id < t->n; id++)
            hash_put(t, id);
    }
    if (t->dpages == NULL)
        hash_reserve(t, n);
    if (n > t->cap) {
        t->cap = n;
        t->off = pulse_xrealloc(t->off, ((size_t)t->cap + 1) * sizeof(uint32_t));
    }
}

static uint32_t strtab_append(pulse_strtab_t *t, const char *s, size_t len)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 256;
        t->off = pulse_xrealloc(t->off, ((size_t)t->cap + 1) * sizeof(uint32_t));
    }
    if (t->nbytes + len > UINT32_MAX) {
        fprintf(stderr, "pulse: string table over 4 GiB\n");
        abort();
    }
    if (t->nbytes + len > t->bytes_cap) {
        size_t nc = t->bytes_cap ? t->bytes_cap * 2 : 4096;
        while (nc < t->nbytes + len)
            nc *= 2;
        t->bytes = pulse_xrealloc(t->bytes, nc);
        t->bytes_cap = nc;
    }
    if (t->n == 0)
        t->off[0] = 0;
    memcpy(t->bytes + t->nbytes, s, len);
    t->nbytes += len;
    uint32_t id = t->n++;
    t->off[id + 1] = (uint32_t)t->nbytes;
    return id;
}

static uint32_t strtab_intern_h(pulse_strtab_t *t, const char *s, size_t len, uint32_t h)
{
    if (t->slots == NULL && t->dpages == NULL && t->n > 0)
        pulse_strtab_reserve(t, t->n); /* dropped indexes: rebuild */
    if (t->slots == NULL || (uint64_t)(t->nhash + 1) * 2 > (uint64_t)t->mask + 1)
        hash_reserve(t, t->nhash < 512 ? 512 : t->nhash * 2);
    uint32_t i = h & t->mask;
    const uint64_t want = (uint64_t)h << 32;
    for (;;) {
        uint64_t e = t->slots[i];
        if (e == 0)
            break;
        if ((e & 0xffffffff00000000ULL) == want) {
            uint32_t id = (uint32_t)e - 1;
            if (t->off[id + 1] - t->off[id] == len && memcmp(t->bytes + t->off[id], s, len) == 0)
                return id;
        }
        i = (i + 1) & t->mask;
    }
    uint32_t id = strtab_append(t, s, len);
    t->slots[i] = want | (uint64_t)(id + 1);
    t->nhash++;
    return id;
}

/* The entry for v, adding its page; NULL when a new page would break the density rule. */
static uint32_t *direct_entry(pulse_strtab_t *t, uint64_t v)
{
    uint64_t k = v >> DPAGE_BITS;
    if (k < t->ndpages_cap && t->dpages[k] != NULL)
        return &t->dpages[k][v & (DPAGE - 1)];
    if ((uint64_t)(t->ndpages + 1) * DPAGE > 8 * ((uint64_t)t->ndirect + 1) + DIRECT_SLACK)
        return NULL;
    if (k >= t->ndpages_cap) {
        uint32_t nc = t->ndpages_cap ? t->ndpages_cap : 16;
        while (nc <= k)
            nc *= 2;
        t->dpages = pulse_xrealloc(t->dpages, nc * sizeof(uint32_t *));
        memset(t->dpages + t->ndpages_cap, 0, (nc - t->ndpages_cap) * sizeof(uint32_t *));
        t->ndpages_cap = nc;
    }
    t->dpages[k] = pulse_xmalloc(DPAGE * sizeof(uint32_t));
    memset(t->dpages[k], 0, DPAGE * sizeof(uint32_t));
    t->ndpages++;
    return &t->dpages[k][v & (DPAGE - 1)];
}

/* The numeric path: 1 on success (*id set), 0 when the ref is not for it. */
static int strtab_intern_direct(pulse_strtab_t *t, const char *s, size_t len, uint32_t *id)
{
    /* canonical numbers only ("7", not "007"): one string per value, so a hit needs no comparison
     * (which cost a second cache miss per row, into off[], on rows in random customer order) */
    if (len == 0 || len > 9 || t->direct_off || (s[0] == '0' && len > 1))
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9)
            return 0;
        v = v * 10 + d;
    }
    uint32_t *e = direct_entry(t, v);
    if (e == NULL) {
        direct_give_up(t);
        return 0;
    }
    if (*e != 0) {
        *id = *e - 1;
        return 1;
    }
    *id = strtab_append(t, s, len);
    *e = *id + 1;
    t->ndirect++;
    return 1;
}

uint32_t pulse_strtab_intern(pulse_strtab_t *t, const char *s, size_t len)
{
    uint32_t id;
    if (strtab_intern_direct(t, s, len, &id))
        return id;
    return strtab_intern_h(t, s, len, hash_bytes(s, len));
}

const char *pulse_strtab_get(const pulse_strtab_t *t, uint32_t id, size_t *len)
{
    if (id >= t->n) {
        *len = 0;
        return "";
    }
    *len = t->off[id + 1] - t->off[id];
    return t->bytes + t->off[id];
}

static void strtab_free(pulse_strtab_t *t)
{
    free(t->bytes);
    free(t->off);
    free(t->slots);
    direct_free(t);
    memset(t, 0, sizeof(*t));
}

/* ---------------------------------------------------------------------------------------------
 * Rows */

void pulse_txstore_init(pulse_txstore_t *st)
{
    memset(st, 0, sizeof(*st));
}

void pulse_txstore_free(pulse_txstore_t *st)
{
    strtab_free(&st->customers);
    strtab_free(&st->categories);
    strtab_free(&st->products);
    strtab_free(&st->event_types);
    free(st->tx_customer);
    free(st->tx_day);
    free(st->tx_amount);
    free(st->tx_quantity);
    free(st->tx_category);
    free(st->tx_product);
    free(st->tx_flags);
    free(st->ev_customer);
    free(st->ev_day);
    free(st->ev_type);
    free(st->ev_value);
    free(st->ev_quantity);
    free(st->tx_first);
    free(st->ev_first);
    pulse_txstore_init(st);
}

static void *grow(void *p, size_t n, size_t size)
{
    return p ? pulse_xrealloc(p, n * size) : NULL;
}

/* Plain malloc for the big columns: transparent huge pages (MADV_HUGEPAGE) were measured: 500x
 * fewer page faults but ~20% more CPU, the kernel zeroing whole 2 MiB pages. */
static void tx_reserve(pulse_txstore_t *st, uint64_t need)
{
    if (need <= st->tx_cap)
        return;
    if (need > UINT32_MAX) {
        fprintf(stderr, "pulse: more than 4 G transactions in one store\n");
        abort();
    }
    uint64_t c = st->tx_cap ? st->tx_cap : 1024;
    while (c < need)
        c *= 2;
    if (c > UINT32_MAX)
        c = UINT32_MAX;
    st->tx_cap = (uint32_t)c;
    st->tx_customer = pulse_xrealloc(st->tx_customer, c * sizeof(uint32_t));
    st->tx_day = pulse_xrealloc(st->tx_day, c * sizeof(int32_t));
    st->tx_amount = pulse_xrealloc(st->tx_amount, c * sizeof(float));
    st->tx_quantity = grow(st->tx_quantity, c, sizeof(float));
    st->tx_category = grow(st->tx_category, c, sizeof(uint32_t));
    st->tx_product = grow(st->tx_product, c, sizeof(uint32_t));
    st->tx_flags = grow(st->tx_flags, c, 1);
}

static void ev_reserve(pulse_txstore_t *st, uint64_t need)
{
    if (need <= st->ev_cap)
        return;
    if (need > UINT32_MAX) {
        fprintf(stderr, "pulse: more than 4 G events in one store\n");
        abort();
    }
    uint64_t c = st->ev_cap ? st->ev_cap : 1024;
    while (c < need)
        c *= 2;
    if (c > UINT32_MAX)
        c = UINT32_MAX;
    st->ev_cap = (uint32_t)c;
    st->ev_customer = pulse_xrealloc(st->ev_customer, c * sizeof(uint32_t));
    st->ev_day = pulse_xrealloc(st->ev_day, c * sizeof(int32_t));
    st->ev_type = pulse_xrealloc(st->ev_type, c * sizeof(uint32_t));
    st->ev_value = pulse_xrealloc(st->ev_value, c * sizeof(float));
    st->ev_quantity = pulse_xrealloc(st->ev_quantity, c * sizeof(float));
}

void pulse_txstore_reserve(pulse_txstore_t *st, uint32_t ntx, uint32_t nev)
{
    if (ntx > st->tx_cap) {
        st->tx_cap = ntx;
        st->tx_customer = pulse_xrealloc(st->tx_customer, (size_t)ntx * sizeof(uint32_t));
        st->tx_day = pulse_xrealloc(st->tx_day, (size_t)ntx * sizeof(int32_t));
        st->tx_amount = pulse_xrealloc(st->tx_amount, (size_t)ntx * sizeof(float));
        st->tx_quantity = grow(st->tx_quantity, ntx, sizeof(float));
        st->tx_category = grow(st->tx_category, ntx, sizeof(uint32_t));
        st->tx_product = grow(st->tx_product, ntx, sizeof(uint32_t));
        st->tx_flags = grow(st->tx_flags, ntx, 1);
    }
    if (nev > st->ev_cap)
        ev_reserve(st, nev);
}

/* Optional columns appear when the first row carries the value; earlier rows get the "none" value. */
static float *new_float_col(uint32_t cap, uint32_t n)
{
    float *c = pulse_xmalloc((size_t)cap * sizeof(float));
    for (uint32_t i = 0; i < n; i++)
        c[i] = NAN;
    return c;
}

static uint32_t *new_index_col(uint32_t cap, uint32_t n)
{
    uint32_t *c = pulse_xmalloc((size_t)cap * sizeof(uint32_t));
    memset(c, 0xff, (size_t)n * sizeof(uint32_t));
    return c;
}

static uint8_t *new_flags_col(uint32_t cap, uint32_t n)
{
    uint8_t *c = pulse_xmalloc(cap);
    memset(c, 0, n);
    return c;
}

static void tx_put(pulse_txstore_t *st, uint32_t cust, int32_t day, float amount, float qty, uint32_t cat, uint32_t prod,
                   unsigned flags)
{
    if (st->finished) {
        fprintf(stderr, "pulse: transaction appended to a finished store\n");
        abort();
    }
    tx_reserve(st, (uint64_t)st->ntx + 1);
    uint32_t i = st->ntx;
    if (st->tx_quantity == NULL && !isnan(qty))
        st->tx_quantity = new_float_col(st->tx_cap, i);
    if (st->tx_category == NULL && cat != PULSE_TXSTORE_NONE)
        st->tx_category = new_index_col(st->tx_cap, i);
    if (st->tx_product == NULL && prod != PULSE_TXSTORE_NONE)
        st->tx_product = new_index_col(st->tx_cap, i);
    if (st->tx_flags == NULL && flags != 0)
        st->tx_flags = new_flags_col(st->tx_cap, i);
    st->tx_customer[i] = cust;
    st->tx_day[i] = day;
    st->tx_amount[i] = amount;
    if (st->tx_quantity)
        st->tx_quantity[i] = qty;
    if (st->tx_category)
        st->tx_category[i] = cat;
    if (st->tx_product)
        st->tx_product[i] = prod;
    if (st->tx_flags)
        st->tx_flags[i] = (uint8_t)flags;
    st->tx_flags_seen |= flags;
    if (i == 0 || day < st->tx_min_day)
        st->tx_min_day = day;
    if (i == 0 || day > st->tx_max_day)
        st->tx_max_day = day;
    st->ntx = i + 1;
}

uint32_t pulse_txstore_add_transaction(pulse_txstore_t *st, const pulse_tx_row_t *r)
{
    uint32_t c = pulse_strtab_intern(&st->customers, r->customer, r->customer_len);
    uint32_t cat = r->category ? pulse_strtab_intern(&st->categories, r->category, r->category_len) : PULSE_TXSTORE_NONE;
    uint32_t prod = r->product ? pulse_strtab_intern(&st->products, r->product, r->product_len) : PULSE_TXSTORE_NONE;
    tx_put(st, c, r->day, (float)r->amount, (float)r->quantity, cat, prod, r->flags);
    return c;
}

void pulse_txstore_add_transaction_at(pulse_txstore_t *st, uint32_t customer, const pulse_tx_row_t *r)
{
    uint32_t cat = r->category ? pulse_strtab_intern(&st->categories, r->category, r->category_len) : PULSE_TXSTORE_NONE;
    uint32_t prod = r->product ? pulse_strtab_intern(&st->products, r->product, r->product_len) : PULSE_TXSTORE_NONE;
    tx_put(st, customer, r->day, (float)r->amount, (float)r->quantity, cat, prod, r->flags);
}

static void ev_put(pulse_txstore_t *st, uint32_t cust, int32_t day, uint32_t type, float value, float qty)
{
    if (st->finished) {
        fprintf(stderr, "pulse: event appended to a finished store\n");
        abort();
    }
    ev_reserve(st, (uint64_t)st->nev + 1);
    uint32_t i = st->nev;
    st->ev_customer[i] = cust;
    st->ev_day[i] = day;
    st->ev_type[i] = type;
    st->ev_value[i] = value;
    st->ev_quantity[i] = qty;
    if (i == 0 || day < st->ev_min_day)
        st->ev_min_day = day;
    if (i == 0 || day > st->ev_max_day)
        st->ev_max_day = day;
    st->nev = i + 1;
}

uint32_t pulse_txstore_add_event(pulse_txstore_t *st, const char *customer, size_t customer_len, int32_t day,
                                 const char *event_type, size_t event_type_len, double value, double quantity)
{
    uint32_t c = pulse_strtab_intern(&st->customers, customer, customer_len);
    uint32_t t = pulse_strtab_intern(&st->event_types, event_type, event_type_len);
    ev_put(st, c, day, t, (float)value, (float)quantity);
    return c;
}

/* ---------------------------------------------------------------------------------------------
 * Merge */

/* map[i]: dst's index of src's string i (interned in src order: first appearance preserved). */
static uint32_t *strtab_map(pulse_strtab_t *dst, const pulse_strtab_t *src)
{
    if (src->n == 0)
        return NULL;
    uint32_t *map = pulse_xmalloc((size_t)src->n * sizeof(uint32_t));
    if (dst->dpages == NULL && src->dpages == NULL)
        pulse_strtab_reserve(dst, dst->n + src->n); /* one growth, not several */
    for (uint32_t i = 0; i < src->n; i++)
        map[i] = pulse_strtab_intern(dst, src->bytes + src->off[i], src->off[i + 1] - src->off[i]);
    return map;
}

static int is_identity(const uint32_t *map, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (map[i] != i)
            return 0;
    return 1;
}

/* Appends n elements of src (then frees src) to *dstp whose capacity is grown to cap. */
static void *append_col(void *dstp, size_t have, size_t cap, void *src, size_t n, size_t size)
{
    char *d = pulse_xrealloc(dstp, cap * size);
    if (n)
        memcpy(d + have * size, src, n * size);
    free(src);
    return d;
}

static void remap(uint32_t *col, uint32_t n, const uint32_t *map, uint32_t nmap)
{
    if (map == NULL || is_identity(map, nmap))
        return;
    for (uint32_t i = 0; i < n; i++)
        if (col[i] != PULSE_TXSTORE_NONE)
            col[i] = map[col[i]];
}

/* Makes optional column *col exist in dst (with "none" backfill) when src has it. */
static void merge_optional(void **dcol, void **scol, uint32_t dn, uint32_t sn, uint32_t total, size_t size, int kind)
{
    if (*dcol == NULL && *scol == NULL)
        return;
    if (*dcol == NULL)
        *dcol = kind == 0   ? (void *)new_float_col(total, dn)
                : kind == 1 ? (void *)new_index_col(total, dn)
                            : new_flags_col(total, dn);
    else
        *dcol = pulse_xrealloc(*dcol, (size_t)total * size);
    char *d = (char *)*dcol + (size_t)dn * size;
    if (*scol)
        memcpy(d, *scol, (size_t)sn * size);
    else if (kind == 0)
        for (uint32_t i = 0; i < sn; i++)
            ((float *)(void *)d)[i] = NAN;
    else
        memset(d, kind == 1 ? 0xff : 0, (size_t)sn * size);
    free(*scol);
    *scol = NULL;
}

void pulse_txstore_merge(pulse_txstore_t *dst, pulse_txstore_t *src)
{
    if (dst->finished || src->finished) {
        fprintf(stderr, "pulse: merge of a finished store\n");
        abort();
    }
    if (dst->ntx == 0 && dst->nev == 0 && dst->customers.n == 0 && dst->categories.n == 0 && dst->products.n == 0 &&
        dst->event_types.n == 0) {
        pulse_txstore_free(dst);
        *dst = *src;
        pulse_txstore_init(src);
        return;
    }
    /* mapping only walks src's strings: its indexes can go first (30 MB of pages at 1.7 M ids) */
    drop_index(&src->customers);
    drop_index(&src->categories);
    drop_index(&src->products);
    drop_index(&src->event_types);
    uint32_t *cmap = strtab_map(&dst->customers, &src->customers);
    uint32_t *catmap = strtab_map(&dst->categories, &src->categories);
    uint32_t *pmap = strtab_map(&dst->products, &src->products);
    uint32_t *tmap = strtab_map(&dst->event_types, &src->event_types);
    /* src's strings are in dst now: give their memory back before the columns grow */
    uint32_t src_nc = src->customers.n, src_ncat = src->categories.n, src_np = src->products.n, src_nt = src->event_types.n;
    strtab_free(&src->customers);
    strtab_free(&src->categories);
    strtab_free(&src->products);
    strtab_free(&src->event_types);
    if ((uint64_t)dst->ntx + src->ntx > UINT32_MAX || (uint64_t)dst->nev + src->nev > UINT32_MAX) {
        fprintf(stderr, "pulse: more than 4 G rows in one store\n");
        abort();
    }
    if (src->ntx) {
        uint32_t dn = dst->ntx, sn = src->ntx, total = dn + sn;
        remap(src->tx_customer, sn, cmap, src_nc);
        if (src->tx_category)
            remap(src->tx_category, sn, catmap, src_ncat);
        if (src->tx_product)
            remap(src->tx_product, sn, pmap, src_np);
        dst->tx_customer = append_col(dst->tx_customer, dn, total, src->tx_customer, sn, sizeof(uint32_t));
        dst->tx_day = append_col(dst->tx_day, dn, total, src->tx_day, sn, sizeof(int32_t));
        dst->tx_amount = append_col(dst->tx_amount, dn, total, src->tx_amount, sn, sizeof(float));
        merge_optional((void **)&dst->tx_quantity, (void **)&src->tx_quantity, dn, sn, total, sizeof(float), 0);
        merge_optional((void **)&dst->tx_category, (void **)&src->tx_category, dn, sn, total, sizeof(uint32_t), 1);
        merge_optional((void **)&dst->tx_product, (void **)&src->tx_product, dn, sn, total, sizeof(uint32_t), 1);
        merge_optional((void **)&dst->tx_flags, (void **)&src->tx_flags, dn, sn, total, 1, 2);
        src->tx_customer = NULL;
        src->tx_day = NULL;
        src->tx_amount = NULL;
        if (dn == 0 || src->tx_min_day < dst->tx_min_day)
            dst->tx_min_day = src->tx_min_day;
        if (dn == 0 || src->tx_max_day > dst->tx_max_day)
            dst->tx_max_day = src->tx_max_day;
        dst->tx_flags_seen |= src->tx_flags_seen;
        dst->ntx = dst->tx_cap = total;
    }
    if (src->nev) {
        uint32_t dn = dst->nev, sn = src->nev, total = dn + sn;
        remap(src->ev_customer, sn, cmap, src_nc);
        remap(src->ev_type, sn, tmap, src_nt);
        dst->ev_customer = append_col(dst->ev_customer, dn, total, src->ev_customer, sn, sizeof(uint32_t));
        dst->ev_day = append_col(dst->ev_day, dn, total, src->ev_day, sn, sizeof(int32_t));
        dst->ev_type = append_col(dst->ev_type, dn, total, src->ev_type, sn, sizeof(uint32_t));
        dst->ev_value = append_col(dst->ev_value, dn, total, src->ev_value, sn, sizeof(float));
        dst->ev_quantity = append_col(dst->ev_quantity, dn, total, src->ev_quantity, sn, sizeof(float));
        src->ev_customer = NULL;
        src->ev_day = NULL;
        src->ev_type = NULL;
        src->ev_value = NULL;
        src->ev_quantity = NULL;
        if (dn == 0 || src->ev_min_day < dst->ev_min_day)
            dst->ev_min_day = src->ev_min_day;
        if (dn == 0 || src->ev_max_day > dst->ev_max_day)
            dst->ev_max_day = src->ev_max_day;
        dst->nev = dst->ev_cap = total;
    }
    free(cmap);
    free(catmap);
    free(pmap);
    free(tmap);
    pulse_txstore_free(src);
}

/* ---------------------------------------------------------------------------------------------
 * Finish: group by customer, day order inside */

static void permute(void *col, const uint32_t *perm, uint32_t n, size_t size, void *scratch)
{
    if (col == NULL)
        return;
    switch (size) {
    case 4:
        for (uint32_t i = 0; i < n; i++)
            ((uint32_t *)scratch)[i] = ((const uint32_t *)col)[perm[i]];
        break;
    default:
        for (uint32_t i = 0; i < n; i++)
            ((uint8_t *)scratch)[i] = ((const uint8_t *)col)[perm[i]];
        break;
    }
    memcpy(col, scratch, (size_t)n * size);
}

/* Sorts perm[lo..hi) by day, then by original position (stable). Groups are small: insertion sort. */
static void sort_group(uint32_t *perm, uint32_t lo, uint32_t hi, const int32_t *day)
{
    for (uint32_t i = lo + 1; i < hi; i++) {
        uint32_t v = perm[i];
        uint32_t j = i;
        while (j > lo && (day[perm[j - 1]] > day[v] || (day[perm[j - 1]] == day[v] && perm[j - 1] > v))) {
            perm[j] = perm[j - 1];
            j--;
        }
        perm[j] = v;
    }
}

static const int32_t *g_sort_day;

static int cmp_day_pos(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (g_sort_day[x] != g_sort_day[y])
        return g_sort_day[x] < g_sort_day[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

#define GROUP_THREAD_ROWS ((uint32_t)1 << 20) /* below this, one thread checks the order */

/* Rows lo..hi-1 of a store checked for customer-then-day order (with the row before lo), first[]
 * filled on the way as if they are: first[c] for each customer c whose rows start in the range
 * (customers between two row customers start where the second one does). */
typedef struct order_part_t {
    const uint32_t *cust;
    const int32_t *day;
    uint32_t lo, hi, n, ncust;
    uint32_t *first;
    int in_order;
} order_part_t;

static void *order_fill(void *arg)
{
    order_part_t *o = arg;
    const uint32_t *cust = o->cust;
    o->in_order = 0; /* the fill stops at the first row out of order: up to there it is monotone,
                        so it writes each entry at most once */
    for (uint32_t i = o->lo > 0 ? o->lo : 1; i < o->hi; i++) {
        if (cust[i] < cust[i - 1] || (cust[i] == cust[i - 1] && o->day[i] < o->day[i - 1]))
            return NULL;
        for (uint32_t c = cust[i - 1] + 1; c <= cust[i]; c++)
            o->first[c] = i;
    }
    if (o->hi == o->n && o->n > 0)
        for (uint32_t c = cust[o->n - 1] + 1; c <= o->ncust; c++)
            o->first[c] = o->n;
    o->in_order = 1;
    return NULL;
}

/* first[] of rows already in order, on two threads past GROUP_THREAD_ROWS rows (first[0..cust[0]]
 * stay 0); returns 0 when the rows are not in order (first[] is then to be rebuilt). The same
 * first[] as counting: first[c] is the number of rows of customers below c. */
static int first_of_ordered(const uint32_t *cust, const int32_t *day, uint32_t n, uint32_t ncust, uint32_t *first)
{
    order_part_t part[2];
    int np = n >= GROUP_THREAD_ROWS ? 2 : 1;
    for (int t = 0; t < np; t++)
        part[t] =
            (order_part_t){cust, day, (uint32_t)((uint64_t)n * t / np), (uint32_t)((uint64_t)n * (t + 1) / np), n, ncust, first, 0};
    pthread_t tid;
    int threaded = np == 2 && pthread_create(&tid, NULL, order_fill, &part[1]) == 0;
    order_fill(&part[0]);
    if (threaded)
        pthread_join(tid, NULL);
    else if (np == 2)
        order_fill(&part[1]);
    return part[0].in_order && (np == 1 || part[1].in_order);
}

/* Builds first[] (ncust+1) and, unless the rows are already in order, reorders the given columns. */
static uint32_t *group_rows(uint32_t *cust, int32_t *day, uint32_t n, uint32_t ncust, void **cols, const size_t *sizes,
                            size_t ncols)
{
    /* calloc, and nothing written without rows: a store without events keeps its all-zero
     * ev_first on untouched (not resident) pages, 14 MB less at 3.5 M customers */
    uint32_t *first = calloc((size_t)ncust + 1, sizeof(uint32_t));
    if (first == NULL) {
        fprintf(stderr, "pulse: out of memory (grouping %u customers)\n", ncust);
        abort();
    }
    if (n == 0 || first_of_ordered(cust, day, n, ncust, first))
        return first;
    memset(first, 0, ((size_t)ncust + 1) * sizeof(uint32_t));
    for (uint32_t i = 0; i < n; i++)
        first[cust[i] + 1]++;
    for (uint32_t c = 0; c < ncust; c++)
        first[c + 1] += first[c];
    uint32_t *perm = pulse_xmalloc((size_t)n * sizeof(uint32_t));
    uint32_t *next = pulse_xmalloc(((size_t)ncust + 1) * sizeof(uint32_t));
    memcpy(next, first, ((size_t)ncust + 1) * sizeof(uint32_t));
    for (uint32_t i = 0; i < n; i++)
        perm[next[cust[i]]++] = i;
    free(next);
    for (uint32_t c = 0; c < ncust; c++) {
        uint32_t lo = first[c], hi = first[c + 1];
        if (hi - lo > 32) {
            g_sort_day = day;
            qsort(perm + lo, hi - lo, sizeof(uint32_t), cmp_day_pos);
        } else if (hi - lo > 1) {
            sort_group(perm, lo, hi, day);
        }
    }
    void *scratch = pulse_xmalloc((size_t)n * 4);
    permute(cust, perm, n, 4, scratch);
    permute(day, perm, n, 4, scratch);
    for (size_t k = 0; k < ncols; k++)
        permute(cols[k], perm, n, sizes[k], scratch);
    free(scratch);
    free(perm);
    return first;
}

void pulse_txstore_finish(pulse_txstore_t *st)
{
    if (st->finished)
        return;
    uint32_t nc = st->customers.n;
    void *txcols[] = {st->tx_amount, st->tx_quantity, st->tx_category, st->tx_product, st->tx_flags};
    size_t txsizes[] = {4, 4, 4, 4, 1};
    st->tx_first = group_rows(st->tx_customer, st->tx_day, st->ntx, nc, txcols, txsizes, 5);
    void *evcols[] = {st->ev_type, st->ev_value, st->ev_quantity};
    size_t evsizes[] = {4, 4, 4};
    st->ev_first = group_rows(st->ev_customer, st->ev_day, st->nev, nc, evcols, evsizes, 3);
    pulse_strtab_t *tabs[] = {&st->customers, &st->categories, &st->products, &st->event_types};
    for (size_t k = 0; k < 4; k++)
        drop_index(tabs[k]);
    /* tx_first/ev_first say whose rows are whose: the per-row customer columns would be 4 bytes a
     * row of redundancy (42 MB at 10 M rows) */
    free(st->tx_customer);
    free(st->ev_customer);
    st->tx_customer = st->ev_customer = NULL;
    st->finished = 1;
}

int32_t pulse_txstore_days_from_civil(int y, unsigned m, unsigned d)
{
    /* Howard Hinnant's days_from_civil */
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int32_t)doe - 719468;
}
