/* Streaming .xlsx reader (see xlsx.h). Every part is read through zip_fread in 64 KiB chunks and
 * fed to an expat parser with namespace processing, so element names are compared by local name
 * whatever prefix the producer chose ("x:row" and "row" alike). */
#include "ingest/xlsx.h"
#include "core/buf.h"

#include <expat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#define CHUNK (64 * 1024)
#define NS_SEP '|'
#define MAX_COLS 16384 /* XFD, Excel's last column */

enum { FMT_NONE, FMT_DATE, FMT_DATETIME, FMT_TIME };

typedef struct sheet_t {
    char *name;
    char *rid;
    char *path;
} sheet_t;

typedef struct rel_t {
    char *id;
    char *type;
    char *target;
} rel_t;

typedef struct numfmt_t {
    unsigned id;
    int kind;
} numfmt_t;

struct pulse_xlsx_t {
    zip_t *zip;
    char *workbook_path;
    int date1904;
    sheet_t *sheets;
    size_t nsheets;
    const char **names;
    char *sst_path;
    char *styles_path;
    int loaded;        /* shared strings and styles */
    pulse_buf_t sst;   /* all shared strings, each NUL-terminated, back to back */
    uint32_t *sst_off; /* start of each string in sst */
    size_t nsst, sst_cap;
    uint8_t *xf_kind; /* FMT_* of each cellXfs entry (a cell's s attribute) */
    size_t nxf, xf_cap;
};

/* ---- small helpers ---- */

static void push(void **arr, size_t *n, size_t *cap, size_t elsize)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *arr = pulse_xrealloc(*arr, *cap * elsize);
    }
    (*n)++;
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int ieq_prefix(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++)
        if (lower((unsigned char)*s) != *prefix)
            return 0;
    return 1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes OOXML's _xHHHH_ escapes (used for control characters) in place; the result is never
 * longer than the input. Returns the new length. */
static size_t ooxml_unescape(char *s, size_t n)
{
    if (!memchr(s, '_', n))
        return n;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '_' && i + 7 <= n && s[i + 1] == 'x' && s[i + 6] == '_') {
            int h0 = hexval(s[i + 2]), h1 = hexval(s[i + 3]), h2 = hexval(s[i + 4]), h3 = hexval(s[i + 5]);
            if (h0 >= 0 && h1 >= 0 && h2 >= 0 && h3 >= 0) {
                unsigned cp = (unsigned)(h0 << 12 | h1 << 8 | h2 << 4 | h3);
                if (cp < 0x80) {
                    s[o++] = (char)cp;
                } else if (cp < 0x800) {
                    s[o++] = (char)(0xC0 | cp >> 6);
                    s[o++] = (char)(0x80 | (cp & 0x3F));
                } else {
                    s[o++] = (char)(0xE0 | cp >> 12);
                    s[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
                    s[o++] = (char)(0x80 | (cp & 0x3F));
                }
                i += 7;
                continue;
            }
        }
        s[o++] = s[i++];
    }
    return o;
}

/* Resolves a relationship target against the part that holds the relationship: "worksheets/a.xml"
 * from "xl/workbook.xml" is "xl/worksheets/a.xml"; "/xl/a.xml" is absolute; ".." segments pop. */
static char *resolve_target(const char *source_part, const char *target)
{
    pulse_buf_t b = PULSE_BUF_INIT;
    if (*target == '/') {
        target++;
    } else {
        const char *slash = strrchr(source_part, '/');
        if (slash)
            pulse_buf_append(&b, source_part, (size_t)(slash - source_part) + 1);
    }
    for (const char *p = target; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (b.len > 0)
                b.len--; /* the trailing '/' */
            while (b.len > 0 && b.data[b.len - 1] != '/')
                b.len--;
        } else if (!(n == 1 && p[0] == '.') && n > 0) {
            pulse_buf_append(&b, p, n);
            if (e)
                pulse_buf_putc(&b, '/');
        }
        p += n + (e ? 1 : 0);
    }
    pulse_buf_putc(&b, '\0');
    return b.data;
}

