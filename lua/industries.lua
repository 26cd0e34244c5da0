-- Industry declarations: loads industries/<name>.lua (tenant-editable data: record kinds, their
-- canonical fields and the header aliases that map onto them) and checks each against the shape
-- below, so a mistake fails with the file and field named instead of at import time.
--
--   return {
--     name = "<file name>", label = "Human name",
--     kinds = { <kind> = {
--       label = "...", description = "...",
--       fields = { <canonical> = { type = "id"|"date"|"number"|"integer"|"text"|"label",
--                                  required = bool, aliases = { "Header", ... }, description = "..." } },
--       derived = { <canonical> = { from = { <canonical>, ... }, op = "multiply"|"add"|"subtract" } },
--       cancellation = { field = <canonical>, prefix = "C" },
--       layouts = { { name = "...", columns = { <canonical>, ... } } },   -- headerless files, by position
--       extra_columns = "attributes"|"ignore" } } }
--
-- The files run in the rules sandbox (no require, io, os, load; memory and time capped): they are
-- the tenant side of "two kinds of Lua" (DESIGN.md).
local pulse_ok, pulse = pcall(require, "pulse")
local sandbox = require "sandbox"

local industries = {}

industries.NAMES = { "ecommerce", "telecom", "banking" }
industries.FIELD_TYPES = { id = true, date = true, number = true, integer = true, text = true, label = true }
local OPS = { multiply = true, add = true, subtract = true }

-- "Customer ID", "customer_id", "CustomerID" -> "customerid"
function industries.normalize(header)
    return (tostring(header):lower():gsub("[%s_%-%.]+", ""))
end

local function dir()
    local home = pulse_ok and type(pulse) == "table" and pulse.config and pulse.config.home
    return (home or ".") .. "/industries"
end

