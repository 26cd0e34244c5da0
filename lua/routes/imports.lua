-- Imports. POST /api/v1/imports/preview reads the start of a file (CSV in any dialect, or .xlsx)
-- through the ingest binding, describes its columns, and suggests the record kind and column
-- mapping for the tenant's industry (industries/*.lua, lua/mapping.lua), with the questions the
-- user must answer before importing; nothing is stored. POST /api/v1/imports and
-- /api/v1/customers/bulk store the file on disk (never as a Lua string), check it the same way,
-- decide the import plan (lua/import_plan.lua) and queue a job the workers run (src/jobs/): 202
-- with the job's id. GET /api/v1/imports[/{id}[/report]] read the uploads and their reports.
local db = require "db"
local ingest = require "ingest"
local json = require "json"
local problem = require "problem"
local response = require "response"
local schema = require "schema"
local industries = require "industries"
local import_plan = require "import_plan"
local import = require "import"
local auth = require "auth"
local pulse = require "pulse"

local MAX_BODY = 16 * 1024 * 1024
local PREVIEW_ROWS = 20
local XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
local MULTIPART = "multipart/form-data"

-- raw bodies accepted as a file
local RAW_TYPES = {
    ["text/csv"] = true, ["text/plain"] = true, ["application/octet-stream"] = true,
    ["text/tab-separated-values"] = true, ["application/vnd.ms-excel"] = true, [XLSX_TYPE] = true,
}

-- The options, as query parameters (raw body) or form fields (multipart; these win).
local OPTIONS = {
    filename = { type = "string", maxLength = 255, description = "The file's name (raw bodies): `.xlsx` selects the Excel reader." },
    kind = { type = "string", maxLength = 64, pattern = "^[%l_]+$",
        description = "The record kind (e.g. transactions, events, customers); default: the best match." },
    sheet = { type = "string", maxLength = 255, description = "The .xlsx sheet to read (default: the first)." },
    sep = { type = "string", enum = { ",", ";", "\t", "|", "whitespace" },
        description = "The CSV separator (default: sniffed)." },
    header = { type = "boolean", description = "Whether the first row holds column names (default: sniffed)." },
    decimal_comma = { type = "boolean", description = "Whether numbers use a decimal comma (default: sniffed)." },
    mapping = { type = "string", maxLength = 20000,
        description = "A mapping to use instead of the suggestion, as JSON text: {\"canonical_field\": \"column name\", ...}." },
}

-- Upload options: the preview's, plus the answers and the threshold.
local UPLOAD_OPTIONS = {
    date_formats = { type = "string", maxLength = 20000,
        description = "Answers to ambiguous dates, as JSON text: {\"column name\": \"DD/MM/YYYY\", ...}." },
    max_error_rate = { type = "number", minimum = 0, maximum = 1,
        description = "Share of bad rows (rejected / read) above which the whole upload is refused; default 0.01." },
}
for k, v in pairs(OPTIONS) do UPLOAD_OPTIONS[k] = v end

local form_properties = { file = { type = "string", description = "The file (CSV or .xlsx)." } }
for k, v in pairs(OPTIONS) do
    if k ~= "filename" then form_properties[k] = { type = "string", description = v.description } end
end
local PreviewForm = { type = "object", required = { "file" }, properties = form_properties }

local Preview = schema.component("ImportPreview", {
    type = "object",
    required = { "format", "columns", "rows", "rows_sampled", "errors", "industry", "suggestion", "kind", "mapping", "questions" },
    properties = {
        format = { type = "string", enum = { "csv", "xlsx" } },
        dialect = { type = "object", description = "CSV: sep, quote, header, decimal_comma, bom, crlf, confidence, ambiguous, reason." },
        sheets = { type = "array", items = { type = "string" }, description = ".xlsx: the workbook's sheets." },
        columns = { type = "array", items = { type = "object" },
            description = "index, name, type (integer, decimal, boolean, date, datetime, text, empty), date_format, " ..
                "alternatives, ambiguous, reason, values, nulls, looks_boolean, leading_zeros." },
        rows = { type = "array", items = { type = "array", items = { type = "string" } }, description = "The first rows, as text." },
        rows_sampled = { type = "integer" },
        errors = { type = "array", items = { type = "object" }, description = "Row problems met in the sample: {row, message}." },
        industry = { type = "string" },
        suggestion = { type = "object", description = "kind, score, mapping {field: column}, matched_by, unmapped_required, " ..
            "unused_columns, attributes, derived, cancellation, label, layout, alternatives [{kind, score}]." },
        kind = { type = "string", description = "The kind the answer is for (requested, or suggested)." },
        mapping = { type = "object", description = "The mapping in effect (the request's when it sent one, else the suggestion's)." },
        mapping_source = { type = "string", enum = { "request", "suggestion" } },
        questions = { type = "array", items = { type = "object" },
            description = "What the user must settle before importing: {code = date_format | unmapped_field | dialect, ...}." },
    },
})


