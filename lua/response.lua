-- Response constructors for handlers, following the API conventions: JSON bodies, lists as
-- {items, total, limit, offset}, 201 with the created object, 202 {job_id} for long work.
local json = require "json"

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

return response
