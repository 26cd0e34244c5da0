-- Tenant rules: the kinds (segments, offers, triggers, roi, lead_scoring), what each receives and
-- must return, and running a rule's source in the sandbox (src/script/sandbox.c): compile, check
-- its declared data, run it on sample inputs, evaluate one call with its output checked, and turn
-- the discrete-input segment rule into a lookup table for batch work. No database here: the
-- per-tenant versions, caching and fallback live in rule_store.lua; the CLI uses this directly.
local sandbox = require "sandbox"

local rules = {}

rules.KINDS = { "segments", "offers", "triggers", "roi", "lead_scoring" }

-- Limits of one rule set's sandbox (one Lua state per tenant): memory, and per call.
rules.LIMITS = { memory = 16 * 1024 * 1024, instructions = 10000000, wall_ms = 100 }
rules.MAX_SOURCE_BYTES = 256 * 1024

---------------------------------------------------------------------------------------------------
-- Output checking: a small typed shape per value, fast enough to run on every call. A failure
-- names the field ("offer.discount_pct: must be an integer from 5 to 30, got 45").

local math_type, floor = math.type, math.floor

local function describe(v)
    local t = type(v)
    if t == "string" then return ("%q"):format(#v > 40 and v:sub(1, 40) .. "..." or v) end
    if t == "number" or t == "boolean" or t == "nil" then return tostring(v) end
    return "a " .. t
end

local function is_list(t)
    if type(t) ~= "table" then return false end
    local n = #t
    for k in pairs(t) do
        if math_type(k) ~= "integer" or k < 1 or k > n then return false end
    end
    return true
end

-- check(shape, value) -> nil | relative path, message. shape fields: type ("string"|"integer"|
-- "number"|"boolean"|"list"|"object"), optional, min, max, enum (set), max_len, items, fields,
-- check(v, where) -> msg. Paths are only built on failure: the success path allocates nothing.
local check

-- An object shape's fields as an array (iterated with a numeric for: cheaper than pairs).
local function field_list(shape)
    local list = shape._list
    if not list then
        list = {}
        for name, field in pairs(shape.fields) do list[#list + 1] = { name, field } end
        table.sort(list, function(a, b) return a[1] < b[1] end)
        shape._list = list
    end
    return list
end

-- strict: also refuse unknown fields in closed objects (validation does; run-time calls skip it,
-- extra fields are ignored there).
function check(shape, v, strict)
    if v == nil then
        if shape.optional then return nil end
        return "", "is missing"
    end
    local t = shape.type
    if t == "integer" then
        if math_type(v) ~= "integer" and not (math_type(v) == "float" and v == floor(v) and v == v) then
            return "", "must be an integer, got " .. describe(v)
        end
    elseif t == "number" then
        if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then
            return "", "must be a finite number, got " .. describe(v)
        end
    elseif t == "string" then
        if type(v) ~= "string" then return "", "must be a string, got " .. describe(v) end
        if #v > (shape.max_len or 200) then
            return "", ("must be at most %d bytes long"):format(shape.max_len or 200)
        end
        if shape.enum and not shape.enum[v] then
            return "", ("%s is not one of the allowed values (%s)"):format(describe(v), shape.enum_text or "")
        end
    elseif t == "boolean" then
        if type(v) ~= "boolean" then return "", "must be true or false, got " .. describe(v) end
    elseif t == "list" then
        if not is_list(v) then return "", "must be a list, got " .. describe(v) end
        if shape.max_items and #v > shape.max_items then
            return "", ("at most %d entries, got %d"):format(shape.max_items, #v)
        end
        local items = shape.items
        for i = 1, #v do
            local p, m = check(items, v[i], strict)
            if m then return "[" .. i .. "]" .. p, m end
        end
    elseif t == "object" then
        if type(v) ~= "table" then return "", "must be a table, got " .. describe(v) end
        local list = field_list(shape)
        for i = 1, #list do
            local e = list[i]
            local name = e[1]
            local p, m = check(e[2], v[name], strict)
            if m then return "." .. name .. p, m end
        end
        if strict and shape.closed then
            local fields = shape.fields
            for k in pairs(v) do
                if not fields[k] then return "", "unknown field " .. describe(k) end
            end
        end
    end
    if (t == "integer" or t == "number") and ((shape.min and v < shape.min) or (shape.max and v > shape.max)) then
        return "", ("must be from %s to %s, got %s"):format(tostring(shape.min or "-inf"), tostring(shape.max or "inf"),
            describe(v))
    end
    if shape.check then
        local m = shape.check(v, "")
        if m then return "", (m:gsub("^: ", "")) end
    end
    return nil
end

-- The run-time fast path: a shape compiled once into closures that only say yes or no (no
-- dispatch on the shape's fields per value). A "no" goes through check() for the message, so both
-- always agree on what passes: a value the closures doubt is judged by check().
local function compile(shape)
    if shape._fast then return shape._fast end
    local t, optional, min, max = shape.type, shape.optional == true, shape.min, shape.max
    local f
    if t == "integer" then
        f = function(v)
            if v == nil then return optional end
            if math_type(v) ~= "integer" and not (math_type(v) == "float" and v == floor(v)) then return false end
            return not ((min and v < min) or (max and v > max))
        end
    elseif t == "number" then
        f = function(v)
            if v == nil then return optional end
            if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then return false end
            return not ((min and v < min) or (max and v > max))
        end
    elseif t == "string" then
        local max_len, set = shape.max_len or 200, shape.enum
        f = function(v)
            if v == nil then return optional end
            if type(v) ~= "string" or #v > max_len then return false end
            return not set or set[v] == true
        end
    elseif t == "boolean" then
        f = function(v)
            if v == nil then return optional end
            return type(v) == "boolean"
        end
    elseif t == "list" then
        local item, max_items = compile(shape.items), shape.max_items
        f = function(v)
            if v == nil then return optional end
            if type(v) ~= "table" then return false end
            local n = #v
            if (max_items and n > max_items) or next(v, n > 0 and n or nil) ~= nil then return false end
            for i = 1, n do
                if not item(v[i]) then return false end
            end
            return true
        end
    else -- object
        local names, checkers = {}, {}
        for i, e in ipairs(field_list(shape)) do names[i], checkers[i] = e[1], compile(e[2]) end
        local nf = #names
        f = function(v)
            if v == nil then return optional end
            if type(v) ~= "table" then return false end
            for i = 1, nf do
                if not checkers[i](v[names[i]]) then return false end
            end
            return true
        end
    end
    local extra = shape.check
    if extra then
        local base = f
        f = function(v)
            if not base(v) then return false end
            return v == nil or extra(v, "") == nil
        end
    end
    shape._fast = f
    return f
end

-- rules.check_shape(shape, value, where [, strict]) -> nil | "where.path: message"
local function check_shape(shape, v, where, strict)
    if not strict and compile(shape)(v) then return nil end
    local p, m = check(shape, v, strict)
    if m then return where .. p .. ": " .. m end
    return nil
end
rules.check_shape = check_shape

local function enum(list)
    local set = {}
    for _, v in ipairs(list) do set[v] = true end
    return set, table.concat(list, ", ")
end

local BANDS, BANDS_TEXT = enum { "low", "medium", "high" }
local StringList = { type = "list", items = { type = "string" }, max_items = 100, optional = true }

---------------------------------------------------------------------------------------------------
-- The kinds. data: fields the rule file declares (copied out of the sandbox and checked once per
-- load); functions: what Pulse calls, with the shape of the answer; samples(decl): inputs to run
-- the functions on when validating a draft (the tenant's own customers are added by the caller).

local function r_f_m_domain()
    local out = {}
    for _, band in ipairs({ false, "low", "medium", "high" }) do
        for r = 1, 5 do
            for f = 1, 5 do
                for m = 1, 5 do
                    out[#out + 1] = { r = r, f = f, m = m, churn_band = band or nil }
                end
            end
        end
    end
    return out
end
rules.segment_domain = r_f_m_domain

local KIND = {}
rules.KIND = KIND

KIND.segments = {
    summary = "RFM scores (and churn band) -> segment name and a composite score 0-100",
    data = {
        segments = { type = "list", max_items = 30, items = { type = "object", closed = true, fields = {
            name = { type = "string", max_len = 60 },
            description = { type = "string", max_len = 500, optional = true },
            action = { type = "string", max_len = 500, optional = true },
        } }, check = function(list, where)
            if #list == 0 then return where .. ": declare at least one segment" end
            local seen = {}
            for i, s in ipairs(list) do
                if seen[s.name] then return ("%s[%d].name: %q is declared twice"):format(where, i, s.name) end
                seen[s.name] = true
            end
        end },
        churn_bands = { type = "object", closed = true, fields = {
            medium = { type = "number", min = 0, max = 1 }, high = { type = "number", min = 0, max = 1 },
        }, check = function(b, where)
            if b.medium >= b.high then return where .. ": medium must be below high" end
        end },
    },
    functions = {
        segment = { output = { type = "string", max_len = 60 }, check = function(out, decl)
            if not decl.names[out] then
                return ("returned %q, which is not one of the declared segments"):format(out)
            end
        end },
        score = { output = { type = "number", min = 0, max = 100 } },
    },
    samples = function() return { segment = r_f_m_domain(), score = r_f_m_domain() } end,
}

KIND.offers = {
    summary = "customer profile -> retention offer (discount, validity, categories, message) or none",
    data = {
        policy = { type = "object", fields = {
            min_discount = { type = "integer", min = 0, max = 90 }, max_discount = { type = "integer", min = 0, max = 90 },
        }, check = function(p, where)
            if p.min_discount > p.max_discount then return where .. ": min_discount is above max_discount" end
        end },
    },
    functions = {
        offer = { output = { type = "object", optional = true, closed = true, fields = {
            discount_pct = { type = "integer" },
            validity_days = { type = "integer", min = 1, max = 90 },
            categories = StringList, products = StringList,
            message_key = { type = "string", max_len = 60 },
        } }, check = function(out, decl)
            if out == nil then return nil end
            local p = decl.policy
            if out.discount_pct < p.min_discount or out.discount_pct > p.max_discount then
                return ("offer.discount_pct: must be from %d to %d (the policy), got %s"):format(p.min_discount,
                    p.max_discount, tostring(out.discount_pct))
            end
        end },
    },
    samples = function()
        local list = {}
        local segs = { "Champions", "Loyal Customers", "At Risk", "Cannot Lose Them", "Lost", "New Customers",
            "About to Sleep", "Hibernating" }
        for i, seg in ipairs(segs) do
            for _, band in ipairs({ "low", "medium", "high" }) do
                list[#list + 1] = {
                    segment = seg, risk_band = band, churn_probability = band == "high" and 0.85 or band == "medium" and 0.5 or 0.1,
                    value = 100 * i, monetary = 80 * i, frequency = i, recency_days = 10 * i, behaviour_score = 50,
                    categories = { "General" }, offers = { sent = i % 3, accepted = 0, declined = i % 4, days_since_last = (i % 2 == 0) and 30 or nil },
                }
            end
        end
        list[#list + 1] = { segment = "At Risk", monetary = 50, frequency = 1, recency_days = 200, offers = {} }
        return { offer = list }
    end,
}

local CAMPAIGN_CHANNELS, CHANNELS_TEXT = enum { "email", "widget" }
KIND.triggers = {
    summary = "events (segment changed, churn risk crossed, risk signal, inactivity, schedule) -> campaign actions",
    data = {},
    functions = {
        fire = { output = { type = "list", max_items = 20, items = { type = "object", closed = true, fields = {
            campaign = { type = "string", max_len = 80 },
            channel = { type = "string", enum = CAMPAIGN_CHANNELS, enum_text = CHANNELS_TEXT },
            delay_hours = { type = "integer", min = 0, max = 720 },
            reason = { type = "string", max_len = 300, optional = true },
        } } } },
    },
    samples = function()
        local c = { segment = "At Risk", churn_probability = 0.83, recency_days = 64, value = 300 }
        return { fire = {
            { type = "segment_changed", customer = c, from = "Loyal Customers", to = "At Risk" },
            { type = "segment_changed", customer = c, from = "At Risk", to = "Champions" },
            { type = "churn_risk_changed", customer = c, previous = 0.55, current = 0.83 },
            { type = "churn_risk_changed", customer = c, previous = 0.8, current = 0.6 },
            { type = "risk_signal", customer = c, signal = "usage_decline", values = { slope = -2.5 } },
            { type = "inactive", customer = c, days = 75 },
            { type = "inactive", customer = c, days = 5 },
            { type = "schedule", customer = c, schedule = "weekly" },
        } }
    end,
}

KIND.roi = {
    summary = "which customers a retention campaign targets and its value, cost, net and ROI %",
    data = {
        target = { type = "object", fields = {
            monetary_top_share = { type = "number", min = 0.0001, max = 1 },
            min_churn = { type = "number", min = 0, max = 1 },
        } },
    },
    functions = {
        compute = { output = { type = "object", closed = true, fields = {
            value = { type = "number" }, cost = { type = "number" }, net = { type = "number" },
            roi_pct = { type = "number", optional = true },
        } } },
    },
    samples = function()
        return { compute = { { customers = 0, monetary = 0 }, { customers = 12, monetary = 5400.5 },
            { customers = 1000, monetary = 1e7 } } }
    end,
}

local STAGES, STAGES_TEXT = enum { "MQL", "SQL" }
KIND.lead_scoring = {
    summary = "a lead's actions and attributes -> points and lifecycle stage (MQL / SQL)",
    data = {},
    functions = {
        score = { output = { type = "object", closed = true, fields = {
            points = { type = "integer", min = 0 },
            stage = { type = "string", enum = STAGES, enum_text = STAGES_TEXT },
            reasons = { type = "list", max_items = 50, items = { type = "string", max_len = 300 }, optional = true },
        } } },
    },
    samples = function()
        return { score = {
            { actions = {}, attributes = {} },
            { actions = { { type = "email_open", count = 3 }, { type = "pricing_page_view", count = 1 } }, attributes = {} },
            { actions = { { type = "demo_request", count = 1 }, { type = "free_trial", count = 1 }, { type = "webinar_attended", count = 1 } },
              attributes = { company_size = 500, job_title = "CTO" } },
            { actions = { { type = "pricing_page_view", count = 1 }, { type = "content_download", count = 1 },
                { type = "demo_request", count = 1 } }, attributes = { company_size = 20 } },
            { actions = { { type = "book_consultant", count = 1 } }, attributes = {} },
        } }
    end,
}

for _, spec in pairs(KIND) do
    for fn, f in pairs(spec.functions) do f.where = fn .. "()" end
end

function rules.is_kind(kind)
    return KIND[kind] ~= nil
end

---------------------------------------------------------------------------------------------------
-- Sources and sandboxes.

local function home()
    local ok, pulse = pcall(require, "pulse")
    return ok and type(pulse) == "table" and pulse.config and pulse.config.home or "."
end

local default_sources = {}

-- rules.default_source(kind) -> source, chunk name (the shipped rules/<kind>.lua, read once).
function rules.default_source(kind)
    local cached = default_sources[kind]
    if cached then return cached, "@rules/" .. kind .. ".lua" end
    local path = home() .. "/rules/" .. kind .. ".lua"
    local f, err = io.open(path, "rb")
    if not f then error("rules: cannot read the default " .. kind .. " rule: " .. tostring(err), 0) end
    local src = f:read("a")
    f:close()
    default_sources[kind] = src
    return src, "@rules/" .. kind .. ".lua"
end

function rules.new_box(limits)
    limits = limits or rules.LIMITS
    return sandbox.new { memory = limits.memory, instructions = limits.instructions, wall_ms = limits.wall_ms }
end

local function err_entry(e, fallback_source)
    if type(e) ~= "table" then return { line = nil, message = tostring(e) } end
    local msg = e.message or tostring(e)
    return { line = e.line, message = msg, kind = e.kind, source = e.source or fallback_source }
end

-- Copies the declared data fields out of a loaded module and checks them.
-- -> decl | nil, errors
local function read_data(box, module, kind)
    local spec = KIND[kind]
    local decl, errors = {}, {}
    for name, shape in pairs(spec.data) do
        local v, e = box:get(module, name)
        if e then
            errors[#errors + 1] = err_entry(e)
        else
            local msg = check_shape(shape, v, name, true)
            if msg then errors[#errors + 1] = { message = msg } else decl[name] = v end
        end
    end
    if kind == "segments" and decl.segments then
        decl.names = {}
        for i, s in ipairs(decl.segments) do decl.names[s.name] = i end
    end
    if #errors > 0 then return nil, errors end
    return decl
end

-- rules.load(box, module, kind, source, chunkname) -> decl | nil, errors ({line, message}...)
-- Compiles the source into the box as `module` and checks the data it declares.
function rules.load(box, module, kind, source, chunkname)
    if #source > rules.MAX_SOURCE_BYTES then
        return nil, { { message = ("the rule is %d bytes; at most %d"):format(#source, rules.MAX_SOURCE_BYTES) } }
    end
    local ok, e = box:load(module, source, chunkname)
    if not ok then return nil, { err_entry(e, chunkname) } end
    return read_data(box, module, kind)
end

-- rules.call(box, module, kind, fn, decl, input, seed) -> output | nil, error {line?, message, kind}
-- One call with its answer checked against the kind's shape.
function rules.call(box, module, kind, fn, decl, input, seed, strict)
    local out, e = box:call(module, fn, input, seed or 0)
    if e then return nil, err_entry(e) end
    local spec = KIND[kind].functions[fn]
    local msg = check_shape(spec.output, out, spec.where, strict)
    if not msg and spec.check then msg = spec.check(out, decl) end
    if msg then return nil, { message = msg, kind = "type" } end
    return out
end

-- rules.validate(kind, source, opts) -> report { valid, errors = {{line, message}}, warnings = {...},
-- calls, milliseconds }. Compiles in a fresh sandbox, checks the declared data, runs every function on
-- the kind's samples plus opts.samples (e.g. the tenant's customers: {fn = {input, ...}}).
function rules.validate(kind, source, opts)
    opts = opts or {}
    local started = os.clock()
    local report = { valid = false, errors = {}, warnings = {}, calls = 0 }
    local box = rules.new_box(opts.limits)
    local chunkname = opts.chunkname or ("@tenant:" .. kind)
    local decl, errors = rules.load(box, kind, kind, source, chunkname)
    if not decl then
        report.errors = errors
    else
        local samples = KIND[kind].samples(decl)
        for fn, extra in pairs(opts.samples or {}) do
            samples[fn] = samples[fn] or {}
            for _, input in ipairs(extra) do samples[fn][#samples[fn] + 1] = input end
        end
        local seen_segments = {}
        for fn in pairs(KIND[kind].functions) do
            for _, input in ipairs(samples[fn] or {}) do
                report.calls = report.calls + 1
                local out, e = rules.call(box, kind, kind, fn, decl, input, report.calls, true)
                if not out and e then
                    e.input = input
                    report.errors[#report.errors + 1] = e
                    break -- one error per function: the author fixes it and validates again
                end
                if kind == "segments" and fn == "segment" then seen_segments[out] = true end
            end
        end
        if kind == "segments" and #report.errors == 0 then
            for _, s in ipairs(decl.segments) do
                if not seen_segments[s.name] then
                    report.warnings[#report.warnings + 1] = { message = ("segment %q is never chosen for any RFM score and churn band"):format(s.name) }
                end
            end
        end
        report.valid = #report.errors == 0
        report.decl = decl
    end
    local stats = box:stats()
    report.memory_peak = stats.peak
    box:close()
    report.milliseconds = (os.clock() - started) * 1000
    return report
end

---------------------------------------------------------------------------------------------------
-- Segment lookup: the rule is evaluated once per input combination (500 calls) and customers are
-- segmented by table lookup, never one Lua call per customer (DESIGN.md).

local BAND_INDEX = { [false] = 0, low = 1, medium = 2, high = 3 }
rules.BAND_INDEX = BAND_INDEX

-- Index of a combination in the tables: band * 125 + (r-1) * 25 + (f-1) * 5 + (m-1), 0-based.
function rules.segment_key(r, f, m, band)
    return BAND_INDEX[band or false] * 125 + (r - 1) * 25 + (f - 1) * 5 + (m - 1)
end

-- rules.segment_table(box, module, decl) -> { names = {...}, segment = {[key+1] = index},
-- score = {[key+1] = 0..100}, churn_bands = {medium, high} } | nil, error
function rules.segment_table(box, module, decl)
    local seg, score = {}, {}
    for _, c in ipairs(r_f_m_domain()) do
        local key = rules.segment_key(c.r, c.f, c.m, c.churn_band) + 1
        local name, e = rules.call(box, module, "segments", "segment", decl, c)
        if not name then return nil, e end
        local s
        s, e = rules.call(box, module, "segments", "score", decl, c)
        if not s then return nil, e end
        seg[key] = decl.names[name]
        score[key] = s
    end
    local names = {}
    for i, s in ipairs(decl.segments) do names[i] = s.name end
    return { names = names, segments = decl.segments, segment = seg, score = score, churn_bands = decl.churn_bands }
end

-- rules.segment_table_of(path) -> the lookup tables of a segments rule file (nil path: the shipped
-- rules/segments.lua), as the segment job's params carry them ({names, segment = {500 x index},
-- score = {500}, churn_bands}) | nil, "file:line: message". For `pulse segment` and benches.
function rules.segment_table_of(path)
    local source, chunkname
    if path then
        local f, err = io.open(path, "rb")
        if not f then return nil, err end
        source, chunkname = f:read("a"), "@" .. path
        f:close()
    else
        source, chunkname = rules.default_source("segments")
    end
    local box = rules.new_box()
    local decl, errors = rules.load(box, "segments", "segments", source, chunkname)
    if not decl then
        box:close()
        local e = errors[1]
        return nil, (path or "rules/segments.lua") .. (e.line and (":" .. e.line) or "") .. ": " .. e.message
    end
    local t, e = rules.segment_table(box, "segments", decl)
    box:close()
    if not t then return nil, (path or "rules/segments.lua") .. (e.line and (":" .. e.line) or "") .. ": " .. e.message end
    local seg, score = {}, {}
    for i = 1, 500 do seg[i], score[i] = t.segment[i], t.score[i] end
    return { names = t.names, segment = seg, score = score, churn_bands = t.churn_bands, version = 0 }
end

-- The band a churn probability falls in, with the rule's thresholds.
function rules.churn_band(p, bands)
    if p == nil then return nil end
    if p >= bands.high then return "high" end
    if p >= bands.medium then return "medium" end
    return "low"
end

return rules
