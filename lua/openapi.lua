-- openapi.lua: builds the OpenAPI 3.1 document (served at /openapi.json) from the same route
-- declarations that drive request validation, so the documentation cannot drift from what the
-- server accepts. Returns a plain Lua table; the C JSON encoder serialises it, and the `array`
-- hook lets it mark lists so that an empty one is written as [] rather than {}.

local schema = require("schema")

local openapi = {}

local mark_array = function(t) return t end

-- options.array: function(t) -> t, applied to every list in the document (e.g. json.array).
-- Returns the previous settings.
function openapi.configure(options)
    if type(options) ~= "table" then error("openapi.configure: expected a table of options", 2) end
    local previous = { array = mark_array }
    if options.array ~= nil then
        if type(options.array) ~= "function" then error("openapi.configure: array must be a function", 2) end
        mark_array = options.array
    end
    return previous
end

local function array_of(list)
    return mark_array(list)
end

---------------------------------------------------------------------------------------------------
-- Problem details (RFC 9457): the body of every error response.

local field_error = schema.component("ProblemFieldError", {
    type = "object",
    description = "One offending field of a request that failed validation.",
    required = { "field", "code", "message" },
    properties = {
        field = { type = "string", description = "Location, e.g. body.email, query.limit, path.id, body.tags[0] (0-based)." },
        code = { type = "string", description = "Stable machine code, e.g. required, invalid_type, too_long, invalid_format." },
        message = { type = "string", description = "What was wrong and what is expected, for humans." },
    },
})

openapi.problem_schema = schema.component("Problem", {
    type = "object",
    description = "Problem details (RFC 9457). `code` is stable; match on it rather than on `title` or `detail`.",
    required = { "type", "title", "status", "code" },
    properties = {
        type = { type = "string", description = "URI reference identifying the problem type.", default = "about:blank" },
        title = { type = "string", description = "Short summary of the problem type." },
        status = { type = "integer", minimum = 100, maximum = 599, description = "The HTTP status code." },
        detail = { type = "string", description = "Explanation specific to this occurrence." },
        instance = { type = "string", description = "URI reference identifying this occurrence." },
        code = { type = "string", description = "Stable machine-readable code, e.g. not_found, validation_failed." },
        request_id = { type = "string", description = "Quote it when reporting a problem; the server logs it." },
        errors = { type = "array", items = field_error, description = "Every offending field (validation problems)." },
    },
})

local problem_descriptions = {
    bad_request = "The request is malformed (for example, the body is not valid JSON).",
    unauthorized = "Credentials are missing, invalid or expired.",
    forbidden = "The caller's role does not allow this operation.",
    not_found = "The resource does not exist.",
    conflict = "The request conflicts with the current state of the resource.",
    gone = "The resource existed but is no longer available.",
    payload_too_large = "The request body is too large.",
    unsupported_media_type = "The request body has an unsupported content type.",
    validation_failed = "The request failed validation; `errors` names every offending field.",
    rate_limited = "Too many requests; retry after the delay given in Retry-After.",
    unavailable = "The service is temporarily unavailable.",
    malformed_json = "The body is not valid JSON.",
    method_not_allowed = "The path exists but does not accept this method; see Allow.",
    body_too_large = "The request body is larger than the route allows.",
    internal_error = "The server failed to handle the request; quote request_id.",
    db_unavailable = "The database is unavailable; retry after the delay given in Retry-After.",
    db_timeout = "The database took too long to answer; retry later.",
}

local reason_phrases = {
    ["200"] = "OK", ["201"] = "Created", ["202"] = "Accepted", ["204"] = "No Content",
    ["301"] = "Moved Permanently", ["302"] = "Found", ["303"] = "See Other", ["304"] = "Not Modified",
}

local security_schemes = {
    bearerAuth = {
        type = "http", scheme = "bearer", bearerFormat = "JWT",
        description = "Short-lived HS256 access token (JWT) issued at login and renewed with a refresh token.",
    },
    apiKey = {
        type = "http", scheme = "bearer", bearerFormat = "pk_...",
        description = "Server-to-server API key, sent as the bearer token: `Authorization: Bearer pk_...`.",
    },
}

local http_methods = {
    GET = true, PUT = true, POST = true, DELETE = true, OPTIONS = true, HEAD = true, PATCH = true, TRACE = true,
}

---------------------------------------------------------------------------------------------------
-- Schemas: our keywords are JSON Schema already, except `pattern` (a Lua pattern, published as
-- x-lua-pattern so that no client runs it as a regex) and parameter-level `required`.

