-- Customers: the first tenant-owned resource (ingestion extends it later). Every row belongs to
-- the caller's organization: inserts take tenant_id from the verified identity (req.tenant),
-- never from the body, and another organization's ids answer 404 (Row-Level Security hides them,
-- and every query also names the tenant).
local customer_analytics = require "customer_analytics"
local db = require "db"
local json = require "json"
local problem = require "problem"
local response = require "response"
local schema = require "schema"

local Customer = schema.component("Customer", {
    type = "object",
    required = { "id", "external_id", "email", "name", "attributes", "created_at", "updated_at" },
    properties = {
        id = { type = "integer" },
        external_id = { type = { "string", "null" }, description = "The business's own id for the customer." },
        email = { type = { "string", "null" } },
        name = { type = { "string", "null" } },
        attributes = { type = "object", description = "Free-form attributes (a JSON object)." },
        churned = { type = { "boolean", "null" }, description = "The churn label from an attribute file, when it had one." },
        analytics = { type = { "object", "null" }, description = "GET /customers/{id} only: features, segment, churn, CLV, behaviour and cluster from the last computation." },
        created_at = { type = "string", format = "date-time" },
        updated_at = { type = "string", format = "date-time" },
    },
})

local CustomerList = response.list_schema("CustomerList", Customer)

local Email = { type = { "string", "null" }, format = "email", maxLength = 254 }
local Name = { type = { "string", "null" }, maxLength = 200 }
local Attributes = { type = "object", maxProperties = 200, description = "Free-form attributes (a JSON object); {} when left out." }

local CustomerCreate = schema.component("CustomerCreate", {
    type = "object", required = { "external_id" }, additionalProperties = false,
    properties = {
        external_id = { type = "string", minLength = 1, maxLength = 200 },
        email = Email,
        name = Name,
        attributes = Attributes,
    },
})

local CustomerReplace = schema.component("CustomerReplace", {
    type = "object", additionalProperties = false,
    description = "Replaces email, name and attributes (a field left out becomes null, or {} for attributes). " ..
        "The external_id cannot change.",
    properties = { email = Email, name = Name, attributes = Attributes },
})


local CUSTOMER_ID = { id = { type = "integer", minimum = 1, description = "The customer's id." } }

local COLUMNS = "id, external_id, email, name, attributes, churned, created_at, updated_at"

local function opt(v)
    if v == nil then return json.null end
    return v
end

local function attributes(v)
    if v == nil or next(v) == nil then return "{}" end
    return v
end

