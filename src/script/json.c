/* JSON codec for the Lua layer: json.encode / json.decode / json.null / json.array, and the C entry
 * points pulse_json_encode_value / pulse_json_decode_push (see json.h for the contract). */
#include "script/json.h"

#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Owns a pulse_buf_t from inside a userdata, so that a Lua error raised half-way (out of memory in
 * a capped VM) cannot leak the malloc'ed bytes: the collector frees them. */
#define JSON_BUF_MT "pulse.json.buf"
#define KEEP_BUF_BYTES (256 * 1024)

static int buf_box_gc(lua_State *L)
{
    pulse_buf_free(lua_touserdata(L, 1));
    return 0;
}

static pulse_buf_t *push_buf_box(lua_State *L)
{
    pulse_buf_t *b = lua_newuserdatauv(L, sizeof(*b), 0); /* box */
    *b = (pulse_buf_t)PULSE_BUF_INIT;
    if (luaL_newmetatable(L, JSON_BUF_MT)) { /* box, mt */
        lua_pushcfunction(L, buf_box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2); /* box */
    return b;
}

/* Get-or-create, so the C entry points work in states that never opened the module. */
static void push_array_mt(lua_State *L)
{
    luaL_newmetatable(L, PULSE_JSON_ARRAY_MT);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates, <= U+10FFFF),
 * or 0 if invalid or truncated. */
static size_t utf8_seq_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t avail = (size_t)(end - p);
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        return avail >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        if (avail < 3 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80)
            return 0;
        return 3;
    }
    if (c < 0xF5) {
        unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        if (avail < 4 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        return 4;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding */

typedef struct enc_seg_t {
    const char *key; /* NULL: an array position; else borrowed from a key anchored in its table */
    size_t klen;
    lua_Integer index;
} enc_seg_t;

typedef struct enc_t {
    lua_State *L;
    pulse_buf_t *out;
    int sort_keys;
    const void *array_mt; /* identity of json.array_mt in this state, NULL if never created */
    char *err;
    size_t errlen;
    enc_seg_t path[PULSE_JSON_MAX_DEPTH + 1];
    const void *tables[PULSE_JSON_MAX_DEPTH]; /* tables being encoded, to tell cycles from depth */
} enc_t;

static int enc_value(enc_t *e, int idx, int depth);

/* pulse_buf_putc without the call when there is room: quotes and punctuation go one byte at a time. */
static inline void out_putc(pulse_buf_t *b, char c)
{
    if (b->len + 1 < b->cap) {
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
    } else {
        pulse_buf_putc(b, c);
    }
}

static int is_identifier(const char *s, size_t n)
{
    if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

/* A key as it appears in a path: JSON-escaped, cut at 64 bytes, and invalid UTF-8 shown as \xNN so
 * the message stays printable text wherever it ends up (log lines are JSON too). */
static void put_path_key(pulse_buf_t *b, const char *key, size_t n)
{
    const unsigned char *s = (const unsigned char *)key, *end = s + (n < 64 ? n : 64), *p = s;
    pulse_buf_puts(b, "[\"");
    while (p < end) {
        size_t k = *p >= 0x80 ? utf8_seq_len(p, end) : 1;
        if (k == 0) {
            pulse_buf_printf(b, "\\x%02x", *p++);
        } else {
            pulse_buf_json_escape(b, (const char *)p, k);
            p += k;
        }
    }
    pulse_buf_puts(b, n > 64 ? "...\"]" : "\"]");
}

/* Records "<problem> at $.a[2]..." for the value at depth (path[0..depth) leads to it). */
static int enc_fail(enc_t *e, int depth, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int enc_fail(enc_t *e, int depth, const char *fmt, ...)
{
    pulse_buf_t msg = PULSE_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    pulse_buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    pulse_buf_puts(&msg, " at $");
    for (int i = 0; i < depth && msg.len < 1024; i++) {
        const enc_seg_t *s = &e->path[i];
        if (s->key == NULL) {
            pulse_buf_printf(&msg, "[%lld]", (long long)s->index);
        } else if (is_identifier(s->key, s->klen)) {
            pulse_buf_putc(&msg, '.');
            pulse_buf_append(&msg, s->key, s->klen);
        } else {
            put_path_key(&msg, s->key, s->klen);
        }
    }
    set_err(e->err, e->errlen, "%s", msg.data);
    pulse_buf_free(&msg);
    return -1;
}

static void put_integer(pulse_buf_t *b, lua_Integer v)
{
    char tmp[24], *p = tmp + sizeof(tmp);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    pulse_buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* Every power of ten up to 10^22 is an exact double. */
static const double pow10_tab[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Most floats in business data are short decimals (19.99, 0.25) and printf is slow: find the fewest
 * fraction digits k such that m / 10^k (m < 10^15, both exact doubles, one correctly rounded
 * division) reads back as d. The text is then exactly what %.15g prints, because the 15-digit
 * grid around d is coarser than d's rounding error. Returns 0 when d is not such a number. */
static int put_float_short(pulse_buf_t *b, double d)
{
    double a = fabs(d);
    if (!(a >= 1e-4 && a < 1e15)) /* where %.15g would switch to exponent notation */
        return 0;
    for (int k = 0; k < 20; k++) {
        double m = nearbyint(a * pow10_tab[k]);
        if (m >= 1e15)
            return 0;
        if (m / pow10_tab[k] != a)
            continue;
        char digits[20], tmp[48], *o = tmp;
        int nd = 0;
        uint64_t u = (uint64_t)m;
        do { /* least significant first */
            digits[nd++] = (char)('0' + u % 10);
            u /= 10;
        } while (u != 0);
        if (d < 0)
            *o++ = '-';
        if (nd <= k) {
            *o++ = '0';
            *o++ = '.';
            for (int i = nd; i < k; i++)
                *o++ = '0';
            for (int i = nd - 1; i >= 0; i--)
                *o++ = digits[i];
        } else {
            for (int i = nd - 1; i >= 0; i--) {
                *o++ = digits[i];
                if (i == k && k > 0)
                    *o++ = '.';
            }
        }
        pulse_buf_append(b, tmp, (size_t)(o - tmp));
        return 1;
    }
    return 0;
}

/* Shortest of %.15g/%.16g/%.17g that reads back as the same double. */
static void put_float(pulse_buf_t *b, double d)
{
    if (put_float_short(b, d))
        return;
    char tmp[40];
    int n = 0;
    double a = fabs(d);
    /* in that range put_float_short has already ruled out 15 digits */
    for (int prec = a >= 1e-4 && a < 1e15 ? 16 : 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (prec == 17 || strtod(tmp, NULL) == d)
            break;
    }
    /* printf and strtod agree on the locale's decimal point; JSON wants '.' whatever it is. */
    for (int i = 0; i < n; i++) {
        char c = tmp[i];
        if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e'))
            tmp[i] = '.';
    }
    pulse_buf_append(b, tmp, (size_t)n);
}

/* 0: copied as is; 1: escaped by pulse_buf_json_escape; 2: starts a multi-byte sequence */
/* clang-format off */
static const unsigned char enc_class[256] = { /* one row per 32 bytes */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};
/* clang-format on */

/* Lua strings are bytes; JSON text is UTF-8. Refusing invalid UTF-8 here keeps json.decode able
 * to read everything json.encode writes. Returns -1 on invalid UTF-8. */
static int put_string(pulse_buf_t *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str, *end = s + n, *p = s, *run = s;
    pulse_buf_reserve(b, n + 2);
    out_putc(b, '"');
    while (p < end) {
        unsigned cls = enc_class[*p];
        if (cls == 0) {
            p++;
        } else if (cls == 2) {
            size_t k = utf8_seq_len(p, end);
            if (k == 0)
                return -1;
            p += k;
        } else {
            pulse_buf_append(b, run, (size_t)(p - run));
            pulse_buf_json_escape(b, (const char *)p, 1);
            run = ++p;
        }
    }
    pulse_buf_append(b, run, (size_t)(end - run));
    out_putc(b, '"');
    return 0;
}

static int has_array_mt(enc_t *e, int t)
{
    if (e->array_mt == NULL || !lua_getmetatable(e->L, t)) /* mt? */
        return 0;
    int yes = lua_topointer(e->L, -1) == e->array_mt;
    lua_pop(e->L, 1);
    return yes;
}

/* Describes a key that cannot be an object member name, for error messages. */
static const char *key_desc(lua_State *L, int k, char *tmp, size_t n)
{
    if (lua_isinteger(L, k))
        snprintf(tmp, n, "integer key %lld", (long long)lua_tointeger(L, k));
    else if (lua_type(L, k) == LUA_TNUMBER)
        snprintf(tmp, n, "number key %.14g", (double)lua_tonumber(L, k));
    else
        snprintf(tmp, n, "%s key", luaL_typename(L, k));
    return tmp;
}

/* Elements 1..n by index; nil holes (only possible with json.array_mt) become null. */
static int enc_array_indexed(enc_t *e, int t, lua_Integer n, int depth)
{
    lua_State *L = e->L;
    out_putc(e->out, '[');
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1)
            out_putc(e->out, ',');
        lua_rawgeti(L, t, i); /* v */
        e->path[depth] = (enc_seg_t){NULL, 0, i};
        if (enc_value(e, lua_gettop(L), depth + 1) != 0)
            return -1;
        lua_pop(L, 1);
    }
    out_putc(e->out, ']');
    return 0;
}

static int cmp_keys(const void *a, const void *b)
{
    const enc_seg_t *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->klen < y->klen ? x->klen : y->klen);
    if (c != 0)
        return c;
    return x->klen < y->klen ? -1 : x->klen > y->klen;
}

static int enc_member(enc_t *e, const char *k, size_t klen, int v, int depth, int first)
{
    if (!first)
        out_putc(e->out, ',');
    e->path[depth] = (enc_seg_t){k, klen, 0};
    if (put_string(e->out, k, klen) != 0)
        return enc_fail(e, depth + 1, "cannot encode key with invalid UTF-8");
    out_putc(e->out, ':');
    return enc_value(e, v, depth + 1);
}

/* All keys are strings (checked by the caller); count of them is nkeys. */
static int enc_object_sorted(enc_t *e, int t, size_t nkeys, int depth)
{
    lua_State *L = e->L;
    /* In a userdata rather than malloc: a Lua error further down must not leak it. */
    enc_seg_t *keys = lua_newuserdatauv(L, nkeys * sizeof(*keys), 0); /* keys */
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) { /* keys, k, v */
        lua_pop(L, 1);
        if (n < nkeys) {
            keys[n].key = lua_tolstring(L, -1, &keys[n].klen); /* anchored by t, which outlives us */
            n++;
        }
    }
    qsort(keys, n, sizeof(*keys), cmp_keys);
    out_putc(e->out, '{');
    for (size_t i = 0; i < n; i++) {
        lua_pushlstring(L, keys[i].key, keys[i].klen); /* keys, k */
        lua_rawget(L, t);                              /* keys, v */
        if (enc_member(e, keys[i].key, keys[i].klen, lua_gettop(L), depth, i == 0) != 0)
            return -1;
        lua_pop(L, 1);
    }
    out_putc(e->out, '}');
    lua_pop(L, 1);
    return 0;
}

/* The slow path: look at every key, then decide array or object (or refuse). */
static int enc_table_classified(enc_t *e, int t, int is_array, int depth)
{
    lua_State *L = e->L;
    size_t count = 0, nstr = 0, npos = 0, nother = 0;
    lua_Integer max = 0, some_int = 0;
    char desc[64] = "", strkey[48] = "";
    lua_pushnil(L);
    while (lua_next(L, t)) { /* k, v */
        lua_pop(L, 1);       /* k */
        count++;
        if (lua_type(L, -1) == LUA_TSTRING) {
            if (nstr++ == 0)
                snprintf(strkey, sizeof(strkey), "%s", lua_tostring(L, -1));
        } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0) {
            lua_Integer k = lua_tointeger(L, -1);
            if (k > max)
                max = k;
            if (npos++ == 0)
                some_int = k;
        } else if (nother++ == 0) {
            key_desc(L, -1, desc, sizeof(desc));
        }
    }
    if (is_array) {
        if (nother)
            return enc_fail(e, depth, "cannot encode %s in an array", desc);
        if (nstr)
            return enc_fail(e, depth, "cannot encode string key \"%s\" in an array", strkey);
        /* holes are fine (they become null), but not a million nulls for t[1e6] = x */
        if ((uint64_t)max > 2 * (uint64_t)count + 16)
            return enc_fail(e, depth, "array too sparse (%zu values, largest index %lld)", count, (long long)max);
        return enc_array_indexed(e, t, max, depth);
    }
    if (nother)
        return enc_fail(e, depth, "cannot encode %s in an object", desc);
    if (npos && nstr)
        return enc_fail(e, depth, "cannot encode a table mixing integer keys (e.g. %lld) and string keys (e.g. \"%s\")",
                        (long long)some_int, strkey);
    if (npos) {
        if ((size_t)max == count)
            return enc_array_indexed(e, t, max, depth);
        return enc_fail(e, depth,
                        "cannot encode a table whose integer keys are not exactly 1..n "
                        "(%zu keys, largest %lld; json.array writes holes as null)",
                        count, (long long)max);
    }
    if (e->sort_keys)
        return enc_object_sorted(e, t, count, depth);
    out_putc(e->out, '{');
    int first = 1;
    lua_pushnil(L);
    while (lua_next(L, t)) { /* k, v */
        size_t klen;
        const char *k = lua_tolstring(L, -2, &klen);
        if (enc_member(e, k, klen, lua_gettop(L), depth, first) != 0)
            return -1;
        first = 0;
        lua_pop(L, 1);
    }
    out_putc(e->out, '}');
    return 0;
}

static int enc_table(enc_t *e, int t, int depth)
{
    lua_State *L = e->L;
    if (depth >= PULSE_JSON_MAX_DEPTH)
        return enc_fail(e, depth, "cannot encode tables nested deeper than %d", PULSE_JSON_MAX_DEPTH);
    const void *self = lua_topointer(L, t);
    for (int i = 0; i < depth; i++)
        if (e->tables[i] == self)
            return enc_fail(e, depth, "cannot encode a cycle (table contains itself)");
    e->tables[depth] = self;
    if (!lua_checkstack(L, 6))
        return enc_fail(e, depth, "Lua stack exhausted");
    int is_array = has_array_mt(e, t);

    lua_pushnil(L);
    if (!lua_next(L, t)) {
        pulse_buf_append(e->out, is_array ? "[]" : "{}", 2);
        return 0;
    }
    /* k, v: the first key tells the likely shape; stream it in one pass and only fall back to
     * looking at every key when the guess turns out wrong. */
    if (!is_array && !e->sort_keys && lua_type(L, -2) == LUA_TSTRING) {
        out_putc(e->out, '{');
        int first = 1;
        do {
            if (lua_type(L, -2) != LUA_TSTRING) {
                lua_pop(L, 2);
                return enc_table_classified(e, t, 0, depth); /* reports the key problem */
            }
            size_t klen;
            const char *k = lua_tolstring(L, -2, &klen);
            if (enc_member(e, k, klen, lua_gettop(L), depth, first) != 0)
                return -1;
            first = 0;
            lua_pop(L, 1);
        } while (lua_next(L, t));
        out_putc(e->out, '}');
        return 0;
    }
    if (lua_isinteger(L, -2) && lua_tointeger(L, -2) == 1) {
        /* lua_next walks the array part in order, so a sequence usually arrives as 1, 2, 3... */
        size_t saved = e->out->len;
        lua_Integer expect = 1;
        out_putc(e->out, '[');
        do {
            if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) != expect) {
                lua_pop(L, 2);
                e->out->len = saved;
                e->out->data[saved] = '\0';
                return enc_table_classified(e, t, is_array, depth);
            }
            if (expect > 1)
                out_putc(e->out, ',');
            e->path[depth] = (enc_seg_t){NULL, 0, expect};
            if (enc_value(e, lua_gettop(L), depth + 1) != 0)
                return -1;
            expect++;
            lua_pop(L, 1);
        } while (lua_next(L, t));
        out_putc(e->out, ']');
        return 0;
    }
    lua_pop(L, 2);
    return enc_table_classified(e, t, is_array, depth);
}

