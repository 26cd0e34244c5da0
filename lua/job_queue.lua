-- Queueing background work from a handler: one jobs row (kind, params as JSON) plus the rows a
-- kind needs beside it, in one transaction, then a NOTIFY that wakes a worker (src/jobs/). The
-- answer is 202 {job_id, state, kind, links} with Location: the job.
local db = require "db"
local json = require "json"
local response = require "response"

local queue = {}

function queue.links(id)
    return { job = "/api/v1/jobs/" .. id, events = "/api/v1/jobs/" .. id .. "/events" }
end

-- queue.start(req, kind, params [, with_job]) -> 202 answer | nil, err. with_job(job_id) -> ok, err
-- runs inside the same transaction (e.g. the clusterings row of a cluster job).
function queue.start(req, kind, params, with_job)
    local who = req.identity or {}
    local id, err = db.tx(function()
        local rows, e = db.query("INSERT INTO jobs (tenant_id, kind, params, created_by, phase) " ..
            "VALUES ($1, $2, $3::jsonb, $4, 'queued') RETURNING id", req.tenant, kind, json.encode(params),
            who.user_id or json.null)
        if not rows then return nil, e end
        local job = rows[1].id
        if with_job then
            local ok, e2 = with_job(job)
            if not ok then return nil, e2 end
        end
        rows, e = db.query("SELECT pg_notify('pulse_jobs', $1)", job)
        if not rows then return nil, e end
        return job
    end)
    if not id then return nil, err end
    return response.json(202, { job_id = id, state = "queued", kind = kind, links = queue.links(id) },
        { location = "/api/v1/jobs/" .. id })
end

return queue
