/* The `ingest` Lua API for the upload routes: ingest.preview(data, opts) sniffs a CSV dialect or
 * opens an .xlsx workbook from the file's bytes, infers every column's type over all rows and
 * returns the first rows for the import preview; ingest.multipart(body, content_type) splits a
 * multipart/form-data body. Both are synchronous: the parsers run at hundreds of MB/s, so the
 * upload size limit bounds the time spent on the loop. */
#include "core/buf.h"
#include "ingest/csv.h"
#include "ingest/multipart.h"
#include "ingest/types.h"
#include "ingest/xlsx.h"
#include "script/json.h"
#include "script/script.h"
#include "server/request.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define JOB_MT "pulse.ingest.job"
#define SNIFF_BYTES ((size_t)64 << 10)
#define MAX_LISTED_ERRORS 20
#define DEFAULT_MAX_ROWS 20
#define LIMIT_MAX_ROWS 1000

static const char ARRAY_MT_KEY = 0; /* registry key (address) of json.array_mt */

/* Native resources of one preview, owned by a userdata so that a Lua error (out of memory while
 * building the result) cannot leak them: __gc and __close share one idempotent release. */
typedef struct job_t {
    pulse_csv_parser_t *csv;
    pulse_xlsx_t *xlsx;
    int fd;
    pulse_column_stats_t *cols;
    size_t ncols, capcols;
    struct field_ref_t *refs; /* one row's fields */
    size_t caprefs;
} job_t;

static void job_release(job_t *j)
{
    if (j->csv != NULL)
        pulse_csv_free(j->csv);
    j->csv = NULL;
    if (j->xlsx != NULL)
        pulse_xlsx_close(j->xlsx);
    j->xlsx = NULL;
    if (j->fd >= 0)
        close(j->fd);
    j->fd = -1;
    free(j->cols);
    j->cols = NULL;
    j->ncols = j->capcols = 0;
    free(j->refs);
    j->refs = NULL;
    j->caprefs = 0;
}

static int l_job_gc(lua_State *L)
{
    job_release(luaL_checkudata(L, 1, JOB_MT));
    return 0;
}

static job_t *job_new(lua_State *L)
{
    job_t *j = lua_newuserdatauv(L, sizeof(*j), 0);
    memset(j, 0, sizeof(*j));
    j->fd = -1;
    luaL_setmetatable(L, JOB_MT);
    return j;
}

/* Columns 0..n-1 exist (new ones zeroed). */
static void job_cols(job_t *j, size_t n)
{
    if (n <= j->ncols)
        return;
    if (n > j->capcols) {
        size_t cap = j->capcols ? j->capcols * 2 : 16;
        while (cap < n)
            cap *= 2;
        j->cols = pulse_xrealloc(j->cols, cap * sizeof(*j->cols));
        j->capcols = cap;
    }
    for (size_t i = j->ncols; i < n; i++)
        pulse_column_init(&j->cols[i]);
    j->ncols = n;
}

static void new_array(lua_State *L, int narr)
{
    lua_createtable(L, narr, 0);                      /* t */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &ARRAY_MT_KEY); /* t, mt */
    lua_setmetatable(L, -2);                          /* t */
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

/* Pushes s as a valid UTF-8 string (what json.encode requires): bytes that are not UTF-8 are read
 * as Latin-1, the usual encoding of such files. Returns 1 if any byte was converted. */
