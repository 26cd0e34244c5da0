/* The `import` Lua API: import.check_plan(plan) validates the import plan the Lua side builds (and
 * stores as jsonb) before a job is queued; pulse_import_plan_from_lua converts the same table for
 * the C loader (src/ingest/load.h), so the check and the run read a plan in exactly one way. */
#include "ingest/load.h"
#include "script/script.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* json.null is a NULL light userdata: an absent value, like nil. */
static int is_absent(lua_State *L, int idx)
{
    return lua_isnil(L, idx) || (lua_islightuserdata(L, idx) && lua_touserdata(L, idx) == NULL);
}

static int bad(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Reads t[key] (t at absolute index t) as a string into out; absent leaves out unchanged.
 * 0, 1 if absent, -1 on a wrong type (message in err). */
static int get_string(lua_State *L, int t, const char *key, const char *what, char *out, size_t cap, char *err, size_t errlen)
{
    lua_getfield(L, t, key); /* v */
    int rc = 0;
    if (is_absent(L, -1))
        rc = 1;
    else if (lua_type(L, -1) != LUA_TSTRING)
        rc = bad(err, errlen, "%s must be a string", what);
    else {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        if (n >= cap || strlen(s) != n)
            rc = bad(err, errlen, "%s is too long (at most %zu bytes)", what, cap - 1);
        else
            memcpy(out, s, n + 1);
    }
    lua_pop(L, 1);
    return rc;
}

static int get_bool(lua_State *L, int t, const char *key, const char *what, int *out, char *err, size_t errlen)
{
    lua_getfield(L, t, key);
    int rc = 0;
    if (is_absent(L, -1))
        rc = 1;
    else if (lua_type(L, -1) != LUA_TBOOLEAN)
        rc = bad(err, errlen, "%s must be a boolean", what);
    else
        *out = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return rc;
}

static int get_column(lua_State *L, int t, const char *what, int *out, char *err, size_t errlen)
{
    lua_getfield(L, t, "column");
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    lua_pop(L, 1);
    if (!isint || v < 0 || v > PULSE_IMPORT_MAX_COLUMN)
        return bad(err, errlen, "%s.column must be an integer from 0 to %d", what, PULSE_IMPORT_MAX_COLUMN);
    *out = (int)v;
    return 0;
}

static int date_format_of(const char *name, pulse_date_format_t *out)
{
    for (int k = PULSE_DATE_NONE + 1; k < PULSE_DATE_FORMAT_COUNT; k++)
        if (strcmp(pulse_date_format_name((pulse_date_format_t)k), name) == 0) {
            *out = (pulse_date_format_t)k;
            return 0;
        }
    return -1;
}

static int get_date_format(lua_State *L, int t, const char *what, pulse_date_format_t *out, char *err, size_t errlen)
{
    char name[64];
    int rc = get_string(L, t, "date_format", what, name, sizeof(name), err, errlen);
    if (rc != 0)
        return rc;
    if (date_format_of(name, out) != 0)
        return bad(err, errlen, "%s: unknown date format \"%s\"", what, name);
    return 0;
}

static int read_csv_opts(lua_State *L, int t, pulse_import_plan_t *plan, char *err, size_t errlen)
{
    char sep[16] = ",", quote[4] = "\"";
    int rc;
    if ((rc = get_string(L, t, "sep", "csv.sep", sep, sizeof(sep), err, errlen)) < 0)
        return -1;
    if (strcmp(sep, "whitespace") == 0)
        plan->dialect.sep = PULSE_CSV_SEP_WHITESPACE;
    else if (strcmp(sep, "tab") == 0)
        plan->dialect.sep = '\t';
    else if (strlen(sep) == 1 && strchr(",;\t|", sep[0]) != NULL)
        plan->dialect.sep = sep[0];
    else
        return bad(err, errlen, "csv.sep must be one of \",\" \";\" \"\\t\" \"|\" \"whitespace\"");
    if ((rc = get_string(L, t, "quote", "csv.quote", quote, sizeof(quote), err, errlen)) < 0)
        return -1;
    if (strcmp(quote, "\"") == 0)
        plan->dialect.quote = '"';
    else if (quote[0] == '\0')
        plan->dialect.quote = 0;
    else
        return bad(err, errlen, "csv.quote must be '\"' or \"\" (no quoting)");
    if (get_bool(L, t, "header", "csv.header", &plan->has_header, err, errlen) < 0 ||
        get_bool(L, t, "decimal_comma", "csv.decimal_comma", &plan->dialect.decimal_comma, err, errlen) < 0)
        return -1;
    if (plan->dialect.decimal_comma && plan->dialect.sep == ',')
        return bad(err, errlen, "csv.decimal_comma cannot be used with the ',' separator");
    return 0;
}

static int read_fields(lua_State *L, int t, pulse_import_plan_t *plan, char *err, size_t errlen)
{
    lua_pushnil(L);               /* k */
    while (lua_next(L, t) != 0) { /* k, v */
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 2);
            return bad(err, errlen, "fields must be keyed by canonical field names");
        }
        const char *name = lua_tostring(L, -2);
        char what[96];
        snprintf(what, sizeof(what), "fields.%.60s", name);
        if (!lua_istable(L, -1)) {
            lua_pop(L, 2);
            return bad(err, errlen, "%s must be a table like { column = 0 }", what);
        }
        if (plan->n_fields == PULSE_IMPORT_MAX_FIELDS) {
            lua_pop(L, 2);
            return bad(err, errlen, "too many fields (at most %d)", PULSE_IMPORT_MAX_FIELDS);
        }
        pulse_import_field_t *f = &plan->fields[plan->n_fields];
        memset(f, 0, sizeof(*f));
        snprintf(f->name, sizeof(f->name), "%s", name);
        int v = lua_gettop(L);
        if (get_column(L, v, what, &f->column, err, errlen) != 0 || get_date_format(L, v, what, &f->date_format, err, errlen) < 0) {
            lua_pop(L, 2);
            return -1;
        }
        plan->n_fields++;
        lua_pop(L, 1); /* k */
    }
    return 0;
}

