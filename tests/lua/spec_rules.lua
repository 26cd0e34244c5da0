-- Specs for lua/rules.lua and the shipped rules/ (run in the rules sandbox): each default rule's
-- behaviour at its thresholds, validation feedback (line numbers, named fields), output checks,
-- and the segment lookup table.
local rules = require "rules"
local cli = require "rules_cli"

local function loaded(kind, source)
    local box = rules.new_box()
    local decl, errors = rules.load(box, kind, kind, source or rules.default_source(kind), "@rules/" .. kind .. ".lua")
    if not decl then error("load failed: " .. errors[1].message) end
    return box, decl
end

local function call(kind, fn, input, source)
    local box, decl = loaded(kind, source)
    local out, err = rules.call(box, kind, kind, fn, decl, input)
    box:close()
    return out, err
end

local function seg(r, f, m, band)
    return (call("segments", "segment", { r = r, f = f, m = m, churn_band = band }))
end

describe("the shipped rules", function()
    it("all validate, with no warnings", function()
        for _, kind in ipairs(rules.KINDS) do
            local report = rules.validate(kind, rules.default_source(kind))
            if not report.valid then error(kind .. ": " .. report.errors[1].message) end
            expect(#report.warnings).to_be(0)
            expect(report.calls > 0).to_be(true)
        end
    end)
end)

describe("segments (default)", function()
    it("declares the 11 segments in order", function()
        local box, decl = loaded("segments")
        box:close()
        expect(#decl.segments).to_be(11)
        expect(decl.segments[1].name).to_be("Champions")
        expect(decl.segments[11].name).to_be("Lost")
    end)

    it("places customers at every boundary", function()
        expect(seg(5, 5, 5)).to_be("Champions")
        expect(seg(4, 4, 4)).to_be("Champions")
        expect(seg(4, 4, 3)).to_be("Loyal Customers")       -- fm 3.5
        expect(seg(4, 3, 3)).to_be("Potential Loyalists")   -- fm 3
        expect(seg(5, 1, 5)).to_be("New Customers")
        expect(seg(4, 1, 5)).to_be("Promising")
        expect(seg(3, 4, 3)).to_be("Loyal Customers")
        expect(seg(3, 3, 2)).to_be("Need Attention")        -- fm 2.5
        expect(seg(3, 2, 2)).to_be("About to Sleep")
        expect(seg(2, 4, 4)).to_be("Cannot Lose Them")
        expect(seg(1, 5, 5)).to_be("Cannot Lose Them")
        expect(seg(2, 3, 2)).to_be("At Risk")
        expect(seg(1, 3, 2)).to_be("At Risk")
        expect(seg(2, 2, 2)).to_be("Hibernating")
        expect(seg(1, 2, 2)).to_be("Lost")
        expect(seg(1, 1, 1)).to_be("Lost")
    end)

    it("lets a high churn band override RFM for valuable customers only", function()
        expect(seg(5, 5, 5, "high")).to_be("Cannot Lose Them")
        expect(seg(5, 3, 2, "high")).to_be("At Risk")
        expect(seg(5, 1, 1, "high")).to_be("New Customers")
        expect(seg(5, 5, 5, "medium")).to_be("Champions")
        expect(seg(5, 5, 5, "low")).to_be("Champions")
    end)

    it("scores 0-100, lowered by the churn band", function()
        expect(call("segments", "score", { r = 5, f = 5, m = 5 })).to_be(100)
        expect(call("segments", "score", { r = 1, f = 1, m = 1 })).to_be(0)
        expect(call("segments", "score", { r = 5, f = 5, m = 5, churn_band = "high" })).to_be(55)
    end)

    it("builds the lookup table over the 500 input combinations", function()
        local box, decl = loaded("segments")
        local t = assert(rules.segment_table(box, "segments", decl))
        box:close()
        local n = 0
        for _ in pairs(t.segment) do n = n + 1 end
        expect(n).to_be(500)
        expect(t.names[t.segment[rules.segment_key(5, 5, 5) + 1]]).to_be("Champions")
        expect(t.names[t.segment[rules.segment_key(5, 5, 5, "high") + 1]]).to_be("Cannot Lose Them")
        expect(t.score[rules.segment_key(1, 1, 1) + 1]).to_be(0)
    end)
end)

describe("offers (default)", function()
    local function offer(p) return call("offers", "offer", p) end

    it("offers 20 % to a high-risk customer and 25 % when valuable", function()
        local o = offer { segment = "At Risk", risk_band = "high", monetary = 100, offers = {} }
        expect(o.discount_pct).to_be(20)
        expect(o.validity_days).to_be(14)
        expect(o.message_key).to_be("winback")
        expect(offer({ segment = "At Risk", risk_band = "high", value = 500, monetary = 100, offers = {} }).discount_pct).to_be(25)
        expect(offer({ segment = "At Risk", risk_band = "high", value = 499.99, monetary = 100, offers = {} }).discount_pct).to_be(20)
    end)

    it("offers nothing to low-risk customers, within the cool-down, or after three refusals", function()
        expect(offer { segment = "Champions", risk_band = "low", monetary = 10, offers = {} }).to_be(nil)
        expect(offer { segment = "At Risk", risk_band = "high", monetary = 10, offers = { days_since_last = 6 } }).to_be(nil)
        expect(offer({ segment = "At Risk", risk_band = "high", monetary = 10, offers = { days_since_last = 7 } }) ~= nil).to_be(true)
        expect(offer { segment = "At Risk", risk_band = "high", monetary = 10, offers = { declined = 3, accepted = 0 } }).to_be(nil)
        expect(offer({ segment = "At Risk", risk_band = "high", monetary = 10, offers = { declined = 2, accepted = 0 } }).discount_pct).to_be(25)
    end)

    it("uses the segment when no churn model has scored the customer, and caps at the policy", function()
        expect(offer({ segment = "Cannot Lose Them", value = 9999, monetary = 10, offers = { declined = 2 } }).discount_pct).to_be(30)
        expect(offer({ segment = "Hibernating", monetary = 10, offers = {} }).discount_pct).to_be(12)
        expect(offer({ segment = "New Customers", monetary = 10, offers = {}, categories = { "Books", "Toys" } }).categories[1]).to_be("Books")
    end)
end)

describe("roi (default)", function()
    it("computes value x100, cost 10 %, net and ROI 900 %", function()
        local r = call("roi", "compute", { customers = 3, monetary = 1000 })
        expect(r.value).to_be(100000)
        expect(r.cost).to_be(10000)
        expect(r.net).to_be(90000)
        expect(r.roi_pct).to_be(900)
        expect(call("roi", "compute", { customers = 0, monetary = 0 }).roi_pct).to_be(nil)
    end)
end)

describe("lead_scoring (default)", function()
    local function score(actions, attributes) return call("lead_scoring", "score", { actions = actions, attributes = attributes or {} }) end

    it("is MQL up to 109 points and SQL from 110", function()
        -- demo_request 40 + free_trial 50 + pricing 15 = 105; + page_view 2x2 = 109
        local s = score { { type = "demo_request", count = 1 }, { type = "free_trial", count = 1 },
            { type = "pricing_page_view", count = 1 }, { type = "page_view", count = 2 } }
        expect(s.points).to_be(109)
        expect(s.stage).to_be("MQL")
        s = score { { type = "demo_request", count = 1 }, { type = "free_trial", count = 1 },
            { type = "pricing_page_view", count = 1 }, { type = "email_open", count = 1 } }
        expect(s.points).to_be(110)
        expect(s.stage).to_be("SQL")
    end)

    it("makes a Book Consultant action SQL whatever the points", function()
        local s = score { { type = "book_consultant", count = 1 } }
        expect(s.points).to_be(30)
        expect(s.stage).to_be("SQL")
    end)

    it("caps repeated actions and adds attribute points", function()
        expect(score({ { type = "email_open", count = 100 } }).points).to_be(25)
        expect(score({}, { company_size = 100, job_title = "Head of Data" }).points).to_be(35)
        expect(score({}, { company_size = 99 }).points).to_be(0)
    end)
end)

describe("triggers (default)", function()
    local function fire(e) return call("triggers", "fire", e) end
    it("starts a win-back when churn risk crosses 0.7 upwards only", function()
        expect(#fire { type = "churn_risk_changed", previous = 0.69, current = 0.7 }).to_be(2)
        expect(#fire { type = "churn_risk_changed", previous = 0.7, current = 0.9 }).to_be(0)
        expect(#fire { type = "churn_risk_changed", previous = 0.8, current = 0.5 }).to_be(0)
    end)
    it("reacts to watched segments and to inactivity from 60 days", function()
        expect(fire({ type = "segment_changed", from = "Loyal Customers", to = "At Risk" })[1].campaign).to_be("winback")
        expect(#fire { type = "segment_changed", from = "At Risk", to = "Champions" }).to_be(0)
        expect(#fire { type = "inactive", days = 59 }).to_be(0)
        expect(fire({ type = "inactive", days = 60 })[1].campaign).to_be("reactivation")
    end)
end)

describe("validation feedback", function()
    it("gives the line of a syntax error", function()
        local report = rules.validate("segments", "local M = {}\n\nfunction M.segment(c)\n  return 'x' +\nend\nreturn M\n")
        expect(report.valid).to_be(false)
        expect(report.errors[1].line).to_be(5)
    end)

    it("names a missing or badly typed declaration", function()
        local report = rules.validate("segments", "return { segment = function() return 'A' end, score = function() return 1 end }")
        expect(report.valid).to_be(false)
        local text = report.errors[1].message .. (report.errors[2] and report.errors[2].message or "")
        expect(text:find("is missing", 1, true) ~= nil).to_be(true)
    end)

    it("refuses a segment that is not declared, naming it", function()
        local src = rules.default_source("segments"):gsub('return "Lost"', 'return "Gone"')
        local report = rules.validate("segments", src)
        expect(report.valid).to_be(false)
        expect(report.errors[1].message:find('"Gone"', 1, true) ~= nil).to_be(true)
    end)

    it("refuses an output of the wrong type, naming the field", function()
        local src = rules.default_source("offers"):gsub("discount_pct = pct,", 'discount_pct = "lots",')
        local report = rules.validate("offers", src)
        expect(report.valid).to_be(false)
        expect(report.errors[1].message:find("discount_pct", 1, true) ~= nil).to_be(true)
    end)

    it("refuses an unknown output field when validating (a typo), ignores it at run time", function()
        local src = rules.default_source("offers"):gsub("discount_pct = pct,", "discount_pct = pct, discount_percent = pct,")
        local report = rules.validate("offers", src)
        expect(report.valid).to_be(false)
        expect(report.errors[1].message:find("discount_percent", 1, true) ~= nil).to_be(true)
        local out = call("offers", "offer", { segment = "At Risk", risk_band = "high", monetary = 1, offers = {} }, src)
        expect(out.discount_pct).to_be(20)
    end)

    it("checks every run-time answer too, naming the field", function()
        local src = rules.default_source("offers"):gsub("validity_days = band == \"high\" and 14 or 30,", "validity_days = 0.5,")
        local out, err = call("offers", "offer", { segment = "At Risk", risk_band = "high", monetary = 1, offers = {} }, src)
        expect(out).to_be(nil)
        expect(err.message).to_be("offer().validity_days: must be an integer, got 0.5")
        src = rules.default_source("offers"):gsub("categories = cats,", "categories = { 1, 2 },")
        out, err = call("offers", "offer", { segment = "At Risk", risk_band = "high", monetary = 1, offers = {} }, src)
        expect(err.message).to_be("offer().categories[1]: must be a string, got 1")
        src = rules.default_source("offers"):gsub("pct = clamp%(pct, M.policy.min_discount, M.policy.max_discount%)", "pct = 31")
        out, err = call("offers", "offer", { segment = "At Risk", risk_band = "high", monetary = 1, offers = {} }, src)
        expect(err.message:find("from 5 to 30", 1, true) ~= nil).to_be(true)
    end)

    it("refuses a discount outside the declared policy", function()
        local src = rules.default_source("offers"):gsub("max_discount = 30", "max_discount = 90")
            :gsub("pct = clamp%(pct, M.policy.min_discount, M.policy.max_discount%)", "pct = 50")
        local report = rules.validate("offers", src)
        expect(report.valid).to_be(true) -- 50 is inside a 5-90 policy
        src = rules.default_source("offers"):gsub("pct = clamp%(pct, M.policy.min_discount, M.policy.max_discount%)", "pct = 50")
        report = rules.validate("offers", src)
        expect(report.valid).to_be(false)
        expect(report.errors[1].message:find("from 5 to 30", 1, true) ~= nil).to_be(true)
    end)

    it("reports a run-time error with its line", function()
        local src = "local M = require('rules/segments')\nreturn M\n"
        local report = rules.validate("segments", src)
        expect(report.valid).to_be(false)
        expect(report.errors[1].line).to_be(1)
    end)

    it("warns about a declared segment that is never chosen", function()
        local src = rules.default_source("segments"):gsub('if r == 5 then return "New Customers" end', "")
        local report = rules.validate("segments", src)
        expect(report.valid).to_be(true)
        expect(report.warnings[1].message:find("New Customers", 1, true) ~= nil).to_be(true)
    end)
end)

describe("rules_cli helpers", function()
    it("scores quintiles with equal values sharing a score", function()
        local s = cli.quintiles({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 })
        expect(s[1]).to_be(1)
        expect(s[2]).to_be(1)
        expect(s[3]).to_be(2)
        expect(s[10]).to_be(5)
        s = cli.quintiles({ 7, 7, 7, 7, 1 })
        expect(s[1]).to_be(2)
        expect(s[4]).to_be(2)
        expect(s[5]).to_be(1)
        s = cli.quintiles({ 10, 20 }, true) -- recency: lower is better
        expect(s[1]).to_be(3)
        expect(s[2]).to_be(1)
    end)

    it("reads CSV with quotes and reports ragged lines", function()
        local header, rows = cli.read_csv('customer_id,segment\n1,"At Risk"\n2,"A ""quoted"", name"\n')
        expect(header[2]).to_be("segment")
        expect(rows[2].segment).to_be('A "quoted", name')
        local h, err = cli.read_csv("a,b\n1\n")
        expect(h).to_be(nil)
        expect(err:find("line 2", 1, true) ~= nil).to_be(true)
    end)
end)
