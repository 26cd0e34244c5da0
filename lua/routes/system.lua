-- Operational routes: liveness, readiness (database reachable, migrations current), the
-- OpenAPI document generated from the route declarations, and the API reference page.
local db = require "db"
local json = require "json"
local pulse = require "pulse"
local openapi = require "openapi"
local response = require "response"

local HealthSchema = {
    type = "object",
    properties = { status = { type = "string", enum = { "ok" } }, version = { type = "string" } },
}
local ReadySchema = {
    type = "object",
    properties = {
        status = { type = "string", enum = { "ready", "unavailable" } },
        checks = { type = "object", description = "database and migrations: ok or what is wrong" },
    },
}

-- The migrations this binary expects, read once per VM (a reload re-reads them).
local expected_migrations, scan_error = pulse.migrations()

local function migrations_check()
    if not expected_migrations then return "cannot read migrations/: " .. tostring(scan_error) end
    local rows, err = db.query("SELECT version, checksum FROM schema_migrations ORDER BY version")
    if not rows then
        if err.sqlstate == "42P01" then return "not applied: run 'pulse migrate'" end
        return nil, err
    end
    local applied = {}
    for _, row in ipairs(rows) do applied[row.version] = row.checksum end
    for _, m in ipairs(expected_migrations) do
        if applied[m.version] == nil then return "pending: " .. m.name .. " (run 'pulse migrate')" end
        if applied[m.version] ~= m.checksum then return "changed after being applied: " .. m.name end
    end
    return "ok"
end

local DOCS_PAGE = [[<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pulse API reference</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });</script>
</body></html>
]]

return function(routes, app)
    routes:add {
        method = "GET", path = "/health", role = "public", tags = { "system" },
        summary = "Liveness: the process answers",
        responses = { [200] = { description = "Alive", schema = HealthSchema } },
        handler = function()
            return response.ok { status = "ok", version = pulse.version }
        end,
    }

    routes:add {
        method = "GET", path = "/ready", role = "public", tags = { "system" },
        summary = "Readiness: the database answers and the migrations are current",
        responses = {
            [200] = { description = "Ready", schema = ReadySchema },
            [503] = { description = "Not ready; checks say why", schema = ReadySchema },
        },
        handler = function()
            local checks = { database = "ok" }
            local status = "ready"
            local migrations, err = migrations_check()
            if migrations == nil then
                checks.database = "unavailable: " .. tostring(err.message)
                checks.migrations = "unknown"
                status = "unavailable"
            else
                checks.migrations = migrations
                if migrations ~= "ok" then status = "unavailable" end
            end
            return response.json(status == "ready" and 200 or 503, { status = status, checks = checks },
                status == "ready" and nil or { ["retry-after"] = "2" })
        end,
    }

    local document -- encoded once per VM: the routes cannot change without a reload
    routes:add {
        method = "GET", path = "/openapi.json", role = "public", tags = { "system" },
        summary = "The OpenAPI 3.1 description of this API",
        responses = { [200] = { description = "OpenAPI document" } },
        handler = function()
            document = document or json.encode(openapi.document(routes.list, {
                title = "Pulse API", version = pulse.version,
                description = "Customer retention: data, segments, churn and value models, campaigns, widget.",
            }), { sort_keys = true })
            return response.text(200, document, "application/json")
        end,
    }

    routes:add {
        method = "GET", path = "/docs", role = "public", tags = { "system" },
        summary = "Browsable API reference (Swagger UI, served locally)",
        responses = { [200] = { description = "HTML page" } },
        handler = function()
            return response.text(200, DOCS_PAGE, "text/html; charset=utf-8")
        end,
    }
end
