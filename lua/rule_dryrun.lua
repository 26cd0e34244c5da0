-- Dry runs: what a draft rule would change for the tenant's current customers, compared with the
-- rule that answers now, without storing anything. Segments are compared exactly over every
-- customer (grouped by their RFM scores and churn band: at most 500 groups, whatever the number of
-- customers); offers on a deterministic sample of customers; ROI on the same aggregates the report
-- uses; triggers and lead scoring on the kind's sample events and leads.
local customer_analytics = require "customer_analytics"
local db = require "db"
local json = require "json"
local rule_store = require "rule_store"
local rules = require "rules"

local dryrun = {}

dryrun.OFFER_SAMPLE = 2000

local pulse = require "pulse"

local function now_ms()
    return pulse.now() * 1000 -- wall clock: most of a dry run is waiting for the database
end

local function present(v) return v ~= nil and v ~= json.null end
-- A customer's current churn (analytics a joined with predictions p, see customer_analytics).
local CHURN = customer_analytics.CHURN .. " AS churn_probability"
local BAND = customer_analytics.BAND .. " AS churn_band"
local function opt(v) if present(v) then return v end return nil end

local function profile(row)
    return {
        segment = opt(row.segment) or "Unknown", churn_probability = opt(row.churn_probability),
        risk_band = opt(row.churn_band), value = opt(row.clv), monetary = opt(row.monetary) or 0,
        frequency = opt(row.frequency) or 0, recency_days = opt(row.recency_days) or 0,
        behaviour_score = opt(row.behavior_score), categories = {}, offers = {},
    }
end

-- Up to n customers' offer profiles, the same ones every time (lowest ids).
local function offer_profiles(tenant, n)
    local rows, err = db.query([[
        SELECT c.id, c.external_id, a.segment, ]] .. CHURN .. [[, ]] .. BAND .. [[, a.clv, a.monetary, a.frequency,
               a.recency_days, a.behavior_score
        FROM customer_analytics a JOIN customers c ON c.id = a.customer_id
        ]] .. customer_analytics.JOIN_PREDICTIONS .. [[
        WHERE a.tenant_id = $1 AND a.segment IS NOT NULL ORDER BY a.customer_id LIMIT $2]], tenant, n)
    if not rows then error(err, 0) end
    return rows
end

-- dryrun.samples(tenant, kind, n) -> {fn = {input, ...}}: the tenant's own data as validation inputs.
function dryrun.samples(tenant, kind, n)
    if kind == "offers" then
        local list = {}
        for i, row in ipairs(offer_profiles(tenant, n)) do list[i] = profile(row) end
        return { offer = list }
    end
    return {}
end

local function draft_box(kind, source)
    local box = rules.new_box()
    local decl, errors = rules.load(box, "draft", kind, source, "@tenant:" .. kind .. " (draft)")
    if not decl then
        box:close()
        return nil, errors[1]
    end
    return box, decl
end