/* ---- dates ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date, and back (H. Hinnant's algorithms). */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static void civil_from_days(long long z, long long *y, unsigned *m, unsigned *d)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (long long)yoe + era * 400 + (*m <= 2);
}

int pulse_xlsx_serial_to_iso(double serial, int date1904, int with_time, int time_only, char *out, size_t outlen)
{
    if (!(serial >= 0) || serial > 3e6)
        return -1;
    long long secs = (long long)(serial * 86400.0 + 0.5);
    long long days = secs / 86400;
    unsigned sod = (unsigned)(secs % 86400);
    unsigned hh = sod / 3600, mi = sod / 60 % 60, ss = sod % 60;
    if (time_only)
        return snprintf(out, outlen, "%02u:%02u:%02u", hh, mi, ss);
    long long z;
    if (date1904)
        z = days_from_civil(1904, 1, 1) + days;
    else if (days >= 60) /* Excel counts a 1900-02-29 that never was: 60 and 61 both land on March 1st - 1 */
        z = days_from_civil(1899, 12, 30) + days;
    else /* serial 1 is 1900-01-01; 0 is Excel's "1900-01-00" */
        z = days_from_civil(1899, 12, 31) + days;
    long long y;
    unsigned m, d;
    civil_from_days(z, &y, &m, &d);
    if (y > 9999)
        return -1;
    if (with_time)
        return snprintf(out, outlen, "%04lld-%02u-%02uT%02u:%02u:%02u", y, m, d, hh, mi, ss);
    return snprintf(out, outlen, "%04lld-%02u-%02u", y, m, d);
}

/* Classifies a number format code by the tokens of its first section, outside quoted text,
 * escapes and [brackets] (colours, locales, conditions). Elapsed-time formats ([h]:mm) are
 * durations, not dates: they stay numbers. */
static int fmt_kind(const char *f)
{
    int date = 0, time = 0, month_or_minute = 0;
    for (const char *p = f; *p && *p != ';'; p++) {
        if (*p == '"') {
            p = strchr(p + 1, '"');
            if (!p)
                break;
        } else if (*p == '\\' || *p == '_' || *p == '*') {
            if (p[1])
                p++;
        } else if (*p == '[') {
            const char *e = strchr(p, ']');
            if (!e)
                break;
            if (e > p + 1 && strspn(p + 1, "hHmMsS") == (size_t)(e - p - 1))
                return FMT_NONE;
            p = e;
        } else if (ieq_prefix(p, "am/pm")) {
            time = 1;
            p += 4;
        } else if (ieq_prefix(p, "a/p")) {
            time = 1;
            p += 2;
        } else {
            switch (lower((unsigned char)*p)) {
            case 'y':
            case 'd':
                date = 1;
                break;
            case 'h':
            case 's':
                time = 1;
                break;
            case 'm':
                month_or_minute = 1;
                break;
            }
        }
    }
    if (month_or_minute && !time)
        date = 1;
    return date && time ? FMT_DATETIME : date ? FMT_DATE : time ? FMT_TIME : FMT_NONE;
}

static int builtin_kind(unsigned id)
{
    if (id >= 14 && id <= 17)
        return FMT_DATE;
    if ((id >= 18 && id <= 21) || id == 45 || id == 47)
        return FMT_TIME;
    if (id == 22)
        return FMT_DATETIME;
    return FMT_NONE; /* 46 is [h]:mm:ss, a duration */
}

/* ---- SAX plumbing ---- */

typedef struct sax_t {
    XML_Parser p;
    int fail;       /* a handler found an error, described in msg */
    int stopped;    /* the row callback asked to stop */
    int stop_value; /* what it returned */
    char msg[256];
} sax_t;

static const char *local(const char *name)
{
    const char *s = strrchr(name, NS_SEP);
    return s ? s + 1 : name;
}

static const char *attr(const char **atts, const char *name)
{
    for (; *atts; atts += 2)
        if (strcmp(local(atts[0]), name) == 0)
            return atts[1];
    return NULL;
}

static uint64_t max_part_bytes = PULSE_XLSX_MAX_PART_BYTES;
static size_t max_shared_bytes = PULSE_XLSX_MAX_SHARED_BYTES;

