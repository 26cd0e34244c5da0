-- Churn models (Pulse's paths): training and scoring are jobs run in C (src/jobs/train_job.c,
-- src/jobs/score_job.c); this file starts them, reads the registry (models) and the latest scores
-- (predictions), switches the active model (audited) and tells a user where they stand. The churn
-- bands a score is cut into come from the tenant's segments rule, handed to the job.
local audit = require "audit"
local db = require "db"
local job_queue = require "job_queue"
local json = require "json"
local ml = require "ml"
local problem = require "problem"
local response = require "response"
local rule_store = require "rule_store"
local rules = require "rules"

local MODEL_ID = { id = { type = "string", format = "uuid", description = "The model's id." } }
local CUSTOMER_ID = { customer_id = { type = "integer", minimum = 1, description = "The customer's id." } }
local DEFAULT_BANDS = { medium = 0.4, high = 0.7 }

local function present(v) return v ~= nil and v ~= json.null end

-- Opened models of this VM, by tenant and slot (a kind for the active models, an id for the ones
-- predictions name): {key = id:xmin, model = userdata}. xmin changes with every update of the row
-- (an activation, a replaced model), so a request checks the key with one small query instead of
-- transferring and parsing the model's bytes each time.
local open_models, n_open = {}, 0
local MAX_OPEN = 256

-- The model row id (at xmin xv) opened, from the cache or the registry: model | nil, why (the
-- row is gone or does not load) | nil, nil, err.
local function opened(tenant, slot, id, xv)
    local key = id .. ":" .. xv
    local hit = open_models[slot]
    if hit and hit.key == key then return hit.model end
    local b, err = db.query("SELECT model FROM models WHERE tenant_id = $1 AND id = $2", tenant, id)
    if not b then return nil, nil, err end
    local m, why = b[1] and ml.open(b[1].model)
    if not m then
        open_models[slot] = nil
        return nil, why or "it is gone"
    end
    if n_open >= MAX_OPEN then open_models, n_open = {}, 0 end
    if not open_models[slot] then n_open = n_open + 1 end
    open_models[slot] = { key = key, model = m }
    return m
end

-- The tenant's active models, opened: {churn = {row, model}, clv = {row, model}} (either may be
-- absent), or nil and a problem for a model that does not load.
local function active_models(tenant)
    local rows, err = db.query([[SELECT id, kind, version, algorithm, xmin::text AS xv FROM models
        WHERE tenant_id = $1 AND active AND kind IN ('churn', 'clv')]], tenant)
    if not rows then return nil, err end
    local out = {}
    for _, row in ipairs(rows) do
        local m, why, e = opened(tenant, tenant .. ":" .. row.kind, row.id, row.xv)
        if e then return nil, e end
        if not m then
            return nil, problem.new(409, "model_invalid", ("The active %s model (version %d) cannot be loaded: %s; " ..
                "train again or activate another version."):format(row.kind == "clv" and "CLV" or "churn", row.version, why))
        end
        out[row.kind] = { row = row, model = m }
    end
    return out
end

-- The churn model of this id, opened (nil when it is gone, is not a churn model or does not
-- load), or nil, nil, err.
local function churn_model(tenant, id)
    local rows, err = db.query("SELECT xmin::text AS xv FROM models WHERE tenant_id = $1 AND id = $2 AND kind = 'churn'",
        tenant, id)
    if not rows then return nil, nil, err end
    if not rows[1] then return nil end
    local m, _, e = opened(tenant, tenant .. ":" .. id, id, rows[1].xv)
    return m, nil, e
end

local REASONS_UNWORDED = "The model that scored this customer is gone or cannot be loaded: the reasons show their " ..
    "effect only. Score again (POST /api/v1/ml/predict/batch) for reasons in words."

-- Words the reasons the scoring job stored as codes (row.reason_codes, replaced by row.reasons) with
-- the model each row names (row.model_id). A row whose model is gone or does not load keeps its
-- reasons' effects and directions, with a reasons_note saying why they have no words.
local function word_reasons(tenant, rows)
    local models = {}
    for _, r in ipairs(rows) do
        local codes = r.reason_codes
        r.reason_codes = nil
        local reasons = json.array({})
        if present(codes) then
            local id = present(r.model_id) and r.model_id or nil
            if id and models[id] == nil then
                local m, _, err = churn_model(tenant, id)
                if err then return nil, err end
                models[id] = m or false
            end
            local m = id and models[id] or nil
            local list = ml.reasons(m or nil, codes)
            if not m or not list then
                list = ml.reasons(nil, codes)
                r.reasons_note = REASONS_UNWORDED
            end
            reasons = list or reasons
        end
        r.reasons = reasons
    end
    return rows
