-- Column mapping: which column of an uploaded file feeds which canonical field of an industry's
-- record kind (industries/*.lua). suggest() picks the best kind and mapping from the headers
-- (aliases matched ignoring case, spaces, underscores, hyphens, dots), with the detected column
-- types as tie-breaker and fallback; validate() checks a mapping the user gives instead.
local industries = require "industries"

local mapping = {}

local normalize = industries.normalize

-- field type -> column type (from ingest) -> fit: 1 fits, 0 neutral, -1 does not fit
local FIT = {
    id = { integer = 1, text = 1, decimal = 0, date = -1, datetime = -1, boolean = -1 },
    date = { date = 1, datetime = 1, integer = 0, text = -1, decimal = -1, boolean = -1 },
    number = { integer = 1, decimal = 1, text = -1, date = -1, datetime = -1, boolean = -1 },
    integer = { integer = 1, decimal = 0, text = -1, date = -1, datetime = -1, boolean = -1 },
    text = { text = 1 },
    label = { boolean = 1, integer = 0, text = 0, decimal = -1, date = -1, datetime = -1 },
}

local function fit(field_type, col)
    if not col then return 0 end
    if field_type == "label" and col.looks_boolean then return 1 end
    local t = col.type
    if t == nil or t == "empty" then return 0 end
    return (FIT[field_type] or {})[t] or 0
end
mapping.fit = fit

local function resolve(industry)
    if type(industry) == "string" then return industries.get(industry) end
    return industry
end

local function sorted_keys(t)
    local out = {}
    for k in pairs(t) do out[#out + 1] = k end
    table.sort(out)
    return out
end

-- kind -> { normalized alias = { field =, rank = } }
local function alias_index(kind)
    local index = {}
    for fname, f in pairs(kind.fields) do
        index[normalize(fname)] = { field = fname, rank = 0 }
        for i, a in ipairs(f.aliases or {}) do
            local n = normalize(a)
            if not index[n] then index[n] = { field = fname, rank = i } end
        end
    end
    return index
end

-- Is every required field mapped, or derivable from mapped fields? -> list of the missing ones
local function missing_required(kind, fields)
    local missing = {}
    for _, fname in ipairs(sorted_keys(kind.fields)) do
        local f = kind.fields[fname]
        if f.required and not fields[fname] then
            local d = kind.derived and kind.derived[fname]
            local ok = d ~= nil
            if d then
                for _, src in ipairs(d.from) do
                    if not fields[src] then ok = false end
                end
            end
            if not ok then missing[#missing + 1] = fname end
        end
    end
    return missing
end

-- Mapping by header names, then by type for required date fields left over.
local function match_by_name(kind, headers, columns)
    local index = alias_index(kind)
    local pairs_ = {}
    for i, h in ipairs(headers) do
        local hit = index[normalize(h)]
        if hit then
            local f = kind.fields[hit.field]
            pairs_[#pairs_ + 1] = { col = i, field = hit.field,
                score = 1 + 0.5 * fit(f.type, columns[i]) - 0.001 * hit.rank }
        end
    end
    table.sort(pairs_, function(a, b)
        if a.score ~= b.score then return a.score > b.score end
        return a.col < b.col
    end)
    local fields, used, how = {}, {}, {}
    for _, p in ipairs(pairs_) do
        if not fields[p.field] and not used[p.col] then
            fields[p.field], used[p.col], how[p.field] = p.col, true, "name"
        end
    end
    -- a required date field without a header match takes the only unused date column
    for _, fname in ipairs(sorted_keys(kind.fields)) do
        local f = kind.fields[fname]
        if f.required and f.type == "date" and not fields[fname] then
            local only
            for i in ipairs(headers) do
                if not used[i] and fit("date", columns[i]) == 1 then
                    if only then only = false break end
                    only = i
                end
            end
            if only then fields[fname], used[only], how[fname] = only, true, "type" end
        end
    end
    return fields, used, how
end

-- Headerless files: a declared layout with as many columns, each of a fitting type.
local function match_by_layout(kind, headers, columns)
    for _, layout in ipairs(kind.layouts or {}) do
        if #layout.columns == #headers then
            local ok = true
            for i, fname in ipairs(layout.columns) do
                if fname and fit(kind.fields[fname].type, columns[i]) < 0 then ok = false end
            end
            if ok then
                local fields, used, how = {}, {}, {}
                for i, fname in ipairs(layout.columns) do
                    if fname then fields[fname], used[i], how[fname] = i, true, "position" end
                end
                return fields, used, how, layout.name
            end
        end
    end
    return nil
end

local function round(x) return math.floor(x * 1000 + 0.5) / 1000 end

local function evaluate(kind_name, kind, headers, columns, header_row)
    local fields, used, how, layout
    if header_row == false then fields, used, how, layout = match_by_layout(kind, headers, columns) end
    if not fields then fields, used, how = match_by_name(kind, headers, columns) end

    local missing = missing_required(kind, fields)
    local required, mapped_cols = 0, 0
    for _, f in pairs(kind.fields) do if f.required then required = required + 1 end end
    for _ in pairs(used) do mapped_cols = mapped_cols + 1 end
    local score = 0.6 * (required - #missing) / math.max(required, 1) + 0.4 * mapped_cols / math.max(#headers, 1)

    local result = { kind = kind_name, score = round(score), mapping = {}, matched_by = {},
        unmapped_required = missing, unused_columns = {} }
    for fname, col in pairs(fields) do
        result.mapping[fname] = headers[col]
        result.matched_by[fname] = how[fname]
    end
    local rest = {}
    for i, h in ipairs(headers) do
        if not used[i] then rest[#rest + 1] = h end
    end
    if kind.extra_columns == "attributes" then result.attributes = rest else result.unused_columns = rest end
    for dname, d in pairs(kind.derived or {}) do
        if not fields[dname] then
            local ok = true
            for _, src in ipairs(d.from) do if not fields[src] then ok = false end end
            if ok then
                result.derived = result.derived or {}
                result.derived[dname] = { from = d.from, op = d.op }
            end
        end
    end
    local c = kind.cancellation
    if c and fields[c.field] then
        result.cancellation = { field = c.field, column = headers[fields[c.field]], prefix = c.prefix }
    end
    for fname, f in pairs(kind.fields) do
        if f.type == "label" and fields[fname] then
            local col = columns[fields[fname]]
            result.label = { field = fname, column = headers[fields[fname]],
                looks_boolean = col and (col.looks_boolean == true or col.type == "boolean") or false }
        end
    end
    result.layout = layout
    return result
end

-- mapping.suggest(industry, headers, columns, opts) -> suggestion
--   industry: a name ("ecommerce") or a loaded declaration; headers: the column names in order;
--   columns: the preview's column descriptions in the same order (type, looks_boolean...; may be nil);
--   opts.kind: only consider this kind; opts.header = false: the file has no header row (positional layouts).
-- -> { kind, score (0..1), mapping = { canonical = column name }, matched_by = { canonical = "name"|"type"|"position" },
--      unmapped_required, unused_columns, attributes? (kinds keeping extra columns), derived?, cancellation?,
--      label?, layout?, alternatives = { { kind, score } } }
function mapping.suggest(industry, headers, columns, opts)
    local decl = resolve(industry)
    opts = opts or {}
    columns = columns or {}
    local results = {}
    for _, kname in ipairs(industries.kind_names(decl)) do
        if not opts.kind or opts.kind == kname then
            results[#results + 1] = evaluate(kname, decl.kinds[kname], headers, columns, opts.header)
        end
    end
    if #results == 0 then return nil, "unknown kind " .. tostring(opts.kind) end
    table.sort(results, function(a, b)
        if a.score ~= b.score then return a.score > b.score end
        if #a.unmapped_required ~= #b.unmapped_required then return #a.unmapped_required < #b.unmapped_required end
        return a.kind < b.kind
    end)
    local best = results[1]
    best.alternatives = {}
    for i = 2, #results do
        best.alternatives[#best.alternatives + 1] = { kind = results[i].kind, score = results[i].score }
    end
    return best
end

-- mapping.validate(industry, kind, map, headers) -> true | nil, errors
--   A mapping given by the user: { canonical = column name }. errors = { { field = "kind" | "mapping" |
--   "mapping.<canonical>", code, message } }, every problem named.
function mapping.validate(industry, kind_name, map, headers)
    local decl = resolve(industry)
    local kind = decl.kinds[kind_name]
    if not kind then
        return nil, { { field = "kind", code = "unknown_kind", message = ("'%s' is not a kind of %s data; use one of: %s")
            :format(tostring(kind_name), decl.name, table.concat(industries.kind_names(decl), ", ")) } }
    end
    if type(map) ~= "table" then
        return nil, { { field = "mapping", code = "type", message = "the mapping must be an object { field: column name }" } }
    end
    local present = {}
    for _, h in ipairs(headers) do present[h] = true end
    local errors, fields, by_column = {}, {}, {}
    for _, fname in ipairs(sorted_keys(map)) do
        local col = map[fname]
        local at = "mapping." .. tostring(fname)
        if type(fname) ~= "string" or not kind.fields[fname] then
            errors[#errors + 1] = { field = at, code = "unknown_field", message = ("'%s' is not a field of %s; fields: %s")
                :format(tostring(fname), kind_name, table.concat(sorted_keys(kind.fields), ", ")) }
        elseif type(col) ~= "string" then
            errors[#errors + 1] = { field = at, code = "type", message = "must be the name of a column (a string)" }
        elseif not present[col] then
            errors[#errors + 1] = { field = at, code = "unknown_column", message = ("the file has no column '%s'"):format(col) }
        elseif by_column[col] then
            errors[#errors + 1] = { field = at, code = "duplicate_column",
                message = ("column '%s' is already mapped to %s"):format(col, by_column[col]) }
        else
            by_column[col] = fname
            fields[fname] = true
        end
    end
    for _, fname in ipairs(missing_required(kind, fields)) do
        if map[fname] == nil then
            local d = kind.derived and kind.derived[fname]
            errors[#errors + 1] = { field = "mapping." .. fname, code = "required", message = d
                and ("%s is required: map a column to it, or map %s to derive it"):format(fname, table.concat(d.from, " and "))
                or ("%s is required: map a column to it"):format(fname) }
        end
    end
    if #errors > 0 then return nil, errors end
    return true
end

return mapping
