-- Response constructors for handlers, following the API conventions: JSON bodies, lists as
-- {items, total, limit, offset}, 201 with the created object, 202 {job_id} for long work.
--
-- Server-Sent Events: return response.sse(producer [, headers]) from a handler. The server
-- answers 200 `text/event-stream; charset=utf-8` (cache-control: no-store, x-accel-buffering: no,
-- no content-length, never gzipped, plus the given headers and CORS), then calls
-- producer(stream) in the same coroutine; the answer ends when it returns (an error it raises
-- is logged with the request id and ends the stream too). Inside the producer:
--   stream:send(event) -> true | nil, reason
--       event: a string (one data-only event) or { event = name, data = v, id = id, retry = ms };
--       data is a string (several lines become several `data:` lines) or a value json.encode
--       takes; event and id must not hold CR or LF (raises). Yields until the event is written
--       (one write at a time). reason: "closed" (the client went away), "expired" (the stream
--       ran PULSE_STREAM_MAX_SECONDS) or "shutdown" (SIGTERM): return from the producer then.
--   stream:comment(text) -> as send; writes ": text" (clients ignore it).
--   pulse.sleep(seconds) -> true | false: waits without blocking the loop; false when the client
--       went away, the stream expired or the server shuts down. While a stream is open a
--       ": keep-alive" comment goes out every 15 s of sleep, so a gone HTTP/1 client is noticed.
-- The request timeout (PULSE_REQUEST_TIMEOUT_MS) stops applying once the stream has started. A
-- producer that waits on something else for long (db.query) should send a comment now and then.
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

-- response.sse(producer [, headers]) -> a streamed answer (see the top of this file).
function response.sse(producer, headers)
    if type(producer) ~= "function" then error("response.sse: the producer must be a function", 2) end
    if headers ~= nil and type(headers) ~= "table" then error("response.sse: headers must be a table", 2) end
    return { status = 200, sse = producer, headers = headers }
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
