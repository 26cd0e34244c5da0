-- The request pipeline, in order: CORS (and preflight), route matching (404/405), the caller's
-- identity and role for non-public routes (401/403/429; identity.lua), body size (413), request
-- validation (400/415/422), then the handler. Request id, access
-- log and the timing header are done in C around all of this; error mapping is in app.lua.
local json = require "json"
local pulse = require "pulse"
local problem = require "problem"
local schema = require "schema"
local identity = require "identity"

local middleware = {}

local config = pulse.config

-- --- CORS ---

local allowed_origins, any_origin = {}, false
for origin in (config.cors_origins or ""):gmatch("[^,%s]+") do
    if origin == "*" then any_origin = true else allowed_origins[origin] = true end
end

local function cors_headers(req)
    local origin = req.origin
    if not origin or not (any_origin or allowed_origins[origin]) then return nil end
    return {
        ["access-control-allow-origin"] = any_origin and "*" or origin,
        ["access-control-expose-headers"] = "x-request-id, retry-after, location",
        ["vary"] = "Origin",
    }
end

local function preflight(req, allowed)
    local h = cors_headers(req) or {}
    h["access-control-allow-methods"] = table.concat(allowed, ", ")
    h["access-control-allow-headers"] = req.headers["access-control-request-headers"] or "authorization, content-type"
    h["access-control-max-age"] = "600"
    return { status = 204, headers = h }
end

-- --- query strings ---

local function unescape(s)
    s = s:gsub("+", " ")
    return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- "a=1&b=2&a=3" -> { a = {"1", "3"}, b = "2" }
function middleware.parse_query(qs)
    local out = {}
    if not qs or qs == "" then return out end
    for pair in qs:gmatch("[^&]+") do
        local k, v = pair:match("^([^=]*)=?(.*)$")
        k, v = unescape(k), unescape(v)
        local prev = out[k]
        if prev == nil then
            out[k] = v
        elseif type(prev) == "table" then
            prev[#prev + 1] = v
        else
            out[k] = { prev, v }
        end
    end
    return out
end

-- --- validation ---

local function media_type(req)
    local ct = req.headers["content-type"]
    return ct and ct:match("^%s*([^;%s]+)"):lower()
end

local function append_all(into, errors)
    for _, e in ipairs(errors) do into[#into + 1] = e end
end

local NO_QUERY = setmetatable({}, { __newindex = function() error("req.query is read-only here", 2) end })

-- Fills req.params, req.query and req.json from the route's declarations; returns a problem or nil.
local function validate(req, route, raw_params)
    if not (route.params or route.query or route.body) then
        req.params, req.query = raw_params, NO_QUERY
        return nil
    end
    local errors = {}
    if route.params then
        local params, perrs = schema.coerce_params(route.params, raw_params, "path")
        if perrs then append_all(errors, perrs) end
        req.params = params or {}
    else
        req.params = raw_params
    end
    if route.query then
        local query, qerrs = schema.coerce_params(route.query, middleware.parse_query(req.query_string), "query")
        if qerrs then append_all(errors, qerrs) end
        req.query = query or {}
    else
        req.query = {}
    end
    if route.body and (route.body_content_type or "application/json") == "application/json" then
        if req.body_length == 0 then
            if route.body_required ~= false then -- an optional body may be left out
                errors[#errors + 1] = { field = "body", code = "required", message = "a JSON request body is required" }
            end
        elseif route.body_alternatives and route.body_alternatives[media_type(req)] then
            req.body_media_type = media_type(req) -- another declared form: the handler reads it
        elseif media_type(req) ~= "application/json" then
            return problem.new(415, "unsupported_media_type",
                "Send the body as JSON with 'Content-Type: application/json'.")
        else
            -- a NUL can only arrive as the escape \u0000; no text field can hold it (the database
            -- would cut the string there), so refuse it here with a clear answer
            if req.body:find("\\u0000", 1, true) then
                errors[#errors + 1] = { field = "body", code = "invalid_characters",
                    message = "text may not contain the NUL character (\\u0000)" }
                return problem.validation(errors)
            end
            local value, err = json.decode(req.body)
            if value == nil then
                return problem.bad_request("malformed_json", "The body is not valid JSON: " .. err .. ".")
            end
            local ok, berrs = schema.validate(route.body, value, "body")
            if not ok then append_all(errors, berrs) end
            req.json = value
        end
    end
    if #errors > 0 then return problem.validation(errors) end
    return nil
end

-- Runs the pipeline for a routed request; returns the handler's answer (a response or problem).
function middleware.run(router, req)
    local method = req.method
    if method == "OPTIONS" and req.headers["access-control-request-method"] then
        local _, allowed = router:match("", req.path) -- no route has the empty method: lists them all
        if #allowed == 0 then return problem.not_found("No route matches " .. req.path .. ".") end
        return preflight(req, allowed)
    end
    local route, extra = router:match(method, req.path)
    if not route then
        if #extra == 0 then
            return problem.not_found("No route matches " .. req.path .. ".")
        end
        return problem.new(405, "method_not_allowed", method .. " is not allowed on " .. req.path .. ".",
            { headers = { allow = table.concat(extra, ", ") } })
    end
    req.route = route
    if route.role ~= "public" then
        local who, refused = identity.authenticate(req)
        if not who then return refused end
        if not identity.allows(who.role, route.role) then
            return problem.new(403, "forbidden", ("This needs the %s role; yours is %s."):format(route.role, who.role))
        end
    end
    local limit = route.max_body or config.max_body_bytes
    if req.body_length > limit then
        return problem.new(413, "body_too_large",
            ("The request body has %d bytes; the limit is %d."):format(req.body_length, limit))
    end
    local invalid = validate(req, route, extra)
    if invalid then return invalid end
    return route.handler(req)
end

middleware.cors_headers = cors_headers

return middleware
