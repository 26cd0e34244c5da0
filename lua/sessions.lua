-- Sessions: a short access token (JWT, verified in C, never stored) and a long refresh token
-- (random, stored only as its SHA-256 digest, rotated on every use). A family is one login's
-- chain of refresh tokens: presenting a rotated token again revokes the family. Every function
-- here runs under the tenant already set on the request (db.set_tenant): Row-Level Security
-- scopes each query to it.
local auth = require "auth"
local db = require "db"
local json = require "json"

local sessions = {
    ACCESS_TTL = 900,       -- seconds an access token lives (expires_in)
    REFRESH_TTL_DAYS = 30,  -- days a refresh token lives; each rotation starts a new 30 days
    REFRESH_BYTES = 32,     -- random bytes of a refresh token (43 base64url characters)
}

-- A new refresh token for the user in `family_id` (a new family when nil). -> token | nil, err
function sessions.new_refresh(tenant, user_id, family_id)
    local token = auth.random_token(sessions.REFRESH_BYTES)
    local rows, err = db.query([[
        INSERT INTO refresh_tokens (tenant_id, user_id, family_id, token_hash, expires_at)
        VALUES ($1, $2, coalesce($3::uuid, gen_random_uuid()), decode($4, 'hex'), now() + make_interval(days => $5))
        RETURNING family_id]], tenant, user_id, family_id or json.null, auth.digest(token),
        sessions.REFRESH_TTL_DAYS)
    if not rows then return nil, err end
    return token
end

-- The access token for a user. -> token | raises (signing fails only when misconfigured)
function sessions.access_token(tenant, user_id, role)
    local token, err = auth.sign_token { sub = tostring(user_id), tenant = tenant, role = role, ttl = sessions.ACCESS_TTL }
    if not token then error("auth.sign_token failed: " .. tostring(err and err.message or err)) end
    return token
end

-- Issues both tokens (a new family unless family_id is given). -> the OAuth2 token answer | nil, err
function sessions.issue(tenant, user_id, role, family_id)
    local refresh, err = sessions.new_refresh(tenant, user_id, family_id)
    if not refresh then return nil, err end
    return {
        access_token = sessions.access_token(tenant, user_id, role),
        token_type = "bearer",
        refresh_token = refresh,
        expires_in = sessions.ACCESS_TTL,
    }
end

-- Revokes every live refresh token of a family. -> count | nil, err
function sessions.revoke_family(family_id)
    local rows, n = db.query("UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
        family_id)
    if not rows then return nil, n end
    return n
end

-- Revokes every live refresh token of a user (password change, removal, logout everywhere).
function sessions.revoke_user(user_id)
    local rows, n = db.query("UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        user_id)
    if not rows then return nil, n end
    return n
end

return sessions
