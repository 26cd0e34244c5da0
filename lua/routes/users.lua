-- The users of a tenant, managed by its owners: list, invite (a user without a password and an
-- invitation token shown once), change a role, remove; and the public step where an invited user
-- chooses a password with that token. The tenant is always the caller's (req.tenant); rows of
-- other tenants are invisible under Row-Level Security and answer 404. A tenant keeps at least
-- one owner: demoting or removing the last one answers 409.
local auth = require "auth"
local db = require "db"
local json = require "json"
local audit = require "audit"
local problem = require "problem"
local response = require "response"
local limits = require "limits"
local schema = require "schema"

local INVITATION_TTL = "7 days"

local Role = { type = "string", enum = { "owner", "analyst", "viewer" } }

local User = schema.component("User", {
    type = "object",
    required = { "id", "email", "name", "role", "created_at" },
    properties = {
        id = { type = "integer" },
        email = { type = "string", format = "email" },
        name = { type = "string" },
        role = Role,
        created_at = { type = "string", format = "date-time" },
    },
})

local InvitedUser = schema.component("InvitedUser", {
    type = "object",
    required = { "id", "email", "name", "role", "created_at", "invitation_token", "invitation_expires_at" },
    properties = {
        id = { type = "integer" },
        email = { type = "string", format = "email" },
        name = { type = "string" },
        role = Role,
        created_at = { type = "string", format = "date-time" },
        invitation_token = { type = "string", description = "Shown only in this answer: give it to the invited user." },
        invitation_expires_at = { type = "string", format = "date-time" },
    },
})

local UserList = response.list_schema("UserList", User)


local USER_ID = { id = { type = "integer", minimum = 1, description = "The user's id." } }

local function page(req)
    return req.query.limit or 50, req.query.offset or 0
end

-- Locks the tenant's owners (so two owners demoting each other cannot both succeed) and the
-- target user; -> target row | nil (no such user in this tenant), owner count.
local function lock_for_change(req, id)
    -- only owners who can sign in count: a pending invitation is nobody yet
    local owners, err = db.query([[SELECT id FROM users WHERE tenant_id = $1 AND role = 'owner'
                                   AND password_hash IS NOT NULL ORDER BY id FOR UPDATE]], req.tenant)
    if not owners then error(err, 0) end
    local rows
    rows, err = db.query("SELECT id, email, role FROM users WHERE tenant_id = $1 AND id = $2 FOR UPDATE", req.tenant, id)
    if not rows then error(err, 0) end
    return rows[1], #owners
end