static int enc_value(enc_t *e, int idx, int depth)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        pulse_buf_append(e->out, "null", 4);
        return 0;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            pulse_buf_append(e->out, "true", 4);
        else
            pulse_buf_append(e->out, "false", 5);
        return 0;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            put_integer(e->out, lua_tointeger(L, idx));
        } else {
            double d = (double)lua_tonumber(L, idx);
            if (isnan(d))
                return enc_fail(e, depth, "cannot encode NaN");
            if (isinf(d))
                return enc_fail(e, depth, "cannot encode %s", d > 0 ? "inf" : "-inf");
            put_float(e->out, d);
        }
        return 0;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (put_string(e->out, s, n) != 0)
            return enc_fail(e, depth, "cannot encode string with invalid UTF-8");
        return 0;
    }
    case LUA_TTABLE:
        return enc_table(e, idx, depth);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) { /* json.null */
            pulse_buf_append(e->out, "null", 4);
            return 0;
        }
        return enc_fail(e, depth, "cannot encode light userdata");
    default:
        return enc_fail(e, depth, "cannot encode %s", luaL_typename(L, idx));
    }
}

/* May raise only Lua's own errors (out of memory while sorting keys). */
static int enc_run(enc_t *e, int idx)
{
    lua_State *L = e->L;
    size_t saved = e->out->len;
    int top = lua_gettop(L);
    luaL_getmetatable(L, PULSE_JSON_ARRAY_MT);
    e->array_mt = lua_topointer(L, -1);
    lua_pop(L, 1);
    int rc = enc_value(e, idx, 0);
    lua_settop(L, top);
    if (rc != 0) {
        e->out->len = saved;
        if (e->out->data)
            e->out->data[saved] = '\0';
    }
    return rc;
}