void pulse_xlsx_set_limits(uint64_t part_bytes, size_t shared_bytes)
{
    max_part_bytes = part_bytes;
    max_shared_bytes = shared_bytes;
}

static void sax_abort(sax_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sax_abort(sax_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->msg, sizeof(s->msg), fmt, ap);
    va_end(ap);
    s->fail = 1;
    XML_StopParser(s->p, XML_FALSE);
}

static void on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid, int has_internal)
{
    sax_abort(ud, "DTDs are not allowed in .xlsx parts");
}

/* Streams one part of the archive through an expat parser. Returns 0 (parsed, or stopped by the
 * row callback), 1 if the part does not exist, -1 with a message in err. */
static int parse_part(pulse_xlsx_t *x, const char *part, sax_t *s, XML_StartElementHandler start, XML_EndElementHandler end,
                      XML_CharacterDataHandler text, char *err, size_t errlen)
{
    zip_file_t *f = zip_fopen(x->zip, part, ZIP_FL_NOCASE);
    if (!f) {
        int ze = zip_error_code_zip(zip_get_error(x->zip));
        zip_error_clear(x->zip);
        if (ze == ZIP_ER_NOENT)
            return 1;
        return pulse_fail(err, errlen, "cannot read %s: %s", part, zip_error_strerror(zip_get_error(x->zip)));
    }
    XML_Parser p = XML_ParserCreateNS(NULL, NS_SEP);
    if (!p) {
        fprintf(stderr, "pulse: out of memory creating an XML parser\n");
        abort();
    }
    s->p = p;
    XML_SetUserData(p, s);
    XML_SetElementHandler(p, start, end);
    XML_SetCharacterDataHandler(p, text);
    XML_SetStartDoctypeDeclHandler(p, on_doctype);
    int rc = 0;
    uint64_t inflated = 0;
    for (;;) {
        void *buf = XML_GetBuffer(p, CHUNK);
        if (!buf) {
            fprintf(stderr, "pulse: out of memory parsing %s\n", part);
            abort();
        }
        zip_int64_t n = zip_fread(f, buf, CHUNK);
        if (n < 0) {
            rc = pulse_fail(err, errlen, "cannot read %s: %s (corrupt archive?)", part, zip_file_strerror(f));
            break;
        }
        inflated += (uint64_t)n;
        if (inflated > max_part_bytes) { /* a few MB of zip can inflate to many GB */
            rc = pulse_fail(err, errlen, "%s is larger than %llu KiB once decompressed: split the workbook or export it as CSV",
                            part, (unsigned long long)(max_part_bytes >> 10));
            break;
        }
        if (XML_ParseBuffer(p, (int)n, n == 0) != XML_STATUS_OK) {
            if (s->fail)
                rc = pulse_fail(err, errlen, "%s: %s", part, s->msg);
            else if (!s->stopped)
                rc = pulse_fail(err, errlen, "malformed XML in %s at line %lu: %s", part,
                                (unsigned long)XML_GetCurrentLineNumber(p), XML_ErrorString(XML_GetErrorCode(p)));
            break;
        }
        if (n == 0)
            break;
    }
    XML_ParserFree(p);
    zip_fclose(f);
    return rc;
}

static void no_end(void *ud, const XML_Char *name)
{
}

static void no_text(void *ud, const XML_Char *s, int len)
{
}

/* ---- relationships and workbook ---- */

typedef struct rels_sax_t {
    sax_t s;
    rel_t *rels;
    size_t n, cap;
} rels_sax_t;

static void rels_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    rels_sax_t *r = ud;
    if (r->s.fail || strcmp(local(name), "Relationship") != 0)
        return;
    const char *id = attr(atts, "Id"), *type = attr(atts, "Type"), *target = attr(atts, "Target"), *mode = attr(atts, "TargetMode");
    if (!id || !type || !target || (mode && strcmp(mode, "External") == 0))
        return;
    push((void **)&r->rels, &r->n, &r->cap, sizeof(*r->rels));
    r->rels[r->n - 1] = (rel_t){pulse_xstrdup(id), pulse_xstrdup(type), pulse_xstrdup(target)};
}

static void rels_free(rels_sax_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->rels[i].id);
        free(r->rels[i].type);
        free(r->rels[i].target);
    }
    free(r->rels);
}

