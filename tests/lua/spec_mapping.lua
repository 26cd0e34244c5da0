-- Specs for industries/*.lua (loaded and validated by lua/industries.lua) and lua/mapping.lua:
-- the suggested kind and mapping for each header layout users upload, and the checks on a mapping
-- the user gives instead. No ingest binding needed: column descriptions are built here.
local industries = require "industries"
local mapping = require "mapping"

-- headers + types -> headers, columns (as ingest.preview describes them)
local function cols(spec)
    local headers, columns = {}, {}
    for i, c in ipairs(spec) do
        headers[i] = c[1]
        columns[i] = { index = i, name = c[1], type = c[2] or "text", looks_boolean = c[3] }
    end
    return headers, columns
end

describe("industries", function()
    it("loads and validates every industry file", function()
        local all = industries.load_all()
        for _, name in ipairs { "ecommerce", "telecom", "banking" } do
            expect(all[name].name).to_be(name)
            expect(all[name].kinds.customers).to_be_truthy()
        end
        expect(all.ecommerce.kinds.transactions.fields.amount.required).to_be(true)
        expect(all.telecom.kinds.events.fields.event_type.required).to_be(true)
        expect(all.banking.kinds.events.fields.event_date.type).to_be("date")
    end)

    it("declares the derived amount and cancellations of the retail export", function()
        local t = industries.get("ecommerce").kinds.transactions
        expect(t.derived.amount.op).to_be("multiply")
        expect(t.derived.amount.from).to_equal({ "quantity", "unit_price" })
        expect(t.cancellation).to_equal({ field = "invoice_no", prefix = "C" })
    end)

    it("normalizes headers ignoring case, spaces, underscores, hyphens and dots", function()
        expect(industries.normalize("Customer ID")).to_be("customerid")
        expect(industries.normalize("customer_id")).to_be("customerid")
        expect(industries.normalize(" CustomerID ")).to_be("customerid")
        expect(industries.normalize("E-mail")).to_be("email")
    end)

    it("names the file and the field of a bad declaration", function()
        local ok, err = industries.validate({ name = "x", kinds = { things = { fields = {
            id = { type = "identifier", required = true } } } } }, "industries/x.lua")
        expect(ok).to_be_nil()
        expect(err).to_match("^industries/x%.lua: ")
        expect(err).to_match("kinds%.things%.fields%.id%.type")
        _, err = industries.validate({ name = "x", kinds = { things = {
            fields = { a = { type = "id", required = true, aliases = { "Key" } }, b = { type = "text", aliases = { "key" } } },
            derived = { a = { from = { "zz" }, op = "multiply" } },
            cancellation = { field = "nope", prefix = "C" },
            colour = "red",
        } } }, "x.lua")
        expect(err).to_match("is also an alias of")
        expect(err).to_match("kinds%.things%.derived%.a%.from%[1%]: 'zz' is not a field")
        expect(err).to_match("kinds%.things%.cancellation%.field")
        expect(err).to_match("kinds%.things: unknown field 'colour'")
        _, err = industries.validate({ name = "x", kinds = { things = { fields = { a = { type = "id" } } } } }, "x.lua")
        expect(err).to_match("at least one field must be required")
    end)

    it("loads a file as data: no require, io or os", function()
        local path = os.tmpname()
        local f = assert(io.open(path, "w"))
        f:write('local db = require "db"\nreturn { name = "x", kinds = {} }\n')
        f:close()
        local decl, err = industries.load_file(path)
        os.remove(path)
        expect(decl).to_be_nil()
        expect(err).to_match("require")
    end)
end)

describe("mapping.suggest", function()
    it("maps Pulse's own transaction format", function()
        local h, c = cols { { "CustomerID", "text" }, { "TransactionDate", "date" }, { "TransactionAmount", "decimal" },
            { "ProductCategory", "text" }, { "Quantity", "integer" } }
        local s = mapping.suggest("ecommerce", h, c)
        expect(s.kind).to_be("transactions")
        expect(s.score).to_be(1)
        expect(s.mapping).to_equal({ customer_id = "CustomerID", transaction_date = "TransactionDate",
            amount = "TransactionAmount", product_category = "ProductCategory", quantity = "Quantity" })
        expect(s.unmapped_required).to_equal({})
        expect(s.unused_columns).to_equal({})
        expect(s.alternatives[1].kind).to_be("customers")
        expect(s.alternatives[1].score).to_be_less_than(s.score)
    end)

    it("maps the classic retail export, deriving the amount and marking cancellations", function()
        local h, c = cols { { "InvoiceNo", "text" }, { "StockCode", "text" }, { "Description", "text" },
            { "Quantity", "integer" }, { "InvoiceDate", "datetime" }, { "UnitPrice", "decimal" },
            { "CustomerID", "integer" }, { "Country", "text" } }
        local s = mapping.suggest("ecommerce", h, c)
        expect(s.kind).to_be("transactions")
        expect(s.mapping.customer_id).to_be("CustomerID")
        expect(s.mapping.transaction_date).to_be("InvoiceDate")
        expect(s.mapping.quantity).to_be("Quantity")
        expect(s.mapping.unit_price).to_be("UnitPrice")
        expect(s.mapping.invoice_no).to_be("InvoiceNo")
        expect(s.mapping.amount).to_be_nil()
        expect(s.unmapped_required).to_equal({})
        expect(s.derived.amount).to_equal({ from = { "quantity", "unit_price" }, op = "multiply" })
        expect(s.cancellation).to_equal({ field = "invoice_no", column = "InvoiceNo", prefix = "C" })
        expect(s.unused_columns).to_equal({})
    end)

    it("maps customer_id,invoice_date,invoice_id,amount,product,category", function()
        local h, c = cols { { "customer_id", "integer" }, { "invoice_date", "date" }, { "invoice_id", "text" },
            { "amount", "decimal" }, { "product", "text" }, { "category", "text" } }
        local s = mapping.suggest("ecommerce", h, c)
        expect(s.kind).to_be("transactions")
        expect(s.mapping).to_equal({ customer_id = "customer_id", transaction_date = "invoice_date",
            invoice_no = "invoice_id", amount = "amount", product = "product", product_category = "category" })
        -- and without the optional columns
        h, c = cols { { "customer_id", "integer" }, { "invoice_date", "date" }, { "invoice_id", "text" }, { "amount", "decimal" } }
        expect(mapping.suggest("ecommerce", h, c).unmapped_required).to_equal({})
    end)

    it("maps the cdnow layout, with its header names or by position without a header", function()
        local h, c = cols { { "customer_id", "integer" }, { "date", "date" }, { "number_of_cds", "integer" },
            { "dollar_value", "decimal" } }
        local s = mapping.suggest("ecommerce", h, c)
        expect(s.kind).to_be("transactions")
        expect(s.mapping).to_equal({ customer_id = "customer_id", transaction_date = "date",
            quantity = "number_of_cds", amount = "dollar_value" })
        h, c = cols { { "column_1", "integer" }, { "column_2", "date" }, { "column_3", "integer" }, { "column_4", "decimal" } }
        s = mapping.suggest("ecommerce", h, c, { header = false })
        expect(s.kind).to_be("transactions")
        expect(s.layout).to_be("cdnow")
        expect(s.mapping).to_equal({ customer_id = "column_1", transaction_date = "column_2",
            quantity = "column_3", amount = "column_4" })
        expect(s.matched_by.amount).to_be("position")
    end)

    it("maps telecom and banking events", function()
        local h, c = cols { { "CustomerID", "text" }, { "EventDate", "date" }, { "EventType", "text" }, { "RevenueImpact", "decimal" } }
        for _, industry in ipairs { "telecom", "banking" } do
            local s = mapping.suggest(industry, h, c)
            expect(s.kind).to_be("events")
            expect(s.mapping).to_equal({ customer_id = "CustomerID", event_date = "EventDate",
                event_type = "EventType", revenue_impact = "RevenueImpact" })
        end
        h, c = cols { { "account_id", "text" }, { "timestamp", "datetime" }, { "type", "text" }, { "amount", "decimal" } }
        local s = mapping.suggest("banking", h, c)
        expect(s.kind).to_be("events")
        expect(s.unmapped_required).to_equal({})
    end)

    it("recognizes an attribute file with a churn label (the Telco layout)", function()
        local h, c = cols { { "customerID", "text" }, { "gender", "text" }, { "SeniorCitizen", "integer", true },
            { "tenure", "integer" }, { "Contract", "text" }, { "MonthlyCharges", "decimal" },
            { "TotalCharges", "decimal" }, { "Churn", "boolean", true } }
        for _, industry in ipairs { "telecom", "ecommerce", "banking" } do
            local s = mapping.suggest(industry, h, c)
            expect(s.kind).to_be("customers")
            expect(s.mapping.customer_id).to_be("customerID")
            expect(s.mapping.churned).to_be("Churn")
            expect(s.label).to_equal({ field = "churned", column = "Churn", looks_boolean = true })
            expect(s.attributes).to_equal({ "gender", "SeniorCitizen", "tenure", "Contract", "MonthlyCharges", "TotalCharges" })
            expect(s.unused_columns).to_equal({})
        end
    end)

    it("uses types as a tie-breaker and fills a required date from the only date column", function()
        -- two columns named like the date: the one holding dates wins
        local h, c = cols { { "CustomerID", "text" }, { "Date", "text" }, { "Order Date", "date" }, { "Amount", "decimal" } }
        local s = mapping.suggest("ecommerce", h, c)
        expect(s.mapping.transaction_date).to_be("Order Date")
        -- no header names the date, one column holds dates
        h, c = cols { { "CustomerID", "text" }, { "day", "date" }, { "Amount", "decimal" } }
        s = mapping.suggest("ecommerce", h, c)
        expect(s.kind).to_be("transactions")
        expect(s.mapping.transaction_date).to_be("day")
        expect(s.matched_by.transaction_date).to_be("type")
    end)

    it("reports unmapped required fields and unused columns", function()
        local h, c = cols { { "CustomerID", "text" }, { "when", "text" }, { "foo", "decimal" } }
        local s = mapping.suggest("ecommerce", h, c, { kind = "transactions" })
        expect(s.kind).to_be("transactions")
        expect(s.unmapped_required).to_equal({ "amount", "transaction_date" })
        expect(s.unused_columns).to_equal({ "when", "foo" })
        expect(s.alternatives).to_equal({})
        expect(mapping.suggest("ecommerce", h, c, { kind = "nope" })).to_be_nil()
    end)
end)

describe("mapping.validate", function()
    local headers = { "InvoiceNo", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID" }

    it("accepts a complete mapping, derived fields included", function()
        expect(mapping.validate("ecommerce", "transactions", { customer_id = "CustomerID", transaction_date = "InvoiceDate",
            quantity = "Quantity", unit_price = "UnitPrice" }, headers)).to_be(true)
    end)

    it("names every field that does not fit", function()
        local ok, errors = mapping.validate("ecommerce", "transactions", { customer_id = "CustomerID",
            transaction_date = "Nope", colour = "InvoiceNo", quantity = 3 }, headers)
        expect(ok).to_be_nil()
        local by = {}
        for _, e in ipairs(errors) do by[e.field] = e.code end
        expect(by["mapping.transaction_date"]).to_be("unknown_column")
        expect(by["mapping.colour"]).to_be("unknown_field")
        expect(by["mapping.quantity"]).to_be("type")
        expect(by["mapping.amount"]).to_be("required")
    end)

    it("refuses one column for two fields, and unknown kinds", function()
        local _, errors = mapping.validate("ecommerce", "transactions", { customer_id = "CustomerID", transaction_date = "InvoiceDate",
            amount = "UnitPrice", unit_price = "UnitPrice" }, headers)
        expect(#errors).to_be(1)
        expect(errors[1].code).to_be("duplicate_column")
        _, errors = mapping.validate("telecom", "transactions", {}, headers)
        expect(errors[1].field).to_be("kind")
        expect(errors[1].message).to_match("customers, events")
        _, errors = mapping.validate("banking", "events", "x", headers)
        expect(errors[1].field).to_be("mapping")
    end)
end)
