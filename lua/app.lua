-- The application: loads the route modules, runs the pipeline (middleware.lua) for each request
-- and renders the answer. app.handle(req) runs in a coroutine per request and returns
-- status, headers, body, tenant, content type to the C host (src/server/request.c); a streamed
-- answer (response.sse) is started and run here instead, and app.handle then returns nothing.
local json = require "json"
local pulse = require "pulse"
local sse = require "sse"
local problem = require "problem"
local router = require "router"
local middleware = require "middleware"
local schema = require "schema"
local openapi = require "openapi"

schema.configure {
    null = json.null,
    is_array = function(t) return getmetatable(t) == json.array_mt end,
    mark_array = json.array,
}
openapi.configure { array = json.array }

local app = { router = router.new() }

-- Route modules are functions taking the router; the list is the application's table of contents.
local ROUTE_MODULES = {
    "routes.system", "routes.auth", "routes.users", "routes.api_keys", "routes.customers", "routes.audit_log",
    "routes.imports", "routes.jobs", "routes.rules", "routes.analytics", "routes.ml",
}

local function load_routes()
    for _, name in ipairs(ROUTE_MODULES) do
        require(name)(app.router, app)
    end
    -- PULSE_APP_EXTRA: more route files (tests, benchmarks), same shape as a route module.
    for path in (pulse.config.app_extra or ""):gmatch("[^;]+") do
        local chunk, err = loadfile(path)
        if not chunk then error("PULSE_APP_EXTRA: " .. err, 0) end
        chunk()(app.router, app)
    end
end

local JSON_TYPE = "application/json"
local PROBLEM_TYPE = "application/problem+json"

local function traceback(err)
    if problem.is(err) or (type(err) == "table" and err.code) then return err end
    return debug.traceback(tostring(err), 2)
end

-- Any error value -> the problem the client sees; unexpected ones are logged, never sent.
local function to_problem(req, err)
    if problem.is(err) then return err end
    if type(err) == "table" and type(err.code) == "string" and err.code:match("^db_") then
        local p = problem.from_db(err)
        if p then
            pulse.log("warn", "db_error", err.code .. ": " .. tostring(err.message))
            return p
        end
        pulse.log("error", "db_error", ("%s %s: %s (sqlstate %s)"):format(req.method, req.path,
            tostring(err.message), tostring(err.sqlstate)))
        return problem.internal()
    end
    if type(err) == "table" and err.code then
        local p = problem.from_binding(err)
        if p then return p end
    end
    pulse.log("error", "handler_error", ("%s %s: %s"):format(req.method, req.path, tostring(err)))
    return problem.internal()
end

-- -> status, headers (or nil), body, tenant, content type: what the C host sends.
local function render(req, res)
    local headers = res.headers
    local body, content_type
    if problem.is(res) then
        content_type = PROBLEM_TYPE
        body = json.encode(problem.body(res, req.id))
    elseif res.json ~= nil then
        content_type = JSON_TYPE
        body = json.encode(res.json)
    else
        body = res.body
    end
    -- rawget: an absent field would otherwise go through the request's lazy __index in C
    if rawget(req, "origin") then
        local cors = middleware.cors_headers(req)
        if cors then
            headers = headers or {}
            for k, v in pairs(cors) do headers[k] = headers[k] or v end
        end
    end
    return res.status or 200, headers, body, rawget(req, "tenant"), content_type
end

-- A response.sse answer: headers (CORS included) go out, then the producer runs in this coroutine.
local function stream(req, res)
    local _, headers, _, tenant = render(req, res)
    local s = sse._begin(headers, tenant)
    if not s then return end -- the client is gone, or an answer (504, 500) already went out
    local ok, err = xpcall(res.sse, traceback, s)
    if not ok then
        local detail = problem.is(err) and (tostring(err.code) .. ": " .. tostring(err.detail)) or tostring(err)
        pulse.log("error", "stream_error", ("%s %s: %s"):format(req.method, req.path, detail))
    end
    sse._finish(s)
end

function app.handle(req)
    local ok, res, err = xpcall(middleware.run, traceback, app.router, req)
    if not ok then
        res = to_problem(req, res)
    elseif res == nil then
        res = err ~= nil and to_problem(req, err) or problem.internal()
        if err == nil then pulse.log("error", "handler_error", req.method .. " " .. req.path .. ": handler returned nothing") end
    end
    if type(res) == "table" and type(res.sse) == "function" and not problem.is(res) then return stream(req, res) end
    return render(req, res)
end

load_routes()

return app
