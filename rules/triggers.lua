-- Triggers: events about a customer -> the campaign actions to start.
--
-- fire(e) receives one event e = {
--   type = "segment_changed" | "churn_risk_changed" | "risk_signal" | "inactive" | "schedule",
--   customer = { segment = "At Risk", churn_probability = 0.83, recency_days = 64, value = 300 },
--   from = "Loyal Customers", to = "At Risk",       -- segment_changed
--   previous = 0.55, current = 0.83,                -- churn_risk_changed (probabilities 0..1)
--   signal = "usage_decline", values = { ... },     -- risk_signal (name and the values that fired it)
--   days = 60,                                      -- inactive: days since the last activity
--   schedule = "weekly",                            -- schedule: "daily" | "weekly" | "monthly"
-- }
-- and returns a list (possibly empty) of actions { campaign = "<name>", channel = "email" |
-- "widget", delay_hours = <0..720>, reason = "<why, for the campaign log>" }.
local M = {}

M.churn_threshold = 0.7     -- crossing it upwards starts a win-back
M.inactive_days = 60        -- a nudge after this many days without activity
M.watched_segments = { ["At Risk"] = "winback", ["Cannot Lose Them"] = "vip_winback", ["About to Sleep"] = "reactivation" }

function M.fire(e)
    local actions = {}
    local function add(campaign, channel, delay, reason)
        actions[#actions + 1] = { campaign = campaign, channel = channel, delay_hours = delay, reason = reason }
    end
    if e.type == "segment_changed" then
        local campaign = M.watched_segments[e.to]
        if campaign then add(campaign, "email", 0, ("moved from %s to %s"):format(e.from or "?", e.to)) end
    elseif e.type == "churn_risk_changed" then
        if (e.previous or 0) < M.churn_threshold and (e.current or 0) >= M.churn_threshold then
            add("winback", "email", 0, ("churn risk rose to %d%%"):format(math.floor(e.current * 100 + 0.5)))
            add("winback", "widget", 0, "show the offer on the site too")
        end
    elseif e.type == "risk_signal" then
        add("risk_" .. tostring(e.signal), "email", 24, "risk signal " .. tostring(e.signal))
    elseif e.type == "inactive" then
        if (e.days or 0) >= M.inactive_days then
            add("reactivation", "email", 0, ("inactive for %d days"):format(e.days))
        end
    elseif e.type == "schedule" and e.schedule == "weekly" then
        local c = e.customer or {}
        if (c.churn_probability or 0) >= M.churn_threshold then
            add("weekly_winback_digest", "email", 0, "weekly: still at high risk")
        end
    end
    return actions
end

return M