static int enc_protected(lua_State *L)
{
    enc_t *e = lua_touserdata(L, 2);
    lua_pushboolean(L, enc_run(e, 1) == 0);
    return 1;
}

int pulse_json_encode_value(lua_State *L, int idx, pulse_buf_t *out, int sort_keys, char *err, size_t errlen)
{
    idx = lua_absindex(L, idx);
    if (!lua_checkstack(L, 4)) {
        set_err(err, errlen, "Lua stack exhausted");
        return -1;
    }
    size_t saved = out->len;
    enc_t e = {.L = L, .out = out, .sort_keys = sort_keys, .err = err, .errlen = errlen};
    lua_pushcfunction(L, enc_protected);
    lua_pushvalue(L, idx);
    lua_pushlightuserdata(L, &e);
    int rc = lua_pcall(L, 2, 1, 0); /* ok | errmsg */
    if (rc != LUA_OK) {
        set_err(err, errlen, "%s", lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "Lua error");
        lua_pop(L, 1);
        out->len = saved;
        if (out->data)
            out->data[saved] = '\0';
        return -1;
    }
    int ok = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding */

typedef struct dec_t {
    lua_State *L;
    const char *start, *p, *end;
    pulse_buf_t *scratch; /* unescaped string bytes; reused for every string of one document */
    int mt_idx;           /* stack slot holding json.array_mt while decoding */
    int failed;
    char *err;
    size_t errlen;
} dec_t;

static int dec_fail(dec_t *d, const char *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int dec_fail(dec_t *d, const char *at, const char *fmt, ...)
{
    /* Line and column are only needed here, so they are counted here rather than while parsing. */
    int line = 1;
    const char *bol = d->start;
    for (const char *q = d->start; q < at; q++) {
        if (*q == '\n') {
            line++;
            bol = q + 1;
        }
    }
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    set_err(d->err, d->errlen, "%s at line %d column %zu", what, line, (size_t)(at - bol) + 1);
    d->failed = 1;
    return -1;
}

static int dec_value(dec_t *d, int depth);

static inline void skip_ws(dec_t *d)
{
    const char *p = d->p, *end = d->end;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    d->p = p;
}

static int dec_unexpected(dec_t *d, const char *what_was_expected)
{
    if (d->p >= d->end)
        return dec_fail(d, d->p, "unexpected end of input%s", what_was_expected);
    unsigned char c = (unsigned char)*d->p;
    if (c > 0x20 && c < 0x7f)
        return dec_fail(d, d->p, "unexpected character '%c'%s", c, what_was_expected);
    return dec_fail(d, d->p, "unexpected byte 0x%02x%s", c, what_was_expected);
}

static int hex4(const unsigned char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (int)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (int)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (int)(c - 'A' + 10);
        else
            return -1;
    }
    return v;
}

static void put_utf8(pulse_buf_t *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    pulse_buf_append(b, u, n);
}

/* 0: plain byte; 1: '"'; 2: '\\'; 3: control character; 4: starts a multi-byte sequence */
/* clang-format off */
static const unsigned char str_class[256] = { /* one row per 32 bytes */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};
/* clang-format on */

/* d->p is at the opening quote; pushes the string. Strings without escapes (nearly all of them)
 * go straight from the input to lua_pushlstring. */
static int dec_string(dec_t *d)
{
    const unsigned char *p = (const unsigned char *)d->p + 1, *end = (const unsigned char *)d->end;
    const unsigned char *run = p;
    pulse_buf_t *sb = NULL;
    for (;;) {
        while (p < end && str_class[*p] == 0)
            p++;
        if (p == end)
            return dec_fail(d, d->p, "unterminated string");
        switch (str_class[*p]) {
        case 1:
            if (sb) {
                pulse_buf_append(sb, run, (size_t)(p - run));
                lua_pushlstring(d->L, sb->data, sb->len);
            } else {
                lua_pushlstring(d->L, (const char *)run, (size_t)(p - run));
            }
            d->p = (const char *)p + 1;
            return 0;
        case 2: {
            if (sb == NULL) {
                sb = d->scratch;
                pulse_buf_reset(sb);
            }
            pulse_buf_append(sb, run, (size_t)(p - run));
            const unsigned char *esc = p++;
            if (p == end)
                return dec_fail(d, d->p, "unterminated string");
            switch (*p) {
            case '"':
                pulse_buf_putc(sb, '"');
                break;
            case '\\':
                pulse_buf_putc(sb, '\\');
                break;
            case '/':
                pulse_buf_putc(sb, '/');
                break;
            case 'b':
                pulse_buf_putc(sb, '\b');
                break;
            case 'f':
                pulse_buf_putc(sb, '\f');
                break;
            case 'n':
                pulse_buf_putc(sb, '\n');
                break;
            case 'r':
                pulse_buf_putc(sb, '\r');
                break;
            case 't':
                pulse_buf_putc(sb, '\t');
                break;
            case 'u': {
                int cp = end - p > 4 ? hex4(p + 1) : -1;
                if (cp < 0)
                    return dec_fail(d, (const char *)esc, "invalid \\u escape (needs 4 hex digits)");
                p += 4; /* last hex digit */
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return dec_fail(d, (const char *)esc, "lone low surrogate \\u%04X", (unsigned)cp);
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    int lo = end - p > 6 && p[1] == '\\' && p[2] == 'u' ? hex4(p + 3) : -1;
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return dec_fail(d, (const char *)esc, "lone high surrogate \\u%04X", (unsigned)cp);
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
                put_utf8(sb, (unsigned)cp);
                break;
            }
            default:
                return dec_fail(d, (const char *)esc, "invalid escape in string");
            }
            run = ++p;
            break;
        }
        case 3:
            return dec_fail(d, (const char *)p, "control character in string (must be escaped)");
        default: {
            size_t k = utf8_seq_len(p, end);
            if (k == 0)
                return dec_fail(d, (const char *)p, "invalid UTF-8 in string");
            p += k;
        }
        }
    }
}

static int is_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

static int dec_number(dec_t *d)
{
    lua_State *L = d->L;
    const char *s = d->p, *p = s, *end = d->end;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (!is_digit(p, end)) {
        d->p = p;
        return dec_unexpected(d, " in number");
    }
    /* u collects up to 19 significant digits (integer and fraction): always fits in uint64. */
    uint64_t u = 0;
    int sig = 0, dropped = 0, frac = 0, is_float = 0;
    const char *digits = p;
    if (*p == '0') {
        p++;
        if (is_digit(p, end))
            return dec_fail(d, s, "number with a leading zero");
    } else {
        for (; is_digit(p, end); p++) {
            if (sig < 19) {
                u = u * 10 + (uint64_t)(*p - '0');
                sig++;
            } else {
                dropped = 1;
            }
        }
    }
    size_t ndigits = (size_t)(p - digits);
    if (p < end && *p == '.') {
        p++;
        if (!is_digit(p, end)) {
            d->p = p;
            return dec_unexpected(d, " (expected a digit after '.')");
        }
        for (; is_digit(p, end); p++) {
            if (u == 0 && *p == '0') {
                frac++;
            } else if (sig < 19) {
                u = u * 10 + (uint64_t)(*p - '0');
                sig++;
                frac++;
            } else {
                dropped = 1;
            }
        }
        is_float = 1;
    }
    int expo = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        int eneg = 0;
        if (p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (!is_digit(p, end)) {
            d->p = p;
            return dec_unexpected(d, " (expected a digit in the exponent)");
        }
        for (; is_digit(p, end); p++)
            if (expo < 100000)
                expo = expo * 10 + (*p - '0');
        if (eneg)
            expo = -expo;
        is_float = 1;
    }
    d->p = p;
    if (!is_float && ndigits <= 19) {
        if (!neg && u <= (uint64_t)LUA_MAXINTEGER) {
            lua_pushinteger(L, (lua_Integer)u);
            return 0;
        }
        if (neg && u == 0) { /* -0 has no integer form; keep the sign so it encodes back as -0 */
            lua_pushnumber(L, -0.0);
            return 0;
        }
        if (neg && u <= (uint64_t)LUA_MAXINTEGER) {
            lua_pushinteger(L, -(lua_Integer)u);
            return 0;
        }
        if (neg && u == (uint64_t)LUA_MAXINTEGER + 1) {
            lua_pushinteger(L, LUA_MININTEGER);
            return 0;
        }
    }
    /* Clinger's fast path: u and 10^|e| are exact doubles, so one multiplication or division is
     * correctly rounded, exactly what strtod would return. */
    int e10 = expo - frac;
    if (!dropped && u <= (UINT64_C(1) << 53) && e10 >= -22 && e10 <= 22) {
        double v = e10 >= 0 ? (double)u * pow10_tab[e10] : (double)u / pow10_tab[-e10];
        lua_pushnumber(L, neg ? -v : v);
        return 0;
    }
    /* lua_stringtonumber copes with the locale's decimal point, which strtod alone would not. */
    size_t n = (size_t)(p - s);
    char tmp[64];
    const char *z = tmp;
    if (n < sizeof(tmp)) {
        memcpy(tmp, s, n);
        tmp[n] = '\0';
    } else {
        pulse_buf_reset(d->scratch);
        pulse_buf_append(d->scratch, s, n);
        z = d->scratch->data;
    }
    if (lua_stringtonumber(L, z) == 0)
        return dec_fail(d, s, "invalid number");
    lua_Number v = lua_tonumber(L, -1);
    if (lua_isinteger(L, -1)) { /* not reachable after the checks above; keep floats floats */
        lua_pop(L, 1);
        lua_pushnumber(L, v);
    } else if (isinf(v)) {
        lua_pop(L, 1);
        return dec_fail(d, s, "number out of range");
    }
    return 0;
}

static int dec_literal(dec_t *d, const char *word, size_t n)
{
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
        return dec_fail(d, d->p, "invalid literal (expected '%s')", word);
    d->p += n;
    return 0;
}

/* Values wait on the Lua stack until their container closes or DEC_BATCH of them have piled up,
 * so that most tables are created at their final size instead of growing by rehashes. */
#define DEC_BATCH 32

/* Stack: [t] v1..vn above *base. Creates t below the values if needed, then stores them. */
static void dec_flush_array(dec_t *d, int *t, int *base, int n, lua_Integer *filled)
{
    lua_State *L = d->L;
    if (*t == 0) {
        lua_createtable(L, n, 0);    /* v1..vn, t */
        lua_pushvalue(L, d->mt_idx); /* v1..vn, t, mt */
        lua_setmetatable(L, -2);     /* v1..vn, t */
        lua_insert(L, *base + 1);    /* t, v1..vn */
        *t = ++*base;
    }
    for (int i = n; i >= 1; i--) /* from the top down: pops vn first */
        lua_rawseti(L, *t, *filled + i);
    *filled += n;
}

/* Stack: [t] k1 v1 .. kn vn above *base. */
static void dec_flush_object(dec_t *d, int *t, int *base, int n)
{
    lua_State *L = d->L;
    if (*t == 0) {
        lua_createtable(L, 0, n); /* k1..vn, t */
        lua_insert(L, *base + 1); /* t, k1..vn */
        *t = ++*base;
    }
    for (int i = 0; i < n; i++) { /* in document order, so a repeated key keeps its last value */
        lua_pushvalue(L, *base + 1 + 2 * i);
        lua_pushvalue(L, *base + 2 + 2 * i);
        lua_rawset(L, *t);
    }
    lua_settop(L, *base); /* t */
}

static int dec_array(dec_t *d, int depth)
{
    lua_State *L = d->L;
    if (depth >= PULSE_JSON_MAX_DEPTH)
        return dec_fail(d, d->p, "nesting deeper than %d", PULSE_JSON_MAX_DEPTH);
    luaL_checkstack(L, DEC_BATCH + 4, "json.decode");
    int t = 0, base = lua_gettop(L), n = 0;
    lua_Integer filled = 0;
    d->p++;
    skip_ws(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
        dec_flush_array(d, &t, &base, 0, &filled);
        return 0;
    }
    for (;;) {
        if (dec_value(d, depth + 1) != 0) /* [t] v1..vn */
            return -1;
        if (++n == DEC_BATCH) {
            dec_flush_array(d, &t, &base, n, &filled); /* t */
            n = 0;
        }
        skip_ws(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            skip_ws(d);
            if (d->p < d->end && *d->p == ']')
                return dec_fail(d, d->p, "trailing comma");
            continue;
        }
        if (d->p < d->end && *d->p == ']') {
            d->p++;
            dec_flush_array(d, &t, &base, n, &filled); /* t */
            return 0;
        }
        return dec_unexpected(d, " (expected ',' or ']')");
    }
}

static int dec_object(dec_t *d, int depth)
{
    lua_State *L = d->L;
    if (depth >= PULSE_JSON_MAX_DEPTH)
        return dec_fail(d, d->p, "nesting deeper than %d", PULSE_JSON_MAX_DEPTH);
    luaL_checkstack(L, 2 * DEC_BATCH + 4, "json.decode");
    int t = 0, base = lua_gettop(L), n = 0;
    d->p++;
    skip_ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        dec_flush_object(d, &t, &base, 0);
        return 0;
    }
    for (;;) {
        if (d->p >= d->end || *d->p != '"')
            return dec_unexpected(d, " (expected a string key)");
        if (dec_string(d) != 0) /* [t] k1..vn, k */
            return -1;
        skip_ws(d);
        if (d->p >= d->end || *d->p != ':')
            return dec_unexpected(d, " (expected ':')");
        d->p++;
        if (dec_value(d, depth + 1) != 0) /* [t] k1..vn, k, v */
            return -1;
        if (++n == DEC_BATCH) {
            dec_flush_object(d, &t, &base, n); /* t */
            n = 0;
        }
        skip_ws(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            skip_ws(d);
            if (d->p < d->end && *d->p == '}')
                return dec_fail(d, d->p, "trailing comma");
            continue;
        }
        if (d->p < d->end && *d->p == '}') {
            d->p++;
            dec_flush_object(d, &t, &base, n); /* t */
            return 0;
        }
        return dec_unexpected(d, " (expected ',' or '}')");
    }
}