static const rel_t *rel_by_type(const rels_sax_t *r, const char *suffix)
{
    for (size_t i = 0; i < r->n; i++)
        if (ends_with(r->rels[i].type, suffix))
            return &r->rels[i];
    return NULL;
}

typedef struct wb_sax_t {
    sax_t s;
    pulse_xlsx_t *x;
    size_t cap;
} wb_sax_t;

static void wb_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    wb_sax_t *w = ud;
    if (w->s.fail)
        return;
    const char *ln = local(name);
    if (strcmp(ln, "workbookPr") == 0) {
        const char *v = attr(atts, "date1904");
        w->x->date1904 = v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
    } else if (strcmp(ln, "sheet") == 0) {
        const char *sname = attr(atts, "name"), *rid = attr(atts, "id");
        if (!sname || !rid) {
            sax_abort(&w->s, "a sheet has no name or no relationship id");
            return;
        }
        push((void **)&w->x->sheets, &w->x->nsheets, &w->cap, sizeof(*w->x->sheets));
        w->x->sheets[w->x->nsheets - 1] = (sheet_t){pulse_xstrdup(sname), pulse_xstrdup(rid), NULL};
    }
}

static int load_workbook(pulse_xlsx_t *x, char *err, size_t errlen)
{
    rels_sax_t root = {0};
    int rc = parse_part(x, "_rels/.rels", &root.s, rels_start, no_end, no_text, err, errlen);
    if (rc < 0) {
        rels_free(&root);
        return -1;
    }
    const rel_t *doc = rel_by_type(&root, "/officeDocument");
    x->workbook_path = doc ? resolve_target("", doc->target) : pulse_xstrdup("xl/workbook.xml");
    rels_free(&root);

    wb_sax_t wb = {.x = x};
    rc = parse_part(x, x->workbook_path, &wb.s, wb_start, no_end, no_text, err, errlen);
    if (rc < 0)
        return -1;
    if (rc == 1)
        return pulse_fail(err, errlen, "not an .xlsx workbook: the archive has no %s", x->workbook_path);
    if (x->nsheets == 0)
        return pulse_fail(err, errlen, "the workbook has no sheets");

    /* xl/workbook.xml -> xl/_rels/workbook.xml.rels */
    const char *slash = strrchr(x->workbook_path, '/');
    size_t dir = slash ? (size_t)(slash - x->workbook_path) + 1 : 0;
    pulse_buf_t rp = PULSE_BUF_INIT;
    pulse_buf_printf(&rp, "%.*s_rels/%s.rels", (int)dir, x->workbook_path, x->workbook_path + dir);
    rels_sax_t rels = {0};
    rc = parse_part(x, rp.data, &rels.s, rels_start, no_end, no_text, err, errlen);
    if (rc == 1)
        rc = pulse_fail(err, errlen, "not an .xlsx workbook: the archive has no %s", rp.data);
    pulse_buf_free(&rp);
    if (rc < 0) {
        rels_free(&rels);
        return -1;
    }
    for (size_t i = 0; i < x->nsheets && rc == 0; i++) {
        for (size_t j = 0; j < rels.n; j++)
            if (!x->sheets[i].path && strcmp(rels.rels[j].id, x->sheets[i].rid) == 0) /* first of duplicate ids */
                x->sheets[i].path = resolve_target(x->workbook_path, rels.rels[j].target);
        if (!x->sheets[i].path)
            rc = pulse_fail(err, errlen, "sheet '%s' points to relationship %s, which the workbook does not define",
                            x->sheets[i].name, x->sheets[i].rid);
    }
    const rel_t *sst = rel_by_type(&rels, "/sharedStrings"), *styles = rel_by_type(&rels, "/styles");
    if (sst)
        x->sst_path = resolve_target(x->workbook_path, sst->target);
    if (styles)
        x->styles_path = resolve_target(x->workbook_path, styles->target);
    rels_free(&rels);
    if (rc < 0)
        return -1;
    x->names = pulse_xmalloc(x->nsheets * sizeof(*x->names));
    for (size_t i = 0; i < x->nsheets; i++)
        x->names[i] = x->sheets[i].name;
    return 0;
}

