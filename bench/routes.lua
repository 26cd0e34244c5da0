-- Routes used only by the HTTP benchmark (bench/http.sh loads them through PULSE_APP_EXTRA).
local db = require "db"
local response = require "response"
local problem = require "problem"

local rule_dryrun = require "rule_dryrun"
local rules = require "rules"

local SAMPLE = { id = 42, name = "Ada Lovelace", segment = "Champions", churn_risk = 0.07, active = true }

return function(routes)
    routes:add {
        method = "GET", path = "/api/bench/json", role = "public", hidden = true,
        summary = "Benchmark: a JSON answer without the database",
        handler = function() return response.ok(SAMPLE) end,
    }
    routes:add {
        method = "GET", path = "/api/bench/customers/{id}", role = "public", hidden = true,
        summary = "Benchmark: one primary-key query",
        params = { id = { type = "integer", minimum = 1 } },
        handler = function(req)
            local rows, err = db.query("SELECT id, name, email, created_at FROM bench_customers WHERE id = $1", req.params.id)
            if not rows then return nil, err end
            if not rows[1] then return problem.not_found("no customer " .. req.params.id) end
            return response.ok(rows[1])
        end,
    }
    routes:add {
        method = "GET", path = "/api/bench/dry-run/{tenant}", role = "public", hidden = true,
        summary = "Benchmark: a segments dry run over every customer of a tenant",
        params = { tenant = { type = "string", format = "uuid" } },
        handler = function(req)
            db.set_tenant(req.params.tenant)
            local source = rules.default_source("segments"):gsub('if fm >= 2.5 then return "At Risk" end', 'if fm >= 2 then return "At Risk" end')
            local result, err = rule_dryrun.run(req.params.tenant, "segments", source)
            if not result then return nil, err end
            return response.ok({ customers = result.customers, moved = result.moved, milliseconds = result.milliseconds })
        end,
    }
end
