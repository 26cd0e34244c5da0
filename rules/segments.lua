-- Segments: RFM quintile scores (and, once a churn model has scored the customer, the churn band)
-- -> one of the named segments, plus a composite segment score 0-100.
--
-- A tenant may override this file (PUT /api/v1/rules/segments). It runs in the rules sandbox:
-- pure functions of their input, no io, no os, no require (see the README's rule authoring guide).
--
-- segment(c) and score(c) receive c = { r = 1..5, f = 1..5, m = 1..5, churn_band = "low" |
-- "medium" | "high" | nil } (nil: no churn model has scored the customer yet). R is 5 for the most
-- recent buyers, F and M are 5 for the most frequent and the biggest spenders. Pulse evaluates both
-- functions once per combination of inputs (5 x 5 x 5 x 4 = 500 calls) and looks the answers up for
-- every customer, so they must depend on their input only.
local M = {}

-- Every segment segment() may return, in the order reports list them. Names are what the API and
-- the dashboard show; description and action are shown next to them.
M.segments = {
    { name = "Champions", description = "Bought recently, buy often and spend the most.",
      action = "Reward & upsell: early access, loyalty perks, ask for reviews." },
    { name = "Loyal Customers", description = "Buy regularly and spend well; respond to promotions.",
      action = "Upsell higher-value products; enrol in the loyalty programme." },
    { name = "Potential Loyalists", description = "Recent customers with average frequency and spend.",
      action = "Offer membership or a loyalty programme; recommend related products." },
    { name = "New Customers", description = "Bought most recently, but only once.",
      action = "Onboard: welcome series, help them get value early." },
    { name = "Promising", description = "Recent shoppers who have not spent much yet.",
      action = "Build the relationship: free shipping or a small first-repeat incentive." },
    { name = "Need Attention", description = "Above-average recency, frequency and spend, but slipping.",
      action = "Reactivate with limited-time offers based on past purchases." },
    { name = "About to Sleep", description = "Below-average recency and frequency; will be lost without a nudge.",
      action = "Share popular products and a modest discount; reconnect." },
    { name = "At Risk", description = "Spent well and bought often, but a long time ago (or churn risk is high).",
      action = "Personalised win-back: emails, a meaningful offer, ask what went wrong." },
    { name = "Cannot Lose Them", description = "Made the biggest and most frequent purchases, but have not come back.",
      action = "Win them back at almost any cost: personal contact, strong offer, new products." },
    { name = "Hibernating", description = "Last purchase long ago, low spend and few orders.",
      action = "Offer relevant products and special discounts; do not over-invest." },
    { name = "Lost", description = "Lowest recency, frequency and spend.",
      action = "Aggressive win-back once, then stop spending on them." },
}

-- Churn probability thresholds that decide the band handed to segment() and score().
M.churn_bands = { medium = 0.4, high = 0.7 }

function M.segment(c)
    local r, f, m = c.r, c.f, c.m
    local fm = (f + m) / 2
    if c.churn_band == "high" then
        -- A model sees the customer leaving: valuable ones need saving first, whatever RFM says.
        if fm >= 4 then return "Cannot Lose Them" end
        if fm >= 2.5 then return "At Risk" end
    end
    if r >= 4 then
        if f >= 4 and m >= 4 then return "Champions" end
        if f == 1 then
            if r == 5 then return "New Customers" end
            return "Promising"
        end
        if fm >= 3.5 then return "Loyal Customers" end
        return "Potential Loyalists"
    end
    if r == 3 then
        if fm >= 3.5 then return "Loyal Customers" end
        if fm >= 2.5 then return "Need Attention" end
        return "About to Sleep"
    end
    -- r is 1 or 2: they have not bought for a long time
    if f >= 4 and m >= 4 then return "Cannot Lose Them" end
    if fm >= 2.5 then return "At Risk" end
    if r == 2 then return "Hibernating" end
    return "Lost"
end

-- Composite segment score 0-100: RFM (recency weighs most) discounted by the churn band.
M.weights = { r = 0.45, f = 0.30, m = 0.25 }
M.band_factor = { low = 1.0, medium = 0.8, high = 0.55 }

function M.score(c)
    local w = M.weights
    local rfm = (w.r * (c.r - 1) + w.f * (c.f - 1) + w.m * (c.m - 1)) / 4 * 100
    local factor = M.band_factor[c.churn_band or "low"] or 1
    return math.floor(rfm * factor + 0.5)
end

return M