local function keys_known(t, allowed, where, errs)
    for k in pairs(t) do
        if not allowed[k] then errs[#errs + 1] = where .. ": unknown field '" .. tostring(k) .. "'" end
    end
end

local KIND_KEYS = { label = true, description = true, fields = true, derived = true, cancellation = true,
    layouts = true, extra_columns = true }
local FIELD_KEYS = { type = true, required = true, aliases = true, description = true }

-- The fixed per-customer features (src/analytics/features.c) a behaviour declaration may name,
-- besides its own aggregates.
industries.FEATURES = { "recency_days", "frequency", "monetary", "avg_basket", "unique_products", "unique_categories",
    "interpurchase_mean", "interpurchase_var", "span_days", "tenure_days", "return_rate", "discount_share",
    "active_days_30", "active_days_60", "active_days_90", "active_days_prev90", "trend_90", "days_overdue", "quantity" }
local AGG_OPS = { count = true, sum = true, avg = true, slope = true }
local AGG_FIELDS = { value = true, quantity = true }

local function is_number(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end

-- Checks industries/<name>.lua's behaviour = { aggregates, score, trend, signals } (see ecommerce.lua).
function industries.validate_behaviour(b, bad)
    if type(b) ~= "table" then return bad("behaviour: must be a table") end
    local known = {}
    for _, f in ipairs(industries.FEATURES) do known[f] = true end
    for k in pairs(b) do
        if k ~= "aggregates" and k ~= "score" and k ~= "trend" and k ~= "signals" then
            bad("behaviour: unknown field '" .. tostring(k) .. "'")
        end
    end
    for i, a in ipairs(type(b.aggregates) == "table" and b.aggregates or {}) do
        local at = "behaviour.aggregates[" .. i .. "]"
        if type(a) ~= "table" then bad(at .. ": must be a table") else
            if type(a.name) ~= "string" or not a.name:match("^[%l_][%l%d_]*$") or #a.name > 60 then
                bad(at .. ".name: a lower_case identifier of at most 60 characters")
            elseif known[a.name] then
                bad(at .. ".name: '" .. a.name .. "' is already a feature")
            else
                known[a.name] = true
            end
            if type(a.event_type) ~= "string" or a.event_type == "" then bad(at .. ".event_type: must be a non-empty string") end
            if not AGG_OPS[a.op] then bad(at .. ".op: must be count, sum, avg or slope (got " .. tostring(a.op) .. ")") end
            if a.op ~= "count" and not AGG_FIELDS[a.field] then bad(at .. ".field: must be value or quantity") end
            if math.type(a.window_days) ~= "integer" or a.window_days < 1 or a.window_days > 3650 then
                bad(at .. ".window_days: must be a whole number of days from 1 to 3650")
            end
        end
    end
    local function feature(v, at)
        if not known[v] then bad(at .. ": '" .. tostring(v) .. "' is not a feature or an aggregate declared above") end
    end
    for i, t in ipairs(type(b.score) == "table" and b.score or {}) do
        local at = "behaviour.score[" .. i .. "]"
        if type(t) ~= "table" then bad(at .. ": must be a table") else
            feature(t.feature, at .. ".feature")
            if not is_number(t.center) then bad(at .. ".center: must be a number") end
            if not is_number(t.scale) or t.scale <= 0 then bad(at .. ".scale: must be a number above 0") end
            if not is_number(t.weight) then bad(at .. ".weight: must be a number") end
        end
    end
    if b.trend ~= nil then
        local t = b.trend
        if type(t) ~= "table" then bad("behaviour.trend: must be a table") else
            feature(t.feature, "behaviour.trend.feature")
            if not is_number(t.increasing) or not is_number(t.declining) or t.declining >= t.increasing then
                bad("behaviour.trend: increasing and declining must be numbers, declining below increasing")
            end
        end
    end
    local names, count = {}, 0
    for i, s in ipairs(type(b.signals) == "table" and b.signals or {}) do
        count = count + 1
        local at = "behaviour.signals[" .. i .. "]"
        if type(s) ~= "table" then bad(at .. ": must be a table") else
            if type(s.name) ~= "string" or not s.name:match("^[%l_][%l%d_]*$") then bad(at .. ".name: a lower_case identifier") end
            if names[s.name] then bad(at .. ".name: '" .. tostring(s.name) .. "' is used twice") end
            names[s.name or i] = true
            feature(s.feature, at .. ".feature")
            if (s.above == nil) == (s.below == nil) then bad(at .. ": give exactly one of above or below")
            elseif not is_number(s.above or s.below) then bad(at .. ": the threshold must be a number") end
            if type(s.message) ~= "string" then bad(at .. ".message: must be a string") end
            if s.recommendation ~= nil and type(s.recommendation) ~= "string" then bad(at .. ".recommendation: must be a string") end
        end
    end
    if count > 32 then bad("behaviour.signals: at most 32 signals") end
end

-- industries.validate(decl, file) -> true | nil, "file: kinds.x.fields.y: message; ..."
function industries.validate(decl, file)
    file = file or "industry"
    local errs = {}
    local function bad(msg) errs[#errs + 1] = msg end
    if type(decl) ~= "table" then return nil, file .. ": must return a table" end
    keys_known(decl, { name = true, label = true, kinds = true, behaviour = true }, "top level", errs)
    if decl.behaviour ~= nil then industries.validate_behaviour(decl.behaviour, bad) end
    if type(decl.name) ~= "string" or decl.name == "" then bad("name: must be a non-empty string") end
    if decl.label ~= nil and type(decl.label) ~= "string" then bad("label: must be a string") end
    if type(decl.kinds) ~= "table" or next(decl.kinds) == nil then
        bad("kinds: must be a table with at least one kind")
    else
        for kname, kind in pairs(decl.kinds) do
            local at = "kinds." .. tostring(kname)
            if type(kname) ~= "string" or not kname:match("^[%l_][%l%d_]*$") then
                bad(at .. ": kind names are lower_case identifiers")
            end
            if type(kind) ~= "table" then
                bad(at .. ": must be a table")
            else
                keys_known(kind, KIND_KEYS, at, errs)
                local fields = kind.fields
                if type(fields) ~= "table" or next(fields) == nil then
                    bad(at .. ".fields: must be a table with at least one field")
                    fields = {}
                end
                local seen_alias, required = {}, 0
                for fname, f in pairs(fields) do
                    local fat = at .. ".fields." .. tostring(fname)
                    if type(fname) ~= "string" or not fname:match("^[%l_][%l%d_]*$") then
                        bad(fat .. ": field names are lower_case identifiers")
                    elseif type(f) ~= "table" then
                        bad(fat .. ": must be a table")
                    else
                        keys_known(f, FIELD_KEYS, fat, errs)
                        if not industries.FIELD_TYPES[f.type] then
                            bad(fat .. ".type: must be one of id, date, number, integer, text, label (got " .. tostring(f.type) .. ")")
                        end
                        if f.required ~= nil and type(f.required) ~= "boolean" then bad(fat .. ".required: must be a boolean") end
                        if f.required then required = required + 1 end
                        if f.aliases ~= nil and type(f.aliases) ~= "table" then bad(fat .. ".aliases: must be a list of strings") end
                        local names = { fname }
                        for i, a in ipairs(type(f.aliases) == "table" and f.aliases or {}) do
                            if type(a) ~= "string" or industries.normalize(a) == "" then
                                bad(fat .. ".aliases[" .. i .. "]: must be a non-empty string")
                            else
                                names[#names + 1] = a
                            end
                        end
                        for _, a in ipairs(names) do
                            local n = industries.normalize(a)
                            if seen_alias[n] and seen_alias[n] ~= fname then
                                bad(fat .. ".aliases: '" .. a .. "' is also an alias of " .. seen_alias[n])
                            end
                            seen_alias[n] = fname
                        end
                    end
                end
                if required == 0 and next(fields) then bad(at .. ".fields: at least one field must be required") end
                if kind.derived ~= nil then
                    if type(kind.derived) ~= "table" then bad(at .. ".derived: must be a table") else
                        for dname, d in pairs(kind.derived) do
                            local dat = at .. ".derived." .. tostring(dname)
                            if not fields[dname] then bad(dat .. ": not a field of this kind") end
                            if type(d) ~= "table" or type(d.from) ~= "table" or #d.from == 0 then
                                bad(dat .. ".from: must be a list of fields")
                            else
                                keys_known(d, { from = true, op = true }, dat, errs)
                                for i, src in ipairs(d.from) do
                                    if not fields[src] then bad(dat .. ".from[" .. i .. "]: '" .. tostring(src) .. "' is not a field of this kind") end
                                    if src == dname then bad(dat .. ".from[" .. i .. "]: a field cannot derive from itself") end
                                end
                                if not OPS[d.op] then bad(dat .. ".op: must be multiply, add or subtract (got " .. tostring(d.op) .. ")") end
                            end
                        end
                    end
                end
                local c = kind.cancellation
                if c ~= nil then
                    if type(c) ~= "table" then bad(at .. ".cancellation: must be a table") else
                        keys_known(c, { field = true, prefix = true }, at .. ".cancellation", errs)
                        if not fields[c.field] then bad(at .. ".cancellation.field: '" .. tostring(c.field) .. "' is not a field of this kind") end
                        if type(c.prefix) ~= "string" or c.prefix == "" then bad(at .. ".cancellation.prefix: must be a non-empty string") end
                    end
                end
                if kind.layouts ~= nil then
                    if type(kind.layouts) ~= "table" then bad(at .. ".layouts: must be a list") else
                        for i, l in ipairs(kind.layouts) do
                            local lat = at .. ".layouts[" .. i .. "]"
                            if type(l) ~= "table" or type(l.columns) ~= "table" or #l.columns == 0 then
                                bad(lat .. ".columns: must be a list of fields")
                            else
                                keys_known(l, { name = true, columns = true }, lat, errs)
                                for j, col in ipairs(l.columns) do
                                    if col ~= false and not fields[col] then
                                        bad(lat .. ".columns[" .. j .. "]: '" .. tostring(col) .. "' is not a field of this kind")
                                    end
                                end
                            end
                        end
                    end
                end
                if kind.extra_columns ~= nil and kind.extra_columns ~= "attributes" and kind.extra_columns ~= "ignore" then
                    bad(at .. ".extra_columns: must be \"attributes\" or \"ignore\"")
                end
            end
        end
    end
    if #errs > 0 then
        table.sort(errs)
        return nil, file .. ": " .. table.concat(errs, "; ")
    end
    return true
end

-- industries.load_file(path) -> decl | nil, err: run in the rules sandbox (src/script/sandbox.c:
-- no io, os, require or load; memory and time capped), the declaration copied out, then validated.
function industries.load_file(path)
    local f, ferr = io.open(path, "rb")
    if not f then return nil, ferr end
    local src = f:read("a")
    f:close()
    local box = sandbox.new { memory = 16 * 1024 * 1024, instructions = 10000000, wall_ms = 1000 }
    local ok, e = box:load("industry", src, "@" .. path)
    if not ok then
        box:close()
        return nil, e.message
    end
    local decl = {}
    for _, key in ipairs({ "name", "label", "kinds", "behaviour" }) do
        local v
        v, e = box:get("industry", key)
        if e then
            box:close()
            return nil, path .. ": " .. key .. ": " .. e.message
        end
        decl[key] = v
    end
    box:close()
    local valid, verr = industries.validate(decl, path)
    if not valid then return nil, verr end
    return decl
end

local cache = {}

-- industries.get(name) -> decl (cached per VM); raises with the file and field on a bad file.
function industries.get(name)
    if cache[name] then return cache[name] end
    if type(name) ~= "string" or not name:match("^[%l_]+$") then error("industries: bad industry name " .. tostring(name), 2) end
    local decl, err = industries.load_file(dir() .. "/" .. name .. ".lua")
    if not decl then error("industries: " .. err, 0) end
    if decl.name ~= name then error("industries: " .. dir() .. "/" .. name .. ".lua: name is '" .. tostring(decl.name) .. "', expected '" .. name .. "'", 0) end
    cache[name] = decl
    return decl
end

-- Loads every industry (start-up check); raises on the first bad file.
function industries.load_all()
    local out = {}
    for _, n in ipairs(industries.NAMES) do out[n] = industries.get(n) end
    return out
end

-- Sorted kind names of an industry.
function industries.kind_names(decl)
    local names = {}
    for k in pairs(decl.kinds) do names[#names + 1] = k end
    table.sort(names)
    return names
end

return industries
