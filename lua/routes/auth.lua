-- Sign-up, sign-in and the caller's own account: registration (organization + owner), login as
-- an OAuth2 password form or JSON, refresh-token rotation with reuse detection, logout, the
-- profile and the password change. Logins cross tenants only through the SECURITY DEFINER
-- lookups of migrations/0002_tenants.sql; once the account is known, everything runs under its
-- tenant (db.set_tenant). Passwords and tokens are never logged nor written to the audit log.
local auth = require "auth"
local db = require "db"
local json = require "json"
local schema = require "schema"
local problem = require "problem"
local pulse = require "pulse"
local response = require "response"
local limits = require "limits"
local audit = require "audit"
local middleware = require "middleware"
local sessions = require "sessions"

local FORM_TYPE = "application/x-www-form-urlencoded"

-- --- schemas ---

local Email = { type = "string", format = "email", maxLength = 254, description = "E-mail address (case-insensitive)" }
local Password = { type = "string", minLength = 1, maxLength = 1024, description = "The password (never logged)" }
local NewPassword = {
    type = "string", minLength = 1, maxLength = 1024,
    description = "At least 10 characters; not a common password, nor containing your name, e-mail or organization",
}
local PersonName = { type = "string", minLength = 1, maxLength = 200 }
local Industry = { type = "string", enum = { "ecommerce", "telecom", "banking" } }
local RefreshToken = { type = "string", minLength = 16, maxLength = 200, pattern = "^[%w_%-]+$" }

local Organization = schema.component("AuthOrganization", {
    type = "object",
    properties = {
        id = { type = "string", format = "uuid" },
        name = { type = "string" },
        industry = Industry,
        business_id = { type = "string", format = "uuid", description = "Public id, used by the widget" },
    },
})

local Tokens = schema.component("AuthTokens", {
    type = "object",
    properties = {
        access_token = { type = "string", description = "HS256 JWT; send as 'Authorization: Bearer ...'" },
        token_type = { type = "string", enum = { "bearer" } },
        refresh_token = { type = "string", description = "Single use: POST /api/v1/auth/refresh rotates it" },
        expires_in = { type = "integer", description = "Seconds the access token lives" },
    },
})

local Registered = schema.component("AuthRegistration", {
    type = "object",
    properties = {
        user = {
            type = "object",
            properties = {
                id = { type = "integer" }, email = { type = "string" }, name = { type = "string" },
                role = { type = "string", enum = { "owner" } },
            },
        },
        organization = Organization,
        access_token = { type = "string" },
        token_type = { type = "string", enum = { "bearer" } },
        refresh_token = { type = "string" },
        expires_in = { type = "integer" },
    },
})

local Profile = schema.component("AuthProfile", {
    type = "object",
    properties = {
        id = { type = "integer" },
        email = { type = "string" },
        name = { type = "string" },
        role = { type = "string", enum = { "owner", "analyst", "viewer" } },
        organization = Organization,
    },
})

local RegisterBody = {
    type = "object", additionalProperties = false,
    required = { "email", "password", "name", "organization", "industry" },
    properties = {
        email = Email, password = NewPassword, name = PersonName,
        organization = { type = "string", minLength = 1, maxLength = 200, description = "The organization's name" },
        industry = Industry,
    },
}

local LoginForm = {
    type = "object", additionalProperties = false, required = { "username", "password" },
    properties = {
        -- an e-mail address like everywhere else: the rate-limit key and the lookup must be the
        -- same string, which free text (NUL bytes, Unicode case folds) would break
        username = { type = "string", format = "email", maxLength = 254, description = "The e-mail address" },
        password = Password,
        grant_type = { type = "string", enum = { "password" } },
        scope = { type = "string", maxLength = 200 },
        client_id = { type = "string", maxLength = 200 },
        client_secret = { type = "string", maxLength = 200 },
    },
}

local LoginJson = {
    type = "object", additionalProperties = false, required = { "email", "password" },
    properties = { email = Email, password = Password },
}

