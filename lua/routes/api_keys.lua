-- API keys for servers, managed by owners: create (the key is shown once, in the creation answer,
-- and stored only as its SHA-256 digest), list (prefix and last use, never the key), revoke.
-- A key acts for the caller's organization with its own role, which may not exceed its creator's.
-- Callers send it as `Authorization: Bearer pk_...` (identity.lua).
local auth = require "auth"
local db = require "db"
local json = require "json"
local audit = require "audit"
local identity = require "identity"
local problem = require "problem"
local response = require "response"
local schema = require "schema"

local PREFIX_LEN = 11 -- "pk_" and 8 characters of the random part

local Role = { type = "string", enum = { "owner", "analyst", "viewer" } }
local Timestamp = { type = "string", format = "date-time" }
local MaybeTimestamp = { type = { "string", "null" }, format = "date-time" }

local ApiKey = schema.component("ApiKey", {
    type = "object",
    required = { "id", "name", "role", "prefix", "created_at", "last_used_at", "revoked_at" },
    properties = {
        id = { type = "string", format = "uuid" },
        name = { type = "string" },
        role = Role,
        prefix = { type = "string", description = "The key's first characters, to recognise it." },
        created_at = Timestamp,
        last_used_at = MaybeTimestamp,
        revoked_at = MaybeTimestamp,
    },
})

local CreatedApiKey = schema.component("CreatedApiKey", {
    type = "object",
    required = { "id", "name", "role", "prefix", "key", "created_at" },
    properties = {
        id = { type = "string", format = "uuid" },
        name = { type = "string" },
        role = Role,
        prefix = { type = "string" },
        key = { type = "string", description = "The key itself: shown only in this answer, never again." },
        created_at = Timestamp,
    },
})

local ApiKeyList = response.list_schema("ApiKeyList", ApiKey)


return function(routes)
    routes:add {
        method = "POST", path = "/api/v1/api-keys", role = "owner", tags = { "api-keys" },
        summary = "Create an API key (shown once)",
        body = {
            type = "object", required = { "name", "role" }, additionalProperties = false,
            properties = {
                name = { type = "string", minLength = 1, maxLength = 100 },
                role = Role,
            },
        },
        responses = {
            [201] = { description = "The key, with its secret (shown only here)", schema = CreatedApiKey },
        },
        handler = function(req)
            local who = req.identity
            local body = req.json
            if not identity.allows(who.role, body.role) then
                return problem.new(403, "forbidden", ("A key's role may not exceed yours (%s)."):format(who.role))
            end
            local key = "pk_" .. auth.random_token(32)
            local prefix = key:sub(1, PREFIX_LEN)
            local result, err = db.tx(function()
                local rows, e = db.query([[
                    INSERT INTO api_keys (tenant_id, name, prefix, key_hash, role, created_by)
                    VALUES ($1, $2, $3, decode($4, 'hex'), $5, $6)
                    RETURNING id, name, role, prefix, created_at]],
                    req.tenant, body.name, prefix, auth.digest(key), body.role, who.user_id or json.null)
                if not rows then error(e, 0) end
                local ok
                ok, e = audit.record(req, "api_key_created",
                    { key_id = rows[1].id, name = body.name, role = body.role, prefix = prefix })
                if not ok then error(e, 0) end
                return rows[1]
            end)
            if not result then return nil, err end
            result.key = key
            return response.created(result)
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/api-keys", role = "owner", tags = { "api-keys" },
        summary = "List the organization's API keys (never the keys themselves)",
        query = response.page(),
        responses = { [200] = { description = "A page of keys, newest first", schema = ApiKeyList } },
        handler = function(req)
            local limit, offset = req.query.limit or 50, req.query.offset or 0
            local rows, err = db.query([[
                SELECT id, name, role, prefix, created_at, last_used_at, revoked_at
                FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3]],
                req.tenant, limit, offset)
            if not rows then return nil, err end
            local c
            c, err = db.query("SELECT count(*) AS n FROM api_keys WHERE tenant_id = $1", req.tenant)
            if not c then return nil, err end
            return response.list(rows, c[1].n, limit, offset)
        end,
    }

    routes:add {
        method = "DELETE", path = "/api/v1/api-keys/{id}", role = "owner", tags = { "api-keys" },
        summary = "Revoke an API key",
        description = "The key stops working at once. Revoking a revoked key again changes nothing.",
        params = { id = { type = "string", format = "uuid", description = "The key's id." } },
        responses = { [204] = { description = "Revoked" }, [404] = "not_found" },
        handler = function(req)
            local id = req.params.id
            local result, err = db.tx(function()
                local rows, e = db.query(
                    "SELECT id, name, revoked_at FROM api_keys WHERE tenant_id = $1 AND id = $2 FOR UPDATE", req.tenant, id)
                if not rows then error(e, 0) end
                local row = rows[1]
                if not row then error(problem.not_found("No API key " .. id .. "."), 0) end
                if row.revoked_at ~= json.null then return true end
                rows, e = db.query("UPDATE api_keys SET revoked_at = now() WHERE tenant_id = $1 AND id = $2", req.tenant, id)
                if not rows then error(e, 0) end
                local ok
                ok, e = audit.record(req, "api_key_revoked", { key_id = id, name = row.name })
                if not ok then error(e, 0) end
                return true
            end)
            if not result then return nil, err end
            return response.no_content()
        end,
    }
end
