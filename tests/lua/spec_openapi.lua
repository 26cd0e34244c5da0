-- Specs for lua/openapi.lua: the OpenAPI 3.1 document built from route declarations.
-- Lists are marked by a spec-local array hook so the specs can see which tables are arrays;
-- the host's hook and schema settings are restored at the end.

local schema = require("schema")
local openapi = require("openapi")

local previous_schema = schema.configure(schema.defaults)
local marked = setmetatable({}, { __mode = "k" })
local previous_openapi = openapi.configure({ array = function(t)
    marked[t] = true
    return t
end })

-- Registrations outlive a run of this file: the embedded VM may run it twice in one state.
local function component(name, s)
    return schema.component_schema(name) or schema.component(name, s)
end

local SpecCustomer = component("SpecCustomer", {
    type = "object",
    required = { "id", "email" },
    properties = {
        id = { type = "integer", minimum = 1 },
        email = { type = "string", format = "email" },
        nickname = { type = { "string", "null" }, pattern = "^%w+$" },
        tags = { type = "array", items = { type = "string" }, default = {} },
        status = { type = "string", enum = { "active", "churned" } },
    },
})

local SpecPage = component("SpecCustomerPage", {
    type = "object",
    properties = { items = { type = "array", items = SpecCustomer }, next = { type = { "string", "null" } } },
})

local SpecUnused = component("SpecUnused", { type = "string" })

local function handler() end

local function update_route()
    return {
        method = "POST", path = "/api/v1/customers/{id}", role = "analyst", summary = "Update a customer",
        description = "Replaces the editable fields.", tags = { "customers" },
        params = { id = { type = "integer", minimum = 1, description = "Customer id" } },
        query = {
            limit = { type = "integer", minimum = 1, maximum = 500, default = 50 },
            q = { type = "string", maxLength = 200, pattern = "^%w*$", description = "Search text" },
            ids = { type = "array", items = { type = "integer" } },
            since = { type = "string", format = "date", required = true },
        },
        body = {
            type = "object", required = { "email" }, additionalProperties = false,
            properties = {
                email = { type = "string", format = "email", maxLength = 254 },
                name = { type = "string", minLength = 1, maxLength = 200 },
                tags = { type = "array", items = { type = "string" }, maxItems = 50 },
            },
        },
        responses = { [200] = { description = "The customer", schema = SpecCustomer }, [404] = "not_found" },
        handler = handler,
    }
end

local function routes()
    return {
        update_route(),
        { method = "GET", path = "/api/v1/customers", role = "viewer", summary = "List customers", tags = { "customers" },
            responses = { [200] = { description = "A page", schema = SpecPage } }, handler = handler },
        { method = "GET", path = "/health", role = "public", summary = "Health", tags = { "system" },
            responses = { [204] = { description = "Alive" } }, handler = handler },
        { method = "GET", path = "/internal/debug", role = "owner", summary = "Debug", hidden = true, handler = handler },
    }
end

local function build(list, info, options)
    return openapi.document(list or routes(), info or { title = "Pulse", version = "1.2.3" }, options)
end

local function operation(doc, path, method)
    return doc.paths[path][method]
end

local function parameter(op, name)
    for _, p in ipairs(op.parameters or {}) do
        if p.name == name then return p end
    end
    return nil
end

local function deep_copy(v)
    if type(v) ~= "table" then return v end
    local out = {}
    for key, value in pairs(v) do out[key] = deep_copy(value) end
    return out
end

