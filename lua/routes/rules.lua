-- Rule authoring over HTTP: read the active source of a kind (the tenant's version or the shipped
-- default), keep a draft, validate a source (compile, declared data, a run on sample inputs and the
-- tenant's own customers), dry-run it against the tenant's customers, publish it as a new version
-- (audited), list versions, roll back. Reading is for every role; writing for owners and analysts.
local auth = require "auth"
local audit = require "audit"
local db = require "db"
local json = require "json"
local problem = require "problem"
local response = require "response"
local rule_dryrun = require "rule_dryrun"
local rule_store = require "rule_store"
local rules = require "rules"
local schema = require "schema"

local Kind = { type = "string", enum = rules.KINDS, description = "The rule kind." }
local KIND_PARAM = { kind = Kind }
local SourceBody = {
    type = "object", required = { "source" }, additionalProperties = false,
    properties = { source = { type = "string", minLength = 1, maxLength = rules.MAX_SOURCE_BYTES, description = "The rule's Lua source." } },
}

local RuleError = schema.component("RuleError", {
    type = "object", required = { "message" },
    properties = {
        line = { type = { "integer", "null" }, description = "Line in the source, when the error has one." },
        message = { type = "string" },
    },
})

local Validation = schema.component("RuleValidation", {
    type = "object", required = { "valid", "errors", "warnings" },
    properties = {
        valid = { type = "boolean" },
        errors = { type = "array", items = RuleError },
        warnings = { type = "array", items = RuleError },
        calls = { type = "integer", description = "Function calls made on sample inputs." },
        milliseconds = { type = "number" },
    },
})

local Rule = schema.component("Rule", {
    type = "object", required = { "kind", "version", "default", "source" },
    properties = {
        kind = Kind,
        summary = { type = "string" },
        version = { type = "integer", description = "The active version; 0 = the shipped default." },
        default = { type = "boolean", description = "True when the shipped default is active." },
        source = { type = "string" },
        fallback_version = { type = "integer", description = "Answers when the active version fails at run time (0 = the default)." },
        failures = { type = "integer", description = "Run-time failures of the active version (each fell back)." },
        last_error = { type = { "string", "null" } },
        draft = { type = { "object", "null" } },
    },
})

local RuleVersion = schema.component("RuleVersion", {
    type = "object",
    properties = {
        version = { type = "integer" }, sha256 = { type = "string" }, note = { type = { "string", "null" } },
        created_by = { type = { "integer", "null" } }, created_at = { type = "string", format = "date-time" },
        failures = { type = "integer" }, last_error = { type = { "string", "null" } },
        last_failure_at = { type = { "string", "null" } }, active = { type = "boolean" },
    },
})

-- The function Pulse calls for each kind (what /evaluate runs).
local MAIN_FUNCTION = { segments = "segment", offers = "offer", triggers = "fire", roi = "compute", lead_scoring = "score" }

local function present(v) return v ~= nil and v ~= json.null end

local function state_row(tenant, kind)
    local rows, err = db.query([[
        SELECT active_version, fallback_version, draft_source, draft_updated_at, draft_updated_by
        FROM rule_state WHERE tenant_id = $1 AND kind = $2]], tenant, kind)
    if not rows then return nil, err end
    return rows[1] or {}
end

-- The tenant's own customers as extra validation inputs (so a rule that breaks on real data is
-- refused before it is published).
local function tenant_samples(tenant, kind)
    local ok, samples = pcall(rule_dryrun.samples, tenant, kind, 50)
    if ok then return samples end
    return nil
end

local function validation_view(report)
    local function list(l)
        local out = {}
        for i, e in ipairs(l) do
            out[i] = { line = e.line or json.null, message = e.message }
        end
        return json.array(out)
    end
    return { valid = report.valid, errors = list(report.errors), warnings = list(report.warnings),
        calls = report.calls, milliseconds = report.milliseconds }
end

local function validate(tenant, kind, source)
    return rules.validate(kind, source, { samples = tenant_samples(tenant, kind), chunkname = "@tenant:" .. kind })
end

local function invalid(report)
    local first = report.errors[1] or { message = "invalid" }
    local where = first.line and (" (line " .. first.line .. ")") or ""
    local v = validation_view(report)
    return problem.new(422, "invalid_rule", "The rule is not valid: " .. first.message .. where,
        { errors = v.errors, warnings = v.warnings })
end

