/* Budgeted Lua patterns for the sandbox (see sandbox_pattern.h). A backtracking matcher over the
 * pattern language of the Lua 5.4 manual (§6.4.1); every step is charged to the running call. */
#include "script/sandbox_pattern.h"
#include "script/sandbox.h"

#include <ctype.h>
#include <lauxlib.h>
#include <string.h>

#define MAX_CAPTURES 32
#define MAX_DEPTH 200     /* recursion of the matcher: "pattern too complex" beyond */
#define CHARGE_EVERY 1024 /* steps between two budget checks */
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define SPECIALS "^$*+?.([%-"

typedef struct {
    lua_State *L;
    const char *src, *src_end;
    const char *pat_end;
    int depth;
    int level;
    uint64_t steps; /* not yet charged */
    struct {
        const char *init;
        ptrdiff_t len;
    } cap[MAX_CAPTURES];
} matcher_t;

static void charge(matcher_t *m, uint64_t n)
{
    m->steps += n;
    if (m->steps >= CHARGE_EVERY) {
        uint64_t s = m->steps;
        m->steps = 0;
        pulse_sandbox_charge(m->L, s);
    }
}

static void flush(matcher_t *m)
{
    uint64_t s = m->steps;
    m->steps = 0;
    if (s > 0)
        pulse_sandbox_charge(m->L, s);
}

static void reset(matcher_t *m)
{
    m->level = 0;
    m->depth = 0;
}

static int class_has(int c, int cl)
{
    int r;
    switch (tolower(cl)) {
    case 'a':
        r = isalpha(c);
        break;
    case 'c':
        r = iscntrl(c);
        break;
    case 'd':
        r = isdigit(c);
        break;
    case 'g':
        r = isgraph(c);
        break;
    case 'l':
        r = islower(c);
        break;
    case 'p':
        r = ispunct(c);
        break;
    case 's':
        r = isspace(c);
        break;
    case 'u':
        r = isupper(c);
        break;
    case 'w':
        r = isalnum(c);
        break;
    case 'x':
        r = isxdigit(c);
        break;
    default:
        return cl == c; /* an escaped literal: %. %% %[ ... */
    }
    r = r != 0;
    return isupper(cl) ? !r : r;
}

/* The end of the single-character class starting at p (one past it). */
static const char *class_end(matcher_t *m, const char *p)
{
    char c = *p++;
    if (c == '%') {
        if (p >= m->pat_end)
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        if (*p == '^')
            p++;
        /* the first character of a set is itself even when it is ']' */
        do {
            if (p >= m->pat_end)
                luaL_error(m->L, "malformed pattern (missing ']')");
            c = *p++;
            if (c == '%' && p < m->pat_end)
                p++;
        } while (p >= m->pat_end || *p != ']');
        return p + 1;
    }
    return p;
}

/* c against the set [ ... ] from p ('[') to last (its ']'). */
static int set_has(int c, const char *p, const char *last)
{
    int in = 1;
    if (p[1] == '^') {
        in = 0;
        p++;
    }
    while (++p < last) {
        if (*p == '%') {
            p++;
            if (class_has(c, (unsigned char)*p))
                return in;
        } else if (p[1] == '-' && p + 2 < last) {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return in;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return in;
        }
    }
    return !in;
}

static int single(matcher_t *m, const char *s, const char *p, const char *ep)
{
    if (s >= m->src_end)
        return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.':
        return 1;
    case '%':
        return class_has(c, (unsigned char)p[1]);
    case '[':
        return set_has(c, p, ep - 1);
    default:
        return (unsigned char)*p == c;
    }
}

static const char *match(matcher_t *m, const char *s, const char *p);

static const char *max_expand(matcher_t *m, const char *s, const char *p, const char *ep)
{
    ptrdiff_t i = 0;
    while (single(m, s + i, p, ep))
        i++;
    charge(m, (uint64_t)i);
    for (; i >= 0; i--) {
        const char *r = match(m, s + i, ep + 1);
        if (r != NULL)
            return r;
    }
    return NULL;
}