pulse_xlsx_t *pulse_xlsx_open(const char *path, char *err, size_t errlen)
{
    int ze = 0;
    zip_t *zip = zip_open(path, ZIP_RDONLY, &ze);
    if (!zip) {
        if (ze == ZIP_ER_NOZIP) {
            pulse_fail(err, errlen, "%s is not an .xlsx file (not a zip archive)", path);
        } else {
            zip_error_t e;
            zip_error_init_with_code(&e, ze);
            pulse_fail(err, errlen, "cannot open %s: %s", path, zip_error_strerror(&e));
            zip_error_fini(&e);
        }
        return NULL;
    }
    pulse_xlsx_t *x = pulse_xmalloc(sizeof(*x));
    memset(x, 0, sizeof(*x));
    x->zip = zip;
    if (load_workbook(x, err, errlen) != 0) {
        pulse_xlsx_close(x);
        return NULL;
    }
    return x;
}

int pulse_xlsx_sheets(pulse_xlsx_t *x, const char *const **names)
{
    *names = x->names;
    return (int)x->nsheets;
}

void pulse_xlsx_close(pulse_xlsx_t *x)
{
    if (!x)
        return;
    if (x->zip)
        zip_discard(x->zip); /* read-only: nothing to write back */
    for (size_t i = 0; i < x->nsheets; i++) {
        free(x->sheets[i].name);
        free(x->sheets[i].rid);
        free(x->sheets[i].path);
    }
    free(x->sheets);
    free(x->names);
    free(x->workbook_path);
    free(x->sst_path);
    free(x->styles_path);
    pulse_buf_free(&x->sst);
    free(x->sst_off);
    free(x->xf_kind);
    free(x);
}

/* ---- shared strings and styles ---- */

typedef struct sst_sax_t {
    sax_t s;
    pulse_xlsx_t *x;
    int in_si, in_t, rph; /* rPh: phonetic runs, not part of the value */
    size_t start;
} sst_sax_t;

static void sst_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    sst_sax_t *t = ud;
    if (t->s.fail)
        return;
    const char *ln = local(name);
    if (strcmp(ln, "si") == 0) {
        t->in_si = 1;
        t->start = t->x->sst.len;
    } else if (strcmp(ln, "rPh") == 0) {
        t->rph++;
    } else if (strcmp(ln, "t") == 0 && t->in_si && !t->rph) {
        t->in_t = 1;
    } else if (strcmp(ln, "sst") == 0) {
        const char *c = attr(atts, "uniqueCount");
        unsigned long n = c ? strtoul(c, NULL, 10) : 0;
        /* a hint only: never trust it for a huge allocation, never shrink below the strings read */
        if (n > 0 && n < (1ul << 22) && n + 1 > t->x->sst_cap) {
            t->x->sst_cap = n + 1;
            t->x->sst_off = pulse_xrealloc(t->x->sst_off, t->x->sst_cap * sizeof(*t->x->sst_off));
        }
    }
}

static void sst_end(void *ud, const XML_Char *name)
{
    sst_sax_t *t = ud;
    if (t->s.fail)
        return;
    const char *ln = local(name);
    if (strcmp(ln, "t") == 0) {
        t->in_t = 0;
    } else if (strcmp(ln, "rPh") == 0) {
        t->rph--;
    } else if (strcmp(ln, "si") == 0) {
        pulse_xlsx_t *x = t->x;
        size_t n = x->sst.len - t->start;
        if (n)
            x->sst.len = t->start + ooxml_unescape(x->sst.data + t->start, n);
        pulse_buf_putc(&x->sst, '\0');
        if (x->sst.len > max_shared_bytes) {
            sax_abort(&t->s, "the shared strings table is larger than %zu KiB: export the sheet as CSV instead",
                      max_shared_bytes >> 10);
            return;
        }
        push((void **)&x->sst_off, &x->nsst, &x->sst_cap, sizeof(*x->sst_off));
        x->sst_off[x->nsst - 1] = (uint32_t)t->start;
        t->in_si = 0;
    }
}

