-- Declarative routes: each is a table (method, path pattern with {params}, role, summary,
-- params/query/body schemas, responses, handler) checked when it is added, so a typo fails at
-- load time. Matching: exact paths by one table lookup, patterned paths by segment comparison.
local schema = require "schema"

local router = {}
router.__index = router

local METHODS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true, HEAD = true, OPTIONS = true }
local ROLES = { public = true, viewer = true, analyst = true, owner = true }
local KNOWN_KEYS = {
    method = true, path = true, role = true, summary = true, description = true, tags = true, params = true,
    query = true, body = true, body_content_type = true, responses = true, handler = true, hidden = true,
    operation_id = true, max_body = true, body_required = true, body_alternatives = true,
}

function router.new()
    return setmetatable({ list = {}, exact = {}, patterned = {} }, router)
end

local function split(path)
    local segments = {}
    for segment in path:gmatch("[^/]+") do
        segments[#segments + 1] = segment
    end
    return segments
end

local function fail(def, msg)
    error(("route %s %s: %s"):format(tostring(def.method), tostring(def.path), msg), 3)
end

local function check_definition(def)
    for k in pairs(def) do
        if not KNOWN_KEYS[k] then fail(def, "unknown field '" .. tostring(k) .. "'") end
    end
    if not METHODS[def.method] then fail(def, "method must be one of GET POST PUT PATCH DELETE HEAD OPTIONS") end
    if type(def.path) ~= "string" or def.path:sub(1, 1) ~= "/" then fail(def, "path must start with '/'") end
    if not ROLES[def.role] then fail(def, "role must be public, viewer, analyst or owner") end
    if type(def.summary) ~= "string" or def.summary == "" then fail(def, "summary is required") end
    if type(def.handler) ~= "function" then fail(def, "handler must be a function") end
    for _, part in ipairs { "params", "query" } do
        if def[part] ~= nil then
            if type(def[part]) ~= "table" then fail(def, part .. " must be a table of parameter schemas") end
            local ok, err = pcall(schema.check_params, def[part], part)
            if not ok then fail(def, tostring(err)) end
        end
    end
    if def.body ~= nil then
        local ok, err = pcall(schema.check, def.body)
        if not ok then fail(def, "body: " .. tostring(err)) end
    end
end

-- Adds a route; returns it. Raises on a malformed declaration or a duplicate.
function router:add(def)
    check_definition(def)
    -- a flat copy: the request path reads route fields directly, without a metatable hop
    local route = {}
    for k, v in pairs(def) do route[k] = v end
    route.segments = split(def.path)
    route.param_names = {}
    local has_params = false
    for i, segment in ipairs(route.segments) do
        local name = segment:match("^{([%w_]+)}$")
        if name then
            has_params = true
            route.param_names[i] = name
            if not (def.params and def.params[name]) then
                fail(def, "path parameter {" .. name .. "} needs a schema in params")
            end
        elseif segment:find("[{}]") then
            fail(def, "a path segment is either a literal or a whole {param}")
        end
    end
    if has_params then
        for _, other in ipairs(self.patterned) do
            if other.path == def.path and other.methods[def.method] then fail(def, "declared twice") end
        end
        local group
        for _, other in ipairs(self.patterned) do
            if other.path == def.path then group = other end
        end
        if not group then
            group = { path = def.path, segments = route.segments, param_names = route.param_names, methods = {} }
            self.patterned[#self.patterned + 1] = group
        end
        group.methods[def.method] = route
    else
        local key = "/" .. table.concat(route.segments, "/")
        local methods = self.exact[key] or {}
        if methods[def.method] then fail(def, "declared twice") end
        methods[def.method] = route
        self.exact[key] = methods
    end
    self.list[#self.list + 1] = def
    return route
end

-- Shared by every route without path parameters: no table per request.
local NO_PARAMS = setmetatable({}, { __newindex = function() error("req.params is read-only", 2) end })

local function unescape(s)
    return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function match_group(group, segments)
    if #group.segments ~= #segments then return nil end
    local params = {}
    for i, want in ipairs(group.segments) do
        local name = group.param_names[i]
        if name then
            params[name] = unescape(segments[i])
        elseif want ~= segments[i] then
            return nil
        end
    end
    return params
end

-- router:match(method, path) -> route, raw_params | nil, allowed_methods (list; empty: no such path)
function router:match(method, path)
    local methods = self.exact[path]
    local params = nil
    if not methods then
        local segments = split(path)
        for _, group in ipairs(self.patterned) do
            params = match_group(group, segments)
            if params then
                methods = group.methods
                break
            end
        end
    end
    if not methods then return nil, {} end
    local route = methods[method] or (method == "HEAD" and methods.GET)
    if route then return route, params or NO_PARAMS end
    local allowed = {}
    for m in pairs(methods) do allowed[#allowed + 1] = m end
    table.sort(allowed)
    return nil, allowed
end

return router