static int read_derived(lua_State *L, int t, pulse_import_plan_t *plan, char *err, size_t errlen)
{
    lua_pushnil(L);
    while (lua_next(L, t) != 0) { /* k, v */
        int ok = lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "amount") == 0 && lua_istable(L, -1);
        if (ok) {
            int v = lua_gettop(L);
            char op[32] = "";
            ok = get_string(L, v, "op", "derived.amount.op", op, sizeof(op), err, errlen) == 0 && strcmp(op, "multiply") == 0;
            lua_getfield(L, v, "from"); /* k, v, from */
            if (ok && lua_istable(L, -1) && lua_rawlen(L, -1) == 2) {
                lua_rawgeti(L, -1, 1);
                lua_rawgeti(L, -2, 2); /* k, v, from, a, b */
                const char *a = lua_tostring(L, -2), *b = lua_tostring(L, -1);
                ok = a && b &&
                     ((strcmp(a, "quantity") == 0 && strcmp(b, "unit_price") == 0) ||
                      (strcmp(a, "unit_price") == 0 && strcmp(b, "quantity") == 0));
                lua_pop(L, 2);
            } else
                ok = 0;
            lua_pop(L, 1);
        }
        lua_pop(L, 1); /* k */
        if (!ok) {
            lua_pop(L, 1);
            return bad(err, errlen,
                       "derived: only amount = { from = { \"quantity\", \"unit_price\" }, op = \"multiply\" } is supported");
        }
        plan->derive_amount_from_qty_price = 1;
    }
    return 0;
}

static int read_attributes(lua_State *L, int t, pulse_import_plan_t *plan, char *err, size_t errlen)
{
    static const char *const types[] = {"text", "integer", "decimal", "boolean", "date"};
    size_t n = lua_rawlen(L, t);
    if (n > PULSE_IMPORT_MAX_ATTRS)
        return bad(err, errlen, "too many attributes (at most %d)", PULSE_IMPORT_MAX_ATTRS);
    for (size_t i = 1; i <= n; i++) {
        char what[48];
        snprintf(what, sizeof(what), "attributes[%zu]", i);
        lua_rawgeti(L, t, (lua_Integer)i); /* a */
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            return bad(err, errlen, "%s must be a table like { column = 5, name = \"tenure\", type = \"integer\" }", what);
        }
        int a = lua_gettop(L);
        pulse_import_attr_t *at = &plan->attrs[plan->n_attrs];
        memset(at, 0, sizeof(*at));
        char type[16] = "text";
        int rc = get_column(L, a, what, &at->column, err, errlen);
        if (rc == 0 && get_string(L, a, "name", what, at->name, sizeof(at->name), err, errlen) != 0)
            rc = err[0] ? -1 : bad(err, errlen, "%s.name is required", what);
        if (rc == 0 && get_string(L, a, "type", what, type, sizeof(type), err, errlen) < 0)
            rc = -1;
        if (rc == 0 && get_date_format(L, a, what, &at->date_format, err, errlen) < 0)
            rc = -1;
        lua_pop(L, 1);
        if (rc != 0)
            return -1;
        size_t k = 0;
        while (k < sizeof(types) / sizeof(types[0]) && strcmp(types[k], type) != 0)
            k++;
        if (k == sizeof(types) / sizeof(types[0]))
            return bad(err, errlen, "%s.type must be text, integer, decimal, boolean or date", what);
        at->type = (pulse_import_attr_type_t)k;
        plan->n_attrs++;
    }
    return 0;
}