static int push_text(lua_State *L, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, k;
    while (i < n && (k = utf8_seq(u + i, n - i)) > 0)
        i += k;
    if (i == n) {
        lua_pushlstring(L, s, n);
        return 0;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, s, i);
    while (i < n) {
        k = utf8_seq(u + i, n - i);
        if (k > 0) {
            luaL_addlstring(&b, s + i, k);
            i += k;
        } else {
            luaL_addchar(&b, (char)(0xC0 | (u[i] >> 6)));
            luaL_addchar(&b, (char)(0x80 | (u[i] & 0x3F)));
            i++;
        }
    }
    luaL_pushresult(&b);
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * Rows, shared by the CSV and xlsx readers. */

typedef struct field_ref_t {
    const char *p;
    size_t n;
} field_ref_t;

typedef struct preview_t {
    lua_State *L;
    job_t *job;
    int rows_idx, errors_idx, names_idx; /* stack slots */
    int is_xlsx;
    int header_pending; /* the next row names the columns */
    size_t ncols;       /* CSV: expected field count (0: take the first row's) */
    size_t max_rows, rows_out, data_rows;
    size_t nerrors;
} preview_t;

static void add_error(preview_t *pv, uint64_t row, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add_error(preview_t *pv, uint64_t row, const char *fmt, ...)
{
    pv->nerrors++;
    if (pv->nerrors > MAX_LISTED_ERRORS)
        return;
    lua_State *L = pv->L;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lua_createtable(L, 0, 2); /* e */
    lua_pushinteger(L, (lua_Integer)row);
    lua_setfield(L, -2, "row");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    lua_rawseti(L, pv->errors_idx, (lua_Integer)lua_rawlen(L, pv->errors_idx) + 1);
}

static void trim_field(const char **p, size_t *n)
{
    while (*n > 0 && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
        (*n)--;
}

static void handle_row(preview_t *pv, uint64_t row, size_t n)
{
    lua_State *L = pv->L;
    const field_ref_t *f = pv->job->refs;
    if (pv->header_pending) {
        pv->header_pending = 0;
        for (size_t i = 0; i < n; i++) {
            const char *p = f[i].p;
            size_t len = f[i].n;
            trim_field(&p, &len);
            if (len == 0)
                lua_pushfstring(L, "column_%d", (int)(i + 1));
            else
                push_text(L, p, len);
            lua_rawseti(L, pv->names_idx, (lua_Integer)(i + 1));
        }
        pv->ncols = n;
        job_cols(pv->job, n);
        return;
    }
    pv->data_rows++;
    if (pv->ncols == 0)
        pv->ncols = n;
    if (pv->is_xlsx) {
        if (n > pv->ncols)
            pv->ncols = n; /* later columns get generated names */
    } else if (n != pv->ncols) {
        add_error(pv, row, "%zu fields where the file has %zu", n, pv->ncols);
    }
    job_cols(pv->job, pv->ncols);
    pulse_column_stats_t *cols = pv->job->cols;
    for (size_t i = 0; i < pv->ncols; i++) {
        if (i < n)
            pulse_column_observe(&cols[i], f[i].p, f[i].n);
        else if (pv->is_xlsx)
            pulse_column_observe(&cols[i], "", 0); /* trailing empty cells are not reported */
    }
    if (pv->rows_out < pv->max_rows) {
        size_t width = pv->is_xlsx && n < pv->ncols ? pv->ncols : n;
        new_array(L, (int)width); /* r */
        int bad = 0;
        for (size_t i = 0; i < width; i++) {
            if (i < n)
                bad |= push_text(L, f[i].p, f[i].n);
            else
                lua_pushliteral(L, "");
            lua_rawseti(L, -2, (lua_Integer)(i + 1));
        }
        lua_rawseti(L, pv->rows_idx, (lua_Integer)++pv->rows_out);
        (void)bad; /* the CSV parser reports bad UTF-8 per record itself */
    }
}

static void refs_reserve(preview_t *pv, size_t n)
{
    if (n <= pv->job->caprefs)
        return;
    size_t cap = pv->job->caprefs ? pv->job->caprefs : 64;
    while (cap < n)
        cap *= 2;
    pv->job->refs = pulse_xrealloc(pv->job->refs, cap * sizeof(*pv->job->refs));
    pv->job->caprefs = cap;
}

static int csv_row(void *ud, size_t row, const pulse_csv_field_t *fields, size_t n)
{
    preview_t *pv = ud;
    refs_reserve(pv, n);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        pv->job->refs[i].p = fields[i].ptr;
        pv->job->refs[i].n = fields[i].len;
        bad |= fields[i].bad_utf8;
    }
    uint64_t line = pulse_csv_line(pv->job->csv);
    if (bad)
        add_error(pv, line, "not valid UTF-8 (shown as Latin-1)");
    handle_row(pv, line, n);
    return 0;
}

#define PREVIEW_XLSX_MAX_ROWS 50000

static int xlsx_row(void *ud, uint32_t row, const pulse_xlsx_cell_t *cells, size_t n)
{
    preview_t *pv = ud;
    refs_reserve(pv, n);
    for (size_t i = 0; i < n; i++) {
        pv->job->refs[i].p = cells[i].p;
        pv->job->refs[i].n = cells[i].len;
    }
    handle_row(pv, row, n);
    /* The preview runs on an event loop: a workbook's rows past this are not read (the answer's
     * rows_sampled says how many were). A CSV is bounded by the request body instead. */
    return pv->data_rows >= PREVIEW_XLSX_MAX_ROWS ? 1 : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Options. */

typedef struct opts_t {
    const char *filename;
    const char *sheet;
    lua_Integer max_rows;
    char sep;                  /* 0: sniff */
    int header, decimal_comma; /* -1: sniff */
} opts_t;

/* Pushes nil, {code =, message =, row = (when > 0)} and returns 2. */
static int fail(lua_State *L, const char *code, uint64_t row, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(lua_State *L, const char *code, uint64_t row, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lua_pushnil(L);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    if (row > 0) {
        lua_pushinteger(L, (lua_Integer)row);
        lua_setfield(L, -2, "row");
    }
    return 2;
}

/* Reads opts (stack slot 2) into o. Returns NULL, or the bad_option message. */
static const char *read_opts(lua_State *L, opts_t *o)
{
    o->filename = o->sheet = NULL;
    o->max_rows = DEFAULT_MAX_ROWS;
    o->sep = 0;
    o->header = o->decimal_comma = -1;
    if (lua_isnoneornil(L, 2))
        return NULL;
    int t;
    if ((t = lua_getfield(L, 2, "filename")) != LUA_TNIL) {
        if (t != LUA_TSTRING)
            return "opts.filename must be a string";
        o->filename = lua_tostring(L, -1); /* anchored by opts */
    }
    lua_pop(L, 1);
    if ((t = lua_getfield(L, 2, "sheet")) != LUA_TNIL) {
        if (t != LUA_TSTRING)
            return "opts.sheet must be a string";
        o->sheet = lua_tostring(L, -1);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 2, "max_rows") != LUA_TNIL) {
        int isint;
        o->max_rows = lua_tointegerx(L, -1, &isint);
        if (!isint || lua_type(L, -1) != LUA_TNUMBER || o->max_rows < 1 || o->max_rows > LIMIT_MAX_ROWS)
            return "opts.max_rows must be an integer from 1 to 1000";
    }
    lua_pop(L, 1);
    if ((t = lua_getfield(L, 2, "sep")) != LUA_TNIL) {
        const char *s = t == LUA_TSTRING ? lua_tostring(L, -1) : "";
        if (strcmp(s, ",") == 0 || strcmp(s, ";") == 0 || strcmp(s, "\t") == 0 || strcmp(s, "|") == 0)
            o->sep = s[0];
        else if (strcmp(s, "whitespace") == 0)
            o->sep = PULSE_CSV_SEP_WHITESPACE;
        else if (strcmp(s, "tab") == 0)
            o->sep = '\t';
        else
            return "opts.sep must be one of \",\" \";\" \"\\t\" \"|\" \"whitespace\"";
    }
    lua_pop(L, 1);
    if ((t = lua_getfield(L, 2, "header")) != LUA_TNIL) {
        if (t != LUA_TBOOLEAN)
            return "opts.header must be a boolean";
        o->header = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    if ((t = lua_getfield(L, 2, "decimal_comma")) != LUA_TNIL) {
        if (t != LUA_TBOOLEAN)
            return "opts.decimal_comma must be a boolean";
        o->decimal_comma = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    return NULL;
}

static int ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* ---------------------------------------------------------------------------------------------
 * Result. */

static void push_columns(lua_State *L, preview_t *pv, int decimal_comma)
{
    job_t *j = pv->job;
    pulse_type_options_t topt = {decimal_comma, PULSE_COL_AUTO, PULSE_DATE_NONE};
    new_array(L, (int)pv->ncols); /* cols */
    for (size_t i = 0; i < pv->ncols && i < j->ncols; i++) {
        pulse_column_type_t ct;
        pulse_column_decide(&j->cols[i], &topt, &ct);
        lua_createtable(L, 0, 12); /* cols, c */
        lua_pushinteger(L, (lua_Integer)(i + 1));
        lua_setfield(L, -2, "index");
        if (lua_rawgeti(L, pv->names_idx, (lua_Integer)(i + 1)) == LUA_TNIL) { /* cols, c, name */
            lua_pop(L, 1);
            lua_pushfstring(L, "column_%d", (int)(i + 1));
        }
        lua_setfield(L, -2, "name");
        lua_pushstring(L, pulse_column_kind_name(ct.type));
        lua_setfield(L, -2, "type");
        if ((ct.type == PULSE_COL_DATE || ct.type == PULSE_COL_DATETIME) && ct.date_format != PULSE_DATE_NONE) {
            lua_pushstring(L, pulse_date_format_name(ct.date_format));
            lua_setfield(L, -2, "date_format");
            if (ct.ambiguous && ct.alt_format != PULSE_DATE_NONE) {
                new_array(L, 1);
                lua_pushstring(L, pulse_date_format_name(ct.alt_format));
                lua_rawseti(L, -2, 1);
                lua_setfield(L, -2, "alternatives");
            }
        }
        if (ct.type == PULSE_COL_TEXT && ct.near_type != PULSE_COL_AUTO) { /* "mostly dates, a few not" */
            lua_pushstring(L, pulse_column_kind_name(ct.near_type));
            lua_setfield(L, -2, "near_type");
            if (ct.near_date_format != PULSE_DATE_NONE) {
                lua_pushstring(L, pulse_date_format_name(ct.near_date_format));
                lua_setfield(L, -2, "near_date_format");
            }
            lua_pushinteger(L, (lua_Integer)ct.near_failures);
            lua_setfield(L, -2, "near_failures");
        }
        lua_pushboolean(L, ct.ambiguous);
        lua_setfield(L, -2, "ambiguous");
        if (ct.reason[0] != '\0') {
            lua_pushstring(L, ct.reason);
            lua_setfield(L, -2, "reason");
        }
        lua_pushinteger(L, (lua_Integer)ct.values);
        lua_setfield(L, -2, "values");
        lua_pushinteger(L, (lua_Integer)ct.nulls);
        lua_setfield(L, -2, "nulls");
        lua_pushboolean(L, ct.looks_boolean);
        lua_setfield(L, -2, "looks_boolean");
        lua_pushinteger(L, (lua_Integer)ct.leading_zeros);
        lua_setfield(L, -2, "leading_zeros");
        lua_rawseti(L, -2, (lua_Integer)(i + 1)); /* cols */
    }
}

static const char *sep_name(char sep)
{
    static const char *const names[] = {",", ";", "\t", "|"};
    switch (sep) {
    case ',':
        return names[0];
    case ';':
        return names[1];
    case '\t':
        return names[2];
    case '|':
        return names[3];
    default:
        return "whitespace";
    }
}

/* First record under dialect d: its field count, and whether it looks like column names (every
 * field non-empty and none a number or a date). Used when the separator is forced, which makes the
 * sniffer's header decision moot. */
typedef struct first_t {
    size_t nfields;
    int names;
    int decimal_comma;
} first_t;

static int first_row(void *ud, size_t row, const pulse_csv_field_t *f, size_t n)
{
    first_t *fr = ud;
    fr->nfields = n;
    fr->names = n > 0;
    for (size_t i = 0; i < n && fr->names; i++) {
        const char *p = f[i].ptr;
        size_t len = f[i].len;
        trim_field(&p, &len);
        if (len == 0 || pulse_number_parse(p, len, fr->decimal_comma, NULL) == 0)
            fr->names = 0;
        for (int k = PULSE_DATE_NONE + 1; k < PULSE_DATE_FORMAT_COUNT && fr->names; k++)
            if (pulse_date_parse(p, len, (pulse_date_format_t)k, NULL, NULL) == 0)
                fr->names = 0;
    }
    return 1;
}

static int preview_csv(lua_State *L, const char *data, size_t len, const opts_t *o, preview_t *pv)
{
    pulse_csv_dialect_t d;
    char err[256];
    if (pulse_csv_sniff(data, len < SNIFF_BYTES ? len : SNIFF_BYTES, &d, err, sizeof(err)) != 0)
        return fail(L, strcmp(err, "empty file") == 0 ? "empty_file" : "not_tabular", 0, "%s", err);
    int overridden = 0;
    if (o->sep != 0 && o->sep != d.sep) {
        overridden = 1;
        d.sep = o->sep;
        if (d.sep == ',')
            d.decimal_comma = 0;
        first_t fr = {0, 0, o->decimal_comma > 0};
        pulse_csv_parser_t *p = pulse_csv_parser_new(&d, first_row, &fr);
        pv->job->csv = p;
        if (pulse_csv_feed(p, data, len < SNIFF_BYTES ? len : SNIFF_BYTES) == 0)
            pulse_csv_finish(p);
        pv->job->csv = NULL;
        pulse_csv_free(p);
        d.nfields = fr.nfields;
        d.has_header = fr.names;
    }
    if (o->header >= 0) {
        overridden |= o->header != d.has_header;
        d.has_header = o->header;
    }
    if (o->decimal_comma >= 0) {
        overridden |= o->decimal_comma != d.decimal_comma;
        d.decimal_comma = o->decimal_comma;
    }
    if (overridden) {
        d.ambiguous = 0;
        d.confidence = 1.0;
        d.reason[0] = '\0';
    }

    pv->header_pending = d.has_header;
    pv->ncols = d.has_header ? 0 : d.nfields;
    pulse_csv_parser_t *p = pulse_csv_parser_new(&d, csv_row, pv);
    pv->job->csv = p;
    int rc = pulse_csv_feed(p, data, len);
    if (rc == 0)
        rc = pulse_csv_finish(p);
    if (rc < 0)
        return fail(L, "malformed", pulse_csv_line(p), "%s", pulse_csv_error(p));
    const pulse_csv_stats_t *st = pulse_csv_stats(p);
    if (st->stray_quotes > 0)
        add_error(pv, st->first_stray_quote, "%llu stray quote(s) read as data, the first in this record",
                  (unsigned long long)st->stray_quotes);
    if (pv->ncols == 0 && st->rows == 0)
        return fail(L, "empty_file", 0, "empty file");

    lua_pushliteral(L, "csv");
    lua_setfield(L, 4, "format");
    lua_createtable(L, 0, 10); /* dialect */
    lua_pushstring(L, sep_name(d.sep));
    lua_setfield(L, -2, "sep");
    lua_pushstring(L, d.quote ? "\"" : "");
    lua_setfield(L, -2, "quote");
    lua_pushboolean(L, d.has_header);
    lua_setfield(L, -2, "header");
    lua_pushboolean(L, d.decimal_comma);
    lua_setfield(L, -2, "decimal_comma");
    lua_pushboolean(L, d.has_bom);
    lua_setfield(L, -2, "bom");
    lua_pushboolean(L, d.crlf);
    lua_setfield(L, -2, "crlf");
    lua_pushnumber(L, d.confidence);
    lua_setfield(L, -2, "confidence");
    lua_pushboolean(L, d.ambiguous);
    lua_setfield(L, -2, "ambiguous");
    if (d.reason[0] != '\0') {
        lua_pushstring(L, d.reason);
        lua_setfield(L, -2, "reason");
    }
    lua_setfield(L, 4, "dialect");
    push_columns(L, pv, d.decimal_comma);
    lua_setfield(L, 4, "columns");
    return 0;
}

/* Writes the bytes to a private temporary file, unlinked at once, and opens the workbook through
 * /proc/self/fd: nothing is left behind whatever happens next. */
/* Writes data[0..len) to fd, in pieces of at most 1 GiB. Returns 0, or -1 with errno set. */
static int write_all(int fd, const char *data, size_t len)
{
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, data + off, len - off > ((size_t)1 << 30) ? (size_t)1 << 30 : len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        off += (size_t)w;
    }
    return 0;
}

static int preview_xlsx_path(lua_State *L, const char *path, const opts_t *o, preview_t *pv);

static int preview_xlsx(lua_State *L, const char *data, size_t len, const opts_t *o, preview_t *pv)
{
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/pulse-upload-XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0)
        return luaL_error(L, "ingest.preview: cannot create a temporary file in %s: %s", dir, strerror(errno));
    unlink(path);
    pv->job->fd = fd;
    if (write_all(fd, data, len) != 0)
        return luaL_error(L, "ingest.preview: cannot write a temporary file: %s", strerror(errno));
    char fdpath[64];
    snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
    return preview_xlsx_path(L, fdpath, o, pv);
}

static int preview_xlsx_path(lua_State *L, const char *path, const opts_t *o, preview_t *pv)
{
    char err[512];
    pulse_xlsx_t *x = pulse_xlsx_open(path, err, sizeof(err));
    if (x == NULL)
        return fail(L, "not_tabular", 0, "not a readable .xlsx workbook: %s", err);
    pv->job->xlsx = x;

    const char *const *names;
    int nsheets = pulse_xlsx_sheets(x, &names);
    int found = o->sheet == NULL && nsheets > 0;
    new_array(L, nsheets); /* sheets */
    for (int i = 0; i < nsheets; i++) {
        push_text(L, names[i], strlen(names[i]));
        lua_rawseti(L, -2, i + 1);
        found |= o->sheet != NULL && strcmp(o->sheet, names[i]) == 0;
    }
    lua_setfield(L, 4, "sheets");
    if (!found) {
        if (nsheets == 0)
            return fail(L, "not_tabular", 0, "the workbook has no sheets");
        /* name the sheets there are, so the user can pick one */
        pulse_buf_t list = PULSE_BUF_INIT;
        for (int i = 0; i < nsheets; i++) {
            pulse_buf_puts(&list, i ? ", \"" : "\"");
            pulse_buf_puts(&list, names[i]);
            pulse_buf_putc(&list, '"');
        }
        char sheets[512];
        snprintf(sheets, sizeof(sheets), "%s", list.data ? list.data : "");
        pulse_buf_free(&list);
        return fail(L, "unknown_sheet", 0, "no sheet named \"%s\" in the workbook; its sheets: %s", o->sheet, sheets);
    }

    pv->is_xlsx = 1;
    pv->header_pending = o->header != 0; /* -1 (not said): the first row names the columns */
    int rc = pulse_xlsx_read(x, o->sheet, xlsx_row, pv, err, sizeof(err));
    if (rc < 0)
        return fail(L, "malformed", 0, "%s", err);
    if (pv->ncols == 0)
        return fail(L, "empty_file", 0, "the sheet has no rows");

    lua_pushliteral(L, "xlsx");
    lua_setfield(L, 4, "format");
    lua_createtable(L, 0, 1);
    lua_pushboolean(L, o->header != 0);
    lua_setfield(L, -2, "header");
    lua_setfield(L, 4, "dialect");
    push_columns(L, pv, o->decimal_comma > 0);
    lua_setfield(L, 4, "columns");
    return 0;
}

/* The preview of data[0..len) (a whole file, or a CSV file's first bytes), or of the workbook at
 * xlsx_path. Stack: 1 = the data or path, 2 = opts. Returns the number of results. */
static int run_preview(lua_State *L, const char *data, size_t len, const char *xlsx_path)
{
    opts_t o;
    const char *bad = read_opts(L, &o);
    if (bad != NULL)
        return fail(L, "bad_option", 0, "%s", bad);
    if (len == 0)
        return fail(L, "empty_file", 0, "empty file");

    job_t *job = job_new(L); /* 3 */
    lua_newtable(L);         /* 4: result */
    new_array(L, 0);         /* 5: rows */
    new_array(L, 0);         /* 6: errors */
    lua_newtable(L);         /* 7: column names */
    preview_t pv = {0};
    pv.L = L;
    pv.job = job;
    pv.rows_idx = 5;
    pv.errors_idx = 6;
    pv.names_idx = 7;
    pv.max_rows = (size_t)o.max_rows;

    static const char zip_magic[] = "PK\3\4", ole_magic[] = "\xD0\xCF\x11\xE0";
    int nret;
    if (len >= 4 && memcmp(data, ole_magic, 4) == 0)
        nret = fail(L, "not_tabular", 0, "a legacy .xls workbook: save it as .xlsx or CSV");
    else if ((o.filename && (ends_with_ci(o.filename, ".xlsx") || ends_with_ci(o.filename, ".xlsm"))) ||
             (len >= 4 && memcmp(data, zip_magic, 4) == 0))
        nret = xlsx_path ? preview_xlsx_path(L, xlsx_path, &o, &pv) : preview_xlsx(L, data, len, &o, &pv);
    else
        nret = preview_csv(L, data, len, &o, &pv);
    job_release(job);
    if (nret > 0)
        return nret;

    lua_pushvalue(L, 5);
    lua_setfield(L, 4, "rows");
    lua_pushinteger(L, (lua_Integer)pv.data_rows);
    lua_setfield(L, 4, "rows_sampled");
    lua_pushvalue(L, 6);
    lua_setfield(L, 4, "errors");
    lua_pushinteger(L, (lua_Integer)pv.nerrors);
    lua_setfield(L, 4, "error_count");
    lua_pushvalue(L, 4);
    return 1;
}

/* ingest.preview(data [, opts]) -> preview | nil, err */
static int l_ingest_preview(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    return run_preview(L, data, len, NULL);
}

/* Reads up to cap bytes from the start of fd into a Lua string (pushed). Returns its length. */
static size_t push_file_prefix(lua_State *L, int fd, size_t cap)
{
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, cap);
    size_t got = 0;
    while (got < cap) {
        ssize_t n = pread(fd, p + got, cap - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    luaL_pushresultsize(&b, got);
    return got;
}

/* ingest.preview_file(path [, opts]) -> preview | nil, err
 * The same as ingest.preview for a file on disk: a workbook is read from its path, a CSV file from
 * its first opts.sample_bytes (default 4 MiB; cut after the last complete line when the file is
 * longer). The result also says file_bytes and sample_bytes. */
static int l_ingest_preview_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lua_Integer sample = 4 << 20;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "sample_bytes");
        sample = luaL_optinteger(L, -1, sample);
        lua_pop(L, 1);
        luaL_argcheck(L, sample >= 1024 && sample <= (64 << 20), 2, "sample_bytes must be from 1 KiB to 64 MiB");
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(L, "unreadable", 0, "cannot open the file: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail(L, "unreadable", 0, "not a regular file");
    }
    size_t len = push_file_prefix(L, fd, (size_t)sample); /* 3 */
    close(fd);
    const char *data = lua_tostring(L, 3);
    int zip = len >= 4 && memcmp(data, "PK\3\4", 4) == 0;
    if (!zip && (uint64_t)st.st_size > len && len > 0) { /* a CSV prefix: drop the last, cut, line */
        size_t cut = len;
        while (cut > 0 && data[cut - 1] != '\n')
            cut--;
        if (cut > 0)
            len = cut;
    }
    lua_replace(L, 1); /* anchors the data in slot 1 */
    int nret = run_preview(L, data, len, path);
    if (nret == 1) {
        lua_pushinteger(L, (lua_Integer)st.st_size);
        lua_setfield(L, -2, "file_bytes");
        lua_pushinteger(L, (lua_Integer)len);
        lua_setfield(L, -2, "sample_bytes");
    }
    return nret;
}

/* ---------------------------------------------------------------------------------------------
 * multipart */

typedef struct mp_t {
    lua_State *L;
    int fields_idx, files_idx;
    size_t nfiles;
    size_t bad_part; /* 1-based part without a name, 0 if none */
} mp_t;

static int mp_part(void *ud, size_t index, const pulse_multipart_part_t *part)
{
    mp_t *m = ud;
    lua_State *L = m->L;
    if (part->name[0] == '\0') {
        m->bad_part = index + 1;
        return 1;
    }
    if (part->filename == NULL) {
        push_text(L, part->name, strlen(part->name)); /* k */
        lua_pushlstring(L, part->data, part->len);    /* k, v */
        lua_rawset(L, m->fields_idx);
        return 0;
    }
    lua_createtable(L, 0, 4); /* f */
    push_text(L, part->name, strlen(part->name));
    lua_setfield(L, -2, "field");
    push_text(L, part->filename, strlen(part->filename));
    lua_setfield(L, -2, "filename");
    if (part->content_type[0] != '\0')
        push_text(L, part->content_type, strlen(part->content_type));
    else
        lua_pushliteral(L, "application/octet-stream");
    lua_setfield(L, -2, "content_type");
    lua_pushlstring(L, part->data, part->len);
    lua_setfield(L, -2, "data");
    lua_rawseti(L, m->files_idx, (lua_Integer)++m->nfiles);
    return 0;
}

/* ingest.multipart(body, content_type) -> {fields =, files =} | nil, err */
static int l_ingest_multipart(lua_State *L)
{
    size_t len, ctlen = 0;
    const char *body = luaL_checklstring(L, 1, &len);
    const char *ct = luaL_optlstring(L, 2, NULL, &ctlen);
    lua_settop(L, 2);
    char boundary[PULSE_MULTIPART_MAX_BOUNDARY + 1], err[256];
    if (ct == NULL)
        return fail(L, "bad_multipart", 0, "missing content type");
    int blen = pulse_multipart_boundary(ct, ctlen, boundary, sizeof(boundary), err, sizeof(err));
    if (blen < 0)
        return fail(L, "bad_multipart", 0, "%s", err);
    lua_createtable(L, 0, 2); /* 3: result */
    lua_newtable(L);          /* 4: fields */
    new_array(L, 0);          /* 5: files */
    mp_t m = {L, 4, 5, 0, 0};
    int rc = pulse_multipart_parse(body, len, boundary, (size_t)blen, mp_part, &m, err, sizeof(err));
    if (rc < 0)
        return fail(L, "bad_multipart", 0, "%s", err);
    if (m.bad_part)
        return fail(L, "bad_multipart", 0, "part %zu has no Content-Disposition name", m.bad_part);
    lua_pushvalue(L, 4);
    lua_setfield(L, 3, "fields");
    lua_pushvalue(L, 5);
    lua_setfield(L, 3, "files");
    lua_pushvalue(L, 3);
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * uploads to disk */

/* Creates the folders leading to path (0700), like mkdir -p of its dirname. */
static void make_parents(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(dir, 0700); /* EEXIST and the like: the open below says what is wrong */
        *p = '/';
    }
}

/* Writes data[0..len) to a new file at path (0600, must not exist; its folder is created).
 * Returns 0, or -1 with errno kept and the half-written file removed. */
static int write_new_file(const char *path, const char *data, size_t len)
{
    make_parents(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (write_all(fd, data, len) != 0) {
        int e = errno;
        close(fd);
        unlink(path);
        errno = e;
        return -1;
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(path);
        errno = e;
        return -1;
    }
    return 0;
}

typedef struct upload_t {
    lua_State *L;
    int fields_idx;
    const pulse_multipart_part_t *file; /* the part named "file" */
    pulse_multipart_part_t file_copy;
    char filename[256], content_type[128];
    size_t bad_part;
    int two_files;
} upload_t;

static int upload_part(void *ud, size_t index, const pulse_multipart_part_t *part)
{
    upload_t *u = ud;
    if (part->name[0] == '\0') {
        u->bad_part = index + 1;
        return 1;
    }
    if (strcmp(part->name, "file") == 0) {
        if (u->file != NULL) {
            u->two_files = 1;
            return 1;
        }
        u->file_copy = *part;
        u->file = &u->file_copy;
        snprintf(u->filename, sizeof(u->filename), "%s", part->filename ? part->filename : "");
        snprintf(u->content_type, sizeof(u->content_type), "%s", part->content_type);
        return 0;
    }
    if (part->len > 64 * 1024) /* an option, not a second file */
        return 0;
    push_text(u->L, part->name, strlen(part->name));
    lua_pushlstring(u->L, part->data, part->len);
    lua_rawset(u->L, u->fields_idx);
    return 0;
}

/* ingest.save_upload(path) -> {size =, filename =, content_type =, fields = {...}} | nil, err
 * Writes the current request's file to a new file at path without copying it into Lua: the
 * multipart part named "file" (the other small parts come back as fields), or the whole raw body.
 * err.code: no_file, bad_multipart, io. Only inside a request. */
static int l_ingest_save_upload(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    pulse_request_t *r = pulse_request_current(L);
    if (r == NULL || r->req == NULL)
        return luaL_error(L, "ingest.save_upload: only inside a request");
    h2o_req_t *req = r->req;
    lua_settop(L, 1);
    lua_createtable(L, 0, 4); /* 2: result */
    lua_newtable(L);          /* 3: fields */
    const char *body = req->entity.base;
    size_t len = body ? req->entity.len : 0;
    ssize_t ct = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    const char *ctv = ct >= 0 ? req->headers.entries[ct].value.base : "";
    size_t ctlen = ct >= 0 ? req->headers.entries[ct].value.len : 0;
    const char *data = body;
    size_t dlen = len;
    if (ctlen >= 10 && strncasecmp(ctv, "multipart/", 10) == 0) {
        char boundary[PULSE_MULTIPART_MAX_BOUNDARY + 1], err[256];
        int blen = pulse_multipart_boundary(ctv, ctlen, boundary, sizeof(boundary), err, sizeof(err));
        if (blen < 0)
            return fail(L, "bad_multipart", 0, "%s", err);
        upload_t u = {0};
        u.L = L;
        u.fields_idx = 3;
        if (len == 0 || pulse_multipart_parse(body, len, boundary, (size_t)blen, upload_part, &u, err, sizeof(err)) < 0)
            return fail(L, "bad_multipart", 0, "%s", len == 0 ? "empty body" : err);
        if (u.bad_part)
            return fail(L, "bad_multipart", 0, "part %zu has no Content-Disposition name", u.bad_part);
        if (u.two_files)
            return fail(L, "bad_multipart", 0, "more than one part is named 'file': send one file per upload");
        if (u.file == NULL)
            return fail(L, "no_file", 0, "send the file in the multipart field 'file'");
        data = u.file->data;
        dlen = u.file->len;
        if (u.filename[0] != '\0') {
            push_text(L, u.filename, strlen(u.filename));
            lua_setfield(L, 2, "filename");
        }
        if (u.content_type[0] != '\0') {
            push_text(L, u.content_type, strlen(u.content_type));
            lua_setfield(L, 2, "content_type");
        }
    }
    if (write_new_file(path, data ? data : "", dlen) != 0)
        return fail(L, "io", 0, "cannot store the upload: %s", strerror(errno));
    lua_pushinteger(L, (lua_Integer)dlen);
    lua_setfield(L, 2, "size");
    lua_pushvalue(L, 3);
    lua_setfield(L, 2, "fields");
    lua_pushvalue(L, 2);
    return 1;
}

int pulse_script_open_ingest(lua_State *L)
{
    /* keep json.array_mt at hand for result lists */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "json");
    lua_getfield(L, -1, "array_mt");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ARRAY_MT_KEY);
    lua_pop(L, 2);

    if (luaL_newmetatable(L, JOB_MT)) {
        lua_pushcfunction(L, l_job_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_job_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);

    static const luaL_Reg fns[] = {{"preview", l_ingest_preview},
                                   {"preview_file", l_ingest_preview_file},
                                   {"multipart", l_ingest_multipart},
                                   {"save_upload", l_ingest_save_upload},
                                   {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