-- --- helpers ---

local rate_limited = limits.check

-- The words a password must not contain: the e-mail's local part, the person's and the
-- organization's names, whole and word by word (auth.check_password_policy ignores words under
-- 4 bytes and takes at most 16).
local function policy_words(email, name, organization)
    local words, seen = {}, {}
    local function add(w)
        w = w:lower()
        if #w >= 4 and not seen[w] and #words < 16 then words[#words + 1], seen[w] = w, true end
    end
    local localpart = email and email:match("^([^@]+)@")
    for _, text in ipairs { localpart or "", name or "", organization or "" } do
        add(text)
        for w in text:gmatch("[^%s%p]+") do add(w) end
    end
    return words
end

-- nil when acceptable, else the 422 naming `field`
local function weak_password(field, pw, words)
    local ok, why = auth.check_password_policy(pw, words)
    if ok then return nil end
    return problem.validation { { field = field, code = "weak_password", message = why } }
end

local function bad_credentials()
    return problem.new(401, "invalid_credentials", "The e-mail address or the password is wrong.",
        { headers = { ["www-authenticate"] = 'Bearer realm="pulse"' } })
end

local function bad_refresh(code, detail)
    return problem.new(401, code, detail)
end

local function act_for(req, tenant)
    db.set_tenant(tenant)
    req.tenant = tenant
end

-- The signed-in user's profile, read under the request's tenant. -> profile | nil (gone) | nil, err
local function load_profile(user_id)
    local rows, err = db.query([[
        SELECT u.id, u.email, u.name, u.role, o.id AS org_id, o.name AS org_name, o.industry, o.business_id
        FROM users u JOIN organizations o ON o.id = u.tenant_id
        WHERE u.id = $1]], user_id)
    if not rows then return nil, err end
    local r = rows[1]
    if not r then return nil end
    return {
        id = r.id, email = r.email, name = r.name, role = r.role,
        organization = { id = r.org_id, name = r.org_name, industry = r.industry, business_id = r.business_id },
    }
end

-- Routes for signed-in people only (an API key has no password, profile or session).
local function user_only(req)
    local who = req.identity
    if who.kind ~= "user" or not who.user_id then
        return problem.new(403, "forbidden", "This needs a signed-in user; API keys have no account of their own.")
    end
    return nil
end

-- A hash made with older argon2 parameters is replaced while the password is at hand (the only
-- moment it is). Best effort: the sign-in goes on if this fails; the old hash still verifies.
-- The WHERE on the old hash keeps a password changed meanwhile from being overwritten.
local function rehash_if_outdated(account, hash, password)
    if not auth.password_needs_rehash(hash) then return end
    local fresh, herr = auth.hash_password(password)
    local ok, err = fresh ~= nil, herr
    if fresh then
        ok, err = db.query("UPDATE users SET password_hash = $3, updated_at = now() WHERE id = $1 AND password_hash = $2",
            account.user_id, hash, fresh)
    end
    if not ok then pulse.log("warn", "password_rehash_failed", "user " .. account.user_id .. ": " .. tostring(err)) end
end

-- The one login path for both forms. Unknown e-mail and wrong password cost the same (a dummy
-- verification, one audit insert) and answer the same.
local function login(req, email, password)
    local limited = rate_limited("login_ip", limits.address_key(req.remote_addr), "sign-in attempts from this address")
        or rate_limited("login_account", email:lower(), "sign-in attempts for this account")
    if limited then return limited end
    local rows, err = db.query("SELECT user_id, tenant_id, role, password_hash FROM pulse_login_lookup($1)", email)
    if not rows then return nil, err end
    local account = rows[1]
    local hash = account and account.password_hash ~= json.null and account.password_hash or nil
    local ok, verr = auth.verify_password(hash, password)
    if ok == nil then return nil, verr end -- busy (worker queue full) or shutting down
    if not ok or not account then
        local detail = { email = email:lower(), reason = account and "wrong_password" or "unknown_account" }
        if account then act_for(req, account.tenant_id) end -- else audit_log untenanted
        local logged, aerr = audit.record(req, "login_failed", detail, account and account.user_id or nil)
        if not logged then return nil, aerr end
        return bad_credentials()
    end
    act_for(req, account.tenant_id)
    rehash_if_outdated(account, hash, password)
    local tokens, ierr = sessions.issue(account.tenant_id, account.user_id, account.role)
    if not tokens then return nil, ierr end
    local logged, aerr = audit.record(req, "login_succeeded", { method = "password" }, account.user_id)
    if not logged then return nil, aerr end
    return response.ok(tokens)