static void sst_text(void *ud, const XML_Char *s, int len)
{
    sst_sax_t *t = ud;
    if (t->in_t && !t->s.fail)
        pulse_buf_append(&t->x->sst, s, (size_t)len);
}

typedef struct styles_sax_t {
    sax_t s;
    pulse_xlsx_t *x;
    numfmt_t *fmts;
    size_t nfmts, cap;
    int in_cellxfs;
} styles_sax_t;

static void styles_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    styles_sax_t *t = ud;
    if (t->s.fail)
        return;
    const char *ln = local(name);
    if (strcmp(ln, "numFmt") == 0) {
        const char *id = attr(atts, "numFmtId"), *code = attr(atts, "formatCode");
        if (!id || !code)
            return;
        push((void **)&t->fmts, &t->nfmts, &t->cap, sizeof(*t->fmts));
        t->fmts[t->nfmts - 1] = (numfmt_t){(unsigned)strtoul(id, NULL, 10), fmt_kind(code)};
    } else if (strcmp(ln, "cellXfs") == 0) {
        t->in_cellxfs = 1;
    } else if (strcmp(ln, "xf") == 0 && t->in_cellxfs) {
        const char *v = attr(atts, "numFmtId");
        unsigned id = v ? (unsigned)strtoul(v, NULL, 10) : 0;
        int kind = builtin_kind(id);
        for (size_t i = 0; i < t->nfmts; i++) /* custom formats override built-in ids */
            if (t->fmts[i].id == id)
                kind = t->fmts[i].kind;
        pulse_xlsx_t *x = t->x;
        push((void **)&x->xf_kind, &x->nxf, &x->xf_cap, sizeof(*x->xf_kind));
        x->xf_kind[x->nxf - 1] = (uint8_t)kind;
    }
}

static void styles_end(void *ud, const XML_Char *name)
{
    styles_sax_t *t = ud;
    if (strcmp(local(name), "cellXfs") == 0)
        t->in_cellxfs = 0;
}

static int load_tables(pulse_xlsx_t *x, char *err, size_t errlen)
{
    if (x->loaded)
        return 0;
    x->sst.len = x->nsst = x->nxf = 0; /* a failed load is redone from scratch on the next read */
    if (x->sst_path) {
        sst_sax_t t = {.x = x};
        int rc = parse_part(x, x->sst_path, &t.s, sst_start, sst_end, sst_text, err, errlen);
        if (rc < 0)
            return -1;
        if (rc == 1)
            return pulse_fail(err, errlen, "the workbook names %s, which the archive lacks", x->sst_path);
    }
    if (x->styles_path) {
        styles_sax_t t = {.x = x};
        int rc = parse_part(x, x->styles_path, &t.s, styles_start, styles_end, no_text, err, errlen);
        free(t.fmts);
        if (rc < 0)
            return -1;
        if (rc == 1)
            return pulse_fail(err, errlen, "the workbook names %s, which the archive lacks", x->styles_path);
    }
    x->loaded = 1;
    return 0;
}

/* ---- worksheet rows ---- */

typedef struct col_t {
    const char *ptr; /* static text or a shared string; NULL: at off in the row's text */
    size_t off, len;
} col_t;

typedef struct ws_sax_t {
    sax_t s;
    pulse_xlsx_t *x;
    pulse_xlsx_row_cb cb;
    void *ud;
    int in_data, in_row, in_c, in_v, in_is, in_t, rph;
    uint32_t row, col;
    char type; /* 'n' number, 's' shared, 'i' inline, 'b' boolean, 'x' any other text (str, e, d) */
    unsigned style;
    size_t start;
    pulse_buf_t text; /* the current row's cell texts, each NUL-terminated */
    col_t *cols;      /* cols[0..ncols) for the current row */
    size_t ncols, cols_cap;
    pulse_xlsx_cell_t *cells;
    size_t cells_cap;
} ws_sax_t;

/* "BC12" -> 55; 0 if the reference has no column letters or exceeds XFD. */
static uint32_t ref_col(const char *r)
{
    uint32_t c = 0;
    for (; *r >= 'A' && *r <= 'Z'; r++) {
        c = c * 26 + (uint32_t)(*r - 'A' + 1);
        if (c > MAX_COLS)
            return 0;
    }
    return c;
}