local function arr(t) return json.array(t or {}) end

local function media_type(ct)
    return ct and (ct:match("^%s*([^;%s]+)") or ""):lower()
end

local function invalid(field, code, message)
    return problem.validation { { field = field, code = code, message = message } }
end

-- The formats to choose from: the one ingest picked, then its alternatives.
local function date_options(c)
    local out, seen = {}, {}
    local function add(f)
        if type(f) == "string" and not seen[f] then seen[f] = true; out[#out + 1] = f end
    end
    add(c.date_format)
    for _, f in ipairs(type(c.alternatives) == "table" and c.alternatives or {}) do add(f) end
    return arr(out)
end

local function questions_for(preview, kind, effective, unmapped)
    local qs = {}
    local d = preview.dialect
    if type(d) == "table" and d.ambiguous then
        qs[#qs + 1] = { code = "dialect", message = "The file's layout is uncertain: " .. tostring(d.reason or "check the separator") ..
            ". Confirm the separator (sep), header and decimal_comma.", sep = d.sep, header = d.header, decimal_comma = d.decimal_comma }
    end
    local used = {}
    for _, col in pairs(effective) do used[col] = true end
    for _, c in ipairs(preview.columns or {}) do
        if c.ambiguous and (c.type == "date" or c.type == "datetime" or c.alternatives) then
            qs[#qs + 1] = { code = "date_format", column = c.name, mapped = used[c.name] == true,
                message = ("Column '%s': the date format is ambiguous%s. Choose one of the alternatives."):format(
                    tostring(c.name), c.reason and (" (" .. tostring(c.reason) .. ")") or ""),
                date_format = c.date_format, alternatives = arr(c.alternatives), options = date_options(c) }
        end
    end
    for _, f in ipairs(unmapped) do
        qs[#qs + 1] = { code = "unmapped_field", field = f, kind = kind,
            message = ("No column is mapped to %s, which %s needs; send a mapping."):format(f, kind) }
    end
    return arr(qs)
end

-- The file and options of the request -> { data, filename, opts, where } | problem
local function read_request(req)
    local ct = req.headers["content-type"]
    local mt = media_type(ct) or "application/octet-stream"
    local opts = {}
    for k, v in pairs(req.query) do opts[k] = v end
    if mt == MULTIPART then
        if req.body_length == 0 then return invalid("body.file", "required", "send the file in the multipart field 'file'") end
        local parts, err = ingest.multipart(req.body, ct)
        if not parts then
            return problem.bad_request(err.code or "bad_multipart", "The multipart body cannot be read: " .. tostring(err.message) .. ".")
        end
        local file
        for _, f in ipairs(parts.files or {}) do
            if f.field == "file" then file = f break end
        end
        local fields = parts.fields or {}
        if not file and type(fields.file) == "string" then file = { data = fields.file } end
        if not file then return invalid("body.file", "required", "send the file in the multipart field 'file'") end
        local raw = {}
        for k, v in pairs(fields) do if k ~= "file" and OPTIONS[k] then raw[k] = v end end
        local form, errs = schema.coerce_params(OPTIONS, raw, "body")
        if errs then return problem.validation(errs) end
        for k, v in pairs(form or {}) do opts[k] = v end
        return { data = file.data, filename = file.filename or opts.filename, opts = opts, where = "body",
            file_type = media_type(file.content_type) }
    end
    if not RAW_TYPES[mt] then
        return problem.new(415, "unsupported_media_type", "Send the file as multipart/form-data (field 'file') or as the raw body " ..
            "with Content-Type text/csv, text/plain, application/octet-stream or " .. XLSX_TYPE .. ".")
    end
    if req.body_length == 0 then return invalid("body.file", "required", "the request body (the file) is empty") end
    local filename = opts.filename
    if not filename and mt == XLSX_TYPE then filename = "upload.xlsx" end
    return { data = req.body, filename = filename, opts = opts, where = "query", file_type = mt }
end

-- The organization's industry declaration -> decl, industry | problem
local function tenant_industry(req)
    local rows, err = db.query("SELECT industry FROM organizations WHERE id = $1", req.tenant)
    if not rows then return nil, err end
    if not rows[1] then return problem.not_found("No organization for this credential.") end
    return industries.get(rows[1].industry), rows[1].industry
end

local function unknown_kind(where, kind, decl)
    return invalid(where .. ".kind", "unknown_kind", ("'%s' is not a kind of %s data; use one of: %s")
        :format(kind, decl.name, table.concat(industries.kind_names(decl), ", ")))
end

-- A JSON-object option (mapping, date_formats) -> table | nil | problem
local function object_option(opts, name, where, example)
    if opts[name] == nil then return nil end
    local decoded = json.decode(opts[name])
    if type(decoded) ~= "table" or getmetatable(decoded) == json.array_mt then
        return invalid(where .. "." .. name, "invalid_" .. name, "must be a JSON object " .. example)
    end
    return decoded
end

-- ingest's refusal of a file -> 422 naming what is wrong
local function unreadable(perr, where)
    local code = perr and perr.code or "malformed"
    local field = code == "unknown_sheet" and (where .. ".sheet") or code == "bad_option" and where or "body.file"
    return problem.new(422, code, tostring(perr and perr.message or "The file cannot be read."),
        { errors = { { field = field, code = code, message = tostring(perr and perr.message) } }, row = perr and perr.row })
end

-- The record kind and mapping for a previewed file (import_plan.choose_mapping) | problem
local function decide_mapping(decl, preview, opts, where)
    local override = object_option(opts, "mapping", where, "{\"canonical_field\": \"column name\", ...}")
    if problem.is(override) then return override end
    local chosen, errors = import_plan.choose_mapping(decl, preview, { kind = opts.kind, mapping = override }, where)
    if not chosen then return problem.validation(errors) end
    return chosen
end

-- The options of an upload: the query's, then the multipart form's (these win).
local function upload_options(req, fields)
    local opts = {}
    for k, v in pairs(req.query) do opts[k] = v end
    if fields then
        local raw = {}
        for k, v in pairs(fields) do if UPLOAD_OPTIONS[k] then raw[k] = v end end
        local form, errs = schema.coerce_params(UPLOAD_OPTIONS, raw, "body")
        if errs then return problem.validation(errs) end
        for k, v in pairs(form or {}) do opts[k] = v end
    end
    return opts
end

local JOB_LINKS = function(id)
    return { job = "/api/v1/jobs/" .. id, events = "/api/v1/jobs/" .. id .. "/events",
        report = "/api/v1/imports/" .. id .. "/report" }
end

-- Stores the upload, checks it, plans it and queues its job. default_kind: nil (the best match).
local function start_import(req, default_kind)
    local mt = media_type(req.headers["content-type"]) or "application/octet-stream"
    if mt ~= MULTIPART and not RAW_TYPES[mt] then
        return problem.new(415, "unsupported_media_type", "Send the file as multipart/form-data (field 'file') or as the raw body " ..
            "with Content-Type text/csv, text/plain, application/octet-stream or " .. XLSX_TYPE .. ".")
    end
    if req.body_length == 0 then return invalid("body.file", "required", "send the file (the body is empty)") end
    local where = mt == MULTIPART and "body" or "query"
    local path = pulse.config.upload_dir .. "/" .. auth.random_token(18) .. ".upload"
    local saved, serr = ingest.save_upload(path)
    if not saved then
        if serr.code == "io" then return nil, serr.message end
        if serr.code == "no_file" then return invalid("body.file", "required", serr.message) end
        return problem.bad_request(serr.code or "bad_multipart", "The multipart body cannot be read: " .. tostring(serr.message) .. ".")
    end
    local function refuse(p, err)
        os.remove(path)
        return p, err
    end
    if saved.size == 0 then return refuse(invalid("body.file", "empty_file", "the file is empty")) end
    local opts = upload_options(req, mt == MULTIPART and saved.fields or nil)
    if problem.is(opts) then return refuse(opts) end
    opts.kind = opts.kind or default_kind

    local decl, err = tenant_industry(req)
    if problem.is(decl) or not decl then return refuse(decl, err) end
    if opts.kind and not decl.kinds[opts.kind] then return refuse(unknown_kind(where, opts.kind, decl)) end

    local filename = saved.filename or opts.filename
    if not filename and (mt == XLSX_TYPE or saved.content_type == XLSX_TYPE) then filename = "upload.xlsx" end
    local preview, perr = ingest.preview_file(path, { filename = filename, sheet = opts.sheet, max_rows = 5, sep = opts.sep,
        header = opts.header, decimal_comma = opts.decimal_comma })
    if not preview then return refuse(unreadable(perr, where)) end
    if (preview.rows_sampled or 0) == 0 then
        return refuse(invalid("body.file", "empty_file", "the file has no data rows (a header only?)"))
    end

    local chosen = decide_mapping(decl, preview, opts, where)
    if problem.is(chosen) then return refuse(chosen) end
    if #chosen.unmapped > 0 then return refuse(problem.validation(import_plan.unmapped_errors(chosen, where))) end
    local answers = object_option(opts, "date_formats", where, "{\"column name\": \"DD/MM/YYYY\", ...}")
    if problem.is(answers) then return refuse(answers) end
    local plan, errors = import_plan.build { industry = decl, kind = chosen.kind, preview = preview, mapping = chosen.mapping,
        suggestion = chosen.suggestion, date_formats = answers, max_error_rate = opts.max_error_rate, sheet = opts.sheet,
        where = where }
    if not plan then return refuse(problem.validation(errors)) end
    local ok, why = import.check_plan(plan)
    if not ok then return refuse(problem.new(422, "invalid_plan", "The file cannot be imported this way: " .. tostring(why) .. ".")) end

    local who = req.identity or {}
    local params = json.encode { file = path, file_name = filename, plan = plan }
    local id
    id, err = db.tx(function()
        local rows, qerr = db.query("INSERT INTO jobs (tenant_id, kind, params, created_by, bytes_total, phase) " ..
            "VALUES ($1, 'import', $2::jsonb, $3, $4, 'queued') RETURNING id",
            req.tenant, params, who.user_id or json.null, saved.size)
        if not rows then return nil, qerr end
        local job = rows[1].id
        rows, qerr = db.query("INSERT INTO imports (id, tenant_id, kind, file_name, file_size, plan, created_by) " ..
            "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)",
            job, req.tenant, chosen.kind, filename or json.null, saved.size, json.encode(plan), who.user_id or json.null)
        if not rows then return nil, qerr end
        rows, qerr = db.query("SELECT pg_notify('pulse_jobs', $1)", job)
        if not rows then return nil, qerr end
        return job
    end)
    if not id then return refuse(nil, err) end
    return response.json(202, { job_id = id, import_id = id, state = "queued", kind = chosen.kind, mapping = chosen.mapping,
        mapping_source = chosen.source, file = { name = filename or json.null, size = saved.size }, links = JOB_LINKS(id) },
        { location = "/api/v1/jobs/" .. id })
end

local UploadForm = { type = "object", required = { "file" }, properties = {} }
for k, v in pairs(form_properties) do UploadForm.properties[k] = v end
for k, v in pairs(UPLOAD_OPTIONS) do
    if k ~= "filename" then UploadForm.properties[k] = { type = "string", description = v.description } end
end

local Accepted = schema.component("ImportAccepted", {
    type = "object", required = { "job_id", "import_id", "state", "kind", "mapping" },
    properties = {
        job_id = { type = "string", format = "uuid" }, import_id = { type = "string", format = "uuid" },
        state = { type = "string" }, kind = { type = "string" },
        mapping = { type = "object", description = "The mapping in effect: {canonical field: column name}." },
        mapping_source = { type = "string", enum = { "request", "suggestion" } },
        file = { type = "object" }, links = { type = "object", description = "job, events (live progress), report." },
    },
})

local UPLOAD_DESCRIPTION = "The file goes in the multipart field `file` (other fields: the options below, as text), or " ..
    "as the raw body (Content-Type text/csv, text/plain, application/octet-stream or the .xlsx type) with the options " ..
    "in the query string. The file is checked as the preview checks it (422 naming what to settle: an ambiguous " ..
    "date format, an unmapped required field, an unreadable file), then an import job is queued: 202 with its " ..
    "`job_id`. Follow it at /api/v1/jobs/{id} or live at /api/v1/jobs/{id}/events; the data-quality report is at " ..
    "/api/v1/imports/{id}/report. One upload is one transaction: all of it is stored or none. Uploading the same " ..
    "records again adds nothing (rows are merged on their content)."

return function(routes)
    routes:add {
        method = "POST", path = "/api/v1/imports/preview", role = "analyst", tags = { "imports" },
        summary = "Preview a file: dialect, column types, first rows, suggested kind and mapping",
        description = "Send the file as multipart/form-data in the field `file` (other fields: kind, sheet, sep, header, " ..
            "decimal_comma, mapping as JSON text), or as the raw body (Content-Type text/csv, text/plain, " ..
            "application/octet-stream or the .xlsx type) with the options in the query string and the name in `?filename=`. " ..
            "The preview reads only what is sent (at most 16 MiB): for a big CSV file, send its first megabytes. " ..
            "The answer describes the columns (types, date formats, ambiguity), the first " .. PREVIEW_ROWS .. " rows, " ..
            "the suggested record kind and mapping for the organization's industry, and the questions to answer " ..
            "before importing. A `mapping` sent with the request is checked against the file (422 naming the fields). " ..
            "Nothing is stored.",
        query = OPTIONS,
        body_content_type = MULTIPART, body = PreviewForm,
        max_body = MAX_BODY,
        responses = {
            [200] = { description = "The preview", schema = Preview },
            [400] = "bad_multipart", [413] = "body_too_large", [415] = "unsupported_media_type",
            [422] = "validation_failed",
        },
        handler = function(req)
            local input = read_request(req)
            if problem.is(input) then return input end
            local opts, where = input.opts, input.where

            local decl, err = tenant_industry(req)
            if problem.is(decl) or not decl then return decl, err end
            if opts.kind and not decl.kinds[opts.kind] then return unknown_kind(where, opts.kind, decl) end

            local file_type = input.file_type
            local filename = input.filename
            if not filename and file_type == XLSX_TYPE then filename = "upload.xlsx" end
            local preview, perr = ingest.preview(input.data, {
                filename = filename, sheet = opts.sheet, max_rows = PREVIEW_ROWS, sep = opts.sep,
                header = opts.header, decimal_comma = opts.decimal_comma,
            })
            if not preview then return unreadable(perr, where) end

            local chosen = decide_mapping(decl, preview, opts, where)
            if problem.is(chosen) then return chosen end
            local suggestion, kind, effective, source = chosen.suggestion, chosen.kind, chosen.mapping, chosen.source
            local industry = decl.name
            for _, c in ipairs(preview.columns or {}) do
                if type(c.alternatives) == "table" then json.array(c.alternatives) end
            end
            suggestion.unmapped_required = arr(suggestion.unmapped_required)
            suggestion.unused_columns = arr(suggestion.unused_columns)
            suggestion.alternatives = arr(suggestion.alternatives)
            if suggestion.attributes then suggestion.attributes = arr(suggestion.attributes) end
            return response.ok {
                format = preview.format, dialect = preview.dialect, sheets = preview.sheets and arr(preview.sheets),
                columns = arr(preview.columns), rows = arr(preview.rows), rows_sampled = preview.rows_sampled or 0,
                errors = arr(preview.errors), industry = industry, suggestion = suggestion,
                kind = kind, mapping = effective, mapping_source = source,
                questions = questions_for(preview, kind, effective, chosen.unmapped),
            }
        end,
    }
    local function upload_route(path, summary, default_kind, extra)
        routes:add {
            method = "POST", path = path, role = "analyst", tags = { "imports" },
            summary = summary, description = extra .. " " .. UPLOAD_DESCRIPTION,
            query = UPLOAD_OPTIONS,
            body_content_type = MULTIPART, body = UploadForm,
            max_body = pulse.config.max_upload_bytes,
            responses = {
                [202] = { description = "The import job is queued", schema = Accepted },
                [400] = "bad_multipart", [413] = "body_too_large", [415] = "unsupported_media_type",
                [422] = "validation_failed",
            },
            handler = function(req) return start_import(req, default_kind) end,
        }
    end
    upload_route("/api/v1/imports", "Upload a file to import (explicit kind and mapping allowed)", nil,
        "The record kind (`kind`) and `mapping` default to the best match for the organization's industry.")
    upload_route("/api/v1/customers/bulk", "Upload customer data in bulk", nil,
        "The same as POST /api/v1/imports: the kind of records (transactions, events or customer attributes) " ..
        "is recognised from the columns unless `kind` says it.")
end
