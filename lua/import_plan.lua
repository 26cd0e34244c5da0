-- The import plan: what the C loader (src/ingest/load.h) needs to read a file, decided here from
-- the preview of the file, the industry's declaration and the user's answers. The plan is plain
-- data (stored as JSON with the job): which column holds which canonical field, each date
-- field's format, derivations, cancellations, attribute columns and the bad-row threshold.
--
-- import_plan.build(args) -> plan | nil, errors
--   args.industry: the declaration (industries.get); args.kind: the record kind;
--   args.preview: ingest.preview_file's answer; args.mapping: { canonical = column name } (checked
--   with mapping.validate beforehand); args.suggestion: mapping.suggest's answer for the kind;
--   args.date_formats: { column name = format } answers to ambiguous dates (optional);
--   args.max_error_rate (optional, default 0.01); args.sheet (xlsx, optional);
--   args.where: "body" or "query", for error field names.
--   errors = { { field, code, message, ... } } naming what the user must settle.
local industries = require "industries"
local mapping = require "mapping"

local import_plan = {}

local DEFAULT_MAX_ERROR_RATE = 0.01

local ATTRIBUTE_TYPES = {
    integer = "integer", decimal = "decimal", boolean = "boolean", date = "date", datetime = "date",
    text = "text", empty = "text",
}

local function column_positions(preview)
    local pos, headers = {}, {}
    for i, c in ipairs(preview.columns or {}) do
        local name = c.name or ("column_" .. i)
        headers[i] = name
        pos[name] = i
    end
    return pos, headers
end

