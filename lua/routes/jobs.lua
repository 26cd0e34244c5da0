-- Jobs: work that takes longer than a request (imports today). The workers (src/jobs/) write
-- each job's progress to its row; these routes read it, follow it live (Server-Sent Events,
-- polling the row a few times a second while it changes), and cancel or delete it. Imports: the
-- uploads with their data-quality reports.
local db = require "db"
local json = require "json"
local problem = require "problem"
local pulse = require "pulse"
local response = require "response"
local schema = require "schema"

local STATES = { "queued", "running", "done", "failed", "cancelled" }
local FINISHED = { done = true, failed = true, cancelled = true }
local POLL_SECONDS = 0.25

local Job = schema.component("Job", {
    type = "object",
    required = { "id", "kind", "state", "progress", "rows_read", "rows_accepted", "rows_rejected", "created_at" },
    properties = {
        id = { type = "string", format = "uuid" },
        kind = { type = "string", enum = { "import" } },
        state = { type = "string", enum = STATES },
        phase = { type = { "string", "null" }, description = "What the job is doing now, in words." },
        progress = { type = "number", description = "Percent done, 0-100." },
        bytes_total = { type = { "integer", "null" } }, bytes_done = { type = "integer" },
        rows_read = { type = "integer" }, rows_accepted = { type = "integer" }, rows_rejected = { type = "integer" },
        rows_per_second = { type = { "number", "null" } },
        eta_seconds = { type = { "number", "null" }, description = "Estimated seconds left (while reading)." },
        result = { type = { "object", "null" }, description = "When done: the counts, and the import's id." },
        error = { type = { "object", "null" }, description = "When failed: {code, message}." },
        attempts = { type = "integer" },
        cancel_requested = { type = "boolean" },
        import_id = { type = { "string", "null" }, format = "uuid" },
        created_at = { type = "string", format = "date-time" },
        started_at = { type = { "string", "null" }, format = "date-time" },
        finished_at = { type = { "string", "null" }, format = "date-time" },
    },
})
local JobList = response.list_schema("JobList", Job)

local Import = schema.component("Import", {
    type = "object",
    required = { "id", "kind", "state", "created_at" },
    properties = {
        id = { type = "string", format = "uuid" }, job_id = { type = "string", format = "uuid" },
        kind = { type = "string", enum = { "transactions", "events", "customers" } },
        state = { type = "string", enum = { "pending", "done", "failed", "cancelled" } },
        file_name = { type = { "string", "null" } }, file_size = { type = { "integer", "null" } },
        content_hash = { type = { "string", "null" }, description = "SHA-256 of the file." },
        rows_read = { type = "integer" }, rows_accepted = { type = "integer" }, rows_rejected = { type = "integer" },
        rows_duplicate = { type = "integer", description = "Exact duplicates inside the file (dropped)." },
        rows_existing = { type = "integer", description = "Records already stored by earlier uploads (merged)." },
        plan = { type = "object", description = "How the file was read: dialect, mapping, date formats, threshold." },
        created_at = { type = "string", format = "date-time" },
        finished_at = { type = { "string", "null" }, format = "date-time" },
    },
})
local ImportList = response.list_schema("ImportList", Import)

local Report = schema.component("ImportReport", {
    type = "object",
    description = "The data-quality report of an upload: counts, and each issue (missing customer ids, bad dates or " ..
        "amounts, returns, duplicates, future dates, outliers ...) with its count, action and first line numbers.",
    properties = {
        import_id = { type = "string", format = "uuid" }, state = { type = "string" },
        rows_read = { type = "integer" }, rows_accepted = { type = "integer" }, rows_rejected = { type = "integer" },
        rows_duplicate = { type = "integer" }, rows_existing = { type = "integer" },
        issues = { type = "array", items = { type = "object" } },
    },
})

local JOB_ID = { id = { type = "string", format = "uuid", description = "The job's id." } }
local IMPORT_ID = { id = { type = "string", format = "uuid", description = "The import's id (its job's id)." } }

local JOB_COLUMNS = [[id, kind, state, phase, progress, bytes_total, bytes_done, rows_read, rows_accepted, rows_rejected,
    rows_per_second, eta_seconds, result, error_code, error, attempts, cancel_requested, created_at, started_at, finished_at]]
local IMPORT_COLUMNS = [[id, id AS job_id, kind, state, file_name, file_size, content_hash, rows_read, rows_accepted,
    rows_rejected, rows_duplicate, rows_existing, plan, created_at, finished_at]]

local function nullable(v)
    if v == nil then return json.null end
    return v
end

local function present(v) return v ~= nil and v ~= json.null end