describe("document", function()
    it("has the OpenAPI 3.1 envelope with the info given", function()
        local doc = build(nil, { title = "Pulse", version = "1.2.3", description = "Retention API" })
        expect(doc.openapi).to_be("3.1.0")
        expect(doc.info).to_equal({ title = "Pulse", version = "1.2.3", description = "Retention API" })
    end)

    it("fills in a title and version when none are given", function()
        expect(openapi.document({}, nil).info).to_equal({ title = "Pulse API", version = "0.0.0" })
    end)

    it("has one path item per path and one operation per method, lower-cased", function()
        local doc = build()
        local paths = {}
        for path, item in pairs(doc.paths) do
            for method in pairs(item) do paths[#paths + 1] = method .. " " .. path end
        end
        table.sort(paths)
        expect(paths).to_equal({ "get /api/v1/customers", "get /health", "post /api/v1/customers/{id}" })
    end)

    it("leaves hidden routes out", function()
        expect(build().paths["/internal/debug"]).to_be_nil()
    end)

    it("lists the servers given, and the tags used with their descriptions", function()
        local doc = build(nil, nil, { servers = { { url = "https://api.example.com" } }, tags = { customers = "Customer records" } })
        expect(doc.servers).to_equal({ { url = "https://api.example.com" } })
        expect(doc.tags).to_equal({ { name = "customers", description = "Customer records" }, { name = "system" } })
    end)

    it("accepts routes as a map as well as a list", function()
        local doc = build({ b = update_route(), a = { method = "GET", path = "/a", role = "public", handler = handler } })
        expect(doc.paths["/a"].get).to_be_truthy()
        expect(doc.paths["/api/v1/customers/{id}"].post).to_be_truthy()
    end)

    it("does not modify the route declarations", function()
        local list = routes()
        local before = deep_copy(list)
        build(list)
        build(list)
        expect(list).to_equal(before)
    end)

    it("is the same document when built twice", function()
        expect(build()).to_equal(build())
    end)
end)

describe("operations", function()
    it("carries summary, description, tags and the required role", function()
        local op = operation(build(), "/api/v1/customers/{id}", "post")
        expect(op.summary).to_be("Update a customer")
        expect(op.description).to_be("Replaces the editable fields.")
        expect(op.tags).to_equal({ "customers" })
        expect(op["x-required-role"]).to_be("analyst")
    end)

    it("derives stable operationIds from method and path", function()
        expect(operation(build(), "/api/v1/customers/{id}", "post").operationId).to_be("post_api_v1_customers_by_id")
        expect(openapi.operation_id("GET", "/api/v1/customers/{id}/events")).to_be("get_api_v1_customers_by_id_events")
        expect(openapi.operation_id("DELETE", "/api/v1/api-keys/{key_id}")).to_be("delete_api_v1_api_keys_by_key_id")
        expect(openapi.operation_id("GET", "/")).to_be("get_root")
    end)

    it("uses an explicit operation_id", function()
        local route = update_route()
        route.operation_id = "updateCustomer"
        expect(operation(build({ route }), "/api/v1/customers/{id}", "post").operationId).to_be("updateCustomer")
    end)

    it("refuses two operations with the same operationId", function()
        local a = { method = "GET", path = "/a", role = "public", operation_id = "same", handler = handler }
        local b = { method = "GET", path = "/b", role = "public", operation_id = "same", handler = handler }
        expect(function() build({ a, b }) end).to_error("operationId 'same' is used by both GET /a and GET /b")
    end)

    it("refuses a route declared twice", function()
        local a = { method = "GET", path = "/a", role = "public", handler = handler }
        local b = { method = "GET", path = "/a", role = "public", operation_id = "other", handler = handler }
        expect(function() build({ a, b }) end).to_error("GET /a is declared twice")
    end)

    it("marks deprecated routes", function()
        local route = update_route()
        route.deprecated = true
        expect(operation(build({ route }), "/api/v1/customers/{id}", "post").deprecated).to_be(true)
    end)
end)

describe("parameters", function()
    local op = operation(build(), "/api/v1/customers/{id}", "post")

    it("lists path parameters first, in path order, then query parameters by name", function()
        local names = {}
        for i, p in ipairs(op.parameters) do names[i] = p["in"] .. ":" .. p.name end
        expect(names).to_equal({ "path:id", "query:ids", "query:limit", "query:q", "query:since" })
    end)

    it("makes path parameters required and moves the description onto the parameter", function()
        expect(parameter(op, "id")).to_equal({
            name = "id", ["in"] = "path", required = true, description = "Customer id",
            schema = { type = "integer", minimum = 1 },
        })
    end)

    it("documents query parameters with their schema and default", function()
        expect(parameter(op, "limit")).to_equal({
            name = "limit", ["in"] = "query", schema = { type = "integer", minimum = 1, maximum = 500, default = 50 },
        })
        expect(parameter(op, "ids").schema).to_equal({ type = "array", items = { type = "integer" } })
    end)

    it("marks query parameters declared required = true as required, without leaking the flag into the schema", function()
        expect(parameter(op, "since")).to_equal({
            name = "since", ["in"] = "query", required = true, schema = { type = "string", format = "date" },
        })
        expect(parameter(op, "limit").required).to_be_nil()
    end)

    it("publishes a Lua pattern as x-lua-pattern, never as pattern", function()
        expect(parameter(op, "q").schema).to_equal({ type = "string", maxLength = 200, ["x-lua-pattern"] = "^%w*$" })
    end)

    it("documents an undeclared path parameter as a string", function()
        local doc = build({ { method = "GET", path = "/files/{name}", role = "public", handler = handler } })
        expect(operation(doc, "/files/{name}", "get").parameters).to_equal({
            { name = "name", ["in"] = "path", required = true, schema = { type = "string" } },
        })
    end)

    it("refuses a declared path parameter missing from the path", function()
        local route = { method = "GET", path = "/files", role = "public", params = { id = { type = "integer" } }, handler = handler }
        expect(function() build({ route }) end).to_error("declares path parameter 'id', which is not in its path")
    end)

    it("refuses a route whose schemas are invalid", function()
        local route = update_route()
        route.body = { type = "object", properties = { name = { type = "string", maxlength = 3 } } }
        expect(function() build({ route }) end).to_error('unknown keyword "maxlength"')
    end)
end)

describe("request body", function()
    it("is application/json with the body schema, required", function()
        local body = operation(build(), "/api/v1/customers/{id}", "post").requestBody
        expect(body.required).to_be(true)
        expect(body.content["application/json"].schema).to_equal({
            type = "object", required = { "email" }, additionalProperties = false,
            properties = {
                email = { type = "string", format = "email", maxLength = 254 },
                name = { type = "string", minLength = 1, maxLength = 200 },
                tags = { type = "array", items = { type = "string" }, maxItems = 50 },
            },
        })
    end)

    it("uses the declared content type", function()
        local route = { method = "POST", path = "/imports", role = "owner", body_content_type = "multipart/form-data",
            handler = handler }
        expect(operation(build({ route }), "/imports", "post").requestBody).to_equal({
            required = true, content = { ["multipart/form-data"] = {} },
        })
    end)

    it("is absent when the route takes no body", function()
        expect(operation(build(), "/health", "get").requestBody).to_be_nil()
    end)
end)

describe("responses", function()
    local doc = build()
    local update = operation(doc, "/api/v1/customers/{id}", "post")
    local health = operation(doc, "/health", "get")

    it("turns numeric statuses into strings and schemas into JSON content", function()
        expect(update.responses["200"]).to_equal({
            description = "The customer",
            content = { ["application/json"] = { schema = { ["$ref"] = "#/components/schemas/SpecCustomer" } } },
        })
        expect(update.responses[200]).to_be_nil()
        expect(health.responses["204"]).to_equal({ description = "Alive" })
    end)

    it("turns a problem code into a shared problem response", function()
        expect(update.responses["404"]).to_equal({ ["$ref"] = "#/components/responses/NotFound" })
        expect(doc.components.responses.NotFound).to_equal({
            description = "The resource does not exist.",
            content = { ["application/problem+json"] = { schema = { ["$ref"] = "#/components/schemas/Problem" } } },
        })
    end)

    it("adds 422 to operations that validate input, and only to them", function()
        expect(update.responses["422"]).to_equal({ ["$ref"] = "#/components/responses/ValidationFailed" })
        expect(doc.components.responses.ValidationFailed.content["application/problem+json"]).to_be_truthy()
        expect(health.responses["422"]).to_be_nil()
        expect(operation(doc, "/api/v1/customers", "get").responses["422"]).to_be_nil()
    end)

    it("adds 401 and 403 to protected operations, and a problem as the default everywhere", function()
        expect(update.responses["401"]).to_equal({ ["$ref"] = "#/components/responses/Unauthorized" })
        expect(update.responses["403"]).to_equal({ ["$ref"] = "#/components/responses/Forbidden" })
        expect(health.responses["401"]).to_be_nil()
        expect(health.responses.default).to_equal({ ["$ref"] = "#/components/responses/UnexpectedError" })
        expect(update.responses.default).to_equal({ ["$ref"] = "#/components/responses/UnexpectedError" })
    end)

    it("keeps a route's own 422 and default", function()
        local route = update_route()
        route.responses[422] = { description = "Custom", schema = { type = "object" } }
        route.responses.default = { description = "Other" }
        local op = operation(build({ route }), "/api/v1/customers/{id}", "post")
        expect(op.responses["422"].description).to_be("Custom")
        expect(op.responses.default).to_equal({ description = "Other" })
    end)

    it("names problem responses after unknown codes too", function()
        local route = update_route()
        route.responses[409] = "campaign_locked"
        local built = build({ route })
        expect(operation(built, "/api/v1/customers/{id}", "post").responses["409"])
            .to_equal({ ["$ref"] = "#/components/responses/CampaignLocked" })
        expect(built.components.responses.CampaignLocked.description).to_be("Problem: campaign_locked.")
    end)

    it("refuses a string for a success status, an unknown response field and a bad status", function()
        local route = update_route()
        route.responses[201] = "created"
        expect(function() build({ route }) end).to_error("use { description = ... } for a success response")
        route = update_route()
        route.responses[200] = { description = "x", shcema = {} }
        expect(function() build({ route }) end).to_error("unknown field 'shcema'")
        route = update_route()
        route.responses[99] = { description = "x" }
        expect(function() build({ route }) end).to_error("invalid response status 99")
    end)

    it("documents response headers and content types", function()
        local route = { method = "GET", path = "/export", role = "viewer", handler = handler, responses = {
            [200] = { description = "CSV", content_type = "text/csv", schema = { type = "string" },
                headers = { ["x-row-count"] = { description = "Rows", schema = { type = "integer" } } } },
        } }
        expect(operation(build({ route }), "/export", "get").responses["200"]).to_equal({
            description = "CSV",
            content = { ["text/csv"] = { schema = { type = "string" } } },
            headers = { ["x-row-count"] = { description = "Rows", schema = { type = "integer" } } },
        })
    end)
end)

describe("security", function()
    local doc = build()

    it("requires a bearer JWT or an API key on every non-public operation", function()
        local expected = { { bearerAuth = {} }, { apiKey = {} } }
        expect(operation(doc, "/api/v1/customers/{id}", "post").security).to_equal(expected)
        expect(operation(doc, "/api/v1/customers", "get").security).to_equal(expected)
    end)

    it("leaves public operations open", function()
        expect(operation(doc, "/health", "get").security).to_be_nil()
        expect(operation(doc, "/health", "get")["x-required-role"]).to_be("public")
    end)

    it("declares both schemes as HTTP bearer", function()
        local schemes = doc.components.securitySchemes
        expect(schemes.bearerAuth).to_equal({ type = "http", scheme = "bearer", bearerFormat = "JWT",
            description = schemes.bearerAuth.description })
        expect(schemes.apiKey.scheme).to_be("bearer")
        expect(schemes.apiKey.description).to_contain("Authorization: Bearer pk_")
    end)
end)

describe("components", function()
    local doc = build()
    local schemas = doc.components.schemas

    it("turns registered schemas into $refs and publishes them, transitively", function()
        local list = operation(doc, "/api/v1/customers", "get")
        expect(list.responses["200"].content["application/json"].schema)
            .to_equal({ ["$ref"] = "#/components/schemas/SpecCustomerPage" })
        expect(schemas.SpecCustomerPage.properties.items)
            .to_equal({ type = "array", items = { ["$ref"] = "#/components/schemas/SpecCustomer" } })
        expect(schemas.SpecCustomer.required).to_equal({ "id", "email" })
        expect(schemas.SpecCustomer.properties.nickname).to_equal({ type = { "string", "null" }, ["x-lua-pattern"] = "^%w+$" })
    end)

    it("publishes only the components the routes use, plus the problem schemas", function()
        expect(schemas[schema.component_name(SpecUnused)]).to_be_nil()
        local names = {}
        for name in pairs(build({ { method = "GET", path = "/x", role = "public", handler = handler } }).components.schemas) do
            names[#names + 1] = name
        end
        table.sort(names)
        expect(names).to_equal({ "Problem", "ProblemFieldError" })
    end)

    it("describes problems as RFC 9457 details with a stable code and field errors", function()
        local problem = schemas.Problem
        expect(problem.required).to_equal({ "type", "title", "status", "code" })
        for _, field in ipairs({ "type", "title", "status", "detail", "code", "request_id", "errors" }) do
            expect(problem.properties[field]).to_be_truthy()
        end
        expect(problem.properties.errors.items).to_equal({ ["$ref"] = "#/components/schemas/ProblemFieldError" })
        expect(schemas.ProblemFieldError.required).to_equal({ "field", "code", "message" })
    end)

    it("describes the problems the validator produces", function()
        local _, errors = schema.validate({ type = "object", required = { "email" } }, {}, "body")
        local body = { type = "about:blank", title = "Unprocessable Content", status = 422, code = "validation_failed",
            request_id = "r1", errors = errors }
        local ok, problems = schema.validate(openapi.problem_schema, body, "problem")
        expect(problems).to_be_nil()
        expect(ok).to_be(true)
    end)

    it("handles a component that refers to itself", function()
        local node = schema.component_schema("SpecTreeNode")
        if not node then
            node = { type = "object", properties = { name = { type = "string" } } }
            node.properties.children = { type = "array", items = node }
            schema.component("SpecTreeNode", node)
        end
        local route = { method = "GET", path = "/tree", role = "public", handler = handler,
            responses = { [200] = { description = "Tree", schema = node } } }
        local built = build({ route })
        expect(built.components.schemas.SpecTreeNode.properties.children.items)
            .to_equal({ ["$ref"] = "#/components/schemas/SpecTreeNode" })
    end)

    it("refuses a recursive schema that is not a component", function()
        local node = { type = "object", properties = {} }
        node.properties.next = node
        local route = { method = "GET", path = "/loop", role = "public", handler = handler,
            responses = { [200] = { description = "Loop", schema = node } } }
        expect(function() build({ route }) end).to_error("must be registered with schema.component")
    end)
end)

describe("arrays", function()
    local doc = build()
    local update = operation(doc, "/api/v1/customers/{id}", "post")

    it("passes every list of the document through the array hook, empty ones included", function()
        expect(marked[doc.tags]).to_be(true)
        expect(marked[update.tags]).to_be(true)
        expect(marked[update.parameters]).to_be(true)
        expect(marked[update.security]).to_be(true)
        expect(marked[update.security[1].bearerAuth]).to_be(true)
        expect(marked[update.requestBody.content["application/json"].schema.required]).to_be(true)
        local customer = doc.components.schemas.SpecCustomer
        expect(marked[customer.properties.nickname.type]).to_be(true)
        expect(marked[customer.properties.status.enum]).to_be(true)
        expect(marked[customer.properties.tags.default]).to_be(true)
    end)

    it("leaves objects unmarked", function()
        expect(marked[doc.paths]).to_be_nil()
        expect(marked[update.responses]).to_be_nil()
        expect(marked[doc.components.schemas.SpecCustomer.properties]).to_be_nil()
    end)

    it("publishes examples as an examples list", function()
        local route = { method = "GET", path = "/e", role = "public", handler = handler, query = {
            day = { type = "string", format = "date", example = "2024-01-31" } } }
        local p = operation(build({ route }), "/e", "get").parameters[1]
        expect(p.schema).to_equal({ type = "string", format = "date", examples = { "2024-01-31" } })
        expect(marked[p.schema.examples]).to_be(true)
    end)
end)

openapi.configure(previous_openapi)
schema.configure(previous_schema)
