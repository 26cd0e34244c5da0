-- A customer's analytics as the API shows them (customer_analytics + the run's feature names):
-- used by the segmentation and behaviour routes and by GET /api/v1/customers/{id}.
local db = require "db"
local json = require "json"
local problem = require "problem"

local M = {}

local function present(v) return v ~= nil and v ~= json.null end

-- A customer's current churn, for every query over customer_analytics a: the latest prediction p,
-- or an uploaded score when that is newer (pulse_churn_current, migration 0009), so a scoring run
-- shows without segmenting again. SQL fragments: the probability, the band, and the join they need.
M.CHURN = "pulse_churn_current(p.churn_probability, p.scored_at, a.churn_probability, a.computed_at)"
M.BAND = "pulse_churn_current(p.risk_band, p.scored_at, a.churn_band, a.computed_at)"
M.JOIN_PREDICTIONS = "LEFT JOIN predictions p ON p.tenant_id = a.tenant_id AND p.customer_id = a.customer_id"

local COLUMNS = [[c.id AS customer_id, c.external_id, a.computed_at, a.recency_days, a.frequency,
    a.monetary, a.r, a.f, a.m, a.segment, a.segment_score, ]] .. M.CHURN .. " AS churn_probability, " ..
    M.BAND .. [[ AS churn_band, a.clv,
    a.behavior_score, a.trend, a.risk_signals, a.recommendations, a.cluster_id, a.cluster, a.features, a.run_id]]

-- M.row(tenant, id) -> row (analytics columns null when never computed) | nil, problem/err
function M.row(tenant, id)
    local rows, err = db.query("SELECT " .. COLUMNS .. [[ FROM customers c
        LEFT JOIN customer_analytics a ON a.tenant_id = c.tenant_id AND a.customer_id = c.id
        ]] .. M.JOIN_PREDICTIONS .. [[
        WHERE c.tenant_id = $1 AND c.id = $2]], tenant, id)
    if not rows then return nil, err end
    if not rows[1] then return nil, problem.not_found("No customer " .. id .. ".") end
    return rows[1]
end

-- db.query returns PostgreSQL arrays as their text ("{a,b}", "{1.5,NaN}"): the elements, as
-- strings (feature names are identifiers and values numbers, so no quoting to undo but "").
local function pg_array(v)
    if type(v) ~= "string" then return v end
    local out = {}
    for item in v:gsub("^{", ""):gsub("}$", ""):gmatch("[^,]+") do out[#out + 1] = (item:gsub('^"(.*)"$', "%1")) end
    return out
end

-- M.view(tenant, id) -> { features = {name = value}, segment, churn, clv, behavior, cluster } | json.null
function M.view(tenant, id)
    local row, err = M.row(tenant, id)
    if not row then return nil, err end
    if not present(row.run_id) then return json.null end
    local names
    names, err = db.query("SELECT feature_names FROM analytics_runs WHERE tenant_id = $1 AND id = $2", tenant, row.run_id)
    if not names then return nil, err end
    local features = {}
    local values = present(row.features) and pg_array(row.features) or {}
    for i, name in ipairs(pg_array(names[1] and names[1].feature_names or {})) do
        local v = tonumber(values[i])
        features[name] = (type(v) == "number" and v == v) and v or json.null
    end
    return {
        computed_at = row.computed_at, features = features,
        segment = { name = row.segment, score = row.segment_score, r = row.r, f = row.f, m = row.m },
        churn = { probability = row.churn_probability, band = row.churn_band }, clv = row.clv,
        behavior = { score = row.behavior_score, trend = row.trend, risk_signals = row.risk_signals,
            recommendations = row.recommendations },
        cluster = present(row.cluster_id) and { clustering_id = row.cluster_id, cluster = row.cluster } or json.null,
    }
end

return M
