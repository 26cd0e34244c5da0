-- pulse bench rules: what the rules layer costs the application (lua/rules.lua over the sandbox):
-- one offer-rule call as a request handler makes it (profile copied in, the rule run under its
-- budget, the answer copied out and checked), validating a rule, and building the segments lookup
-- table (500 calls) that batch work uses instead of one call per customer. Figures, not pass/fail.
local rules = require "rules"

local clock = os.clock

local function best_of(runs, fn)
    local best = math.huge
    for _ = 1, runs do
        local t0 = clock()
        fn()
        local dt = clock() - t0
        if dt < best then best = dt end
    end
    return best
end

local box = rules.new_box()
local decl = assert(rules.load(box, "offers", "offers", rules.default_source("offers"), "@rules/offers.lua"))
local profile = { segment = "At Risk", churn_probability = 0.82, risk_band = "high", value = 412.5, monetary = 380.0,
    frequency = 6, recency_days = 75, behaviour_score = 41, categories = { "Books", "Music" },
    offers = { sent = 2, accepted = 0, declined = 1, days_since_last = 12 } }
local N = 200000
local t = best_of(3, function()
    for i = 1, N do
        local out = rules.call(box, "offers", "offers", "offer", decl, profile, i)
        if not out then error("no offer") end
    end
end)
print(("offer rule call (copy in, run, copy out, output check): %.2f us per call (%d calls, best of 3)"):format(t / N * 1e6, N))
local t_raw = best_of(3, function()
    for i = 1, N do box:call("offers", "offer", profile, i) end
end)
print(("  of which the sandbox call alone: %.2f us"):format(t_raw / N * 1e6))
box:close()

for _, kind in ipairs(rules.KINDS) do
    local src = rules.default_source(kind)
    local ms = best_of(5, function() assert(rules.validate(kind, src).valid) end) * 1000
    print(("validate %-13s %6.2f ms (target 50 ms)"):format(kind, ms))
end

local sbox = rules.new_box()
local sdecl = assert(rules.load(sbox, "segments", "segments", rules.default_source("segments"), "@rules/segments.lua"))
local ms = best_of(5, function() assert(rules.segment_table(sbox, "segments", sdecl)) end) * 1000
print(("segments lookup table (500 segment + 500 score calls): %.2f ms"):format(ms))
sbox:close()