-- A job row -> its API shape.
local function job_view(row)
    local out = {}
    for k, v in pairs(row) do out[k] = v end
    out.error_code, out.error = nil, nil
    out.error = present(row.error_code) and { code = row.error_code, message = present(row.error) and row.error or "" }
        or json.null
    out.import_id = row.kind == "import" and row.id or json.null
    for _, k in ipairs { "phase", "bytes_total", "rows_per_second", "eta_seconds", "result", "started_at", "finished_at" } do
        out[k] = nullable(row[k])
    end
    return out
end

local function read_job(tenant, id)
    local rows, err = db.query("SELECT " .. JOB_COLUMNS .. " FROM jobs WHERE tenant_id = $1 AND id = $2", tenant, id)
    if not rows then return nil, err end
    if not rows[1] then return problem.not_found("No job " .. id .. ".") end
    return job_view(rows[1])
end

-- What a progress event says (the fields that change).
local function progress_event(job)
    return {
        id = job.id, state = job.state, phase = job.phase, progress = job.progress, rows_read = job.rows_read,
        rows_accepted = job.rows_accepted, rows_rejected = job.rows_rejected, bytes_done = job.bytes_done,
        bytes_total = job.bytes_total, rows_per_second = job.rows_per_second, eta_seconds = job.eta_seconds,
        result = job.result, error = job.error,
    }
end