-- Sort orders: whitelisted SQL, never text from the request; id breaks ties so pages are stable.
local SORTS = {
    id = "id", ["-id"] = "id DESC",
    created_at = "created_at, id", ["-created_at"] = "created_at DESC, id DESC",
    name = "name NULLS LAST, id", ["-name"] = "name DESC NULLS LAST, id DESC",
    external_id = "external_id NULLS LAST, id", ["-external_id"] = "external_id DESC NULLS LAST, id DESC",
}
local SORT_VALUES = {}
for k in pairs(SORTS) do SORT_VALUES[#SORT_VALUES + 1] = k end
table.sort(SORT_VALUES)

-- LIKE wildcards in a search prefix are literal characters.
local function like_prefix(s)
    return (s:gsub("[\\%%_]", "\\%0")) .. "%"
end

-- -> the WHERE clause and its parameter values ($1 is always the tenant).
local function customer_filters(tenant, q)
    local clauses, args = { "tenant_id = $1" }, { tenant }
    local function add(sql, value)
        args[#args + 1] = value
        clauses[#clauses + 1] = (sql:gsub("%$", "$" .. #args))
    end
    if q.q then
        add("(lower(name) LIKE lower($) OR lower(email) LIKE lower($) OR lower(external_id) LIKE lower($))", like_prefix(q.q))
    end
    if q.email then add("lower(email) = lower($)", q.email) end
    if q.external_id then add("external_id = $", q.external_id) end
    if q.churned ~= nil then add("churned = $", q.churned) end
    if q.created_after then add("created_at >= $::timestamptz", q.created_after) end
    if q.created_before then add("created_at < $::timestamptz", q.created_before) end
    return table.concat(clauses, " AND "), args
end

return function(routes)
    routes:add {
        method = "POST", path = "/api/v1/customers", role = "analyst", tags = { "customers" },
        summary = "Create a customer",
        body = CustomerCreate,
        responses = {
            [201] = { description = "The customer", schema = Customer },
            [409] = "conflict",
        },
        handler = function(req)
            local b = req.json
            local rows, err = db.query(
                "INSERT INTO customers (tenant_id, external_id, email, name, attributes) VALUES ($1, $2, $3, $4, $5::jsonb) " ..
                "RETURNING " .. COLUMNS,
                req.tenant, b.external_id, opt(b.email), opt(b.name), attributes(b.attributes))
            if not rows then
                if err.sqlstate == "23505" then
                    return problem.conflict("duplicate_external_id",
                        "A customer with external_id '" .. b.external_id .. "' already exists.")
                end
                return nil, err
            end
            return response.created(rows[1])
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/customers", role = "viewer", tags = { "customers" },
        summary = "List customers, filtered and sorted",
        description = "Filters combine with AND. `q` matches the start of the name, e-mail or external id "
            .. "(case-insensitive). `sort` is a column, with a leading '-' for descending.",
        query = response.page {
            q = { type = "string", minLength = 1, maxLength = 200, description = "Search: name, e-mail or external id starting with this." },
            email = { type = "string", maxLength = 254, description = "Exact e-mail address." },
            external_id = { type = "string", maxLength = 200, description = "Exact external id." },
            churned = { type = "boolean", description = "Only customers with this churn label." },
            created_after = { type = "string", format = "date-time", description = "Created at or after (RFC 3339)." },
            created_before = { type = "string", format = "date-time", description = "Created before (RFC 3339)." },
            sort = { type = "string", enum = SORT_VALUES, default = "id", description = "Order of the list." },
        },
        responses = { [200] = { description = "A page of customers", schema = CustomerList } },
        handler = function(req)
            local q = req.query
            local limit, offset = q.limit or 50, q.offset or 0
            local where, args = customer_filters(req.tenant, q)
            local order = SORTS[q.sort or "id"]
            local n = #args
            args[n + 1], args[n + 2] = limit, offset
            local rows, err = db.query(("SELECT %s FROM customers WHERE %s ORDER BY %s LIMIT $%d OFFSET $%d")
                :format(COLUMNS, where, order, n + 1, n + 2), table.unpack(args, 1, n + 2))
            if not rows then return nil, err end
            local c
            c, err = db.query("SELECT count(*) AS n FROM customers WHERE " .. where, table.unpack(args, 1, n))
            if not c then return nil, err end
            return response.list(rows, c[1].n, limit, offset)
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/customers/{id}", role = "viewer", tags = { "customers" },
        summary = "Read a customer, with their features, segment, behaviour and cluster",
        description = "`analytics` is null until a segmentation has run (POST " ..
            "/api/v1/segmentation/organizations/{org_id}/segment).",
        params = CUSTOMER_ID,
        responses = { [200] = { description = "The customer", schema = Customer }, [404] = "not_found" },
        handler = function(req)
            local rows, err = db.query("SELECT " .. COLUMNS .. " FROM customers WHERE tenant_id = $1 AND id = $2",
                req.tenant, req.params.id)
            if not rows then return nil, err end
            if not rows[1] then return problem.not_found("No customer " .. req.params.id .. ".") end
            local analytics
            analytics, err = customer_analytics.view(req.tenant, req.params.id)
            if not analytics then return nil, err end
            rows[1].analytics = analytics
            return response.ok(rows[1])
        end,
    }

    routes:add {
        method = "PUT", path = "/api/v1/customers/{id}", role = "analyst", tags = { "customers" },
        summary = "Replace a customer's email, name and attributes",
        params = CUSTOMER_ID,
        body = CustomerReplace,
        responses = { [200] = { description = "The customer", schema = Customer }, [404] = "not_found" },
        handler = function(req)
            local b = req.json
            local rows, err = db.query(
                "UPDATE customers SET email = $3, name = $4, attributes = $5::jsonb, updated_at = now() " ..
                "WHERE tenant_id = $1 AND id = $2 RETURNING " .. COLUMNS,
                req.tenant, req.params.id, opt(b.email), opt(b.name), attributes(b.attributes))
            if not rows then return nil, err end
            if not rows[1] then return problem.not_found("No customer " .. req.params.id .. ".") end
            return response.ok(rows[1])
        end,
    }

    routes:add {
        method = "DELETE", path = "/api/v1/customers/{id}", role = "analyst", tags = { "customers" },
        summary = "Delete a customer",
        params = CUSTOMER_ID,
        responses = { [204] = { description = "Deleted" }, [404] = "not_found" },
        handler = function(req)
            local rows, err = db.query("DELETE FROM customers WHERE tenant_id = $1 AND id = $2 RETURNING id",
                req.tenant, req.params.id)
            if not rows then return nil, err end
            if not rows[1] then return problem.not_found("No customer " .. req.params.id .. ".") end
            return response.no_content()
        end,
    }
end