static int dec_value(dec_t *d, int depth)
{
    skip_ws(d);
    if (d->p >= d->end)
        return dec_unexpected(d, "");
    switch (*d->p) {
    case '{':
        return dec_object(d, depth);
    case '[':
        return dec_array(d, depth);
    case '"':
        return dec_string(d);
    case 't':
        if (dec_literal(d, "true", 4) != 0)
            return -1;
        lua_pushboolean(d->L, 1);
        return 0;
    case 'f':
        if (dec_literal(d, "false", 5) != 0)
            return -1;
        lua_pushboolean(d->L, 0);
        return 0;
    case 'n':
        if (dec_literal(d, "null", 4) != 0)
            return -1;
        lua_pushlightuserdata(d->L, NULL);
        return 0;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        return dec_number(d);
    case 'N':
    case 'I':
        return dec_fail(d, d->p, "NaN and Infinity are not JSON");
    case '/':
        return dec_fail(d, d->p, "comments are not JSON");
    default:
        return dec_unexpected(d, "");
    }
}

/* Pushes the value and returns 0, or leaves the stack as it was and returns -1. May raise Lua's own
 * errors (memory, stack). */
static int dec_run(dec_t *d)
{
    lua_State *L = d->L;
    int base = lua_gettop(L);
    luaL_checkstack(L, 4, "json.decode");
    push_array_mt(L); /* mt */
    d->mt_idx = base + 1;
    if (dec_value(d, 0) != 0) {
        lua_settop(L, base);
        return -1;
    }
    skip_ws(d);
    if (d->p < d->end) {
        dec_fail(d, d->p, "unexpected data after the JSON value");
        lua_settop(L, base);
        return -1;
    }
    lua_remove(L, d->mt_idx); /* value */
    return 0;
}