return function(routes)
    routes:add {
        method = "GET", path = "/api/v1/users", role = "owner", tags = { "users" },
        summary = "List the organization's users",
        query = response.page(),
        responses = { [200] = { description = "A page of users, oldest first", schema = UserList } },
        handler = function(req)
            local limit, offset = page(req)
            local rows, err = db.query([[
                SELECT id, email, name, role, created_at, count(*) OVER () AS total
                FROM users WHERE tenant_id = $1 ORDER BY id LIMIT $2 OFFSET $3]], req.tenant, limit, offset)
            if not rows then return nil, err end
            local total = rows[1] and rows[1].total
            if not total then
                local c
                c, err = db.query("SELECT count(*) AS n FROM users WHERE tenant_id = $1", req.tenant)
                if not c then return nil, err end
                total = c[1].n
            end
            for _, r in ipairs(rows) do r.total = nil end
            return response.list(rows, total, limit, offset)
        end,
    }

    routes:add {
        method = "POST", path = "/api/v1/users", role = "owner", tags = { "users" },
        summary = "Invite a user",
        description = "Creates the user without a password and answers an invitation token, shown only here; " ..
            "the invited user sets a password with POST /api/v1/auth/accept-invite within 7 days.",
        body = {
            type = "object", required = { "email", "name", "role" }, additionalProperties = false,
            properties = {
                email = { type = "string", format = "email", maxLength = 254 },
                name = { type = "string", minLength = 1, maxLength = 200 },
                role = Role,
            },
        },
        responses = {
            [201] = { description = "The invited user, with the invitation token (shown once)", schema = InvitedUser },
            [409] = "conflict", [429] = "rate_limited",
        },
        handler = function(req)
            local body = req.json
            -- invitations probe for registered addresses (409): not an unlimited oracle
            local limited = limits.check("invite_tenant", req.tenant, "invitations from this organization")
            if limited then return limited end
            local token = auth.random_token(32)
            local who = req.identity
            local created_by = who.user_id or json.null
            local result, err = db.tx(function()
                local rows, e = db.query([[
                    INSERT INTO users (tenant_id, email, name, role) VALUES ($1, lower($2), $3, $4)
                    RETURNING id, email, name, role, created_at]], req.tenant, body.email, body.name, body.role)
                if not rows then
                    if e.sqlstate == "23505" then
                        error(problem.conflict("email_taken", "An account with this e-mail address already exists."), 0)
                    end
                    error(e, 0)
                end
                local user = rows[1]
                local inv
                inv, e = db.query([[
                    INSERT INTO invitations (tenant_id, user_id, token_hash, created_by, expires_at)
                    VALUES ($1, $2, decode($3, 'hex'), $4, now() + $5::interval) RETURNING expires_at]],
                    req.tenant, user.id, auth.digest(token), created_by, INVITATION_TTL)
                if not inv then error(e, 0) end
                user.invitation_expires_at = inv[1].expires_at
                local ok
                ok, e = audit.record(req, "user_invited", { user_id = user.id, email = user.email, role = user.role })
                if not ok then error(e, 0) end
                return user
            end)
            if not result then return nil, err end
            result.invitation_token = token
            return response.created(result)
        end,
    }

    routes:add {
        method = "PUT", path = "/api/v1/users/{id}/role", role = "owner", tags = { "users" },
        summary = "Change a user's role",
        params = USER_ID,
        body = {
            type = "object", required = { "role" }, additionalProperties = false,
            properties = { role = Role },
        },
        responses = {
            [200] = { description = "The user with the new role", schema = User },
            [404] = "not_found",
            [409] = "conflict",
        },
        handler = function(req)
            local id, role = req.params.id, req.json.role
            local result, err = db.tx(function()
                local target, owners = lock_for_change(req, id)
                if not target then error(problem.not_found("No user " .. id .. "."), 0) end
                if target.role == "owner" and role ~= "owner" and owners <= 1 then
                    error(problem.conflict("last_owner", "This is the organization's last owner; make another user owner first."), 0)
                end
                local rows, e = db.query([[
                    UPDATE users SET role = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2
                    RETURNING id, email, name, role, created_at]], req.tenant, id, role)
                if not rows then error(e, 0) end
                if target.role ~= role then
                    -- keys the user made may not keep more than the user now has
                    local revoked
                    revoked, e = db.query([[UPDATE api_keys SET revoked_at = now()
                        WHERE tenant_id = $1 AND created_by = $2 AND revoked_at IS NULL
                          AND (CASE role WHEN 'owner' THEN 3 WHEN 'analyst' THEN 2 ELSE 1 END) >
                              (CASE $3::text WHEN 'owner' THEN 3 WHEN 'analyst' THEN 2 ELSE 1 END)]], req.tenant, id, role)
                    if not revoked then error(e, 0) end
                    local ok
                    ok, e = audit.record(req, "role_changed", { user_id = id, from = target.role, to = role })
                    if not ok then error(e, 0) end
                end
                return rows[1]
            end)
            if not result then return nil, err end
            return response.ok(result)
        end,
    }

    routes:add {
        method = "DELETE", path = "/api/v1/users/{id}", role = "owner", tags = { "users" },
        summary = "Remove a user",
        description = "Removes the user, their sessions, pending invitation and the API keys they made. "
            .. "The last owner cannot be removed.",
        params = USER_ID,
        responses = {
            [204] = { description = "Removed" },
            [404] = "not_found",
            [409] = "conflict",
        },
        handler = function(req)
            local id = req.params.id
            local result, err = db.tx(function()
                local target, owners = lock_for_change(req, id)
                if not target then error(problem.not_found("No user " .. id .. "."), 0) end
                if target.role == "owner" and owners <= 1 then
                    error(problem.conflict("last_owner", "This is the organization's last owner; it cannot be removed."), 0)
                end
                -- the keys the user made leave with them: a removed person keeps no way in
                local rows, e = db.query([[UPDATE api_keys SET revoked_at = now()
                                           WHERE tenant_id = $1 AND created_by = $2 AND revoked_at IS NULL]], req.tenant, id)
                if not rows then error(e, 0) end
                rows, e = db.query("DELETE FROM users WHERE tenant_id = $1 AND id = $2", req.tenant, id)
                if not rows then error(e, 0) end
                local ok
                ok, e = audit.record(req, "user_removed", { user_id = id, email = target.email, role = target.role })
                if not ok then error(e, 0) end
                return true
            end)
            if not result then return nil, err end
            return response.no_content()
        end,
    }

    routes:add {
        method = "POST", path = "/api/v1/auth/accept-invite", role = "public", tags = { "auth" },
        summary = "Accept an invitation: choose a password",
        description = "The invitation token comes from the owner who invited the user; it works once, for 7 days. " ..
            "Sign in afterwards with the e-mail address and this password.",
        body = {
            type = "object", required = { "invitation_token", "password" }, additionalProperties = false,
            properties = {
                invitation_token = { type = "string", minLength = 1, maxLength = 200 },
                password = { type = "string", minLength = 1, maxLength = 1024 },
            },
        },
        responses = {
            [200] = { description = "The password is set", schema = {
                type = "object", properties = { user_id = { type = "integer" }, email = { type = "string" } } } },
            [404] = "not_found",
            [429] = "rate_limited",
        },
        handler = function(req)
            local limited = limits.check("accept_invite", limits.address_key(req.remote_addr),
                "invitation attempts from this address", "login_ip")
            if limited then return limited end
            local body = req.json
            if #body.password > 1024 then
                return problem.validation { { field = "body.password", code = "too_long", message = "must be at most 1024 bytes" } }
            end
            local digest = auth.digest(body.invitation_token)
            local rows, err = db.query("SELECT user_id, tenant_id, email FROM pulse_invitation_lookup(decode($1, 'hex'))", digest)
            if not rows then return nil, err end
            local invited = rows[1]
            if not invited then
                return problem.not_found("The invitation is unknown, used or expired; ask an owner for a new one.")
            end
            local ok, why = auth.check_password_policy(body.password, { invited.email })
            if not ok then
                return problem.validation { { field = "body.password", code = "weak_password", message = why } }
            end
            local hash, herr = auth.hash_password(body.password)
            if not hash then error(herr, 0) end
            rows, err = db.query("SELECT user_id, tenant_id, role FROM pulse_invitation_accept(decode($1, 'hex'), $2)", digest, hash)
            if not rows then return nil, err end
            local accepted = rows[1]
            if not accepted then
                return problem.not_found("The invitation is unknown, used or expired; ask an owner for a new one.")
            end
            -- the tenant is known now: the audit event is the tenant's
            db.set_tenant(accepted.tenant_id)
            req.tenant = accepted.tenant_id
            local recorded
            recorded, err = audit.record(req, "invitation_accepted", { user_id = accepted.user_id }, accepted.user_id)
            if not recorded then return nil, err end
            return response.ok { user_id = accepted.user_id, email = invited.email }
        end,
    }
end