return function(routes)
    routes:add {
        method = "GET", path = "/api/v1/rules", role = "viewer", tags = { "rules" },
        summary = "The rule kinds and which version of each is active",
        responses = { [200] = { description = "One entry per kind" } },
        handler = function(req)
            local rows, err = db.query([[
                SELECT s.kind, s.active_version, s.fallback_version, s.draft_source IS NOT NULL AS has_draft,
                       v.failures, v.last_error
                FROM rule_state s LEFT JOIN rule_versions v
                  ON v.tenant_id = s.tenant_id AND v.kind = s.kind AND v.version = s.active_version
                WHERE s.tenant_id = $1]], req.tenant)
            if not rows then return nil, err end
            local by_kind = {}
            for _, r in ipairs(rows) do by_kind[r.kind] = r end
            local items = {}
            for _, kind in ipairs(rules.KINDS) do
                local r = by_kind[kind] or {}
                items[#items + 1] = {
                    kind = kind, summary = rules.KIND[kind].summary,
                    version = present(r.active_version) and r.active_version or 0,
                    default = not present(r.active_version),
                    has_draft = r.has_draft == true,
                    failures = present(r.failures) and r.failures or 0,
                    last_error = present(r.last_error) and r.last_error or json.null,
                }
            end
            return response.ok({ items = json.array(items) })
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/rules/{kind}", role = "viewer", tags = { "rules" },
        summary = "The active source of a rule kind, and the draft",
        params = KIND_PARAM,
        responses = { [200] = { description = "The rule", schema = Rule } },
        handler = function(req)
            local kind = req.params.kind
            local s, err = state_row(req.tenant, kind)
            if not s then return nil, err end
            local out = { kind = kind, summary = rules.KIND[kind].summary, version = 0, default = true,
                fallback_version = present(s.fallback_version) and s.fallback_version or 0,
                failures = 0, last_error = json.null, draft = json.null }
            if present(s.active_version) then
                local rows
                rows, err = db.query([[SELECT source, failures, last_error FROM rule_versions
                    WHERE tenant_id = $1 AND kind = $2 AND version = $3]], req.tenant, kind, s.active_version)
                if not rows then return nil, err end
                out.version, out.default = s.active_version, false
                out.source, out.failures, out.last_error = rows[1].source, rows[1].failures, rows[1].last_error
            else
                out.source = rules.default_source(kind)
            end
            if present(s.draft_source) then
                out.draft = { source = s.draft_source, updated_at = s.draft_updated_at, updated_by = s.draft_updated_by }
            end
            return response.ok(out)
        end,
    }

    routes:add {
        method = "PUT", path = "/api/v1/rules/{kind}", role = "analyst", tags = { "rules" },
        summary = "Save a draft (not active until published)",
        description = "The draft is compiled and checked like /validate; a draft that does not compile is " ..
            "refused (422 with the line). The active rule does not change.",
        params = KIND_PARAM, body = SourceBody,
        responses = { [200] = { description = "Saved; the validation report", schema = Validation }, [422] = "invalid_rule" },
        handler = function(req)
            local kind, source = req.params.kind, req.json.source
            local report = validate(req.tenant, kind, source)
            local compiles = report.valid or (report.errors[1] and report.errors[1].kind ~= "syntax")
            if not compiles then return invalid(report) end
            local rows, err = db.query([[
                INSERT INTO rule_state (tenant_id, kind, draft_source, draft_updated_at, draft_updated_by)
                VALUES ($1, $2, $3, now(), $4)
                ON CONFLICT (tenant_id, kind) DO UPDATE SET draft_source = EXCLUDED.draft_source,
                    draft_updated_at = now(), draft_updated_by = EXCLUDED.draft_updated_by
                RETURNING draft_updated_at]], req.tenant, kind, source, req.identity.user_id or json.null)
            if not rows then return nil, err end
            return response.ok(validation_view(report))
        end,
    }

    routes:add {
        method = "POST", path = "/api/v1/rules/{kind}/validate", role = "analyst", tags = { "rules" },
        summary = "Compile a source, check its declared data, and run it on sample customers",
        params = KIND_PARAM, body = SourceBody,
        responses = { [200] = { description = "The report (valid or not)", schema = Validation } },
        handler = function(req)
            return response.ok(validation_view(validate(req.tenant, req.params.kind, req.json.source)))
        end,
    }

    routes:add {
        method = "POST", path = "/api/v1/rules/{kind}/dry-run", role = "analyst", tags = { "rules" },
        summary = "What a draft would change for the organization's current customers",
        description = "Segments: how many customers move from which segment to which (every customer, " ..
            "exactly). Offers: which offers change, on a sample of customers (the answer says how many). " ..
            "ROI: the figures before and after. Nothing is stored.",
        params = KIND_PARAM, body = SourceBody,
        responses = { [200] = { description = "The changes" }, [422] = "invalid_rule" },
        handler = function(req)
            local kind = req.params.kind
            local report = validate(req.tenant, kind, req.json.source)
            if not report.valid then return invalid(report) end
            local result, err = rule_dryrun.run(req.tenant, kind, req.json.source)
            if not result then
                if type(err) == "table" and err.message then
                    return problem.new(422, "invalid_rule", "The rule failed during the dry run: " .. err.message)
                end
                return nil, err
            end
            result.warnings = validation_view(report).warnings
            return response.ok(result)
        end,
    }

    routes:add {
        method = "POST", path = "/api/v1/rules/{kind}/publish", role = "analyst", tags = { "rules" },
        summary = "Publish a source (or the saved draft) as the next version and make it active",
        description = "The source is validated first; an invalid one is refused (422) and nothing changes. " ..
            "The version that was active becomes the fallback used if the new one fails at run time. Audited.",
        params = KIND_PARAM,
        body = {
            type = "object", additionalProperties = false,
            properties = {
                source = { type = "string", minLength = 1, maxLength = rules.MAX_SOURCE_BYTES,
                    description = "The source; omitted: the saved draft." },
                note = { type = "string", maxLength = 500, description = "What changed, for the version list." },
            },
        },
        responses = { [201] = { description = "Published", schema = RuleVersion }, [422] = "invalid_rule" },
        handler = function(req)
            local kind, tenant = req.params.kind, req.tenant
            local body = req.json or {}
            local source = body.source
            if not source then
                local s, err = state_row(tenant, kind)
                if not s then return nil, err end
                if not present(s.draft_source) then
                    return problem.new(422, "no_draft", "There is no saved draft: send the source to publish.")
                end
                source = s.draft_source
            end
            local report = validate(tenant, kind, source)
            if not report.valid then return invalid(report) end
            local result, err = db.tx(function()
                -- The state row is locked so two publishes cannot take the same number.
                local rows, e = db.query([[
                    INSERT INTO rule_state (tenant_id, kind) VALUES ($1, $2)
                    ON CONFLICT (tenant_id, kind) DO UPDATE SET updated_at = now()
                    RETURNING active_version, fallback_version]], tenant, kind)
                if not rows then error(e, 0) end
                local prev = rows[1].active_version
                rows, e = db.query("SELECT coalesce(max(version), 0) + 1 AS v FROM rule_versions WHERE tenant_id = $1 AND kind = $2",
                    tenant, kind)
                if not rows then error(e, 0) end
                local version = rows[1].v
                rows, e = db.query([[
                    INSERT INTO rule_versions (tenant_id, kind, version, source, sha256, note, created_by)
                    VALUES ($1, $2, $3, $4, $5, $6, $7)
                    RETURNING version, sha256, note, created_by, created_at, failures, last_error, last_failure_at]],
                    tenant, kind, version, source, auth.digest(source), body.note or json.null,
                    req.identity.user_id or json.null)
                if not rows then error(e, 0) end
                local row = rows[1]
                local ok
                ok, e = db.query([[
                    UPDATE rule_state SET active_version = $3, fallback_version = $4, updated_at = now(),
                        draft_source = CASE WHEN draft_source = $5 THEN NULL ELSE draft_source END
                    WHERE tenant_id = $1 AND kind = $2]], tenant, kind, version, prev, source)
                if not ok then error(e, 0) end
                ok, e = audit.record(req, "rule_published", { kind = kind, version = version, sha256 = row.sha256,
                    previous_version = present(prev) and prev or 0 })
                if not ok then error(e, 0) end
                row.active = true
                return row
            end)
            if not result then return nil, err end
            rule_store.forget(tenant)
            return response.created(result)
        end,
    }

    routes:add {
        method = "POST", path = "/api/v1/rules/{kind}/evaluate", role = "viewer", tags = { "rules" },
        summary = "Run the active rule on one input, as Pulse would (try it out)",
        description = "The input is what the kind's main function receives (segments: {r, f, m, churn_band}; " ..
            "offers: a customer profile; triggers: an event; roi: {customers, monetary}; lead_scoring: a lead). " ..
            "A failing active version falls back to the last good one, like every other call: the answer says " ..
            "which version answered and the error that made it fall back.",
        params = KIND_PARAM,
        body = { type = "object", required = { "input" }, additionalProperties = false,
            properties = { input = { type = "object", maxProperties = 100 }, seed = { type = "integer", minimum = 0 } } },
        responses = { [200] = { description = "The result" }, [422] = "rule_failed" },
        handler = function(req)
            local kind = req.params.kind
            local fn = MAIN_FUNCTION[kind]
            local result, info = rule_store.call(req.tenant, kind, fn, req.json.input, req.json.seed or 0)
            if result == nil and type(info) ~= "table" then
                return problem.new(422, "rule_failed", tostring(info))
            end
            return response.ok({ kind = kind, result = result == nil and json.null or result, version = info.version,
                fell_back = info.fell_back, error = info.error and { line = info.error.line or json.null,
                    message = info.error.message } or json.null })
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/rules/{kind}/versions", role = "viewer", tags = { "rules" },
        summary = "Every published version of a kind, newest first",
        params = KIND_PARAM,
        responses = { [200] = { description = "The versions" } },
        handler = function(req)
            local kind = req.params.kind
            local s, err = state_row(req.tenant, kind)
            if not s then return nil, err end
            local rows
            rows, err = db.query([[
                SELECT version, sha256, note, created_by, created_at, failures, last_error, last_failure_at
                FROM rule_versions WHERE tenant_id = $1 AND kind = $2 ORDER BY version DESC]], req.tenant, kind)
            if not rows then return nil, err end
            for _, r in ipairs(rows) do r.active = (r.version == s.active_version) end
            return response.ok({ kind = kind, active_version = present(s.active_version) and s.active_version or 0,
                items = json.array(rows) })
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/rules/{kind}/versions/{version}", role = "viewer", tags = { "rules" },
        summary = "One published version with its source (version 0: the shipped default)",
        params = { kind = Kind, version = { type = "integer", minimum = 0, description = "The version number." } },
        responses = { [200] = { description = "The version" }, [404] = "not_found" },
        handler = function(req)
            local kind, version = req.params.kind, req.params.version
            if version == 0 then
                return response.ok({ kind = kind, version = 0, source = rules.default_source(kind), default = true })
            end
            local rows, err = db.query([[
                SELECT version, source, sha256, note, created_by, created_at, failures, last_error, last_failure_at
                FROM rule_versions WHERE tenant_id = $1 AND kind = $2 AND version = $3]], req.tenant, kind, version)
            if not rows then return nil, err end
            if not rows[1] then return problem.not_found(("No %s version %d."):format(kind, version)) end
            rows[1].kind = kind
            return response.ok(rows[1])
        end,
    }

    routes:add {
        method = "POST", path = "/api/v1/rules/{kind}/rollback", role = "analyst", tags = { "rules" },
        summary = "Make an earlier version active again",
        description = "version: the one to activate (0 = the shipped default); left out: the fallback " ..
            "(the version that was active before). Audited.",
        params = KIND_PARAM,
        body = {
            type = "object", additionalProperties = false,
            properties = { version = { type = "integer", minimum = 0 } },
        },
        responses = { [200] = { description = "Now active" }, [404] = "not_found" },
        handler = function(req)
            local kind, tenant = req.params.kind, req.tenant
            local wanted = (req.json or {}).version
            local result, err = db.tx(function()
                local rows, e = db.query([[SELECT active_version, fallback_version FROM rule_state
                    WHERE tenant_id = $1 AND kind = $2 FOR UPDATE]], tenant, kind)
                if not rows then error(e, 0) end
                local s = rows[1] or {}
                local current = present(s.active_version) and s.active_version or 0
                local target = wanted
                if target == nil then target = present(s.fallback_version) and s.fallback_version or 0 end
                if target ~= 0 then
                    rows, e = db.query("SELECT 1 FROM rule_versions WHERE tenant_id = $1 AND kind = $2 AND version = $3",
                        tenant, kind, target)
                    if not rows then error(e, 0) end
                    if not rows[1] then return problem.not_found(("No %s version %d."):format(kind, target)) end
                end
                local ok
                ok, e = db.query([[
                    INSERT INTO rule_state (tenant_id, kind, active_version, fallback_version) VALUES ($1, $2, $3, $4)
                    ON CONFLICT (tenant_id, kind) DO UPDATE SET active_version = EXCLUDED.active_version,
                        fallback_version = EXCLUDED.fallback_version, updated_at = now()]],
                    tenant, kind, target ~= 0 and target or json.null, current ~= 0 and current or json.null)
                if not ok then error(e, 0) end
                ok, e = audit.record(req, "rule_rolled_back", { kind = kind, version = target, previous_version = current })
                if not ok then error(e, 0) end
                return { kind = kind, version = target, default = target == 0, previous_version = current }
            end)
            if not result then return nil, err end
            if problem.is(result) then return result end
            rule_store.forget(tenant)
            return response.ok(result)
        end,
    }
end
