/* The `auth` Lua API: password hashing and verification on the worker pool (the coroutine yields
 * while a worker runs argon2, ~70 ms, so the loop keeps serving), the password policy, and access
 * tokens signed and verified with the process's key ring (auth/setup.h). Outside the server (the
 * spec runner, no loop) hashing runs synchronously instead; inside it, outside a request, it
 * raises like db.query. Passwords are copied only into work buffers that are wiped afterwards;
 * they are never logged. The Lua string itself lives in the VM until collected. */
#include "auth/password.h"
#include "auth/setup.h"
#include "auth/token.h"
#include "core/buf.h"
#include "core/workers.h"
#include "script/script.h"
#include "server/request.h"
#include "server/server.h"

#include <lauxlib.h>
#include <stdint.h>
#include <openssl/rand.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seconds of the precise wall clock. time() reads the kernel's coarse clock, which can lag a few
 * milliseconds behind PostgreSQL's now(): a token signed just after a password change could then
 * carry the previous second and be refused as older than the change. */
static int64_t wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

#define DEFAULT_TTL 900 /* seconds: a short-lived access token */
#define MAX_POLICY_WORDS 16

enum { WORK_HASH, WORK_VERIFY, WORK_DUMMY };

typedef struct auth_work_t {
    pulse_work_t super;
    pulse_request_t *r; /* NULL when run synchronously */
    int kind;
    int rc;
    size_t pwlen;
    char pw[PULSE_PASSWORD_MAX_BYTES];
    char encoded[PULSE_PASSWORD_ENCODED_MAX]; /* input of verify, output of hash */
    char err[160];
} auth_work_t;

/* --- errors --- */

/* nil, {code=, message=} */
static int push_error(lua_State *L, const char *code, const char *message)
{
    lua_pushnil(L);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    return 2;
}

static int push_busy(lua_State *L)
{
    return push_error(L, "busy", "too many password operations are waiting; try again shortly");
}

/* --- password work --- */

static void run_work(pulse_work_t *pw)
{
    auth_work_t *w = H2O_STRUCT_FROM_MEMBER(auth_work_t, super, pw);
    switch (w->kind) {
    case WORK_HASH:
        w->rc = pulse_password_hash(w->pw, w->pwlen, w->encoded, sizeof(w->encoded), w->err, sizeof(w->err));
        break;
    case WORK_VERIFY:
        w->rc = pulse_password_verify(w->encoded, w->pw, w->pwlen);
        break;
    default:
        w->rc = pulse_password_verify_dummy(w->pw, w->pwlen);
        break;
    }
    OPENSSL_cleanse(w->pw, sizeof(w->pw)); /* as soon as argon2 is done with it */
}

/* Pushes the Lua results of a finished (or cancelled) work on L; returns their count. */
static int push_results(lua_State *L, auth_work_t *w)
{
    if (w->super.cancelled)
        return push_error(L, "busy", "the server is shutting down");
    if (w->kind == WORK_HASH) {
        if (w->rc != 0)
            return push_error(L, "hash_failed", w->err);
        lua_pushstring(L, w->encoded);
        return 1;
    }
    if (w->rc < 0) { /* a stored hash this build refuses: a wrong password as far as the caller knows */
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "invalid_hash");
        return 2;
    }
    lua_pushboolean(L, w->rc == 1);
    return 1;
}

static void free_work(auth_work_t *w)
{
    OPENSSL_cleanse(w, sizeof(*w));
    free(w);
}

static void done_work(pulse_work_t *pw)
{
    auth_work_t *w = H2O_STRUCT_FROM_MEMBER(auth_work_t, super, pw);
    pulse_request_t *r = w->r;
    int n = push_results(r->co, w);
    free_work(w);
    pulse_request_resume(r, n); /* also right when the client is gone: the coroutine finishes */
}

/* Runs w now (no server) or on the worker pool (the coroutine yields; done_work resumes it). */
static int start_work(lua_State *L, auth_work_t *w, const char *fn)
{
    if (pulse_script_host(L) == NULL) { /* spec runner: no loop to come back to */
        run_work(&w->super);
        int n = push_results(L, w);
        free_work(w);
        return n;
    }
    pulse_request_t *r = pulse_request_current(L);
    if (r == NULL || r->loop == NULL || r->loop->workers == NULL || r->loop->inbox == NULL) {
        free_work(w);
        return luaL_error(L, "%s can only be called while handling a request", fn);
    }
    w->r = r;
    w->super.run = run_work;
    w->super.done = done_work;
    if (pulse_workers_submit(r->loop->workers, r->loop->inbox, &w->super) != 0) {
        free_work(w);
        return push_busy(L);
    }
    return lua_yield(L, 0); /* resumed by done_work */
}

