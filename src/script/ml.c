/* The `ml` Lua API: ml.score(model_bytes, features) scores one row with a stored churn model (the
 * registry's PMDL container, raw or as PostgreSQL's bytea text "\x..."), for POST /api/v1/predict.
 * A model that does not load is an expected failure (nil, message), never a crash; misuse raises. */
#include "core/buf.h"
#include "ml/calibrate.h"
#include "ml/churn.h"
#include "ml/reason_text.h"
#include "script/script.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* bytea text ("\x" + hex) to bytes in a new buffer; NULL when it is not that form. */
static unsigned char *unhex(const char *s, size_t len, size_t *out_len)
{
    if (len < 2 || s[0] != '\\' || s[1] != 'x' || (len - 2) % 2 != 0)
        return NULL;
    size_t n = (len - 2) / 2;
    unsigned char *b = pulse_xmalloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 + 2 * i]), lo = hexval(s[3 + 2 * i]);
        if (hi < 0 || lo < 0) {
            free(b);
            return NULL;
        }
        b[i] = (unsigned char)(hi << 4 | lo);
    }
    *out_len = n;
    return b;
}

static const char *plain_name(const char *name)
{
    return strncmp(name, "analytics.", 10) == 0 ? name + 10 : name;
}

/* Feature f's value from the table at idx (by its name, or without the "analytics." prefix), as the
 * model codes it: NaN when absent, not a number, or an unseen category. *given: 1 when present. */
static float value_of(lua_State *L, int idx, const pulse_ml_feature_t *f, int *given)
{
    lua_getfield(L, idx, f->name); /* ..., v */
    if (lua_isnil(L, -1) && plain_name(f->name) != f->name) {
        lua_pop(L, 1);
        lua_getfield(L, idx, plain_name(f->name));
    }
    float x = NAN;
    *given = !lua_isnil(L, -1) && lua_touserdata(L, -1) == NULL;
    if (f->categorical) {
        const char *s = lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : NULL;
        if (lua_type(L, -1) == LUA_TBOOLEAN)
            s = lua_toboolean(L, -1) ? "true" : "false";
        for (int c = 0; s != NULL && c < f->n_levels; c++)
            if (strcmp(f->levels[c], s) == 0)
                x = (float)c;
    } else if (lua_type(L, -1) == LUA_TNUMBER || lua_type(L, -1) == LUA_TSTRING) {
        int ok = 0;
        lua_Number v = lua_tonumberx(L, -1, &ok);
        if (ok && isfinite(v))
            x = (float)v;
    }
    lua_pop(L, 1);
    return x;
}

/* ml.score(model_bytes, features) -> probability, reasons, missing | nil, message
 * probability: calibrated, 0-1; reasons: up to 3 pushes up and 3 down, strongest first, each
 * {feature, value, effect, direction, text}; missing: the model's features the table lacked. */
static int l_ml_score(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_checktype(L, 2, LUA_TTABLE);
    char err[256];
    size_t blen = 0;
    unsigned char *raw = unhex(s, len, &blen);
    pulse_ml_churn_t churn;
    int opened = pulse_ml_churn_open(&churn, raw ? raw : (const unsigned char *)s, raw ? blen : len, err, sizeof(err));
    free(raw);
    if (opened != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    const pulse_ml_model_t *m = churn.model;
    size_t nf = m->n_features;
    float *row = pulse_xmalloc((nf + 1) * sizeof(float));
    double *contrib = pulse_xmalloc((nf + 1) * sizeof(double));
    pulse_ml_push_t *rk = pulse_xmalloc((nf + 1) * sizeof(*rk));
    lua_createtable(L, 0, 0); /* ..., missing */
    int missing = lua_gettop(L), n_missing = 0;
    for (size_t j = 0; j < nf; j++) {
        int given;
        row[j] = value_of(L, 2, &m->features[j], &given);
        if (!given) {
            lua_pushstring(L, plain_name(m->features[j].name));
            lua_rawseti(L, missing, ++n_missing);
        }
    }
    double p = pulse_ml_churn_predict_row(&churn, row);
    pulse_ml_churn_contributions(&churn, row, contrib);
    p = pulse_ml_calibration_apply(&m->calibration, p);
    p = p >= 0 ? (p > 1 ? 1 : p) : 0;
    size_t nr = pulse_ml_reasons(contrib, nf, rk);
    lua_pushnumber(L, p);           /* ..., missing, p */
    lua_createtable(L, (int)nr, 0); /* ..., missing, p, reasons */
    for (size_t i = 0; i < nr; i++) {
        double v = rk[i].v;
        const pulse_ml_feature_t *f = &m->features[rk[i].j];
        float x = row[rk[i].j];
        const char *dir = v > 0 ? "raises" : "lowers";
        lua_createtable(L, 0, 5); /* ..., reasons, r */
        lua_pushstring(L, plain_name(f->name));
        lua_setfield(L, -2, "feature");
        if (isnan(x))
            lua_pushstring(L, "missing");
        else if (f->categorical && (int)x >= 0 && (int)x < f->n_levels)
            lua_pushstring(L, f->levels[(int)x]);
        else {
            /* the float the model saw, printed as the user gave it (not 12.300000190734863) */
            char buf[32];
            snprintf(buf, sizeof(buf), "%.7g", (double)x);
            lua_pushnumber(L, strtod(buf, NULL));
        }
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "value"); /* ..., reasons, r, value */
        lua_pushnumber(L, v);
        lua_setfield(L, -3, "effect");
        lua_pushstring(L, dir);
        lua_setfield(L, -3, "direction");
        char text[400];
        pulse_ml_reason_text(m, row, rk[i].j, v, text, sizeof(text));
        lua_pushstring(L, text);
        lua_setfield(L, -3, "text");
        lua_pop(L, 1);                          /* ..., reasons, r */
        lua_rawseti(L, -2, (lua_Integer)i + 1); /* ..., reasons */
    }
    lua_rotate(L, missing, -1); /* ..., p, reasons, missing */
    free(rk), free(contrib), free(row);
    pulse_ml_churn_close(&churn);
    return 3;
}

int pulse_script_open_ml(lua_State *L)
{
    static const luaL_Reg fns[] = {{"score", l_ml_score}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
