-- Segmentation, behaviour and clustering (Pulse's paths). Recomputing starts a job (kind
-- "segment": features, RFM scores, segments and behaviour for every customer, in C, see
-- src/jobs/segment_job.c; kind "cluster": clustering); reading answers from customer_analytics,
-- which the last run wrote. The segment rule is evaluated here, once per input combination
-- (rule_store.segment_table), and handed to the job as a lookup table: no Lua call per customer.
local auth = require "auth"
local customer_analytics = require "customer_analytics"
local db = require "db"
local job_queue = require "job_queue"
local industries = require "industries"
local ingest = require "ingest"
local json = require "json"
local problem = require "problem"
local pulse = require "pulse"
local response = require "response"
local rule_store = require "rule_store"

local ORG_ID = { org_id = { type = "string", format = "uuid", description = "The organization (yours)." } }
local CUSTOMER_ID = { customer_id = { type = "integer", minimum = 1, description = "The customer's id." } }

local function present(v) return v ~= nil and v ~= json.null end


-- Another organization's id answers 404, like any other tenant-owned id.
local function own_org(req)
    if req.params.org_id ~= req.tenant then
        return problem.not_found("No organization " .. req.params.org_id .. ".")
    end
end

local function org_industry(tenant)
    local rows, err = db.query("SELECT industry FROM organizations WHERE id = $1", tenant)
    if not rows then return nil, err end
    return rows[1] and rows[1].industry or "ecommerce"
end

-- The job parameters the C pipeline reads (src/jobs/segment_job.c).
local function segment_params(tenant, extra)
    local t, err = rule_store.segment_table(tenant)
    if not t then return nil, err end
    local industry
    industry, err = org_industry(tenant)
    if not industry then return nil, err end
    local decl = industries.get(industry)
    local seg, score = {}, {}
    for i = 1, 500 do seg[i], score[i] = t.segment[i], t.score[i] end
    local params = {
        industry = industry,
        segments = { names = json.array(t.names), segment = json.array(seg), score = json.array(score),
            churn_bands = t.churn_bands, version = t.version },
        behaviour = decl.behaviour or {},
    }
    for k, v in pairs(extra or {}) do params[k] = v end
    return params
end


local AS_OF = { type = "string", format = "date", description = "Count recency from this day (default: the day after the last activity)." }