end

local function form_media_type(req)
    local ct = req.headers["content-type"]
    return ct and (ct:match("^%s*([^;%s]+)") or ""):lower()
end

return function(routes)
    routes:add {
        method = "POST", path = "/api/v1/auth/register", role = "public", tags = { "auth" },
        summary = "Create an organization and its owner; signs the owner in",
        description = "Creates the organization and its first user (role owner) together, or nothing. " ..
            "Limited per client address (429 with Retry-After).",
        body = RegisterBody,
        responses = {
            [201] = { description = "Registered and signed in", schema = Registered },
            [409] = "email_taken", [429] = "rate_limited",
        },
        handler = function(req)
            local b = req.json
            local email = b.email:lower()
            local limited = rate_limited("register_ip", limits.address_key(req.remote_addr), "sign-ups from this address")
                or rate_limited("register_account", email, "sign-ups for this e-mail address")
            if limited then return limited end
            local weak = weak_password("body.password", b.password, policy_words(email, b.name, b.organization))
            if weak then return weak end
            local hash, herr = auth.hash_password(b.password)
            if not hash then return nil, herr end
            local rows, err = db.query(
                "SELECT tenant_id, business_id, user_id FROM pulse_register($1, $2, $3, $4, $5)",
                b.organization, b.industry, email, b.name, hash)
            if not rows then
                if err.sqlstate == "23505" then
                    return problem.conflict("email_taken", "An account with this e-mail address already exists.")
                end
                return nil, err
            end
            local r = rows[1]
            act_for(req, r.tenant_id)
            local tokens, ierr = sessions.issue(r.tenant_id, r.user_id, "owner")
            if not tokens then return nil, ierr end
            local logged, aerr = audit.record(req, "registered", { organization = b.organization }, r.user_id)
            if not logged then return nil, aerr end
            return response.created {
                user = { id = r.user_id, email = email, name = b.name, role = "owner" },
                organization = { id = r.tenant_id, name = b.organization, industry = b.industry, business_id = r.business_id },
                access_token = tokens.access_token, token_type = tokens.token_type,
                refresh_token = tokens.refresh_token, expires_in = tokens.expires_in,
            }
        end,
    }

    routes:add {
        method = "POST", path = "/api/v1/auth/login", role = "public", tags = { "auth" },
        summary = "Sign in with an OAuth2 password form (username = e-mail)",
        description = "application/x-www-form-urlencoded: username, password (grant_type=password optional). " ..
            "An unknown e-mail and a wrong password answer the same 401, in the same time. " ..
            "Limited per client address and per account (429 with Retry-After).",
        body_content_type = FORM_TYPE, body = LoginForm,
        responses = {
            [200] = { description = "Signed in", schema = Tokens },
            [401] = "invalid_credentials", [415] = "unsupported_media_type", [429] = "rate_limited",
        },
        handler = function(req)
            local form = {}
            if req.body_length > 0 then
                if form_media_type(req) ~= FORM_TYPE then
                    return problem.new(415, "unsupported_media_type",
                        "Send the form with 'Content-Type: " .. FORM_TYPE .. "'.")
                end
                form = middleware.parse_query(req.body)
            end
            local ok, errors = schema.validate(LoginForm, form, "body")
            if not ok then return problem.validation(errors) end
            return login(req, form.username, form.password)
        end,
    }

    routes:add {
        method = "POST", path = "/api/v1/auth/login/json", role = "public", tags = { "auth" },
        summary = "Sign in with a JSON body",
        description = "Same as the form login, with {email, password}.",
        body = LoginJson,
        responses = {
            [200] = { description = "Signed in", schema = Tokens },
            [401] = "invalid_credentials", [429] = "rate_limited",
        },
        handler = function(req)
            return login(req, req.json.email, req.json.password)
        end,
    }

    routes:add {
        method = "POST", path = "/api/v1/auth/refresh", role = "public", tags = { "auth" },
        summary = "Exchange a refresh token for new tokens (rotation)",
        description = "The refresh token is single use: the answer carries its successor. Presenting a " ..
            "token that was already rotated revokes its whole family (401 refresh_reused).",
        body = { type = "object", additionalProperties = false, required = { "refresh_token" },
                 properties = { refresh_token = RefreshToken } },
        responses = {
            [200] = { description = "New tokens", schema = Tokens },
            [401] = "invalid_refresh_token", [429] = "rate_limited",
        },
        handler = function(req)
            local limited = rate_limited("refresh_ip", limits.address_key(req.remote_addr), "refreshes from this address")
            if limited then return limited end
            local rows, err = db.query([[
                SELECT id, tenant_id, user_id, family_id, role, rotated_at IS NOT NULL AS rotated,
                       revoked_at IS NOT NULL AS revoked, expires_at <= now() AS expired
                FROM pulse_refresh_lookup(decode($1, 'hex'))]], auth.digest(req.json.refresh_token))
            if not rows then return nil, err end
            local t = rows[1]
            if not t then return bad_refresh("invalid_refresh_token", "The refresh token is not valid.") end
            act_for(req, t.tenant_id)
            if t.revoked or t.expired then
                return bad_refresh("invalid_refresh_token", "The refresh token has expired or was revoked: sign in again.")
            end
            local function reused()
                local n, rerr = sessions.revoke_family(t.family_id)
                if not n then return nil, rerr end
                local logged, aerr = audit.record(req, "refresh_reuse", { family_id = t.family_id, revoked = n }, t.user_id)
                if not logged then return nil, aerr end
                return bad_refresh("refresh_reused",
                    "This refresh token was already used; every session of this sign-in is revoked. Sign in again.")
            end
            if t.rotated then return reused() end
            local REUSED = {}
            local tokens, terr = db.tx(function()
                local updated, n = db.query(
                    "UPDATE refresh_tokens SET rotated_at = now() WHERE id = $1 AND rotated_at IS NULL AND revoked_at IS NULL",
                    t.id)
                if not updated then return nil, n end
                if n ~= 1 then return nil, REUSED end -- a concurrent refresh with the same token won
                return sessions.issue(t.tenant_id, t.user_id, t.role, t.family_id)
            end)
            if terr == REUSED then return reused() end
            if not tokens then return nil, terr end
            return response.ok(tokens)
        end,
    }

    routes:add {
        method = "POST", path = "/api/v1/auth/logout", role = "viewer", tags = { "auth" },
        summary = "Sign out: revoke a refresh token's family, or every session of the user",
        description = "With {refresh_token}: that sign-in's tokens are revoked. Without a body: all of the " ..
            "user's refresh tokens. Access tokens stay valid until they expire (at most 15 minutes).",
        body = { type = "object", additionalProperties = false, properties = { refresh_token = RefreshToken } },
        body_required = false,
        responses = { [204] = { description = "Signed out" } },
        handler = function(req)
            local refused = user_only(req)
            if refused then return refused end
            local user_id = req.identity.user_id
            local token = req.json and req.json.refresh_token
            local rows, err
            if token then
                rows, err = db.query([[
                    UPDATE refresh_tokens SET revoked_at = now()
                    WHERE revoked_at IS NULL AND family_id IN
                        (SELECT family_id FROM refresh_tokens WHERE token_hash = decode($1, 'hex') AND user_id = $2)]],
                    auth.digest(token), user_id)
            else
                rows, err = sessions.revoke_user(user_id)
            end
            if not rows then return nil, err end
            local logged, aerr = audit.record(req, "logout", { scope = token and "session" or "all" })
            if not logged then return nil, aerr end
            return response.no_content()
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/auth/me", role = "viewer", tags = { "auth" },
        summary = "The signed-in user and their organization",
        responses = { [200] = { description = "The caller's profile", schema = Profile } },
        handler = function(req)
            local refused = user_only(req)
            if refused then return refused end
            local profile, err = load_profile(req.identity.user_id)
            if profile then return response.ok(profile) end
            if err then return nil, err end
            return problem.unauthorized("This account no longer exists.")
        end,
    }

    routes:add {
        method = "PUT", path = "/api/v1/users/me", role = "viewer", tags = { "auth" },
        summary = "Update the signed-in user's profile",
        body = { type = "object", additionalProperties = false, required = { "name" }, properties = { name = PersonName } },
        responses = { [200] = { description = "The updated profile", schema = Profile } },
        handler = function(req)
            local refused = user_only(req)
            if refused then return refused end
            local user_id = req.identity.user_id
            local rows, err = db.query("UPDATE users SET name = $2, updated_at = now() WHERE id = $1", user_id, req.json.name)
            if not rows then return nil, err end
            local profile, perr = load_profile(user_id)
            if profile then return response.ok(profile) end
            if perr then return nil, perr end
            return problem.unauthorized("This account no longer exists.")
        end,
    }

    routes:add {
        method = "PUT", path = "/api/v1/users/me/password", role = "viewer", tags = { "auth" },
        summary = "Change the signed-in user's password",
        description = "Needs the current password. Signs out every session of the user (refresh tokens revoked). " ..
            "Wrong current passwords are limited like sign-ins (429 with Retry-After).",
        body = {
            type = "object", additionalProperties = false, required = { "current_password", "new_password" },
            properties = { current_password = Password, new_password = NewPassword },
        },
        responses = {
            [204] = { description = "Changed" },
            [403] = "invalid_current_password", [429] = "rate_limited",
        },
        handler = function(req)
            local refused = user_only(req)
            if refused then return refused end
            local user_id = req.identity.user_id
            local b = req.json
            local limited = rate_limited("password_change", tostring(user_id), "password attempts for this account")
            if limited then return limited end
            local rows, err = db.query([[
                SELECT u.email, u.name, u.password_hash, o.name AS org_name
                FROM users u JOIN organizations o ON o.id = u.tenant_id WHERE u.id = $1]], user_id)
            if not rows then return nil, err end
            local u = rows[1]
            if not u then return problem.unauthorized("This account no longer exists.") end
            local ok, verr = auth.verify_password(u.password_hash ~= json.null and u.password_hash or nil, b.current_password)
            if ok == nil then return nil, verr end
            if not ok then
                local logged, aerr = audit.record(req, "password_change_failed", { reason = "wrong_password" })
                if not logged then return nil, aerr end
                return problem.new(403, "invalid_current_password", "The current password is wrong.",
                    { errors = { { field = "body.current_password", code = "wrong_password", message = "is not your current password" } } })
            end
            if b.new_password == b.current_password then
                return problem.validation { { field = "body.new_password", code = "unchanged",
                    message = "must differ from the current password" } }
            end
            local weak = weak_password("body.new_password", b.new_password, policy_words(u.email, u.name, u.org_name))
            if weak then return weak end
            local hash, herr = auth.hash_password(b.new_password)
            if not hash then return nil, herr end
            local done, terr = db.tx(function()
                local r, e = db.query([[UPDATE users SET password_hash = $2, password_changed_at = now(), updated_at = now()
                                         WHERE id = $1]], user_id, hash)
                if not r then return nil, e end
                local n, re = sessions.revoke_user(user_id)
                if not n then return nil, re end
                return audit.record(req, "password_changed", { sessions_revoked = n })
            end)
            if not done then return nil, terr end
            return response.no_content()
        end,
    }
end
