/* The `ml` Lua API, for POST /api/v1/predict: ml.open(model_bytes) opens a stored model (the
 * registry's PMDL container, raw or as PostgreSQL's bytea text "\x...") into a userdata the
 * application can keep between requests (so a request does not parse the model again), with
 * model:churn(features) for churn models and model:clv(features, summary) for lifetime-value ones;
 * ml.score(model_bytes, features) opens, scores a churn row and closes; ml.reasons(model, codes) words
 * the reasons a scoring job stored as codes (predictions.reason_codes). A model that does not load
 * is an expected failure (nil, message), never a crash; misuse raises. */
#include "core/buf.h"
#include "ml/calibrate.h"
#include "ml/churn.h"
#include "ml/clvmodel.h"
#include "ml/reason_codes.h"
#include "ml/reason_text.h"
#include "script/json.h"
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

/* The features of the table at idx into row[0..nf) as the model codes them; pushes the list of
 * the features the table lacked (plain names). */
static void read_row(lua_State *L, int idx, const pulse_ml_model_t *m, float *row)
{
    lua_createtable(L, 0, 0); /* ..., missing */
    int missing = lua_gettop(L), n_missing = 0;
    for (size_t j = 0; j < m->n_features; j++) {
        int given;
        row[j] = value_of(L, idx, &m->features[j], &given);
        if (!given) {
            lua_pushstring(L, plain_name(m->features[j].name));
            lua_rawseti(L, missing, ++n_missing);
        }
    }
}

/* Scores the features table at idx with an opened churn model: pushes probability, reasons, missing.
 * probability: calibrated, 0-1; reasons: up to 3 pushes up and 3 down, strongest first, each
 * {feature, value, effect, direction, text}; missing: the model's features the table lacked. */
static int churn_score(lua_State *L, const pulse_ml_churn_t *c, int idx)
{
    const pulse_ml_model_t *m = c->model;
    size_t nf = m->n_features;
    float *row = pulse_xmalloc((nf + 1) * sizeof(float));
    double *contrib = pulse_xmalloc((nf + 1) * sizeof(double));
    pulse_ml_push_t *rk = pulse_xmalloc((nf + 1) * sizeof(*rk));
    read_row(L, idx, m, row); /* ..., missing */
    int missing = lua_gettop(L);
    double p = pulse_ml_churn_predict_row(c, row);
    pulse_ml_churn_contributions(c, row, contrib);
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
    return 3;
}

#define MODEL_MT "pulse.ml.model"

/* An opened model: exactly one of churn and clv is open until it is closed. */
typedef struct ml_model_t {
    int is_churn, is_clv;
    pulse_ml_churn_t churn;
    pulse_ml_clv_t clv;
} ml_model_t;

static void model_release(ml_model_t *u)
{
    if (u->is_churn)
        pulse_ml_churn_close(&u->churn);
    if (u->is_clv)
        pulse_ml_clv_close(&u->clv);
    u->is_churn = u->is_clv = 0;
}

static int l_model_gc(lua_State *L)
{
    model_release(luaL_checkudata(L, 1, MODEL_MT));
    return 0;
}

static ml_model_t *check_model(lua_State *L)
{
    ml_model_t *u = luaL_checkudata(L, 1, MODEL_MT);
    if (!u->is_churn && !u->is_clv)
        luaL_argerror(L, 1, "the model is closed");
    return u;
}

/* Opens bytes (raw or bytea text) as whichever model the container holds. 0, or -1 with err. */
static int model_open(ml_model_t *u, const char *s, size_t len, char *err, size_t errlen)
{
    size_t blen = 0;
    unsigned char *raw = unhex(s, len, &blen);
    const unsigned char *b = raw ? raw : (const unsigned char *)s;
    size_t n = raw ? blen : len;
    pulse_ml_model_t *peek = pulse_ml_model_load(b, n, err, errlen);
    int rc = -1;
    if (peek != NULL && (peek->kind == PULSE_ML_CLV_GBDT || peek->kind == PULSE_ML_CLV_BGNBD)) {
        rc = pulse_ml_clv_open(&u->clv, b, n, err, errlen);
        u->is_clv = rc == 0;
    } else if (peek != NULL) {
        rc = pulse_ml_churn_open(&u->churn, b, n, err, errlen);
        u->is_churn = rc == 0;
    }
    pulse_ml_model_free(peek);
    free(raw);
    return rc;
}