-- A page of the tenant's rows of `tbl` (jobs or imports), newest first, filtered on state and
-- kind when the query has them (both columns exist in both tables; names are constants here).
local function newest_page(req, tbl, columns, view)
    local q = req.query
    local limit, offset = q.limit or 50, q.offset or 0
    local where, args = { "tenant_id = $1" }, { req.tenant }
    if q.state then args[#args + 1] = q.state; where[#where + 1] = "state = $" .. #args end
    if q.kind then args[#args + 1] = q.kind; where[#where + 1] = "kind = $" .. #args end
    local cond, n = table.concat(where, " AND "), #args
    args[n + 1], args[n + 2] = limit, offset
    local rows, err = db.query(("SELECT %s FROM %s WHERE %s ORDER BY created_at DESC, id LIMIT $%d OFFSET $%d")
        :format(columns, tbl, cond, n + 1, n + 2), table.unpack(args, 1, n + 2))
    if not rows then return nil, err end
    local c
    c, err = db.query(("SELECT count(*) AS n FROM %s WHERE %s"):format(tbl, cond), table.unpack(args, 1, n))
    if not c then return nil, err end
    if view then
        for i, row in ipairs(rows) do rows[i] = view(row) end
    end
    return response.list(rows, c[1].n, limit, offset)
end

return function(routes)
    routes:add {
        method = "GET", path = "/api/v1/jobs", role = "viewer", tags = { "jobs" },
        summary = "List the organization's jobs, newest first",
        query = response.page {
            state = { type = "string", enum = STATES, description = "Only jobs in this state." },
            kind = { type = "string", enum = { "import" }, description = "Only jobs of this kind." },
        },
        responses = { [200] = { description = "A page of jobs", schema = JobList } },
        handler = function(req) return newest_page(req, "jobs", JOB_COLUMNS, job_view) end,
    }

    routes:add {
        method = "GET", path = "/api/v1/jobs/{id}", role = "viewer", tags = { "jobs" },
        summary = "Read a job: state, progress %, rows read/accepted/rejected, rows/s, ETA",
        params = JOB_ID,
        responses = { [200] = { description = "The job", schema = Job }, [404] = "not_found" },
        handler = function(req)
            local job, err = read_job(req.tenant, req.params.id)
            if not job or problem.is(job) then return job, err end
            return response.ok(job)
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/jobs/{id}/events", role = "viewer", tags = { "jobs" },
        summary = "Follow a job live (Server-Sent Events)",
        description = "A text/event-stream: a `progress` event whenever the job's progress changes (a few per second " ..
            "at most), then one `done`, `failed` or `cancelled` event with the final state, and the stream ends. " ..
            "Each event's data is the job's progress as JSON.",
        params = JOB_ID,
        responses = { [200] = { description = "The event stream (text/event-stream)" }, [404] = "not_found" },
        handler = function(req)
            local job, err = read_job(req.tenant, req.params.id)
            if not job or problem.is(job) then return job, err end
            local tenant, id = req.tenant, req.params.id
            return response.sse(function(stream)
                local last
                while true do
                    local event = progress_event(job)
                    local text = json.encode(event)
                    if text ~= last then
                        last = text
                        local name = FINISHED[job.state] and job.state or "progress"
                        if not stream:send { event = name, data = text } then return end
                    end
                    if FINISHED[job.state] then return end
                    if not pulse.sleep(POLL_SECONDS) then return end
                    job, err = read_job(tenant, id)
                    if not job or problem.is(job) then
                        stream:send { event = "error", data = { message = "the job is gone" } }
                        return
                    end
                end
            end)
        end,
    }

    routes:add {
        method = "DELETE", path = "/api/v1/jobs/{id}", role = "analyst", tags = { "jobs" },
        summary = "Cancel a job (queued or running), or delete a finished one",
        description = "A queued job is cancelled at once (200 with the job); a running one is asked to stop: it ends at its " ..
            "next step (an import, a segmentation, a training or a scoring run) and rolls back, nothing of it is stored " ..
            "(202 with the job, `cancel_requested` true; follow it to `cancelled`). " ..
            "A finished job's row is deleted (204); the data an import stored stays.",
        params = JOB_ID,
        responses = {
            [200] = { description = "Cancelled", schema = Job }, [202] = { description = "Stopping", schema = Job },
            [204] = { description = "Deleted" }, [404] = "not_found",
        },
        handler = function(req)
            local tenant, id = req.tenant, req.params.id
            local rows, err = db.query([[UPDATE jobs SET state = 'cancelled', phase = 'cancelled', finished_at = now(),
                error_code = 'cancelled', error = 'cancelled before it started; nothing was stored'
                WHERE tenant_id = $1 AND id = $2 AND state = 'queued' RETURNING params->>'file' AS file]], tenant, id)
            if not rows then return nil, err end
            if rows[1] then
                if type(rows[1].file) == "string" then os.remove(rows[1].file) end
                db.query("UPDATE imports SET state = 'cancelled', finished_at = now() WHERE tenant_id = $1 AND id = $2", tenant, id)
                local job
                job, err = read_job(tenant, id)
                if not job or problem.is(job) then return job, err end
                return response.ok(job)
            end
            rows, err = db.query([[UPDATE jobs SET cancel_requested = true WHERE tenant_id = $1 AND id = $2 AND state = 'running'
                RETURNING id]], tenant, id)
            if not rows then return nil, err end
            if rows[1] then
                local job
                job, err = read_job(tenant, id)
                if not job or problem.is(job) then return job, err end
                return response.json(202, job)
            end
            rows, err = db.query("DELETE FROM jobs WHERE tenant_id = $1 AND id = $2 RETURNING id", tenant, id)
            if not rows then return nil, err end
            if not rows[1] then return problem.not_found("No job " .. id .. ".") end
            return response.no_content()
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/imports", role = "viewer", tags = { "imports" },
        summary = "List the organization's uploads, newest first",
        query = response.page {
            state = { type = "string", enum = { "pending", "done", "failed", "cancelled" } },
            kind = { type = "string", enum = { "transactions", "events", "customers" } },
        },
        responses = { [200] = { description = "A page of imports", schema = ImportList } },
        handler = function(req) return newest_page(req, "imports", IMPORT_COLUMNS) end,
    }

    routes:add {
        method = "GET", path = "/api/v1/imports/{id}", role = "viewer", tags = { "imports" },
        summary = "Read an upload: its kind, file, plan, state and counts",
        params = IMPORT_ID,
        responses = { [200] = { description = "The import", schema = Import }, [404] = "not_found" },
        handler = function(req)
            local rows, err = db.query("SELECT " .. IMPORT_COLUMNS .. " FROM imports WHERE tenant_id = $1 AND id = $2",
                req.tenant, req.params.id)
            if not rows then return nil, err end
            if not rows[1] then return problem.not_found("No import " .. req.params.id .. ".") end
            return response.ok(rows[1])
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/imports/{id}/report", role = "viewer", tags = { "imports" },
        summary = "The data-quality report of an upload",
        description = "Counts of rows read, accepted, rejected, duplicate and already stored, and every issue found " ..
            "(rows without a customer id, unparseable dates or amounts, returns and cancellations, exact duplicates, " ..
            "future dates, outliers ...) with its count, what was done (rejected, kept, dropped, flagged) and the first " ..
            "line numbers. 409 while the import has not run yet.",
        params = IMPORT_ID,
        responses = { [200] = { description = "The report", schema = Report }, [404] = "not_found", [409] = "not_ready" },
        handler = function(req)
            local rows, err = db.query("SELECT id, state, report FROM imports WHERE tenant_id = $1 AND id = $2",
                req.tenant, req.params.id)
            if not rows then return nil, err end
            local row = rows[1]
            if not row then return problem.not_found("No import " .. req.params.id .. ".") end
            if not present(row.report) then
                return problem.conflict("not_ready", ("The import is %s: its report comes when its job has run."):format(row.state))
            end
            local report = row.report
            report.import_id, report.state = row.id, row.state
            return response.ok(report)
        end,
    }
end