end

local function churn_bands(tenant)
    local t = rule_store.segment_table(tenant)
    local b = t and t.churn_bands
    if type(b) == "table" and b.medium and b.high then return { medium = b.medium, high = b.high } end
    return DEFAULT_BANDS
end

local SUMMARY = [[m.id, m.kind, m.algorithm, m.version, m.active, m.metrics, m.created_at, m.created_by,
    cardinality(m.features) AS n_features, (m.data_snapshot->>'customers')::int AS rows, m.job_id]]

local function model_row(tenant, id, full)
    local cols = SUMMARY .. (full and ", m.params, m.data_snapshot, to_jsonb(m.features) AS features, m.report" or "")
    local rows, err = db.query("SELECT " .. cols .. " FROM models m WHERE m.tenant_id = $1 AND m.id = $2", tenant, id)
    if not rows then return nil, err end
    if not rows[1] then return nil, problem.not_found("No model " .. id .. ".") end
    return rows[1]
end

-- --- comparing training runs ---

-- Which way is better for each metric a model may carry (churn and CLV).
local HIGHER_IS_BETTER = { roc_auc = true, pr_auc = true, accuracy = true, precision = true, recall = true, f1 = true }
local LOWER_IS_BETTER = { log_loss = true, brier = true, mae = true, rmse = true }
local MAX_COMPARED = 10