/* ml.open(model_bytes) -> model | nil, message */
static int l_ml_open(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    ml_model_t *u = lua_newuserdatauv(L, sizeof(*u), 0); /* bytes, u */
    memset(u, 0, sizeof(*u));
    luaL_setmetatable(L, MODEL_MT);
    char err[256];
    if (model_open(u, s, len, err, sizeof(err)) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

/* model:kind() -> "churn" or "clv"; model:algorithm() -> "churn_gbdt", "bgnbd", ... */
static int l_model_kind(lua_State *L)
{
    lua_pushstring(L, check_model(L)->is_churn ? "churn" : "clv");
    return 1;
}

static int l_model_algorithm(lua_State *L)
{
    ml_model_t *u = check_model(L);
    lua_pushstring(L, pulse_ml_model_kind_name(u->is_churn ? u->churn.model->kind : u->clv.model->kind));
    return 1;
}

/* model:churn(features) -> probability, reasons, missing (see churn_score) */
static int l_model_churn(lua_State *L)
{
    ml_model_t *u = check_model(L);
    luaL_argcheck(L, u->is_churn, 1, "not a churn model");
    luaL_checktype(L, 2, LUA_TTABLE);
    return churn_score(L, &u->churn, 2);
}

/* A BG/NBD summary from the summary table at sidx (x, t_x, T, zbar), or when it is nil from the
 * features table at fidx: x = frequency - 1, t_x = span_days, T = tenure_days, zbar = avg_basket
 * (the mean over every purchase day: an approximation of the mean repeat spend). */
static void read_summary(lua_State *L, int fidx, int sidx, float row[4])
{
    static const char *const direct[] = {"x", "t_x", "T", "zbar"};
    static const char *const derived[] = {"frequency", "span_days", "tenure_days", "avg_basket"};
    int from_summary = !lua_isnoneornil(L, sidx);
    lua_createtable(L, 0, 0); /* ..., missing */
    int missing = lua_gettop(L), n_missing = 0;
    for (int k = 0; k < 4; k++) {
        pulse_ml_feature_t f = {(char *)(from_summary ? direct[k] : derived[k]), 0, 0, NULL};
        int given;
        row[k] = value_of(L, from_summary ? sidx : fidx, &f, &given);
        if (!given && k < 3) { /* zbar is optional: the population's mean spend */
            lua_pushstring(L, f.name);
            lua_rawseti(L, missing, ++n_missing);
        }
    }
    if (!from_summary)
        row[0] -= 1;
}

/* model:clv(features, summary) -> value, missing
 * value: the discounted spend over the model's horizon (NaN -> nil when the inputs cannot be
 * valued); missing: the inputs the tables lacked. */
static int l_model_clv(lua_State *L)
{
    ml_model_t *u = check_model(L);
    luaL_argcheck(L, u->is_clv, 1, "not a lifetime-value model");
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    const pulse_ml_model_t *m = u->clv.model;
    float *row = pulse_xmalloc((m->n_features + 4) * sizeof(float));
    if (u->clv.gbdt)
        read_row(L, 2, m, row); /* ..., missing */
    else
        read_summary(L, 2, 3, row);
    double v = pulse_ml_clv_value_row(&u->clv, row);
    free(row);
    if (isfinite(v))
        lua_pushnumber(L, v);
    else
        lua_pushnil(L);   /* ..., missing, value */
    lua_rotate(L, -2, 1); /* ..., value, missing */
    return 2;
}

/* model:terms() -> horizon_days, discount (lifetime-value models) */
static int l_model_terms(lua_State *L)
{
    ml_model_t *u = check_model(L);
    luaL_argcheck(L, u->is_clv, 1, "not a lifetime-value model");
    lua_pushinteger(L, u->clv.terms.horizon);
    lua_pushnumber(L, u->clv.terms.discount);
    return 2;
}

/* ml.score(model_bytes, features) -> probability, reasons, missing | nil, message */
static int l_ml_score(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_checktype(L, 2, LUA_TTABLE);
    ml_model_t u;
    memset(&u, 0, sizeof(u));
    char err[256];
    if (model_open(&u, s, len, err, sizeof(err)) != 0 || !u.is_churn) {
        if (u.is_clv)
            snprintf(err, sizeof(err), "a %s model is not a churn model", pulse_ml_model_kind_name(u.clv.model->kind));
        model_release(&u);
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    int n = churn_score(L, &u.churn, 2);
    model_release(&u);
    return n;
}

/* ml.reasons(model | nil, codes) -> reasons | nil, message
 * codes: predictions.reason_codes (raw, or bytea text "\x..."); model: the churn model that wrote
 * them (ml.open), or nil when it is gone or does not load: then each reason keeps its effect and
 * direction, with feature, value and text null. reasons: [{feature, value, effect, direction,
 * text}], as the scoring job wrote them when it stored them as JSON. */
static int l_ml_reasons(lua_State *L)
{
    const pulse_ml_model_t *m = NULL;
    if (!lua_isnil(L, 1)) {
        ml_model_t *u = check_model(L);
        luaL_argcheck(L, u->is_churn, 1, "not a churn model");
        m = u->churn.model;
    }
    size_t len, blen = 0;
    const char *s = luaL_checklstring(L, 2, &len);
    unsigned char *raw = unhex(s, len, &blen);
    pulse_buf_t js = PULSE_BUF_INIT;
    char err[160] = "the reason codes are malformed or do not belong to this model";
    int rc = pulse_ml_reason_codes_json(&js, m, raw ? raw : (const unsigned char *)s, raw ? blen : len);
    if (rc == 0)
        rc = pulse_json_decode_push(L, js.data, js.len, err, sizeof(err));
    free(raw);
    pulse_buf_free(&js);
    if (rc != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

int pulse_script_open_ml(lua_State *L)
{
    static const luaL_Reg methods[] = {{"kind", l_model_kind},
                                       {"algorithm", l_model_algorithm},
                                       {"churn", l_model_churn},
                                       {"clv", l_model_clv},
                                       {"terms", l_model_terms},
                                       {"close", l_model_gc},
                                       {NULL, NULL}};
    if (luaL_newmetatable(L, MODEL_MT)) { /* mt */
        luaL_newlib(L, methods);          /* mt, methods */
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_model_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_model_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"open", l_ml_open}, {"score", l_ml_score}, {"reasons", l_ml_reasons}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