static const char *min_expand(matcher_t *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *r = match(m, s, ep + 1);
        if (r != NULL)
            return r;
        if (!single(m, s, p, ep))
            return NULL;
        s++;
    }
}

static const char *open_capture(matcher_t *m, const char *s, const char *p, ptrdiff_t what)
{
    if (m->level >= MAX_CAPTURES)
        luaL_error(m->L, "too many captures");
    m->cap[m->level].init = s;
    m->cap[m->level].len = what;
    m->level++;
    const char *r = match(m, s, p);
    if (r == NULL)
        m->level--;
    return r;
}

static const char *close_capture(matcher_t *m, const char *s, const char *p)
{
    int l = m->level - 1;
    while (l >= 0 && m->cap[l].len != CAP_UNFINISHED)
        l--;
    if (l < 0)
        luaL_error(m->L, "invalid pattern capture");
    m->cap[l].len = s - m->cap[l].init;
    const char *r = match(m, s, p);
    if (r == NULL)
        m->cap[l].len = CAP_UNFINISHED;
    return r;
}

static int capture_index(matcher_t *m, int digit)
{
    int l = digit - '1';
    if (l < 0 || l >= m->level || m->cap[l].len == CAP_UNFINISHED)
        luaL_error(m->L, "invalid capture index %%%d", l + 1);
    return l;
}