int pulse_import_plan_from_lua(lua_State *L, int idx, pulse_import_plan_t *plan, char *err, size_t errlen)
{
    pulse_import_plan_init(plan);
    err[0] = '\0';
    if (!lua_istable(L, idx))
        return bad(err, errlen, "the plan must be a table");
    int t = lua_absindex(L, idx);
    int top = lua_gettop(L);
    int rc = -1;
    char kind[32] = "", format[16] = "csv";
    if (get_string(L, t, "kind", "kind", kind, sizeof(kind), err, errlen) != 0) {
        if (!err[0])
            bad(err, errlen, "kind is required (transactions, events or customers)");
        goto out;
    }
    if (strcmp(kind, "transactions") == 0)
        plan->kind = PULSE_IMPORT_TRANSACTIONS;
    else if (strcmp(kind, "events") == 0)
        plan->kind = PULSE_IMPORT_EVENTS;
    else if (strcmp(kind, "customers") == 0)
        plan->kind = PULSE_IMPORT_CUSTOMERS;
    else {
        bad(err, errlen, "kind must be transactions, events or customers");
        goto out;
    }
    if (get_string(L, t, "format", "format", format, sizeof(format), err, errlen) < 0)
        goto out;
    if (strcmp(format, "xlsx") == 0)
        plan->xlsx = 1;
    else if (strcmp(format, "csv") != 0) {
        bad(err, errlen, "format must be csv or xlsx");
        goto out;
    }
    if (get_string(L, t, "sheet", "sheet", plan->sheet, sizeof(plan->sheet), err, errlen) < 0)
        goto out;
    if (plan->xlsx) {
        if (get_bool(L, t, "header", "header", &plan->has_header, err, errlen) < 0)
            goto out;
    } else {
        lua_getfield(L, t, "csv"); /* csv */
        if (!is_absent(L, -1)) {
            if (!lua_istable(L, -1)) {
                bad(err, errlen, "csv must be a table");
                goto out;
            }
            if (read_csv_opts(L, lua_gettop(L), plan, err, errlen) != 0)
                goto out;
        }
        lua_pop(L, 1);
    }
    lua_getfield(L, t, "fields"); /* fields */
    if (!lua_istable(L, -1)) {
        bad(err, errlen, "fields is required: { <canonical field> = { column = <0-based> }, ... }");
        goto out;
    }
    if (read_fields(L, lua_gettop(L), plan, err, errlen) != 0)
        goto out;
    lua_pop(L, 1);
    lua_getfield(L, t, "derived");
    if (!is_absent(L, -1)) {
        if (!lua_istable(L, -1)) {
            bad(err, errlen, "derived must be a table");
            goto out;
        }
        if (read_derived(L, lua_gettop(L), plan, err, errlen) != 0)
            goto out;
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "cancellation");
    if (!is_absent(L, -1)) {
        int c = lua_gettop(L);
        if (!lua_istable(L, c)) {
            bad(err, errlen, "cancellation must be a table like { field = \"invoice_no\", prefix = \"C\" }");
            goto out;
        }
        if (get_string(L, c, "field", "cancellation.field", plan->cancellation_field, sizeof(plan->cancellation_field), err,
                       errlen) != 0 ||
            get_string(L, c, "prefix", "cancellation.prefix", plan->cancellation_prefix, sizeof(plan->cancellation_prefix), err,
                       errlen) != 0) {
            if (!err[0])
                bad(err, errlen, "cancellation needs field and prefix");
            goto out;
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "attributes");
    if (!is_absent(L, -1)) {
        if (!lua_istable(L, -1)) {
            bad(err, errlen, "attributes must be a list");
            goto out;
        }
        if (read_attributes(L, lua_gettop(L), plan, err, errlen) != 0)
            goto out;
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "max_error_rate");
    if (!is_absent(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER) {
            bad(err, errlen, "max_error_rate must be a number from 0 to 1");
            goto out;
        }
        plan->max_error_rate = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    rc = pulse_import_plan_check(plan, err, errlen);
out:
    lua_settop(L, top);
    return rc;
}

/* import.check_plan(plan) -> true | nil, message */
static int l_import_check_plan(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    pulse_import_plan_t plan;
    char err[256];
    if (pulse_import_plan_from_lua(L, 1, &plan, err, sizeof(err)) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

int pulse_script_open_import(lua_State *L)
{
    static const luaL_Reg fns[] = {{"check_plan", l_import_check_plan}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