static int dec_protected(lua_State *L)
{
    dec_t *d = lua_touserdata(L, 1);
    lua_pop(L, 1);
    return dec_run(d) == 0 ? 1 : 0;
}

int pulse_json_decode_push(lua_State *L, const char *s, size_t n, char *err, size_t errlen)
{
    if (!lua_checkstack(L, 4)) {
        set_err(err, errlen, "Lua stack exhausted");
        return -1;
    }
    pulse_buf_t scratch = PULSE_BUF_INIT;
    dec_t d = {.L = L, .start = s, .p = s, .end = s + n, .scratch = &scratch, .err = err, .errlen = errlen};
    lua_pushcfunction(L, dec_protected);
    lua_pushlightuserdata(L, &d);
    int rc = lua_pcall(L, 1, 1, 0); /* value | nil | errmsg */
    pulse_buf_free(&scratch);
    if (rc != LUA_OK) {
        set_err(err, errlen, "%s", lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "Lua error");
        lua_pop(L, 1);
        return -1;
    }
    if (d.failed) {
        lua_pop(L, 1);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Lua API */

/* json.encode(value [, {sort_keys = true}]) -> string; raises on values JSON cannot represent. */
static int l_json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    int sort_keys = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "sort_keys");
        sort_keys = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_settop(L, 1);
    /* One buffer per state, kept between calls (an upvalue box freed by the GC): a fresh
     * finalized userdata per call cost more than encoding a small answer. Encoding never runs
     * Lua code, so calls cannot nest. */
    pulse_buf_t *out = lua_touserdata(L, lua_upvalueindex(1));
    pulse_buf_reset(out);
    char msg[512];
    enc_t e; /* not zero-initialised: path[] and tables[] are written before they are read */
    e.L = L;
    e.out = out;
    e.sort_keys = sort_keys;
    e.array_mt = NULL;
    e.err = msg;
    e.errlen = sizeof(msg);
    if (enc_run(&e, 1) != 0)
        return luaL_error(L, "json.encode: %s", msg);
    lua_pushlstring(L, out->data ? out->data : "", out->len); /* value, json */
    if (out->cap > KEEP_BUF_BYTES)
        pulse_buf_free(out); /* one big document must not pin its memory for the VM's life */
    return 1;
}

