-- Specs for the application pipeline (lua/app.lua, router.lua, middleware.lua, problem.lua):
-- routing, 404/405, validation, 413/415/400, CORS, rendering — through app.handle, as the C host
-- calls it, with request tables built here (no database: these routes never query it).
local app = require "app"
local json = require "json"
local router = require "router"
local response = require "response"

local function request(method, path, fields)
    local req = { method = method, path = path, id = "spec-1", body_length = 0, headers = {} }
    for k, v in pairs(fields or {}) do req[k] = v end
    if req.body then req.body_length = #req.body end
    return req
end

-- -> status, headers, decoded body, content type
local function call(req)
    local status, headers, body, _, content_type = app.handle(req)
    local decoded = body and json.decode(body)
    return status, headers or {}, decoded or body, content_type
end

local added = false
local function add_spec_routes()
    if added then return end
    added = true
    app.router:add {
        method = "POST", path = "/spec/items/{id}", role = "public", summary = "Spec: echo",
        params = { id = { type = "integer", minimum = 1 } },
        query = { verbose = { type = "boolean", default = false } },
        body = { type = "object", required = { "name" }, additionalProperties = false,
                 properties = { name = { type = "string", minLength = 1, maxLength = 5 }, qty = { type = "integer", minimum = 0 } } },
        max_body = 64,
        handler = function(req)
            return response.created { id = req.params.id, verbose = req.query.verbose, name = req.json.name }
        end,
    }
    app.router:add { method = "GET", path = "/spec/boom", role = "public", summary = "Spec: raises",
        handler = function() error("secret internal detail") end }
    app.router:add { method = "GET", path = "/spec/private", role = "analyst", summary = "Spec: protected",
        handler = function() return response.ok {} end }
end

describe("routing", function()
    before_each(add_spec_routes)

    it("answers /health with JSON", function()
        local status, _, body, ct = call(request("GET", "/health"))
        expect(status).to_be(200)
        expect(ct).to_be("application/json")
        expect(body.status).to_be("ok")
    end)

    it("answers an unknown path with a 404 problem carrying the request id", function()
        local status, _, body, ct = call(request("GET", "/nowhere"))
        expect(status).to_be(404)
        expect(ct).to_be("application/problem+json")
        expect(body.code).to_be("not_found")
        expect(body.request_id).to_be("spec-1")
        expect(body.title).to_be("Not Found")
    end)

    it("answers a known path with the wrong method with 405 and Allow", function()
        local status, headers, body = call(request("DELETE", "/health"))
        expect(status).to_be(405)
        expect(headers.allow).to_be("GET")
        expect(body.code).to_be("method_not_allowed")
    end)

    it("serves HEAD from the GET route", function()
        expect((call(request("HEAD", "/health")))).to_be(200)
    end)

    it("matches path parameters and coerces them", function()
        local status, _, body = call(request("POST", "/spec/items/7", {
            body = '{"name":"ab"}', headers = { ["content-type"] = "application/json; charset=utf-8" } }))
        expect(status).to_be(201)
        expect(body).to_equal { id = 7, verbose = false, name = "ab" }
    end)

    it("refuses protected routes while no identity can be proven", function()
        local status, headers, body = call(request("GET", "/spec/private"))
        expect(status).to_be(401)
        expect(body.code).to_be("unauthorized")
        expect(headers["www-authenticate"]).to_match("Bearer")
    end)
end)

describe("validation", function()
    before_each(add_spec_routes)
    local json_headers = { ["content-type"] = "application/json" }

    it("names every offending field at once", function()
        local status, _, body = call(request("POST", "/spec/items/0", {
            query_string = "verbose=maybe", body = '{"name":"toolong","qty":-1,"extra":1}', headers = json_headers }))
        expect(status).to_be(422)
        expect(body.code).to_be("validation_failed")
        local fields = {}
        for _, e in ipairs(body.errors) do fields[#fields + 1] = e.field end
        table.sort(fields)
        expect(fields).to_equal { "body.extra", "body.name", "body.qty", "path.id", "query.verbose" }
    end)

    it("answers malformed JSON with 400 and where it broke", function()
        local status, _, body = call(request("POST", "/spec/items/1", { body = '{"name": ', headers = json_headers }))
        expect(status).to_be(400)
        expect(body.code).to_be("malformed_json")
        expect(body.detail).to_match("line 1")
    end)

    it("answers a non-JSON content type with 415", function()
        local status, _, body = call(request("POST", "/spec/items/1", {
            body = "name=x", headers = { ["content-type"] = "application/x-www-form-urlencoded" } }))
        expect(status).to_be(415)
        expect(body.code).to_be("unsupported_media_type")
    end)

    it("requires the body when the route declares one", function()
        local status, _, body = call(request("POST", "/spec/items/1", { headers = json_headers }))
        expect(status).to_be(422)
        expect(body.errors[1].field).to_be("body")
    end)

    it("answers a body above the route's limit with 413", function()
        local status, _, body = call(request("POST", "/spec/items/1", {
            body = '{"name":"' .. string.rep("x", 100) .. '"}', headers = json_headers }))
        expect(status).to_be(413)
        expect(body.code).to_be("body_too_large")
    end)
end)

describe("errors and CORS", function()
    before_each(add_spec_routes)

    it("turns a handler error into a 500 without the internal text", function()
        local status, _, body = call(request("GET", "/spec/boom"))
        expect(status).to_be(500)
        expect(body.code).to_be("internal_error")
        expect(json.encode(body)).never.to_match("secret")
    end)

    it("adds CORS headers when an Origin is sent", function()
        local _, headers = call(request("GET", "/health", { origin = "https://shop.example" }))
        expect(headers["access-control-allow-origin"]).to_be("*")
        expect(headers["access-control-expose-headers"]).to_match("x%-request%-id")
    end)

    it("answers a preflight with 204 and the path's methods", function()
        local status, headers = call(request("OPTIONS", "/spec/items/3", {
            origin = "https://shop.example",
            headers = { origin = "https://shop.example", ["access-control-request-method"] = "POST" } }))
        expect(status).to_be(204)
        expect(headers["access-control-allow-methods"]).to_be("POST")
    end)
end)

describe("route declarations", function()
    it("refuses a declaration with a typo, naming the route", function()
        local r = router.new()
        expect(function()
            r:add { method = "GET", path = "/x", role = "public", summary = "x", handler = function() end, quer = {} }
        end).to_error("route GET /x: unknown field 'quer'")
    end)

    it("refuses a path parameter without a schema", function()
        local r = router.new()
        expect(function()
            r:add { method = "GET", path = "/x/{id}", role = "public", summary = "x", handler = function() end }
        end).to_error("needs a schema")
    end)

    it("refuses a missing role: access must be decided, not defaulted", function()
        local r = router.new()
        expect(function()
            r:add { method = "GET", path = "/x", summary = "x", handler = function() end }
        end).to_error("role must be")
    end)

    it("refuses the same method and path twice", function()
        local r = router.new()
        local def = { method = "GET", path = "/x/{id}", role = "public", summary = "x", handler = function() end,
                      params = { id = { type = "integer" } } }
        r:add(def)
        expect(function() r:add(def) end).to_error("declared twice")
    end)
end)