local function sorted_keys(t)
    local keys = {}
    for key in pairs(t) do keys[#keys + 1] = key end
    table.sort(keys, function(a, b)
        if type(a) ~= type(b) then return type(a) < type(b) end
        return a < b
    end)
    return keys
end

local function copy_list(list)
    local out = {}
    for i, value in ipairs(list) do out[i] = value end
    return array_of(out)
end

-- A JSON value (default, enum member, example): lists become marked arrays.
local function json_value(v, empty_is_array)
    if type(v) ~= "table" or v == schema.null then return v end
    local kind = schema.kind_of(v)
    local out = {}
    for key, value in pairs(v) do out[key] = json_value(value, false) end
    if kind == "array" or (kind == "empty" and empty_is_array) then return array_of(out) end
    return out
end

local function allows_array(s)
    local t = s.type
    if t == "array" then return true end
    if type(t) == "table" then
        for _, name in ipairs(t) do
            if name == "array" then return true end
        end
    end
    return false
end

local convert -- forward declaration: convert(s, ctx) -> OpenAPI schema or $ref

local function convert_list(list, ctx)
    local out = {}
    for i, child in ipairs(list) do out[i] = convert(child, ctx) end
    return array_of(out)
end

local function convert_properties(properties, ctx)
    local out = {}
    for name, child in pairs(properties) do out[name] = convert(child, ctx) end
    return out
end

local function add_example(out, value, empty_is_array)
    local examples = out.examples or array_of({})
    examples[#examples + 1] = json_value(value, empty_is_array)
    out.examples = examples
end

-- `skip` names keywords handled by the caller (parameter-level description and required).
local function convert_body(s, ctx, skip)
    if ctx.converting[s] then
        error("openapi: a recursive schema must be registered with schema.component", 0)
    end
    ctx.converting[s] = true
    local out = {}
    local empty_is_array = allows_array(s)
    for _, key in ipairs(sorted_keys(s)) do
        local value = s[key]
        if skip and skip[key] then
            -- published on the parameter object instead
        elseif key == "pattern" then
            out["x-lua-pattern"] = value
        elseif key == "type" then
            out.type = type(value) == "table" and copy_list(value) or value
        elseif key == "properties" then
            out.properties = convert_properties(value, ctx)
        elseif key == "items" or (key == "additionalProperties" and type(value) == "table") then
            out[key] = convert(value, ctx)
        elseif key == "oneOf" or key == "anyOf" then
            out[key] = convert_list(value, ctx)
        elseif key == "required" then
            if type(value) == "table" then out.required = copy_list(value) end
        elseif key == "enum" then
            local members = {}
            for i, member in ipairs(value) do members[i] = json_value(member, false) end
            out.enum = array_of(members)
        elseif key == "example" then
            add_example(out, value, empty_is_array)
        elseif key == "examples" then
            for _, example in ipairs(value) do add_example(out, example, empty_is_array) end
        else
            out[key] = json_value(value, (key == "default" or key == "const") and empty_is_array)
        end
    end
    ctx.converting[s] = nil
    return out
end

local function use_component(ctx, name, s)
    if ctx.schemas[name] then return end
    ctx.schemas[name] = true -- placeholder first: a component may refer to itself
    ctx.schemas[name] = convert_body(s, ctx, nil)
end

convert = function(s, ctx)
    local name = schema.component_name(s)
    if name then
        use_component(ctx, name, s)
        return { ["$ref"] = "#/components/schemas/" .. name }
    end
    return convert_body(s, ctx, nil)
end

---------------------------------------------------------------------------------------------------
-- Operations.

local function camel_case(code)
    return (code:gsub("^%l", string.upper):gsub("[_%-](%w)", string.upper):gsub("[^%w]", ""))
end

-- Adds components.responses.<Name> (a problem+json response) once; returns a $ref to it.
local function problem_response(ctx, name, description)
    if not ctx.responses[name] then
        ctx.responses[name] = {
            description = description,
            content = {
                ["application/problem+json"] = { schema = convert(openapi.problem_schema, ctx) },
            },
        }
    end
    return { ["$ref"] = "#/components/responses/" .. name }
end

local function problem_ref(ctx, code)
    return problem_response(ctx, camel_case(code), problem_descriptions[code] or ("Problem: " .. code .. "."))
end

-- Stable and readable: POST /api/v1/customers/{id}/notes -> post_api_v1_customers_by_id_notes.
function openapi.operation_id(method, path)
    local parts = { string.lower(method) }
    for segment in path:gmatch("[^/]+") do
        local param = segment:match("^{([^}]+)}$")
        local word = param and ("by_" .. param) or segment
        word = word:gsub("[^%w]+", "_"):gsub("^_+", ""):gsub("_+$", ""):lower()
        if word ~= "" then parts[#parts + 1] = word end
    end
    if #parts == 1 then parts[2] = "root" end
    return table.concat(parts, "_")
end

local function path_parameter_names(path)
    local names = {}
    for name in path:gmatch("{([^}]+)}") do names[#names + 1] = name end
    return names
end

local param_skip = { description = true, deprecated = true, required = true }

local function parameter(name, location, s, required, ctx)
    local p = { name = name, ["in"] = location }
    if required then p.required = true end
    if schema.component_name(s) then
        p.schema = convert(s, ctx)
    else
        p.description = s.description
        if s.deprecated then p.deprecated = true end
        p.schema = convert_body(s, ctx, param_skip)
    end
    return p
end

local function route_label(route)
    return tostring(route.method) .. " " .. tostring(route.path)
end

local function parameters_for(route, ctx)
    local list = {}
    local declared = route.params or {}
    local in_path = {}
    for _, name in ipairs(path_parameter_names(route.path)) do
        in_path[name] = true
        list[#list + 1] = parameter(name, "path", declared[name] or { type = "string" }, true, ctx)
    end
    for _, name in ipairs(sorted_keys(declared)) do
        if not in_path[name] then
            error("openapi: " .. route_label(route) .. " declares path parameter '" .. tostring(name) ..
                "', which is not in its path", 0)
        end
    end
    local query = route.query or {}
    for _, name in ipairs(sorted_keys(query)) do
        list[#list + 1] = parameter(name, "query", query[name], query[name].required == true, ctx)
    end
    return list
end

local function request_body_for(route, ctx)
    if route.body == nil and route.body_content_type == nil then return nil end
    local media = {}
    if route.body ~= nil then media.schema = convert(route.body, ctx) end
    local content = { [route.body_content_type or "application/json"] = media }
    for type, alt in pairs(route.body_alternatives or {}) do content[type] = { schema = convert(alt, ctx) } end
    return { required = route.body_required ~= false, content = content }
end

local response_keys = { description = true, schema = true, content_type = true, headers = true }

local function response_object(route, status, declared, ctx)
    for key in pairs(declared) do
        if not response_keys[key] then
            error("openapi: " .. route_label(route) .. " response " .. status .. " has unknown field '" ..
                tostring(key) .. "' (expected description, schema, content_type, headers)", 0)
        end
    end
    local response = { description = declared.description or reason_phrases[status] or "Response" }
    if declared.schema ~= nil then
        response.content = { [declared.content_type or "application/json"] = { schema = convert(declared.schema, ctx) } }
    end
    if declared.headers then
        response.headers = {}
        for name, header in pairs(declared.headers) do
            response.headers[name] = { description = header.description, schema = convert(header.schema or { type = "string" }, ctx) }
        end
    end
    return response
end

local function status_key(route, status)
    if math.type(status) == "float" and status == math.floor(status) then status = math.tointeger(status) end
    local key = tostring(status)
    if key == "default" or key:find("^[1-5]XX$") then return key end
    local code = math.tointeger(tonumber(key))
    if not code or code < 100 or code > 599 then
        error("openapi: " .. route_label(route) .. " has an invalid response status " .. key, 0)
    end
    return key
end

local function has_validation(route)
    return (route.params and next(route.params) ~= nil) or (route.query and next(route.query) ~= nil)
        or route.body ~= nil
end

local function responses_for(route, ctx)
    local responses = {}
    for _, status in ipairs(sorted_keys(route.responses or {})) do
        local declared = route.responses[status]
        local key = status_key(route, status)
        if type(declared) == "string" then
            if tonumber(key) and tonumber(key) < 400 then
                error("openapi: " .. route_label(route) .. " response " .. key .. ": a string names a problem code; " ..
                    "use { description = ... } for a success response", 0)
            end
            responses[key] = problem_ref(ctx, declared)
        elseif type(declared) == "table" then
            responses[key] = response_object(route, key, declared, ctx)
        else
            error("openapi: " .. route_label(route) .. " response " .. key .. " must be a table or a problem code", 0)
        end
    end
    if has_validation(route) and not responses["422"] then responses["422"] = problem_ref(ctx, "validation_failed") end
    if route.role ~= "public" then
        if not responses["401"] then responses["401"] = problem_ref(ctx, "unauthorized") end
        if not responses["403"] then responses["403"] = problem_ref(ctx, "forbidden") end
    end
    if not responses.default then
        responses.default = problem_response(ctx, "UnexpectedError", "Unexpected error (problem details; quote request_id).")
    end
    return responses
end

local function security_for(route)
    if route.role == "public" then return nil end
    return array_of({
        { bearerAuth = array_of({}) },
        { apiKey = array_of({}) },
    })
end

-- Declarations are normally checked when routes are registered; checking again is a cache hit,
-- and guarantees the document never describes a schema the validator would refuse.
local function check_schemas(route)
    local label = route_label(route)
    if route.params then schema.check_params(route.params, label .. " path", 0) end
    if route.query then schema.check_params(route.query, label .. " query", 0) end
    if route.body then schema.check(route.body, label .. " body", 0) end
end

local function operation_for(route, ctx)
    check_schemas(route)
    local op = {
        operationId = route.operation_id or openapi.operation_id(route.method, route.path),
        summary = route.summary,
        description = route.description,
        deprecated = route.deprecated and true or nil,
        responses = responses_for(route, ctx),
        security = security_for(route),
        ["x-required-role"] = route.role,
    }
    if route.tags then
        op.tags = copy_list(route.tags)
        for _, tag in ipairs(route.tags) do ctx.tags[tag] = true end
    end
    local parameters = parameters_for(route, ctx)
    if #parameters > 0 then op.parameters = array_of(parameters) end
    op.requestBody = request_body_for(route, ctx)
    return op
end

---------------------------------------------------------------------------------------------------
-- The document.

local function check_route(route)
    if type(route) ~= "table" then error("openapi: a route must be a table", 0) end
    if type(route.method) ~= "string" or not http_methods[route.method:upper()] then
        error("openapi: route " .. route_label(route) .. " has an invalid method", 0)
    end
    if type(route.path) ~= "string" or route.path:sub(1, 1) ~= "/" then
        error("openapi: route " .. route_label(route) .. " has an invalid path (it must start with /)", 0)
    end
end

-- Routes as a list, or as a map (visited in key order so the output is stable).
local function route_list(routes)
    if #routes > 0 or next(routes) == nil then return routes end
    local list = {}
    for _, key in ipairs(sorted_keys(routes)) do list[#list + 1] = routes[key] end
    return list
end

local function tag_list(ctx, descriptions)
    local list = {}
    for _, name in ipairs(sorted_keys(ctx.tags)) do
        list[#list + 1] = { name = name, description = descriptions and descriptions[name] or nil }
    end
    return array_of(list)
end

local function info_object(info)
    local out = { title = "Pulse API", version = "0.0.0" }
    for key, value in pairs(info or {}) do out[key] = json_value(value, false) end
    return out
end

-- routes: the route declarations (hidden = true ones are left out); info: the OpenAPI info
-- object (title, version, description, ...); options.servers: a list of {url, description};
-- options.tags: tag name -> description.
function openapi.document(routes, info, options)
    options = options or {}
    local ctx = { schemas = {}, responses = {}, tags = {}, converting = {} }
    local paths, operation_ids = {}, {}
    for _, route in ipairs(route_list(routes)) do
        check_route(route)
        if not route.hidden then
            local op = operation_for(route, ctx)
            local earlier = operation_ids[op.operationId]
            if earlier then
                error("openapi: operationId '" .. op.operationId .. "' is used by both " .. earlier .. " and " ..
                    route_label(route) .. " (set operation_id on one of them)", 0)
            end
            operation_ids[op.operationId] = route_label(route)
            local item = paths[route.path] or {}
            paths[route.path] = item
            local method = route.method:lower()
            if item[method] then error("openapi: " .. route_label(route) .. " is declared twice", 0) end
            item[method] = op
        end
    end
    convert(openapi.problem_schema, ctx) -- always published: every error response uses it
    local doc = {
        openapi = "3.1.0",
        info = info_object(info),
        paths = paths,
        components = {
            schemas = ctx.schemas,
            responses = ctx.responses,
            securitySchemes = security_schemes,
        },
        tags = tag_list(ctx, options.tags),
    }
    if options.servers then doc.servers = json_value(options.servers, true) end
    return doc
end

return openapi