static auth_work_t *new_work(int kind, const char *pw, size_t len)
{
    auth_work_t *w = pulse_xmalloc(sizeof(*w));
    memset(w, 0, sizeof(*w));
    w->kind = kind;
    memcpy(w->pw, pw, len);
    w->pwlen = len;
    return w;
}

/* auth.hash_password(pw) -> encoded | nil, err (yields) */
static int l_auth_hash_password(lua_State *L)
{
    size_t len;
    const char *pw = luaL_checklstring(L, 1, &len);
    if (len > PULSE_PASSWORD_MAX_BYTES) /* refused before any copy or work */
        return push_error(L, "password_too_long", "the password is longer than 1024 bytes");
    return start_work(L, new_work(WORK_HASH, pw, len), "auth.hash_password");
}

/* auth.verify_password(encoded | nil, pw) -> boolean (yields). nil: an unknown user, same cost. */
static int l_auth_verify_password(lua_State *L)
{
    size_t elen = 0, len;
    const char *encoded = luaL_opt(L, luaL_checkstring, 1, NULL);
    if (encoded != NULL)
        elen = strlen(encoded);
    const char *pw = luaL_checklstring(L, 2, &len);
    if (len > PULSE_PASSWORD_MAX_BYTES || (encoded != NULL && elen >= PULSE_PASSWORD_ENCODED_MAX)) {
        /* no stored password is that long, and no hash we accept is: nothing to compute */
        lua_pushboolean(L, 0);
        return 1;
    }
    auth_work_t *w = new_work(encoded != NULL ? WORK_VERIFY : WORK_DUMMY, pw, len);
    if (encoded != NULL)
        memcpy(w->encoded, encoded, elen + 1);
    return start_work(L, w, "auth.verify_password");
}

/* auth.password_needs_rehash(encoded) -> boolean: made with other argon2 parameters than today's
 * (false for a string that is not an argon2id hash: nothing better to do with it). */
static int l_auth_password_needs_rehash(lua_State *L)
{
    lua_pushboolean(L, pulse_password_needs_rehash(luaL_checkstring(L, 1)) == 1);
    return 1;
}

/* auth.check_password_policy(pw [, {words...}]) -> true | false, why */
static int l_auth_check_password_policy(lua_State *L)
{
    size_t len;
    const char *pw = luaL_checklstring(L, 1, &len);
    const char *words[MAX_POLICY_WORDS];
    size_t nwords = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_Integer n = luaL_len(L, 2);
        if (n > MAX_POLICY_WORDS)
            return luaL_argerror(L, 2, "at most 16 words");
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, 2, i); /* stays on the stack: words[] points into it */
            if (lua_type(L, -1) != LUA_TSTRING)
                return luaL_argerror(L, 2, "words must be strings");
            words[nwords++] = lua_tostring(L, -1);
        }
    }
    char why[256];
    if (pulse_password_check_policy_ctx(pw, len, words, nwords, why, sizeof(why)) == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_pushstring(L, why);
    return 2;
}

/* --- tokens --- */

static const pulse_token_keys_t *checked_keys(lua_State *L)
{
    const pulse_token_keys_t *keys = pulse_auth_keys();
    if (keys == NULL)
        luaL_error(L, "auth: no token keys (pulse_auth_setup was not called)");
    return keys;
}

/* Copies the string field `name` of the table at 1 into out; raises on a wrong type. */
static void claim_field(lua_State *L, const char *name, char *out, size_t outlen)
{
    if (lua_getfield(L, 1, name) != LUA_TSTRING)
        luaL_error(L, "auth.sign_token: %s must be a string", name);
    size_t len;
    const char *v = lua_tolstring(L, -1, &len);
    if (len >= outlen)
        len = outlen - 1; /* too long to be valid: sign refuses the truncated value by format */
    memcpy(out, v, len);
    out[len] = '\0';
    lua_pop(L, 1);
}

