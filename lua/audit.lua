-- Security events (login ok/failed, refresh reuse, key created/revoked, role changed...), written
-- to audit_log for the owners of the tenant to read. Events before a tenant is known go through
-- pulse_audit_untenanted. The detail never holds a secret (no password, token or key).
local db = require "db"
local json = require "json"

local audit = {}

-- audit.record(req, event, detail) -> true | nil, err. Uses the request's tenant (its identity,
-- or the one set by an auth handler with db.set_tenant) and user when known.
function audit.record(req, event, detail, user_id)
    local who = req.identity
    local uid = user_id or (who and who.user_id) or json.null
    local ip = req.remote_addr ~= "" and req.remote_addr or json.null
    local rows, err
    if req.tenant then
        rows, err = db.query("INSERT INTO audit_log (tenant_id, user_id, event, detail, ip) VALUES ($1, $2, $3, $4, $5)",
            req.tenant, uid, event, detail or {}, ip)
    else
        rows, err = db.query("SELECT pulse_audit_untenanted($1, $2, $3)", event, detail or {}, ip)
    end
    if not rows then return nil, err end
    return true
end

return audit
