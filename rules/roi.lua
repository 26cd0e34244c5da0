-- ROI of retention: which customers a campaign would target, what keeping them is worth and what
-- it costs. Every constant is the tenant's to change.
--
-- Pulse's default: customers in the top 10 % by monetary score whose churn probability is above
-- 80 %; value = sum of their monetary value x 100; retention cost = 10 % of that value;
-- net = value - cost; ROI % = net / cost x 100.
--
-- Pulse selects the customers with `target` (monetary_top_share, min_churn), sums their monetary
-- value, and calls compute(t) with t = { customers = <count>, monetary = <sum> }; compute returns
-- { value = , cost = , net = , roi_pct = } (numbers; roi_pct nil when cost is 0).
local M = {}

M.target = { monetary_top_share = 0.10, min_churn = 0.80 }
M.value_multiplier = 100
M.cost_share = 0.10

function M.compute(t)
    local value = t.monetary * M.value_multiplier
    local cost = value * M.cost_share
    local net = value - cost
    local roi_pct = nil
    if cost > 0 then roi_pct = net / cost * 100 end
    return { value = value, cost = cost, net = net, roi_pct = roi_pct }
end

return M