-- The date format of a date field's column: the user's answer, else what the preview decided.
local function date_format_of(col, name, answers, where, field)
    local answer = answers and answers[name]
    if answer ~= nil then
        if type(answer) ~= "string" then
            return nil, { field = where .. ".date_formats." .. name, code = "type", message = "must be a date format name" }
        end
        return answer
    end
    if (col.type == "date" or col.type == "datetime") and col.date_format then
        if col.ambiguous then
            local options = { col.date_format }
            for _, alt in ipairs(col.alternatives or {}) do options[#options + 1] = alt end
            return nil, { field = where .. ".date_formats", code = "ambiguous_date_format", column = name,
                options = options,
                message = ("Column '%s' (%s): the dates read both as %s; say which in date_formats, e.g. {\"%s\": \"%s\"}.")
                    :format(name, field, table.concat(options, " and "), name, options[1]) }
        end
        return col.date_format
    end
    if col.near_type == "date" or col.near_type == "datetime" then
        return col.near_date_format -- mostly dates: the others are rejected as bad rows and reported
    end
    return nil, { field = where .. ".mapping." .. field, code = "not_dates", column = name,
        message = ("Column '%s' mapped to %s holds no dates Pulse can read (detected: %s); map another column " ..
            "or give its format in date_formats."):format(name, field, tostring(col.type)) }
end

-- Attribute names as stored in customers.attributes: the header, trimmed, at most 128 bytes.
local function attribute_name(header)
    local s = tostring(header):gsub("^%s+", ""):gsub("%s+$", "")
    if #s > 128 then s = s:sub(1, 128) end
    if s == "" then s = "column" end
    return s
end

function import_plan.build(args)
    local kind = args.industry.kinds[args.kind]
    local preview, where = args.preview, args.where or "body"
    local pos, headers = column_positions(preview)
    local errors = {}
    local plan = {
        kind = args.kind, format = preview.format, fields = {},
        max_error_rate = args.max_error_rate or DEFAULT_MAX_ERROR_RATE,
    }
    local d = preview.dialect or {}
    if preview.format == "csv" then
        plan.csv = { sep = d.sep, quote = d.quote, header = d.header ~= false, decimal_comma = d.decimal_comma == true }
        plan.header = d.header ~= false
    else
        plan.header = d.header ~= false
        plan.sheet = args.sheet
    end

    local used = {}
    for field, colname in pairs(args.mapping) do
        local i = pos[colname]
        local spec = { column = i - 1 }
        used[i] = true
        local decl = kind.fields[field]
        if decl and decl.type == "date" then
            local fmt, err = date_format_of(preview.columns[i], colname, args.date_formats, where, field)
            if err then errors[#errors + 1] = err else spec.date_format = fmt end
        end
        plan.fields[field] = spec
    end

    for dname, drv in pairs(kind.derived or {}) do
        if not plan.fields[dname] then
            local ok = true
            for _, src in ipairs(drv.from) do if not plan.fields[src] then ok = false end end
            if ok then
                plan.derived = plan.derived or {}
                plan.derived[dname] = { from = drv.from, op = drv.op }
            end
        end
    end
    local c = kind.cancellation
    if c and plan.fields[c.field] then plan.cancellation = { field = c.field, prefix = c.prefix } end

    if kind.extra_columns == "attributes" then
        plan.attributes = {}
        local seen = {}
        for i, name in ipairs(headers) do
            if not used[i] then
                local col = preview.columns[i]
                local aname = attribute_name(name)
                if not seen[aname] then
                    seen[aname] = true
                    local a = { column = i - 1, name = aname, type = ATTRIBUTE_TYPES[col.type] or "text" }
                    if a.type == "date" then a.date_format = col.date_format end
                    if col.ambiguous then a.type = "text" end -- never guess a day for a month
                    plan.attributes[#plan.attributes + 1] = a
                end
            end
        end
    end

    if #errors > 0 then return nil, errors end
    return plan
end

-- import_plan.choose_mapping(decl, preview, opts, where) -> chosen | nil, errors
--   The record kind and mapping for a previewed file: the suggestion for opts.kind (nil: the best
--   match), or opts.mapping (a decoded { canonical = column name }) checked against the file.
--   chosen = { kind, mapping, source = "request"|"suggestion", suggestion, unmapped, headers }
function import_plan.choose_mapping(decl, preview, opts, where)
    local _, headers = column_positions(preview)
    local header_row = not (type(preview.dialect) == "table" and preview.dialect.header == false)
    local suggestion = mapping.suggest(decl, headers, preview.columns, { kind = opts.kind, header = header_row })
    local out = { kind = suggestion.kind, mapping = suggestion.mapping, source = "suggestion", suggestion = suggestion,
        unmapped = suggestion.unmapped_required, headers = headers }
    if opts.mapping then
        local ok, errors = mapping.validate(decl, out.kind, opts.mapping, headers)
        if not ok then
            for _, e in ipairs(errors) do
                e.field = e.field == "kind" and (where .. ".kind") or (where .. "." .. e.field)
            end
            return nil, errors
        end
        out.mapping, out.source, out.unmapped = opts.mapping, "request", {}
    end
    return out
end

-- Errors for required fields no column maps to.
function import_plan.unmapped_errors(chosen, where)
    local errors = {}
    for _, f in ipairs(chosen.unmapped) do
        errors[#errors + 1] = { field = where .. ".mapping." .. f, code = "unmapped_field",
            message = ("no column of the file maps to %s, which %s needs: send a mapping {\"%s\": \"column name\"}; columns: %s")
                :format(f, chosen.kind, f, table.concat(chosen.headers, ", ")) }
    end
    return errors
end

-- import_plan.for_file(args) -> plan, chosen | nil, errors
--   The whole decision for a file on disk (pulse import): args.path, args.filename, args.industry
--   (a name), args.kind, args.mapping and args.date_formats (decoded tables), args.sheet, args.sep,
--   args.header, args.decimal_comma, args.max_error_rate. errors = { { field, code, message } }.
function import_plan.for_file(args)
    local ingest = require "ingest"
    local decl = industries.get(args.industry)
    local where = "options"
    if args.kind and not decl.kinds[args.kind] then
        return nil, { { field = "kind", code = "unknown_kind", message = ("'%s' is not a kind of %s data; use one of: %s")
            :format(args.kind, decl.name, table.concat(industries.kind_names(decl), ", ")) } }
    end
    local preview, perr = ingest.preview_file(args.path, { filename = args.filename, sheet = args.sheet, max_rows = 5,
        sep = args.sep, header = args.header, decimal_comma = args.decimal_comma })
    if not preview then
        return nil, { { field = "file", code = perr and perr.code or "malformed", message = tostring(perr and perr.message) ..
            (perr and perr.row and (" (line " .. perr.row .. ")") or "") } }
    end
    if (preview.rows_sampled or 0) == 0 then
        return nil, { { field = "file", code = "empty_file", message = "the file has no data rows (a header only?)" } }
    end
    local chosen, errors = import_plan.choose_mapping(decl, preview, { kind = args.kind, mapping = args.mapping }, where)
    if not chosen then return nil, errors end
    if #chosen.unmapped > 0 then return nil, import_plan.unmapped_errors(chosen, where) end
    local plan
    plan, errors = import_plan.build { industry = decl, kind = chosen.kind, preview = preview, mapping = chosen.mapping,
        suggestion = chosen.suggestion, date_formats = args.date_formats, max_error_rate = args.max_error_rate,
        sheet = args.sheet, where = where }
    if not plan then return nil, errors end
    local ok, why = require("import").check_plan(plan)
    if not ok then return nil, { { field = "plan", code = "invalid_plan", message = tostring(why) } } end
    return plan, chosen
end

return import_plan
