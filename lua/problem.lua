-- Problem details (RFC 9457) with a stable machine `code`: the one shape of every error answer.
-- Handlers return or raise these; app.handle turns anything else into a 500 without internals.
local problem = {}

local mt = { __name = "pulse.problem" }
mt.__index = mt

local titles = {
    [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
    [405] = "Method Not Allowed", [409] = "Conflict", [413] = "Content Too Large",
    [415] = "Unsupported Media Type", [422] = "Unprocessable Content", [429] = "Too Many Requests",
    [500] = "Internal Server Error", [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

-- problem.new(status, code, detail, extra) -> problem
-- extra: optional fields merged into the body (e.g. errors = {...}); extra.headers is sent as headers.
function problem.new(status, code, detail, extra)
    local p = setmetatable({ status = status, code = code, title = titles[status] or "Error", detail = detail }, mt)
    if extra then
        for k, v in pairs(extra) do
            p[k] = v
        end
    end
    return p
end

function problem.is(v)
    return getmetatable(v) == mt
end

function problem.bad_request(code, detail, extra) return problem.new(400, code, detail, extra) end
function problem.not_found(detail) return problem.new(404, "not_found", detail or "No such resource.") end
function problem.conflict(code, detail) return problem.new(409, code, detail) end
function problem.unauthorized(detail)
    return problem.new(401, "unauthorized", detail or "Authentication required.",
        { headers = { ["www-authenticate"] = 'Bearer realm="pulse"' } })
end

-- 422 with every offending field: errors = {{field=, code=, message=}, ...}
function problem.validation(errors)
    local n = #errors
    local detail = n == 1 and errors[1].message or (n .. " fields are invalid; see errors.")
    return problem.new(422, "validation_failed", detail, { errors = errors })
end

-- Maps an error value from db.query (nil, err) to the problem the client should see.
function problem.from_db(err)
    if err.code == "db_unavailable" then
        return problem.new(503, "db_unavailable", "The database is unavailable; try again shortly.",
            { headers = { ["retry-after"] = "2" } })
    elseif err.code == "db_timeout" then
        return problem.new(503, "db_timeout", "The database took too long to answer; try again later.",
            { headers = { ["retry-after"] = "5" } })
    end
    return nil -- any other database error is a bug: 500
end

-- Maps an expected failure of a C binding other than the database (auth: the worker queue full).
function problem.from_binding(err)
    if err.code == "busy" then
        return problem.new(503, "busy", "The server is busy; try again shortly.", { headers = { ["retry-after"] = "1" } })
    end
    return nil
end

function problem.internal()
    return problem.new(500, "internal_error", "The server failed to handle the request. The request id identifies it in the logs.")
end

-- The JSON body: the problem's fields without transport-only ones.
function problem.body(p, request_id)
    local body = { type = p.type or "about:blank", request_id = request_id }
    for k, v in pairs(p) do
        if k ~= "headers" then
            body[k] = v
        end
    end
    return body
end

return problem