local function segments(tenant, source)
    local current, err = rule_store.segment_table(tenant)
    if not current then return nil, err end
    local box, decl = draft_box("segments", source)
    if not box then return nil, decl end
    local draft, e = rules.segment_table(box, "draft", decl)
    box:close()
    if not draft then return nil, e end
    local rows
    rows, err = db.query([[
        SELECT a.r, a.f, a.m, ]] .. BAND .. [[, a.segment, count(*) AS n FROM customer_analytics a
        ]] .. customer_analytics.JOIN_PREDICTIONS .. [[
        WHERE a.tenant_id = $1 AND a.r IS NOT NULL GROUP BY 1, 2, 3, 4, 5]], tenant)
    if not rows then return nil, err end
    local moves, before, after, total, moved = {}, {}, {}, 0, 0
    for _, row in ipairs(rows) do
        local key = rules.segment_key(row.r, row.f, row.m, opt(row.churn_band)) + 1
        local from = opt(row.segment) or current.names[current.segment[key]]
        local to = draft.names[draft.segment[key]]
        local n = row.n
        total = total + n
        before[from] = (before[from] or 0) + n
        after[to] = (after[to] or 0) + n
        if from ~= to then
            moved = moved + n
            local k = from .. "\0" .. to
            moves[k] = moves[k] or { from = from, to = to, customers = 0, examples = {} }
            moves[k].customers = moves[k].customers + n
            if #moves[k].examples < 3 then
                moves[k].examples[#moves[k].examples + 1] = { r = row.r, f = row.f, m = row.m, churn_band = row.churn_band }
            end
        end
    end
    local list = {}
    for _, mv in pairs(moves) do mv.examples = json.array(mv.examples); list[#list + 1] = mv end
    table.sort(list, function(a, b)
        if a.customers ~= b.customers then return a.customers > b.customers end
        return a.from .. a.to < b.from .. b.to
    end)
    local dist = {}
    local names, seen = {}, {}
    for _, n in ipairs(draft.names) do names[#names + 1] = n; seen[n] = true end
    for _, n in ipairs(current.names) do if not seen[n] then names[#names + 1] = n; seen[n] = true end end
    for _, n in pairs(before) do if not seen[n] then names[#names + 1] = n; seen[n] = true end end
    for _, name in ipairs(names) do
        dist[#dist + 1] = { segment = name, before = before[name] or 0, after = after[name] or 0 }
    end
    return { customers = total, moved = moved, moves = json.array(list), distribution = json.array(dist),
        current_version = current.version, sampled = false }
end

local function same_offer(a, b)
    if (a == nil) ~= (b == nil) then return false end
    if a == nil then return true end
    return a.discount_pct == b.discount_pct and a.validity_days == b.validity_days and a.message_key == b.message_key
end

local function offers(tenant, source)
    local box, decl = draft_box("offers", source)
    if not box then return nil, decl end
    local rows = offer_profiles(tenant, dryrun.OFFER_SAMPLE)
    local counts = { unchanged = 0, changed = 0, new_offer = 0, withdrawn = 0 }
    local sum_before, n_before, sum_after, n_after = 0, 0, 0, 0
    local examples = {}
    local current_version
    for i, row in ipairs(rows) do
        local p = profile(row)
        local old, info = rule_store.call(tenant, "offers", "offer", p, i)
        if old == nil and type(info) ~= "table" then box:close(); return nil, info end
        current_version = info and info.version
        local new, e = rules.call(box, "draft", "offers", "offer", decl, p, i)
        if new == nil and e then box:close(); return nil, e end
        if old then sum_before, n_before = sum_before + old.discount_pct, n_before + 1 end
        if new then sum_after, n_after = sum_after + new.discount_pct, n_after + 1 end
        local what
        if same_offer(old, new) then what = "unchanged"
        elseif old == nil then what = "new_offer"
        elseif new == nil then what = "withdrawn"
        else what = "changed" end
        counts[what] = counts[what] + 1
        if what ~= "unchanged" and #examples < 10 then
            examples[#examples + 1] = { customer = row.external_id, segment = p.segment,
                before = old or json.null, after = new or json.null }
        end
    end
    box:close()
    return { customers = #rows, sampled = true, sample_limit = dryrun.OFFER_SAMPLE, counts = counts,
        offers_before = n_before, offers_after = n_after,
        mean_discount_before = n_before > 0 and sum_before / n_before or json.null,
        mean_discount_after = n_after > 0 and sum_after / n_after or json.null,
        examples = json.array(examples), current_version = current_version or 0 }
end

-- The ROI inputs for a target: customers in the top share by monetary value whose churn
-- probability is above min_churn.
function dryrun.roi_inputs(tenant, target)
    local rows, err = db.query([[
        WITH ranked AS (
            SELECT a.monetary, ]] .. CHURN .. [[, percent_rank() OVER (ORDER BY a.monetary DESC) AS pr
            FROM customer_analytics a
            ]] .. customer_analytics.JOIN_PREDICTIONS .. [[
            WHERE a.tenant_id = $1 AND a.monetary IS NOT NULL)
        SELECT count(*) AS customers, coalesce(sum(monetary), 0) AS monetary FROM ranked
        WHERE pr < $2 AND churn_probability > $3]], tenant, target.monetary_top_share, target.min_churn)
    if not rows then return nil, err end
    return { customers = rows[1].customers, monetary = tonumber(rows[1].monetary) or 0 }
end

local function roi(tenant, source)
    local box, decl = draft_box("roi", source)
    if not box then return nil, decl end
    local current = rule_store.rule(tenant, "roi")
    local out = {}
    for name, side in pairs({ before = { current = true }, after = {} }) do
        local target = side.current and current.decl.target or decl.target
        local inputs, err = dryrun.roi_inputs(tenant, target)
        if not inputs then box:close(); return nil, err end
        local result, e
        if side.current then
            result, e = rule_store.call(tenant, "roi", "compute", inputs)
        else
            result, e = rules.call(box, "draft", "roi", "compute", decl, inputs)
        end
        if not result then box:close(); return nil, e end
        result.customers, result.monetary = inputs.customers, inputs.monetary
        result.roi_pct = result.roi_pct or json.null
        out[name] = result
    end
    box:close()
    out.sampled = false
    out.current_version = current.version or 0
    return out
end

-- Triggers and lead scoring: no stored events or leads to replay yet; compare on the kind's samples.
local function on_samples(tenant, kind, source)
    local box, decl = draft_box(kind, source)
    if not box then return nil, decl end
    local changed, total, examples = 0, 0, {}
    for fn, inputs in pairs(rules.KIND[kind].samples(decl)) do
        for i, input in ipairs(inputs) do
            total = total + 1
            local old, info = rule_store.call(tenant, kind, fn, input, i)
            if old == nil and type(info) ~= "table" then box:close(); return nil, info end
            local new, e = rules.call(box, "draft", kind, fn, decl, input, i)
            if new == nil and e then box:close(); return nil, e end
            local a, b = json.encode(old or json.null), json.encode(new or json.null)
            if a ~= b then
                changed = changed + 1
                if #examples < 10 then examples[#examples + 1] = { input = input, before = old or json.null, after = new or json.null } end
            end
        end
    end
    box:close()
    return { inputs = total, changed = changed, examples = json.array(examples), sampled = true,
        note = "compared on Pulse's sample inputs for this kind" }
end

-- dryrun.run(tenant, kind, source) -> result (with milliseconds) | nil, err
function dryrun.run(tenant, kind, source)
    local started = now_ms()
    local result, err
    if kind == "segments" then result, err = segments(tenant, source)
    elseif kind == "offers" then result, err = offers(tenant, source)
    elseif kind == "roi" then result, err = roi(tenant, source)
    else result, err = on_samples(tenant, kind, source) end
    if not result then return nil, err end
    result.kind = kind
    result.milliseconds = now_ms() - started
    return result
end

return dryrun
