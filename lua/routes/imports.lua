-- Imports: the first step of an upload. POST /api/v1/imports/preview reads the start of a file
-- (CSV in any dialect, or .xlsx) through the ingest binding, describes its columns, and suggests
-- the record kind and column mapping for the tenant's industry (industries/*.lua, lua/mapping.lua),
-- with the questions the user must answer before importing. Nothing is stored.
local db = require "db"
local ingest = require "ingest"
local json = require "json"
local problem = require "problem"
local response = require "response"
local schema = require "schema"
local industries = require "industries"
local mapping = require "mapping"

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

            local override
            if opts.mapping ~= nil then
                local decoded = json.decode(opts.mapping)
                if type(decoded) ~= "table" or getmetatable(decoded) == json.array_mt then
                    return invalid(where .. ".mapping", "invalid_mapping",
                        "must be a JSON object {\"canonical_field\": \"column name\", ...}")
                end
                override = decoded
            end

            local rows, err = db.query("SELECT industry FROM organizations WHERE id = $1", req.tenant)
            if not rows then return nil, err end
            if not rows[1] then return problem.not_found("No organization for this credential.") end
            local industry = rows[1].industry
            local decl = industries.get(industry)
            if opts.kind and not decl.kinds[opts.kind] then
                return invalid(where .. ".kind", "unknown_kind", ("'%s' is not a kind of %s data; use one of: %s")
                    :format(opts.kind, industry, table.concat(industries.kind_names(decl), ", ")))
            end

            local file_type = input.file_type
            local filename = input.filename
            if not filename and file_type == XLSX_TYPE then filename = "upload.xlsx" end
            local preview, perr = ingest.preview(input.data, {
                filename = filename, sheet = opts.sheet, max_rows = PREVIEW_ROWS, sep = opts.sep,
                header = opts.header, decimal_comma = opts.decimal_comma,
            })
            if not preview then
                local code = perr and perr.code or "malformed"
                local field = code == "unknown_sheet" and (where .. ".sheet") or code == "bad_option" and where or "body.file"
                return problem.new(422, code, tostring(perr and perr.message or "The file cannot be read."),
                    { errors = { { field = field, code = code, message = tostring(perr and perr.message) } },
                      row = perr and perr.row })
            end

            local headers = {}
            for i, c in ipairs(preview.columns or {}) do headers[i] = c.name or ("column_" .. i) end
            local header_row = true
            if type(preview.dialect) == "table" and preview.dialect.header == false then header_row = false end
            local suggestion = mapping.suggest(decl, headers, preview.columns, { kind = opts.kind, header = header_row })

            local kind, effective, source, unmapped = suggestion.kind, suggestion.mapping, "suggestion", suggestion.unmapped_required
            if override then
                local ok, errors = mapping.validate(decl, kind, override, headers)
                if not ok then
                    for _, e in ipairs(errors) do
                        e.field = e.field == "kind" and (where .. ".kind") or (where .. "." .. e.field)
                    end
                    return problem.validation(errors)
                end
                effective, source, unmapped = override, "request", {}
            end

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
                questions = questions_for(preview, kind, effective, unmapped),
            }
        end,
    }
end
