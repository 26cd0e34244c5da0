-- The organization's audit log of security events (sign-ins, refresh reuse, keys created and
-- revoked, roles changed, users invited and removed), newest first, for its owners.
local db = require "db"
local response = require "response"
local schema = require "schema"

local AuditEvent = schema.component("AuditEvent", {
    type = "object",
    required = { "id", "event", "detail", "user_id", "ip", "created_at" },
    properties = {
        id = { type = "integer" },
        event = { type = "string", description = "e.g. login_ok, login_failed, api_key_created, role_changed." },
        detail = { type = "object", description = "Event details; never a secret." },
        user_id = { type = { "integer", "null" }, description = "The user who acted, when one did." },
        ip = { type = { "string", "null" }, description = "The client address." },
        created_at = { type = "string", format = "date-time" },
    },
})

local AuditEventList = response.list_schema("AuditEventList", AuditEvent)

return function(routes)
    routes:add {
        method = "GET", path = "/api/v1/audit", role = "owner", tags = { "audit" },
        summary = "Read the audit log (newest first)",
        query = response.page {
            event = { type = "string", minLength = 1, maxLength = 100, description = "Only events of this kind." },
        },
        responses = { [200] = { description = "A page of events, newest first", schema = AuditEventList } },
        handler = function(req)
            local q = req.query
            local limit, offset = q.limit or 50, q.offset or 0
            local rows, err = db.query([[
                SELECT id, event, detail, user_id, host(ip) AS ip, created_at FROM audit_log
                WHERE tenant_id = $1 AND ($2::text IS NULL OR event = $2)
                ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4]], req.tenant, q.event, limit, offset)
            if not rows then return nil, err end
            local c
            c, err = db.query("SELECT count(*) AS n FROM audit_log WHERE tenant_id = $1 AND ($2::text IS NULL OR event = $2)",
                req.tenant, q.event)
            if not c then return nil, err end
            return response.list(rows, c[1].n, limit, offset)
        end,
    }
end