/* json.decode(string) -> value | nil, "problem at line L column C" */
static int l_json_decode(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_typeerror(L, 1, "string");
    size_t n;
    const char *s = lua_tolstring(L, 1, &n);
    lua_settop(L, 1);
    pulse_buf_t *scratch = push_buf_box(L); /* s, box */
    char msg[256];
    dec_t d = {.L = L, .start = s, .p = s, .end = s + n, .scratch = scratch, .err = msg, .errlen = sizeof(msg)};
    if (dec_run(&d) != 0) {
        pulse_buf_free(scratch);
        lua_pushnil(L);
        lua_pushstring(L, msg);
        return 2;
    }
    pulse_buf_free(scratch);
    return 1;
}

/* json.array([t]) -> t, marked so that it encodes as a JSON array even when empty. */
static int l_json_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
    }
    push_array_mt(L);             /* t, mt */
    if (lua_getmetatable(L, 1)) { /* t, mt, old */
        if (!lua_rawequal(L, -1, -2))
            return luaL_argerror(L, 1, "table already has a metatable");
        lua_pop(L, 1);
    }
    lua_setmetatable(L, 1); /* t */
    return 1;
}

int pulse_script_open_json(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"encode", l_json_encode},
        {"decode", l_json_decode},
        {"array", l_json_array},
        {NULL, NULL},
    };
    luaL_newlibtable(L, fns); /* json */
    push_buf_box(L);          /* json, box: the encoder's reusable buffer */
    luaL_setfuncs(L, fns, 1);
    lua_pushlightuserdata(L, NULL); /* json, null */
    lua_setfield(L, -2, "null");
    push_array_mt(L); /* json, mt */
    lua_setfield(L, -2, "array_mt");
    return 1;
}
