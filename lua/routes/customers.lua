-- Customers: the first tenant-owned resource (ingestion extends it later). Every row belongs to
-- the caller's organization: inserts take tenant_id from the verified identity (req.tenant),
-- never from the body, and another organization's ids answer 404 (Row-Level Security hides them,
-- and every query also names the tenant).
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

local COLUMNS = "id, external_id, email, name, attributes, created_at, updated_at"

local function opt(v)
    if v == nil then return json.null end
    return v
end

local function attributes(v)
    if v == nil or next(v) == nil then return "{}" end
    return v
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
        summary = "List customers",
        query = response.page(),
        responses = { [200] = { description = "A page of customers, by id", schema = CustomerList } },
        handler = function(req)
            local limit, offset = req.query.limit or 50, req.query.offset or 0
            local rows, err = db.query("SELECT " .. COLUMNS ..
                " FROM customers WHERE tenant_id = $1 ORDER BY id LIMIT $2 OFFSET $3", req.tenant, limit, offset)
            if not rows then return nil, err end
            local c
            c, err = db.query("SELECT count(*) AS n FROM customers WHERE tenant_id = $1", req.tenant)
            if not c then return nil, err end
            return response.list(rows, c[1].n, limit, offset)
        end,
    }

    routes:add {
        method = "GET", path = "/api/v1/customers/{id}", role = "viewer", tags = { "customers" },
        summary = "Read a customer",
        params = CUSTOMER_ID,
        responses = { [200] = { description = "The customer", schema = Customer }, [404] = "not_found" },
        handler = function(req)
            local rows, err = db.query("SELECT " .. COLUMNS .. " FROM customers WHERE tenant_id = $1 AND id = $2",
                req.tenant, req.params.id)
            if not rows then return nil, err end
            if not rows[1] then return problem.not_found("No customer " .. req.params.id .. ".") end
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
