-- Offers: a customer's profile -> the retention offer to show them (on the tenant's site through
-- the widget, or in a campaign e-mail), or nil for none. Called once per widget request and once
-- per campaign recipient, so keep it a quick pure function of its input.
--
-- offer(p) receives p = {
--   segment = "At Risk",            -- the customer's segment (rules/segments.lua)
--   churn_probability = 0.82,       -- 0..1, nil until a churn model has scored the customer
--   risk_band = "high",             -- "low" | "medium" | "high" | nil (same thresholds as segments)
--   value = 412.5,                  -- predicted lifetime value, nil until a CLV model ran
--   monetary = 380.0, frequency = 6, recency_days = 75,
--   behaviour_score = 41,           -- 0..100, nil when not computed
--   categories = { "Books" },       -- the customer's favourite categories, most bought first
--   offers = { sent = 2, accepted = 0, declined = 1, days_since_last = 12 },  -- days_since_last may be nil
-- }
-- and returns nil (no offer) or {
--   discount_pct = 15,              -- an integer within policy.min_discount .. policy.max_discount
--   validity_days = 14,             -- 1 .. 90
--   categories = { "Books" },       -- optional: what the offer applies to (empty/nil = everything)
--   products = { "SKU-1" },         -- optional
--   message_key = "winback",        -- which message template the widget / e-mail uses
-- }
local M = {}

-- The bounds every offer is checked against (a discount outside them is a rule error).
M.policy = { min_discount = 5, max_discount = 30 }

-- No more than one offer per this many days to the same customer.
M.cooldown_days = 7

-- Discount by churn risk band; the value bonus adds points for customers worth keeping.
M.discount_by_band = { high = 20, medium = 12, low = 5 }
M.value_bonus = { threshold = 500, points = 5 }

local SEGMENT_MESSAGES = {
    ["Cannot Lose Them"] = "vip_winback",
    ["At Risk"] = "winback",
    ["About to Sleep"] = "reminder",
    ["Hibernating"] = "reminder",
    ["Lost"] = "last_chance",
    ["New Customers"] = "welcome_back",
    ["Promising"] = "welcome_back",
}

local function clamp(x, lo, hi)
    if x < lo then return lo end
    if x > hi then return hi end
    return x
end

function M.offer(p)
    local o = p.offers or {}
    if o.days_since_last and o.days_since_last < M.cooldown_days then return nil end
    local band = p.risk_band
    if band == nil then
        -- No churn model yet: the segment says how much the customer is slipping.
        local seg = p.segment
        if seg == "Cannot Lose Them" or seg == "At Risk" then band = "high"
        elseif seg == "About to Sleep" or seg == "Need Attention" or seg == "Hibernating" then band = "medium"
        else band = "low" end
    end
    if band == "low" and p.segment ~= "New Customers" then return nil end
    local pct = M.discount_by_band[band] or M.policy.min_discount
    if (p.value or p.monetary or 0) >= M.value_bonus.threshold then pct = pct + M.value_bonus.points end
    -- Someone who declined twice without accepting gets one last, stronger offer, then none.
    if (o.declined or 0) >= 3 and (o.accepted or 0) == 0 then return nil end
    if (o.declined or 0) == 2 and (o.accepted or 0) == 0 then pct = pct + 5 end
    pct = clamp(pct, M.policy.min_discount, M.policy.max_discount)
    local cats
    if p.categories and p.categories[1] then cats = { p.categories[1] } end
    return {
        discount_pct = pct,
        validity_days = band == "high" and 14 or 30,
        categories = cats,
        message_key = SEGMENT_MESSAGES[p.segment] or "thank_you",
    }
end

return M