static void set_col(ws_sax_t *w, uint32_t col, const char *ptr, size_t off, size_t len)
{
    if (col > w->cols_cap) {
        size_t cap = w->cols_cap ? w->cols_cap : 16;
        while (cap < col)
            cap *= 2;
        w->cols = pulse_xrealloc(w->cols, cap * sizeof(*w->cols));
        w->cols_cap = cap;
    }
    for (size_t i = w->ncols; i < col; i++)
        w->cols[i] = (col_t){"", 0, 0};
    if (col > w->ncols)
        w->ncols = col;
    w->cols[col - 1] = (col_t){ptr, off, len};
}

static void end_cell(ws_sax_t *w)
{
    size_t n = w->text.len - w->start;
    if (n == 0)
        return; /* styled but empty, or a formula without a cached value */
    pulse_buf_putc(&w->text, '\0');
    char *s = w->text.data + w->start;
    switch (w->type) {
    case 's': {
        char *end;
        unsigned long i = strtoul(s, &end, 10);
        w->text.len = w->start;
        if (end == s || i >= w->x->nsst) {
            sax_abort(&w->s, "cell in row %u refers to shared string %.*s, out of %zu", w->row, (int)(n > 20 ? 20 : n), s,
                      w->x->nsst);
            return;
        }
        size_t off = w->x->sst_off[i];
        size_t next = i + 1 < w->x->nsst ? w->x->sst_off[i + 1] : w->x->sst.len;
        if (next - off > 1)
            set_col(w, w->col, w->x->sst.data + off, 0, next - off - 1);
        return;
    }
    case 'b':
        w->text.len = w->start;
        set_col(w, w->col, s[0] == '1' || s[0] == 't' ? "TRUE" : "FALSE", 0, s[0] == '1' || s[0] == 't' ? 4 : 5);
        return;
    case 'n': {
        int kind = w->style < w->x->nxf ? w->x->xf_kind[w->style] : FMT_NONE;
        if (kind != FMT_NONE) {
            char *end, iso[32];
            double v = strtod(s, &end);
            int len = end != s && *end == '\0'
                          ? pulse_xlsx_serial_to_iso(v, w->x->date1904, kind == FMT_DATETIME, kind == FMT_TIME, iso, sizeof(iso))
                          : -1;
            if (len > 0) {
                w->text.len = w->start;
                pulse_buf_append(&w->text, iso, (size_t)len);
                pulse_buf_putc(&w->text, '\0');
                n = (size_t)len;
            }
        }
        break;
    }
    case 'i':
    case 'x': {
        size_t m = ooxml_unescape(s, n);
        if (m == 0) {
            w->text.len = w->start;
            return;
        }
        if (m != n) {
            w->text.len = w->start + m;
            pulse_buf_putc(&w->text, '\0');
            n = m;
        }
        break;
    }
    }
    set_col(w, w->col, NULL, w->start, n);
}

static void end_row(ws_sax_t *w)
{
    if (w->ncols > 0) {
        if (w->ncols > w->cells_cap) {
            w->cells_cap = w->ncols;
            w->cells = pulse_xrealloc(w->cells, w->cells_cap * sizeof(*w->cells));
        }
        for (size_t i = 0; i < w->ncols; i++) {
            const col_t *c = &w->cols[i];
            w->cells[i] = (pulse_xlsx_cell_t){c->ptr ? c->ptr : w->text.data + c->off, c->len};
        }
        int rc = w->cb(w->ud, w->row, w->cells, w->ncols);
        if (rc != 0) {
            w->s.stopped = 1;
            w->s.stop_value = rc;
            XML_StopParser(w->s.p, XML_FALSE);
        }
    }
    w->ncols = 0;
    w->text.len = 0;
}

