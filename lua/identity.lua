-- Who is calling: the Authorization header's bearer credential, either an access token (JWT,
-- verified in C in microseconds) or an API key (pk_..., looked up by its SHA-256 digest). The
-- identity's tenant is the only tenant a request ever acts for: it is set on the database
-- context here (db.set_tenant), never taken from the request's own data.
local auth = require "auth"
local db = require "db"
local json = require "json"
local problem = require "problem"
local limits = require "limits"

local identity = {}

local RANK = { viewer = 1, analyst = 2, owner = 3 }

-- true when a caller with role `have` may use a route that requires `need`
function identity.allows(have, need)
    return (RANK[have] or 0) >= (RANK[need] or math.huge)
end

local function bearer(req)
    local header = req.headers.authorization
    if not header then return nil end
    return header:match("^[Bb]earer%s+(%S+)%s*$")
end

local function from_api_key(key)
    local rows, err = db.query("SELECT id, tenant_id, role FROM pulse_api_key_lookup(decode($1, 'hex'))", auth.digest(key))
    if not rows then return nil, err end
    local row = rows[1]
    if not row then return nil, "invalid_api_key" end
    return { kind = "api_key", key_id = row.id, tenant = row.tenant_id, role = row.role, subject = "key:" .. row.id }
end

local function from_token(token)
    local claims, code = auth.verify_token(token)
    if not claims then return nil, code end
    return { kind = "user", user_id = math.tointeger(tonumber(claims.sub)), tenant = claims.tenant, role = claims.role,
             subject = "user:" .. claims.sub, token = claims }
end

-- A token says who the user was when it was issued; the database says who they are now. A
-- removed user, a changed role or a password changed after the token was issued must not ride
-- on an old token for its remaining minutes (a demoted owner could otherwise promote themselves
-- back). One indexed query per request, pipelined with the others.
local function current_user(who)
    local rows, err = db.query([[SELECT role, floor(extract(epoch FROM password_changed_at))::bigint AS changed
                                 FROM users WHERE id = $1]], who.user_id)
    if not rows then return nil, err end
    local row = rows[1]
    if not row then return nil, "user_removed" end
    if row.changed ~= json.null and who.token.iat < row.changed then return nil, "password_changed" end
    who.role = row.role
    return who
end

-- -> identity | nil, problem. Sets the request's tenant on success.
function identity.authenticate(req)
    local credential = bearer(req)
    if not credential then
        return nil, problem.unauthorized("Send 'Authorization: Bearer <access token or API key>'.")
    end
    local who, why
    if credential:sub(1, 3) == "pk_" then
        who, why = from_api_key(credential)
        if not who and type(why) == "table" then return nil, problem.from_db(why) or problem.internal() end
    else
        who, why = from_token(credential)
    end
    if not who then
        return nil, problem.unauthorized(why == "expired" and "The access token has expired: refresh it."
            or "The credential is not valid.")
    end
    db.set_tenant(who.tenant) -- before any query made for this identity
    if who.kind == "user" then
        who, why = current_user(who)
        if not who then
            if type(why) == "table" then return nil, problem.from_db(why) or problem.internal() end
            return nil, problem.unauthorized("The credential is no longer valid: sign in again.")
        end
    end
    local limited = limits.check("api", who.subject, "requests for this credential")
    if limited then return nil, limited end
    req.identity, req.tenant = who, who.tenant
    return who
end

return identity