local function parse_ids(text)
    local ids, seen = {}, {}
    for id in tostring(text):gmatch("[^,%s]+") do
        if not id:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") then
            return nil, "'" .. id .. "' is not a model id (a UUID)"
        end
        if not seen[id] then ids[#ids + 1], seen[id] = id, true end
    end
    if #ids < 2 or #ids > MAX_COMPARED then
        return nil, ("give 2 to %d different model ids, comma-separated (got %d)"):format(MAX_COMPARED, #ids)
    end
    return ids
end

-- The models side by side: each metric's values in the order asked and the best of them, and
-- what differs from the first model (parameters, features).
local function compare_models(models)
    local metrics, best = {}, {}
    for i, m in ipairs(models) do
        for name, v in pairs(type(m.metrics) == "table" and m.metrics or {}) do
            if type(v) == "number" and (HIGHER_IS_BETTER[name] or LOWER_IS_BETTER[name]) then
                metrics[name] = metrics[name] or {}
                metrics[name][i] = v
                local b = best[name]
                if not b or (HIGHER_IS_BETTER[name] and v > b.value) or (LOWER_IS_BETTER[name] and v < b.value) then
                    best[name] = { id = m.id, value = v }
                end
            end
        end
    end
    for name, vals in pairs(metrics) do
        for i = 1, #models do if vals[i] == nil then vals[i] = json.null end end
        metrics[name] = json.array(vals)
    end
    local first, params, features = models[1], {}, {}
    local base = {}
    for _, f in ipairs(first.features or {}) do base[f] = true end
    for i = 2, #models do
        local m, have, added, removed = models[i], {}, {}, {}
        for _, f in ipairs(m.features or {}) do
            have[f] = true
            if not base[f] then added[#added + 1] = f end
        end
        for _, f in ipairs(first.features or {}) do if not have[f] then removed[#removed + 1] = f end end
        features[#features + 1] = { id = m.id, added = json.array(added), removed = json.array(removed) }
        local keys = {}
        for k in pairs(type(first.params) == "table" and first.params or {}) do keys[k] = true end
        for k in pairs(type(m.params) == "table" and m.params or {}) do keys[k] = true end
        for k in pairs(keys) do
            local a, b = (first.params or {})[k], (m.params or {})[k]
            if json.encode(a == nil and json.null or a) ~= json.encode(b == nil and json.null or b) then
                params[k] = params[k] or {}
                params[k][m.id] = b == nil and json.null or b
            end
        end
    end
    for k, per in pairs(params) do per[first.id] = first.params[k] == nil and json.null or first.params[k] end
    return { metrics = metrics, best = best, differences = { params = params, features = json.array(features) } }
end

local RECOMMENDATIONS = {
    high = { "Contact this customer this week with a retention offer",
        "Address the top risk factors (see risk_factors) in the offer" },
    medium = { "Include this customer in the next retention campaign", "Watch for further risk signals" },
    low = { "No action needed: keep the usual engagement" },
}

return function(routes)
    local RFM = { type = "integer", minimum = 1, maximum = 5 }
    routes:add {
        method = "POST", path = "/api/v1/predict", role = "analyst", tags = { "ml" },
        summary = "Score one customer with the active churn and CLV models (for integrators)",
        description = "features: the active churn model's features by name (GET /api/v1/ml/models/{id} lists " ..
            "them; stored features may be given without their \"analytics.\" prefix); a feature left out is " ..
            "scored as missing and listed in missing_features. Answers the calibrated churn probability, its " ..
            "risk band (the segments rule's churn_bands) and the top reasons; with r, f and m (1-5) also the " ..
            "segment the tenant's segments rule gives that combination and band. With an active CLV model also " ..
            "clv: the customer's spend over the model's horizon_days, discounted monthly. A clv_gbdt model reads " ..
            "the transaction features from features (recency_days, frequency, monetary, ...: the model's feature " ..
            "list); a bgnbd model reads summary {x, t_x, T, zbar} (repeat purchase days, days from the first to " ..
            "the last purchase, days since the first purchase, mean spend of the repeat purchases; zbar optional) " ..
            "or, without summary, frequency, span_days, tenure_days and avg_basket from features. The inputs a " ..
            "model lacked are listed in clv_missing. Either model may be absent (its fields are null); with " ..
            "neither the answer is 409 no_model. Opened models are kept between requests.",
        body = {
            type = "object", additionalProperties = false, required = { "features" },
            properties = {
                features = { type = "object", maxProperties = 500, description = "{name: number or category}" },
                summary = { type = "object", additionalProperties = false, description = "BG/NBD inputs, in days",
                    properties = {
                        x = { type = "number", minimum = 0, description = "Repeat purchase days (purchase days - 1)." },
                        t_x = { type = "number", minimum = 0, description = "Days from the first to the last purchase." },
                        T = { type = "number", minimum = 0, description = "Days from the first purchase to today." },
                        zbar = { type = "number", minimum = 0, description = "Mean spend of the repeat purchase days." },
                    } },
                r = RFM, f = RFM, m = RFM,
            },
        },
        responses = { [200] = { description = "The prediction" }, [409] = "no active model, or one that does not load",
            [422] = "validation" },
        handler = function(req)
            local b = req.json
            local given = (b.r ~= nil and 1 or 0) + (b.f ~= nil and 1 or 0) + (b.m ~= nil and 1 or 0)
            if given ~= 0 and given ~= 3 then
                return problem.new(422, "validation_failed", "Give r, f and m together (each 1-5), or none of them.")
            end
            local models, err = active_models(req.tenant)
            if not models then return nil, err end
            if not models.churn and not models.clv then
                return problem.new(409, "no_model", "There is no active churn or CLV model: train one first " ..
                    "(POST /api/v1/ml/train).")
            end
            local out = { model_id = json.null, model_version = json.null, algorithm = json.null,
                churn_probability = json.null, risk_band = json.null, reasons = json.array({}),
                missing_features = json.array({}), segment = json.null, clv = json.null, clv_model = json.null }
            local band
            if models.churn then
                local row = models.churn.row
                local p, reasons, missing = models.churn.model:churn(b.features)
                local bands = churn_bands(req.tenant)
                band = p >= bands.high and "high" or p >= bands.medium and "medium" or "low"
                out.model_id, out.model_version, out.algorithm = row.id, row.version, row.algorithm
                out.churn_probability, out.risk_band = p, band
                out.reasons, out.missing_features = json.array(reasons), json.array(missing)
            end
            if models.clv then
                local row, m = models.clv.row, models.clv.model
                local v, missing = m:clv(b.features, b.summary)
                local horizon, discount = m:terms()
                out.clv = v or json.null
                out.clv_missing = json.array(missing)
                out.clv_model = { id = row.id, version = row.version, algorithm = row.algorithm,
                    horizon_days = horizon, discount = discount }
            end
            if given == 3 and band then
                local t, e = rule_store.segment_table(req.tenant)
                if not t then return nil, e end
                local key = rules.segment_key(b.r, b.f, b.m, band) + 1
                local idx = t.segment[key]
                out.segment = idx and t.names[idx] or json.null
                out.segment_score = t.score[key] or json.null
            end
            return response.ok(out)
        end,
    }

    routes:add {
        method = "POST", path = "/api/v1/ml/train", role = "analyst", tags = { "ml" },
        summary = "Train a churn model on the customers' labels (a job)",
        description = "The label is each customer's churned flag (a customers file's churn column); the features " ..
            "are their attributes plus the stored per-customer features. Without labels (or with label " ..
            "\"behavioural\") a transaction tenant's label is derived: churned = no purchase in the last " ..
            "horizon_days (default 90) of the data, features computed strictly before that window (the data must " ..
            "span horizon_days + 90 days). Logistic regression and gradient-" ..
            "boosted trees are both trained, the better on validation ROC AUC kept and calibrated; the run is " ..
            "stored as the next version and activated when it is the first or when activate is true.",
        body = {
            type = "object", additionalProperties = false,
            properties = {
                dataset_type = { type = "string", enum = { "ecommerce", "telco", "banking" } },
                kind = { type = "string", enum = { "churn", "clv" }, default = "churn",
                    description = "clv: lifetime value on a time split of the transactions: the last horizon_days " ..
                        "are the holdout; BG/NBD + Gamma-Gamma (fitted on the calibration period) and boosted trees " ..
                        "of holdout spend (on the churn features as of the cutoff) are compared on held-out " ..
                        "customers, the lower holdout MAE is kept (metrics mae, rmse; report: both candidates and " ..
                        "the table by calibration frequency), refitted on all data and, when active, every " ..
                        "customer's CLV (spend over horizon_days, discounted) is written." },
                clv_months = { type = "integer", minimum = 1, maximum = 24,
                    description = "CLV: the horizon in 30-day months when horizon_days is not given." },
                discount = { type = "number", minimum = 0, maximum = 0.5, description = "CLV: monthly discount rate (default 0.01)." },
                activate = { type = "boolean", description = "Make this run the active model (default: only the first)." },
                seed = { type = "integer", minimum = 0, description = "Split seed (default 42)." },
                test_fraction = { type = "number", minimum = 0.05, maximum = 0.5 },
                valid_fraction = { type = "number", minimum = 0.05, maximum = 0.5 },
                label = { type = "string", enum = { "explicit", "behavioural" },
                    description = "explicit: the customers' churn column (the default when there is one); " ..
                        "behavioural: no purchase in the horizon after a cutoff (the default for transaction data)." },
                horizon_days = { type = "integer", minimum = 7, maximum = 730,
                    description = "Behavioural label window in days, or the CLV horizon and holdout (default 90); " ..
                        "the data must span horizon_days + 90 days." },
            },
        },
        body_required = false,
        responses = { [202] = { description = "The job" }, [422] = "validation" },
        handler = function(req)
            local b = req.json or {}
            local rows, err = db.query("SELECT (SELECT count(*) FROM customers WHERE tenant_id = $1 AND churned IS NOT " ..
                "NULL) AS n, EXISTS (SELECT 1 FROM transactions WHERE tenant_id = $1) AS tx", req.tenant)
            if not rows then return nil, err end
            if b.kind == "clv" then
                if not rows[1].tx then
                    return problem.new(422, "no_transactions", "Lifetime-value models are fitted on transactions: " ..
                        "import a transactions file first.")
                end
                return job_queue.start(req, "train", { kind = "clv", activate = b.activate == true,
                    clv_months = b.clv_months, horizon_days = b.horizon_days, discount = b.discount, seed = b.seed })
            end
            local label = b.label or (rows[1].n > 0 and "explicit") or (rows[1].tx and "behavioural") or "explicit"
            if label == "explicit" and rows[1].n == 0 then
                return problem.new(422, "no_labels", "No customer has a churn label yet: upload a customers file " ..
                    "with a churn column (for example Churn with Yes/No values), or transactions, then train.")
            end
            if label == "behavioural" and not rows[1].tx then
                return problem.new(422, "no_transactions", "Behavioural churn labels are derived from transactions: " ..
                    "import a transactions file first.")
            end
            local params = { kind = "churn", dataset_type = b.dataset_type or json.null, activate = b.activate == true,
                seed = b.seed, test_fraction = b.test_fraction, valid_fraction = b.valid_fraction, label = label,
                horizon_days = b.horizon_days }
            return job_queue.start(req, "train", params)
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/ml/models", role = "viewer", tags = { "ml" },
        summary = "The organization's trained models, newest first",
        query = response.page({ kind = { type = "string", enum = { "churn", "clv" } } }),
        responses = { [200] = { description = "A page of models" } },
        handler = function(req)
            local limit, offset = req.query.limit or 50, req.query.offset or 0
            local kind = req.query.kind or json.null
            local rows, err = db.query("SELECT " .. SUMMARY .. [[ FROM models m
                WHERE m.tenant_id = $1 AND ($4::text IS NULL OR m.kind = $4)
                ORDER BY m.kind, m.version DESC LIMIT $2 OFFSET $3]], req.tenant, limit, offset, kind)
            if not rows then return nil, err end
            local c
            c, err = db.query("SELECT count(*) AS n FROM models WHERE tenant_id = $1 AND ($2::text IS NULL OR kind = $2)",
                req.tenant, kind)
            if not c then return nil, err end
            return response.list(rows, c[1].n, limit, offset)
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/ml/models/compare", role = "viewer", tags = { "ml" },
        summary = "Compare training runs side by side: metrics (and the best of each), parameters, features",
        description = "ids: 2 to 10 model ids of one kind, comma-separated. metrics: each metric's values in " ..
            "the order of ids (null where a model lacks it); best: the model with the best value of each " ..
            "(higher for roc_auc, pr_auc, accuracy, precision, recall, f1; lower for log_loss, brier, mae, rmse); " ..
            "differences: the parameters that differ from the first model, and the features added or removed.",
        query = { ids = { type = "string", minLength = 1, required = true, description = "Model ids, comma-separated (2 to 10)." } },
        responses = { [200] = { description = "The comparison" }, [404] = "not_found", [422] = "validation_failed" },
        handler = function(req)
            local ids, why = parse_ids(req.query.ids or "")
            if not ids then
                return problem.validation { { field = "query.ids", code = "invalid", message = why } }
            end
            local models = {}
            for i, id in ipairs(ids) do
                local row, err = model_row(req.tenant, id, true)
                if not row then return err end
                row.report = nil -- curves and candidates: GET /api/v1/ml/models/{id}
                models[i] = row
                if row.kind ~= models[1].kind then
                    return problem.validation { { field = "query.ids", code = "mixed_kinds", message =
                        ("model %s is a %s model and %s a %s model: compare models of one kind"):format(
                            ids[1], models[1].kind, id, row.kind) } }
                end
            end
            local answer = compare_models(models)
            answer.kind = models[1].kind
            answer.models = json.array(models)
            return response.ok(answer)
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/ml/models/{id}", role = "viewer", tags = { "ml" },
        summary = "A model: metrics, parameters, data snapshot, features, and the report (curves as data)",
        description = "metrics: roc_auc, pr_auc, log_loss, brier, accuracy, precision, recall, f1 on the test " ..
            "rows (calibrated), threshold, confusion, deciles (lift, cumulative gain), calibration_curve. " ..
            "report.models holds both candidates with their metrics and feature importance. A clv model's metrics " ..
            "are mae, rmse, mean_predicted and mean_actual of holdout spend over horizon_days; its report holds " ..
            "models.bgnbd and models.clv_gbdt (each with metrics), chosen, frequency_table (held-out customers by " ..
            "calibration repeat purchases 0-6 and 7+: BG/NBD predicted vs actual purchases, both models' " ..
            "predicted vs actual spend) and refit.",
        params = MODEL_ID,
        responses = { [200] = { description = "The model" }, [404] = "not_found" },
        handler = function(req)
            local row, err = model_row(req.tenant, req.params.id, true)
            if not row then return err end
            return response.ok(row)
        end,
    }

    routes:add {
        method = "POST", path = "/api/v1/ml/models/{id}/activate", role = "analyst", tags = { "ml" },
        summary = "Make this model the active one of its kind (the scorer uses it)",
        params = MODEL_ID,
        responses = { [200] = { description = "The model, now active" }, [404] = "not_found" },
        handler = function(req)
            local row, err = model_row(req.tenant, req.params.id, false)
            if not row then return err end
            local ok
            ok, err = db.tx(function()
                local prev, e = db.query([[UPDATE models SET active = false WHERE tenant_id = $1 AND kind = $2 AND active
                    AND id <> $3 RETURNING version]], req.tenant, row.kind, row.id)
                if not prev then error(e, 0) end
                local r
                r, e = db.query("UPDATE models SET active = true WHERE tenant_id = $1 AND id = $2", req.tenant, row.id)
                if not r then error(e, 0) end
                r, e = audit.record(req, "model_activated", { model_id = row.id, kind = row.kind, version = row.version,
                    previous_version = prev[1] and prev[1].version or json.null })
                if not r then error(e, 0) end
                return true
            end)
            if not ok then return nil, err end
            row.active = true
            return response.ok(row)
        end,
    }

    routes:add {
        method = "POST", path = "/api/v1/ml/predict/batch", role = "analyst", tags = { "ml" },
        summary = "Score customers with the active churn model (a job writing predictions)",
        description = "customer_ids: [\"all\"] or a list of customer ids. Writes churn probability (0-1), risk " ..
            "band (the segments rule's churn_bands), CLV (when computed) and reasons per customer.",
        body = {
            type = "object", additionalProperties = false, required = { "customer_ids" },
            properties = {
                customer_ids = { type = "array", minItems = 1, maxItems = 100000,
                    items = { type = { "integer", "string" } } },
            },
        },
        responses = { [202] = { description = "The job" }, [409] = "no_model", [422] = "validation" },
        handler = function(req)
            local ids, all = {}, false
            for i, v in ipairs(req.json.customer_ids) do
                if v == "all" then all = true
                elseif math.type(v) == "integer" and v > 0 then ids[#ids + 1] = v
                else
                    return problem.validation({ { field = "body.customer_ids[" .. i .. "]", code = "format",
                        message = "must be a customer id or \"all\"" } })
                end
            end
            local rows, err = db.query("SELECT id FROM models WHERE tenant_id = $1 AND kind = 'churn' AND active", req.tenant)
            if not rows then return nil, err end
            if not rows[1] then
                return problem.new(409, "no_model", "There is no active churn model: train one first (POST /api/v1/ml/train).")
            end
            return job_queue.start(req, "score", { customer_ids = json.array(all and { "all" } or ids),
                churn_bands = churn_bands(req.tenant), model_id = rows[1].id })
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/ml/predictions", role = "viewer", tags = { "ml" },
        summary = "The latest churn scores, highest risk first",
        query = response.page({
            risk_band = { type = "string", enum = { "low", "medium", "high" } },
            segment = { type = "string", maxLength = 60 },
        }),
        responses = { [200] = { description = "A page of predictions" } },
        handler = function(req)
            local limit, offset = req.query.limit or 50, req.query.offset or 0
            local band, seg = req.query.risk_band or json.null, req.query.segment or json.null
            local where = [[FROM predictions p JOIN customers c ON c.tenant_id = p.tenant_id AND c.id = p.customer_id
                LEFT JOIN customer_analytics a ON a.tenant_id = p.tenant_id AND a.customer_id = p.customer_id
                WHERE p.tenant_id = $1 AND ($2::text IS NULL OR p.risk_band = $2) AND ($3::text IS NULL OR a.segment = $3)]]
            local rows, err = db.query([[SELECT p.customer_id, c.external_id, p.churn_probability, p.risk_band, p.clv,
                    a.segment, p.reason_codes, p.model_id, p.scored_at ]] .. where ..
                " ORDER BY p.churn_probability DESC, p.customer_id LIMIT $4 OFFSET $5", req.tenant, band, seg, limit, offset)
            if not rows then return nil, err end
            rows, err = word_reasons(req.tenant, rows)
            if not rows then return nil, err end
            local c
            c, err = db.query("SELECT count(*) AS n " .. where, req.tenant, band, seg)
            if not c then return nil, err end
            return response.list(rows, c[1].n, limit, offset)
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/ml/status", role = "viewer", tags = { "ml" },
        summary = "Per model kind: trained or not, the data behind it, and what to do next",
        responses = { [200] = { description = "The status" } },
        handler = function(req)
            local data, err = db.query([[SELECT count(*) AS customers, count(churned) AS labelled,
                    count(*) FILTER (WHERE churned) AS churned FROM customers WHERE tenant_id = $1]], req.tenant)
            if not data then return nil, err end
            local scored
            scored, err = db.query([[SELECT count(*) AS n, max(scored_at) AS last FROM predictions WHERE tenant_id = $1]],
                req.tenant)
            if not scored then return nil, err end
            local models
            models, err = db.query([[SELECT kind, count(*) AS n, max(version) AS latest FROM models WHERE tenant_id = $1
                GROUP BY kind]], req.tenant)
            if not models then return nil, err end
            local active
            active, err = db.query("SELECT " .. SUMMARY .. " FROM models m WHERE m.tenant_id = $1 AND m.active", req.tenant)
            if not active then return nil, err end
            local d = data[1]
            d.scored = scored[1].n
            d.last_scored_at = scored[1].last
            local out = { data = d }
            for _, kind in ipairs({ "churn", "clv" }) do
                local k = { trained = false, models = 0, active = json.null }
                for _, m in ipairs(models) do if m.kind == kind then k.models, k.latest_version = m.n, m.latest end end
                for _, m in ipairs(active) do if m.kind == kind then k.active, k.trained = m, true end end
                if kind == "churn" then
                    if d.labelled == 0 then
                        k.next = "Upload a customers file with a churn column (for example Churn: Yes/No), then POST /api/v1/ml/train."
                    elseif d.labelled < 50 or d.churned < 10 or d.labelled - d.churned < 10 then
                        k.next = ("Training needs at least 50 labelled customers with 10 of each class; there are %d " ..
                            "(%d churned): upload more."):format(d.labelled, d.churned)
                    elseif not k.trained then
                        k.next = "Train a model: POST /api/v1/ml/train."
                    elseif d.scored == 0 then
                        k.next = "Score your customers: POST /api/v1/ml/predict/batch with {\"customer_ids\": [\"all\"]}."
                    else
                        k.next = "Up to date. Retrain after new uploads; compare runs in GET /api/v1/ml/models."
                    end
                else
                    k.next = k.trained and "Up to date. Refit after new transaction uploads: POST /api/v1/ml/train " ..
                        "with {\"kind\": \"clv\"}." or "Fit one on the transactions: POST /api/v1/ml/train with " ..
                        "{\"kind\": \"clv\"}."
                end
                out[kind] = k
            end
            return response.ok(out)
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/ai/churn-prediction/{customer_id}", role = "viewer", tags = { "ml" },
        summary = "A customer's churn probability, risk level, risk factors, recommendations and confidence",
        params = CUSTOMER_ID,
        responses = { [200] = { description = "The prediction" }, [404] = "not_found" },
        handler = function(req)
            local rows, err = db.query([[SELECT c.id AS customer_id, c.external_id, p.churn_probability, p.risk_band,
                    p.clv, p.reason_codes, p.scored_at, p.model_id, m.version AS model_version, m.algorithm,
                    (m.metrics->>'roc_auc')::float8 AS model_roc_auc
                FROM customers c LEFT JOIN predictions p ON p.tenant_id = c.tenant_id AND p.customer_id = c.id
                LEFT JOIN models m ON m.tenant_id = c.tenant_id AND m.id = p.model_id
                WHERE c.tenant_id = $1 AND c.id = $2]], req.tenant, req.params.customer_id)
            if not rows then return nil, err end
            local r = rows[1]
            if not r then return problem.not_found("No customer " .. req.params.customer_id .. ".") end
            if not present(r.churn_probability) then
                return problem.new(404, "not_scored", "This customer has no churn score yet: POST /api/v1/ml/predict/batch.")
            end
            rows, err = word_reasons(req.tenant, rows)
            if not rows then return nil, err end
            local up, down = {}, {}
            for _, reason in ipairs(r.reasons) do
                if reason.direction == "raises" then up[#up + 1] = reason else down[#down + 1] = reason end
            end
            -- confidence: how far the score is from a coin toss, and how well the model ranks
            local p = r.churn_probability
            local margin = math.abs(p - 0.5) * 2
            local auc = present(r.model_roc_auc) and r.model_roc_auc or 0.5
            local conf = margin * 0.5 + math.max(0, (auc - 0.5) * 2) * 0.5
            return response.ok({
                customer_id = r.customer_id, external_id = r.external_id, churn_probability = p,
                risk_level = r.risk_band, risk_factors = json.array(up), protective_factors = json.array(down),
                recommendations = json.array(RECOMMENDATIONS[r.risk_band] or {}), clv = r.clv,
                confidence = conf, confidence_level = conf >= 0.66 and "high" or conf >= 0.4 and "medium" or "low",
                model = { id = r.model_id, version = r.model_version, algorithm = r.algorithm }, scored_at = r.scored_at,
                reasons_note = r.reasons_note,
            })
        end,
    }
end