-- --- an uploaded customer_id,churn_score file (as Pulse's segment route accepted) ---

local ID_NAMES = { customerid = true, customer = true, id = true, externalid = true, clientid = true, customerref = true }
local SCORE_NAMES = { churnscore = true, churnprobability = true, churnprob = true, churnrisk = true, churn = true,
    score = true, probability = true }

local function column_key(name) return (name:lower():gsub("[^%w]", "")) end

-- The id and score columns of the preview, or a problem naming what the header lacks.
local function score_columns(preview)
    local id, score, names = nil, nil, {}
    for _, c in ipairs(preview.columns or {}) do
        local key = column_key(c.name or "")
        names[#names + 1] = c.name
        if not id and ID_NAMES[key] then id = c.name elseif not score and SCORE_NAMES[key] then score = c.name end
    end
    if id and score then return id, score end
    return nil, problem.validation { { field = "body.file", code = "missing_columns", message = string.format(
        "the scores file needs a customer id column (customer_id) and a churn score column (churn_score, 0 to 1); " ..
        "its header has: %s", #names > 0 and table.concat(names, ", ") or "nothing") } }
end


-- Stores the uploaded scores for the job (it removes the file when it ends) and checks the header
-- now, so a wrong file is a 422 rather than a failed job. -> churn_scores params, as_of | problem
local function take_uploaded_scores(req)
    local path = pulse.config.upload_dir .. "/" .. auth.random_token(18) .. ".scores"
    local saved, serr = ingest.save_upload(path)
    if not saved then
        if serr.code == "io" then return nil, serr.message end
        if serr.code == "no_file" then return problem.validation { { field = "body.file", code = "required", message = serr.message } } end
        return problem.bad_request(serr.code or "bad_multipart", "The multipart body cannot be read: " .. tostring(serr.message) .. ".")
    end
    local function refuse(p)
        os.remove(path)
        return p
    end
    local preview, perr = ingest.preview_file(path, { max_rows = 5, filename = saved.filename })
    if not preview or preview.format ~= "csv" then
        return refuse(problem.validation { { field = "body.file", code = "unreadable", message =
            perr and tostring(perr.message) or "send the scores as CSV: customer_id,churn_score" } })
    end
    if (preview.rows_sampled or 0) == 0 then
        return refuse(problem.validation { { field = "body.file", code = "empty_file", message = "the file has no data rows" } })
    end
    local id, score = score_columns(preview)
    if not id then return refuse(score) end
    local as_of = (saved.fields or {}).as_of or req.query.as_of
    if as_of ~= nil and not tostring(as_of):match("^%d%d%d%d%-%d%d%-%d%d$") then
        return refuse(problem.validation { { field = "body.as_of", code = "format", message = "must be a date YYYY-MM-DD" } })
    end
    return { file = path, id_column = id, score_column = score }, as_of
end

-- Both recompute routes start the same job: behaviour is computed with the features. The segment
-- route also takes a scores file (multipart field `file`, or a raw CSV body).
local function start_segmentation(req)
    local bad = own_org(req)
    if bad then return bad end
    local extra = { as_of = (req.json or {}).as_of or req.query.as_of }
    if req.body_media_type then
        local scores, as_of = take_uploaded_scores(req)
        if problem.is(scores) or not scores then return scores, as_of end
        extra = { as_of = as_of, churn_scores = scores }
    end
    local params, err = segment_params(req.tenant, extra)
    if not params then
        if extra.churn_scores then os.remove(extra.churn_scores.file) end
        return nil, err
    end
    local answer, qerr = job_queue.start(req, "segment", params)
    if not answer and extra.churn_scores then os.remove(extra.churn_scores.file) end
    return answer, qerr
end

return function(routes)
    routes:add {
        method = "POST", path = "/api/v1/segmentation/organizations/{org_id}/segment", role = "analyst",
        tags = { "segmentation" },
        summary = "Recompute features, RFM scores, segments and behaviour for every customer (a job)",
        description = "Answers 202 with the job; follow it at /api/v1/jobs/{id}/events. The segment rule " ..
            "(GET /api/v1/rules/segments) is the organization's active version. Optional JSON body: " ..
            "{\"as_of\": \"YYYY-MM-DD\"}. Or send churn scores from elsewhere as a CSV (multipart field `file`, " ..
            "or the raw body as text/csv) with a customer id column (customer_id) and a score column (churn_score: " ..
            "a probability 0 to 1, or a percentage like 85%); the scores replace the stored churn probabilities of " ..
            "the customers they name, and segments combine them with RFM. The header is checked at once (422 " ..
            "naming what is missing); a bad row fails the job with its line, and nothing is stored. The job's " ..
            "result says how many scores matched a customer.",
        params = ORG_ID,
        query = { as_of = AS_OF },
        body = { type = "object", additionalProperties = false, properties = { as_of = AS_OF } },
        body_alternatives = {
            ["multipart/form-data"] = { type = "object", required = { "file" }, properties = {
                file = { type = "string", format = "binary", description = "customer_id,churn_score CSV" }, as_of = AS_OF } },
            ["text/csv"] = { type = "string", description = "customer_id,churn_score CSV" },
        },
        max_body = pulse.config.max_upload_bytes,
        body_required = false,
        responses = { [202] = { description = "The job" }, [404] = "not_found", [413] = "body_too_large",
            [422] = "validation_failed" },
        handler = start_segmentation,
    }

    routes:add {
        method = "POST", path = "/api/v1/behavior/organizations/{org_id}/analyze-behaviors", role = "analyst",
        tags = { "behavior" },
        summary = "Recompute behaviour scores, trends and risk signals (with features and segments; a job)",
        params = ORG_ID,
        body = { type = "object", additionalProperties = false, properties = { as_of = AS_OF } },
        body_required = false,
        responses = { [202] = { description = "The job" }, [404] = "not_found" },
        handler = start_segmentation,
    }

    routes:add {
        method = "GET", path = "/api/v1/segmentation/organizations/{org_id}/segments", role = "viewer",
        tags = { "segmentation" },
        summary = "Segment distribution: customers, revenue, average churn and value per segment",
        params = ORG_ID,
        responses = { [200] = { description = "The distribution" }, [404] = "not_found" },
        handler = function(req)
            local bad = own_org(req)
            if bad then return bad end
            local rows, err = db.query([[
                SELECT a.segment, count(*) AS customers, coalesce(sum(a.monetary), 0) AS revenue,
                       avg(]] .. customer_analytics.CHURN .. [[) AS avg_churn,
                       avg(a.clv) AS avg_value, avg(a.segment_score) AS avg_score, avg(a.recency_days) AS avg_recency_days,
                       avg(a.frequency) AS avg_frequency, avg(a.monetary) AS avg_monetary
                FROM customer_analytics a ]] .. customer_analytics.JOIN_PREDICTIONS .. [[
                WHERE a.tenant_id = $1 AND a.segment IS NOT NULL GROUP BY a.segment]], req.tenant)
            if not rows then return nil, err end
            local run
            run, err = db.query([[SELECT id, as_of, customers, created_at, segments_rule FROM analytics_runs
                WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT 1]], req.tenant)
            if not run then return nil, err end
            local l = rule_store.rule(req.tenant, "segments")
            local by_name, total, revenue = {}, 0, 0
            for _, r in ipairs(rows) do
                by_name[r.segment] = r
                total = total + r.customers
                revenue = revenue + (tonumber(r.revenue) or 0)
            end
            local items = {}
            local function add(name, def)
                local r = by_name[name] or { customers = 0, revenue = 0 }
                by_name[name] = nil
                items[#items + 1] = {
                    segment = name, description = def and def.description or json.null,
                    action = def and def.action or json.null, customers = r.customers,
                    share = total > 0 and r.customers / total or 0, revenue = tonumber(r.revenue) or 0,
                    avg_churn = r.avg_churn or json.null, avg_value = r.avg_value or json.null,
                    avg_score = r.avg_score or json.null, avg_recency_days = r.avg_recency_days or json.null,
                    avg_frequency = r.avg_frequency or json.null, avg_monetary = r.avg_monetary or json.null,
                }
            end
            for _, def in ipairs(l and l.decl.segments or {}) do add(def.name, def) end
            local rest = {}
            for name in pairs(by_name) do rest[#rest + 1] = name end
            table.sort(rest)
            for _, name in ipairs(rest) do add(name, nil) end -- segments of an earlier rule version
            return response.ok({ customers = total, revenue = revenue, segments = json.array(items),
                computed = run[1] or json.null })
        end,
    }

    local analytics_row = customer_analytics.row

    routes:add {
        method = "GET", path = "/api/v1/segmentation/customers/{customer_id}/segment", role = "viewer",
        tags = { "segmentation" },
        summary = "A customer's segment, RFM scores and segment score",
        params = CUSTOMER_ID,
        responses = { [200] = { description = "The segment" }, [404] = "not_found" },
        handler = function(req)
            local row, bad = analytics_row(req.tenant, req.params.customer_id)
            if not row then return bad end
            if not present(row.segment) then
                return problem.new(404, "not_segmented", "This customer has no segment yet: run POST " ..
                    "/api/v1/segmentation/organizations/{org_id}/segment after importing their transactions or events.")
            end
            local l = rule_store.rule(req.tenant, "segments")
            local def = {}
            for _, s in ipairs(l and l.decl.segments or {}) do if s.name == row.segment then def = s end end
            return response.ok({
                customer_id = row.customer_id, external_id = row.external_id, segment = row.segment,
                description = def.description or json.null, action = def.action or json.null,
                segment_score = row.segment_score, r = row.r, f = row.f, m = row.m,
                rfm = { recency_days = row.recency_days, frequency = row.frequency, monetary = row.monetary },
                churn_probability = row.churn_probability, churn_band = row.churn_band, computed_at = row.computed_at,
            })
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/behavior/customers/{customer_id}/behavior", role = "viewer",
        tags = { "behavior" },
        summary = "A customer's behaviour score, activity trend, risk signals and recommendations",
        params = CUSTOMER_ID,
        responses = { [200] = { description = "The behaviour" }, [404] = "not_found" },
        handler = function(req)
            local row, bad = analytics_row(req.tenant, req.params.customer_id)
            if not row then return bad end
            if not present(row.behavior_score) then
                return problem.new(404, "not_analyzed", "No behaviour analysis for this customer yet: run POST " ..
                    "/api/v1/behavior/organizations/{org_id}/analyze-behaviors.")
            end
            return response.ok({
                customer_id = row.customer_id, external_id = row.external_id, behavior_score = row.behavior_score,
                trend = row.trend, risk_signals = row.risk_signals, recommendations = row.recommendations,
                segment = row.segment, computed_at = row.computed_at,
            })
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/behavior/organizations/{org_id}/behavior-insights", role = "viewer",
        tags = { "behavior" },
        summary = "Behaviour across the organization: trends, score distribution, the most frequent risk signals",
        params = ORG_ID,
        responses = { [200] = { description = "The insights" }, [404] = "not_found" },
        handler = function(req)
            local bad = own_org(req)
            if bad then return bad end
            local trends, err = db.query([[SELECT trend, count(*) AS customers, avg(behavior_score) AS avg_score
                FROM customer_analytics WHERE tenant_id = $1 AND trend IS NOT NULL GROUP BY trend ORDER BY trend]], req.tenant)
            if not trends then return nil, err end
            local signals
            signals, err = db.query([[SELECT s->>'name' AS signal, count(*) AS customers,
                    min(s->>'message') AS example
                FROM customer_analytics, jsonb_array_elements(risk_signals) s
                WHERE tenant_id = $1 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20]], req.tenant)
            if not signals then return nil, err end
            local bands
            bands, err = db.query([[SELECT width_bucket(behavior_score, 0, 100.0001, 5) AS bucket, count(*) AS customers
                FROM customer_analytics WHERE tenant_id = $1 AND behavior_score IS NOT NULL GROUP BY 1 ORDER BY 1]], req.tenant)
            if not bands then return nil, err end
            local dist = {}
            for _, b in ipairs(bands) do
                dist[#dist + 1] = { from = (b.bucket - 1) * 20, to = b.bucket * 20, customers = b.customers }
            end
            local by_segment
            by_segment, err = db.query([[SELECT segment, trend, count(*) AS customers FROM customer_analytics
                WHERE tenant_id = $1 AND segment IS NOT NULL AND trend IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2]], req.tenant)
            if not by_segment then return nil, err end
            local total = 0
            for _, t in ipairs(trends) do total = total + t.customers end
            return response.ok({ customers = total, trends = json.array(trends), score_distribution = json.array(dist),
                top_signals = json.array(signals), segment_trends = json.array(by_segment) })
        end,
    }

    local Method = { type = "string", enum = { "kmeans", "gmm", "ward" }, default = "kmeans",
        description = "k-means, a Gaussian mixture (diagonal covariances) or hierarchical Ward." }
    local FEATURE_NAMES = industries.FEATURES

    routes:add {
        method = "POST", path = "/api/v1/clusters", role = "analyst", tags = { "clusters" },
        summary = "Cluster the organization's customers (a job)",
        description = "k: a number from 2 to 12, or \"auto\" (silhouette for k-means and Ward, BIC for the " ..
            "mixture, over 2-8). features: which per-customer features to use (default recency_days, " ..
            "frequency, monetary); skewed ones are log-transformed, all standardised.",
        body = {
            type = "object", additionalProperties = false,
            properties = {
                method = Method,
                k = { type = { "integer", "string" }, description = "2-12 or \"auto\" (default auto)." },
                features = { type = "array", items = { type = "string", enum = FEATURE_NAMES }, minItems = 1, maxItems = 12 },
                seed = { type = "integer", minimum = 0, description = "Random seed (results are deterministic for a seed)." },
            },
        },
        body_required = false,
        responses = { [202] = { description = "The job" }, [422] = "validation" },
        handler = function(req)
            local b = req.json or {}
            local k = b.k
            if k == nil or k == "auto" then k = 0
            elseif math.type(k) ~= "integer" or k < 2 or k > 12 then
                return problem.validation({ { field = "body.k", code = "range", message = "must be an integer from 2 to 12, or \"auto\"" } })
            end
            local params = { method = b.method or "kmeans", k = k, seed = b.seed or 42,
                features = json.array(b.features or { "recency_days", "frequency", "monetary" }) }
            return job_queue.start(req, "cluster", params, function(job)
                return db.query("INSERT INTO clusterings (id, tenant_id, method, k_requested, created_by) VALUES ($1, $2, $3, $4, $5)",
                    job, req.tenant, params.method, k ~= 0 and k or json.null, (req.identity or {}).user_id or json.null)
            end)
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/clusters", role = "viewer", tags = { "clusters" },
        summary = "The organization's clusterings, newest first",
        query = response.page(),
        responses = { [200] = { description = "A page of clusterings" } },
        handler = function(req)
            local limit, offset = req.query.limit or 50, req.query.offset or 0
            local rows, err = db.query([[SELECT id, method, k_requested, state, created_at, finished_at,
                    (result->>'k')::int AS k FROM clusterings WHERE tenant_id = $1
                ORDER BY created_at DESC, id LIMIT $2 OFFSET $3]], req.tenant, limit, offset)
            if not rows then return nil, err end
            local c
            c, err = db.query("SELECT count(*) AS n FROM clusterings WHERE tenant_id = $1", req.tenant)
            if not c then return nil, err end
            return response.list(rows, c[1].n, limit, offset)
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/clusters/{id}", role = "viewer", tags = { "clusters" },
        summary = "A clustering: personas, sizes, centroids in original units, quality figures",
        params = { id = { type = "string", format = "uuid", description = "The clustering's id (its job's id)." } },
        responses = { [200] = { description = "The clustering" }, [404] = "not_found" },
        handler = function(req)
            local rows, err = db.query([[SELECT id, method, k_requested, state, result, created_at, finished_at
                FROM clusterings WHERE tenant_id = $1 AND id = $2]], req.tenant, req.params.id)
            if not rows then return nil, err end
            if not rows[1] then return problem.not_found("No clustering " .. req.params.id .. ".") end
            local out = rows[1]
            out.job = job_queue.links(out.id)
            return response.ok(out)
        end,
    }

end