static const char *match(matcher_t *m, const char *s, const char *p)
{
    if (++m->depth > MAX_DEPTH)
        luaL_error(m->L, "pattern too complex");
    charge(m, 1);
    for (;;) {
        if (p == m->pat_end)
            break;
        if (*p == '(') {
            s = p[1] == ')' ? open_capture(m, s, p + 2, CAP_POSITION) : open_capture(m, s, p + 1, CAP_UNFINISHED);
            break;
        }
        if (*p == ')') {
            s = close_capture(m, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == m->pat_end) {
            s = s == m->src_end ? s : NULL;
            break;
        }
        if (*p == '%' && p + 1 < m->pat_end && p[1] == 'b') { /* %bxy */
            if (p + 3 >= m->pat_end)
                luaL_error(m->L, "missing arguments to '%%b'");
            if (s >= m->src_end || *s != p[2]) {
                s = NULL;
                break;
            }
            int open = 1;
            const char *t = s;
            while (++t < m->src_end) {
                if (*t == p[3]) {
                    if (--open == 0)
                        break;
                } else if (*t == p[2]) {
                    open++;
                }
            }
            charge(m, (uint64_t)(t - s));
            if (t >= m->src_end) {
                s = NULL;
                break;
            }
            s = t + 1;
            p += 4;
            continue;
        }
        if (*p == '%' && p + 1 < m->pat_end && p[1] == 'f') { /* %f[set]: a frontier */
            p += 2;
            if (p >= m->pat_end || *p != '[')
                luaL_error(m->L, "missing '[' after '%%f' in pattern");
            const char *ep = class_end(m, p);
            int prev = s == m->src ? '\0' : (unsigned char)s[-1];
            int cur = s < m->src_end ? (unsigned char)*s : '\0';
            if (!set_has(prev, p, ep - 1) && set_has(cur, p, ep - 1)) {
                p = ep;
                continue;
            }
            s = NULL;
            break;
        }
        if (*p == '%' && p + 1 < m->pat_end && isdigit((unsigned char)p[1])) { /* %1-%9 */
            int l = capture_index(m, (unsigned char)p[1]);
            size_t len = (size_t)m->cap[l].len;
            if ((size_t)(m->src_end - s) >= len && memcmp(m->cap[l].init, s, len) == 0) {
                charge(m, len);
                s += len;
                p += 2;
                continue;
            }
            s = NULL;
            break;
        }
        const char *ep = class_end(m, p);
        char q = ep < m->pat_end ? *ep : '\0';
        if (!single(m, s, p, ep)) {
            if (q == '*' || q == '?' || q == '-') { /* zero repetitions are fine */
                p = ep + 1;
                continue;
            }
            s = NULL;
            break;
        }
        if (q == '?') {
            const char *r = match(m, s + 1, ep + 1);
            if (r != NULL) {
                s = r;
                break;
            }
            p = ep + 1;
            continue;
        }
        if (q == '+') {
            s = max_expand(m, s + 1, p, ep);
            break;
        }
        if (q == '*') {
            s = max_expand(m, s, p, ep);
            break;
        }
        if (q == '-') {
            s = min_expand(m, s, p, ep);
            break;
        }
        s++;
        p = ep;
    }
    m->depth--;
    return s;
}

static void push_capture(matcher_t *m, int i, const char *s, const char *e)
{
    if (i >= m->level) {
        if (i != 0)
            luaL_error(m->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(m->L, s, (size_t)(e - s)); /* no captures: the whole match */
        return;
    }
    ptrdiff_t len = m->cap[i].len;
    if (len == CAP_UNFINISHED)
        luaL_error(m->L, "unfinished capture");
    if (len == CAP_POSITION)
        lua_pushinteger(m->L, (lua_Integer)(m->cap[i].init - m->src) + 1);
    else
        lua_pushlstring(m->L, m->cap[i].init, (size_t)len);
}

/* s NULL: captures only (find's extra results). */
static int push_captures(matcher_t *m, const char *s, const char *e)
{
    int n = (m->level == 0 && s != NULL) ? 1 : m->level;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(m, i, s, e);
    return n;
}

static void init_matcher(matcher_t *m, lua_State *L, const char *s, size_t ls, const char *p, size_t lp)
{
    m->L = L;
    m->src = s;
    m->src_end = s + ls;
    m->pat_end = p + lp;
    m->steps = 0;
    reset(m);
}

static size_t start_index(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 1;
    return len + (size_t)pos + 1;
}

/* Lua strings may hold NUL bytes: look for specials in every NUL-separated part. */
static int no_specials(const char *p, size_t lp)
{
    size_t at = 0;
    do {
        if (strpbrk(p + at, SPECIALS) != NULL)
            return 0;
        at += strlen(p + at) + 1;
    } while (at <= lp);
    return 1;
}

static int find_or_match(lua_State *L, int find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_index(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    matcher_t m;
    init_matcher(&m, L, s, ls, p, lp);
    if (find && (lua_toboolean(L, 4) || no_specials(p, lp))) {
        if (lp == 0) {
            lua_pushinteger(L, (lua_Integer)init + 1);
            lua_pushinteger(L, (lua_Integer)init);
            return 2;
        }
        /* memchr for the first byte, then compare: charged by candidate, so a subject of 'a's
         * searched for "aaa...b" counts its quadratic work */
        for (const char *t = s + init; lp <= (size_t)(s + ls - t);) {
            const char *hit = memchr(t, *p, (size_t)(s + ls - t) - lp + 1);
            if (hit == NULL)
                break;
            charge(&m, lp);
            if (memcmp(hit + 1, p + 1, lp - 1) == 0) {
                flush(&m);
                lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
                lua_pushinteger(L, (lua_Integer)(hit - s) + (lua_Integer)lp);
                return 2;
            }
            t = hit + 1;
        }
        flush(&m);
        luaL_pushfail(L);
        return 1;
    }
    int anchor = lp > 0 && *p == '^';
    if (anchor)
        p++;
    const char *s1 = s + init;
    do {
        reset(&m);
        const char *e = match(&m, s1, p);
        if (e != NULL) {
            flush(&m);
            if (find) {
                lua_pushinteger(L, (lua_Integer)(s1 - s) + 1);
                lua_pushinteger(L, (lua_Integer)(e - s));
                return push_captures(&m, NULL, NULL) + 2;
            }
            return push_captures(&m, s1, e);
        }
    } while (s1++ < m.src_end && !anchor);
    flush(&m);
    luaL_pushfail(L);
    return 1;
}

static int l_pattern_find(lua_State *L)
{
    return find_or_match(L, 1);
}

static int l_pattern_match(lua_State *L)
{
    return find_or_match(L, 0);
}

typedef struct {
    const char *src, *p, *lastmatch;
    size_t ls, lp;
    size_t pos;
} gmatch_state_t;

static int gmatch_next(lua_State *L)
{
    gmatch_state_t *g = lua_touserdata(L, lua_upvalueindex(3));
    matcher_t m;
    init_matcher(&m, L, g->src, g->ls, g->p, g->lp);
    for (const char *s = g->src + g->pos; s <= m.src_end; s++) {
        reset(&m);
        const char *e = match(&m, s, g->p);
        if (e != NULL && e != g->lastmatch) {
            flush(&m);
            g->pos = (size_t)(e - g->src);
            g->lastmatch = e;
            return push_captures(&m, s, e);
        }
    }
    flush(&m);
    g->pos = g->ls + 1;
    return 0;
}

static int l_pattern_gmatch(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_index(luaL_optinteger(L, 3, 1), ls) - 1;
    lua_settop(L, 2); /* the subject and the pattern stay alive as upvalues */
    gmatch_state_t *g = lua_newuserdatauv(L, sizeof(*g), 0);
    g->src = s;
    g->ls = ls;
    g->p = p;
    g->lp = lp;
    g->pos = init > ls ? ls + 1 : init;
    g->lastmatch = NULL;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

static void add_replacement(matcher_t *m, luaL_Buffer *b, const char *s, const char *e, int tr)
{
    lua_State *L = m->L;
    if (tr == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(m, s, e);
        lua_call(L, n, 1);
    } else if (tr == LUA_TTABLE) {
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    } else { /* a string with %0-%9 and %% */
        size_t l;
        const char *r = lua_tolstring(L, 3, &l);
        const char *end = r + l;
        for (; r < end; r++) {
            if (*r != '%') {
                luaL_addchar(b, *r);
                continue;
            }
            r++;
            if (r < end && *r == '%') {
                luaL_addchar(b, '%');
            } else if (r < end && isdigit((unsigned char)*r)) {
                if (*r == '0')
                    lua_pushlstring(L, s, (size_t)(e - s));
                else
                    push_capture(m, *r - '1', s, e);
                luaL_tolstring(L, -1, NULL);
                lua_remove(L, -2);
                luaL_addvalue(b);
            } else {
                luaL_error(L, "invalid use of '%%' in replacement string");
            }
        }
        return;
    }
    if (!lua_toboolean(L, -1)) { /* nil or false: keep the original text */
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    } else {
        luaL_addvalue(b);
    }
}

static int l_pattern_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *src = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int tr = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
                     "string/function/table");
    int anchor = lp > 0 && *p == '^';
    matcher_t m;
    init_matcher(&m, L, src, ls, p, lp);
    if (anchor)
        p++;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    const char *s = src, *lastmatch = NULL;
    lua_Integer n = 0;
    while (n < max_n) {
        reset(&m);
        const char *e = match(&m, s, p);
        if (e != NULL && e != lastmatch) {
            n++;
            add_replacement(&m, &b, s, e, tr);
            s = lastmatch = e;
        } else if (s < m.src_end) {
            luaL_addchar(&b, *s++);
        } else {
            break;
        }
        if (anchor)
            break;
    }
    flush(&m);
    luaL_addlstring(&b, s, (size_t)(m.src_end - s));
    luaL_pushresult(&b);
    lua_pushinteger(L, n);
    return 2;
}

void pulse_sandbox_pattern_register(lua_State *L, int idx)
{
    static const luaL_Reg funcs[] = {
        {"find", l_pattern_find}, {"match", l_pattern_match}, {"gmatch", l_pattern_gmatch}, {"gsub", l_pattern_gsub}, {NULL, NULL}};
    idx = lua_absindex(L, idx);
    for (const luaL_Reg *f = funcs; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, idx, f->name);
    }
}