/* auth.sign_token{sub=, tenant=, role=, ttl=} -> token, exp | nil, err */
static int l_auth_sign_token(lua_State *L)
{
    const pulse_token_keys_t *keys = checked_keys(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    pulse_token_claims_t claims;
    memset(&claims, 0, sizeof(claims));
    char sub[PULSE_TOKEN_SUB_MAX + 2], tenant[sizeof(claims.tenant) + 1], role[sizeof(claims.role) + 1];
    claim_field(L, "sub", sub, sizeof(sub));
    claim_field(L, "tenant", tenant, sizeof(tenant));
    claim_field(L, "role", role, sizeof(role));
    if (strlen(sub) >= sizeof(claims.sub) || strlen(tenant) >= sizeof(claims.tenant) || strlen(role) >= sizeof(claims.role))
        return push_error(L, "invalid_claims", "sub, tenant or role is too long");
    memcpy(claims.sub, sub, strlen(sub) + 1);
    memcpy(claims.tenant, tenant, strlen(tenant) + 1);
    memcpy(claims.role, role, strlen(role) + 1);
    lua_Integer ttl = DEFAULT_TTL;
    if (lua_getfield(L, 1, "ttl") != LUA_TNIL) {
        int isint;
        ttl = lua_tointegerx(L, -1, &isint);
        if (!isint || ttl <= 0 || ttl > 366 * 86400)
            return luaL_error(L, "auth.sign_token: ttl must be an integer number of seconds from 1 to 31622400");
    }
    lua_pop(L, 1);
    int64_t now = wall_seconds();
    char *token = NULL, err[256];
    if (pulse_token_sign(keys, &claims, now, (int)ttl, &token, err, sizeof(err)) != 0)
        return push_error(L, "invalid_claims", err);
    lua_pushstring(L, token);
    free(token);
    lua_pushinteger(L, (lua_Integer)(now + ttl));
    return 2;
}

static void set_string(lua_State *L, const char *key, const char *value)
{
    lua_pushstring(L, value);
    lua_setfield(L, -2, key);
}

/* auth.verify_token(token) -> {sub, tenant, role, exp, iat, jti, kid} | nil, code */
static int l_auth_verify_token(lua_State *L)
{
    const pulse_token_keys_t *keys = checked_keys(L);
    const char *token = luaL_checkstring(L, 1);
    pulse_token_claims_t c;
    char err[256];
    int rc = pulse_token_verify(keys, token, wall_seconds(), &c, err, sizeof(err));
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushstring(L, pulse_token_strerror(rc));
        return 2;
    }
    lua_createtable(L, 0, 7);
    set_string(L, "sub", c.sub);
    set_string(L, "tenant", c.tenant);
    set_string(L, "role", c.role);
    set_string(L, "jti", c.jti);
    set_string(L, "kid", c.kid);
    lua_pushinteger(L, (lua_Integer)c.exp);
    lua_setfield(L, -2, "exp");
    lua_pushinteger(L, (lua_Integer)c.iat);
    lua_setfield(L, -2, "iat");
    return 1;
}

/* auth.digest(s) -> hex SHA-256 of s. For secrets that are already random and long (refresh
 * tokens, API keys): stored as digests, looked up by digest; no slow hash needed. */
static int l_auth_digest(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL))
        return luaL_error(L, "auth.digest: SHA-256 failed");
    static const char hex[] = "0123456789abcdef";
    char out[2 * EVP_MAX_MD_SIZE];
    for (unsigned int i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    lua_pushlstring(L, out, 2 * mdlen);
    return 1;
}

/* auth.random_token(nbytes) -> base64url text of nbytes from the OS's CSPRNG (16-64 bytes). */
static int l_auth_random_token(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 16 && n <= 64, 1, "between 16 and 64 bytes");
    unsigned char raw[64];
    if (RAND_bytes(raw, (int)n) != 1)
        return luaL_error(L, "auth.random_token: no randomness available");
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char out[88];
    size_t o = 0;
    for (lua_Integer i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16;
        int have = (int)(n - i < 3 ? n - i : 3);
        if (have > 1)
            v |= (uint32_t)raw[i + 1] << 8;
        if (have > 2)
            v |= raw[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        if (have > 1)
            out[o++] = b64[(v >> 6) & 63];
        if (have > 2)
            out[o++] = b64[v & 63];
    }
    OPENSSL_cleanse(raw, sizeof(raw));
    lua_pushlstring(L, out, o);
    OPENSSL_cleanse(out, sizeof(out));
    return 1;
}

int pulse_script_open_auth(lua_State *L)
{
    static const luaL_Reg fns[] = {{"digest", l_auth_digest},
                                   {"random_token", l_auth_random_token},
                                   {"hash_password", l_auth_hash_password},
                                   {"verify_password", l_auth_verify_password},
                                   {"password_needs_rehash", l_auth_password_needs_rehash},
                                   {"check_password_policy", l_auth_check_password_policy},
                                   {"sign_token", l_auth_sign_token},
                                   {"verify_token", l_auth_verify_token},
                                   {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