static void ws_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    ws_sax_t *w = ud;
    if (w->s.fail || w->s.stopped)
        return;
    const char *ln = local(name);
    if (!w->in_data) {
        if (strcmp(ln, "sheetData") == 0)
            w->in_data = 1;
        return;
    }
    if (strcmp(ln, "row") == 0 && !w->in_c) { /* a <row> inside a cell is ignored, as is its end */
        const char *r = attr(atts, "r");
        unsigned long n = r ? strtoul(r, NULL, 10) : 0;
        w->row = n > 0 && n <= UINT32_MAX ? (uint32_t)n : w->row + 1;
        w->col = 0;
        w->in_row = 1;
    } else if (strcmp(ln, "c") == 0 && w->in_row) {
        const char *r = attr(atts, "r"), *t = attr(atts, "t"), *s = attr(atts, "s");
        uint32_t col = r ? ref_col(r) : w->col + 1;
        if (col == 0 || col > MAX_COLS) {
            sax_abort(&w->s, "cell reference '%.20s' in row %u is not a valid column", r ? r : "", w->row);
            return;
        }
        w->col = col;
        w->style = s ? (unsigned)strtoul(s, NULL, 10) : 0;
        w->type = !t || strcmp(t, "n") == 0     ? 'n'
                  : strcmp(t, "s") == 0         ? 's'
                  : strcmp(t, "inlineStr") == 0 ? 'i'
                  : strcmp(t, "b") == 0         ? 'b'
                                                : 'x';
        w->start = w->text.len;
        w->in_c = 1;
    } else if (w->in_c) {
        if (strcmp(ln, "v") == 0)
            w->in_v = 1;
        else if (strcmp(ln, "is") == 0)
            w->in_is = 1;
        else if (strcmp(ln, "rPh") == 0)
            w->rph++;
        else if (strcmp(ln, "t") == 0 && w->in_is && !w->rph)
            w->in_t = 1;
    }
}

static void ws_end(void *ud, const XML_Char *name)
{
    ws_sax_t *w = ud;
    if (w->s.fail || w->s.stopped || !w->in_data)
        return;
    const char *ln = local(name);
    if (strcmp(ln, "v") == 0) {
        w->in_v = 0;
    } else if (strcmp(ln, "t") == 0) {
        w->in_t = 0;
    } else if (strcmp(ln, "is") == 0) {
        w->in_is = 0;
    } else if (strcmp(ln, "rPh") == 0) {
        w->rph--;
    } else if (strcmp(ln, "c") == 0 && w->in_c) {
        end_cell(w);
        w->in_c = 0;
    } else if (strcmp(ln, "row") == 0 && w->in_row && !w->in_c) {
        end_row(w);
        w->in_row = 0;
    } else if (strcmp(ln, "sheetData") == 0) {
        w->in_data = 0;
    }
}

static void ws_text(void *ud, const XML_Char *s, int len)
{
    ws_sax_t *w = ud;
    if (w->in_c && (w->in_v || (w->in_t && !w->rph)))
        pulse_buf_append(&w->text, s, (size_t)len);
}

int pulse_xlsx_read(pulse_xlsx_t *x, const char *sheet, pulse_xlsx_row_cb cb, void *ud, char *err, size_t errlen)
{
    const sheet_t *sh = NULL;
    if (!sheet) {
        sh = &x->sheets[0];
    } else {
        for (size_t i = 0; i < x->nsheets && !sh; i++)
            if (strcmp(x->sheets[i].name, sheet) == 0)
                sh = &x->sheets[i];
        if (!sh) {
            pulse_buf_t b = PULSE_BUF_INIT;
            for (size_t i = 0; i < x->nsheets; i++)
                pulse_buf_printf(&b, "%s'%s'", i ? ", " : "", x->sheets[i].name);
            pulse_fail(err, errlen, "no sheet named '%s' in the workbook (sheets: %s)", sheet, b.data);
            pulse_buf_free(&b);
            return -1;
        }
    }
    if (load_tables(x, err, errlen) != 0)
        return -1;
    ws_sax_t w = {.x = x, .cb = cb, .ud = ud};
    int rc = parse_part(x, sh->path, &w.s, ws_start, ws_end, ws_text, err, errlen);
    if (rc == 1)
        rc = pulse_fail(err, errlen, "sheet '%s' is missing from the archive (%s)", sh->name, sh->path);
    pulse_buf_free(&w.text);
    free(w.cols);
    free(w.cells);
    if (rc < 0)
        return -1;
    return w.s.stopped ? w.s.stop_value : 0;
}
