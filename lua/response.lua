-- Response constructors for handlers, following the API conventions: JSON bodies, lists as
-- {items, total, limit, offset}, 201 with the created object, 202 {job_id} for long work.
local json = require "json"
local schema = require "schema"

local response = {}

function response.json(status, value, headers)
    return { status = status, json = value, headers = headers }
end

function response.ok(value) return { status = 200, json = value } end
function response.created(object) return { status = 201, json = object } end
function response.accepted(job_id) return { status = 202, json = { job_id = job_id } } end
function response.no_content() return { status = 204 } end

function response.list(items, total, limit, offset)
    return { status = 200, json = { items = json.array(items), total = total, limit = limit, offset = offset } }
end

function response.text(status, text, content_type)
    return { status = status, body = text, headers = { ["content-type"] = content_type or "text/plain; charset=utf-8" } }
end

function response.bytes(status, bytes, content_type)
    return { status = status, body = bytes, headers = { ["content-type"] = content_type or "application/octet-stream" } }
end

-- The paging query parameters every list endpoint takes; extra filters are added with page{...}.
local PAGE = {
    limit = { type = "integer", minimum = 1, maximum = 500, default = 50, description = "Page size (at most 500)." },
    offset = { type = "integer", minimum = 0, default = 0, description = "Rows to skip." },
}

-- response.page(extra) -> the query declaration of a list route: limit, offset, and extra filters.
function response.page(extra)
    if not extra then return PAGE end
    local q = { limit = PAGE.limit, offset = PAGE.offset }
    for k, v in pairs(extra) do q[k] = v end
    return q
end

-- response.list_schema(name, item) -> the schema of a list answer (registered as component name).
function response.list_schema(name, item)
    return schema.component(name, {
        type = "object",
        required = { "items", "total", "limit", "offset" },
        properties = {
            items = { type = "array", items = item },
            total = { type = "integer" }, limit = { type = "integer" }, offset = { type = "integer" },
        },
    })
end

return response
