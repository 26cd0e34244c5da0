-- Specs for the `import` binding (src/script/import.c): import.check_plan, the check of the plan
-- table the Lua side builds for an upload (and stores as jsonb) before the loader runs it.
local import = require "import"
local json = require "json"

local function tx_plan()
    return {
        kind = "transactions", format = "csv",
        csv = { sep = ",", quote = '"', header = true, decimal_comma = false },
        fields = {
            customer_id = { column = 0 },
            transaction_date = { column = 1, date_format = "YYYY-MM-DD" },
            amount = { column = 2 },
            quantity = { column = 3 },
            invoice_no = { column = 4 },
        },
        cancellation = { field = "invoice_no", prefix = "C" },
        max_error_rate = 0.01,
    }
end

local function refused(plan, pattern)
    local ok, err = import.check_plan(plan)
    expect(ok).to_be_nil()
    expect(err).to_be_a("string")
    expect(err).to_match(pattern)
end

describe("import.check_plan", function()
    it("accepts a complete transactions plan", function()
        expect(import.check_plan(tx_plan())).to_be(true)
    end)

    it("accepts the plan after a JSON round trip (the jsonb column)", function()
        local plan = json.decode(json.encode(tx_plan()))
        expect(import.check_plan(plan)).to_be(true)
    end)

    it("accepts a derived amount", function()
        local plan = tx_plan()
        plan.fields.amount = nil
        plan.fields.unit_price = { column = 5 }
        plan.derived = { amount = { from = { "quantity", "unit_price" }, op = "multiply" } }
        expect(import.check_plan(plan)).to_be(true)
    end)

    it("accepts a CDNOW-like whitespace plan and an xlsx plan", function()
        expect(import.check_plan({
            kind = "transactions", format = "csv", csv = { sep = "whitespace", quote = "", header = false },
            fields = { customer_id = { column = 0 }, transaction_date = { column = 1, date_format = "YYYYMMDD" },
                quantity = { column = 2 }, amount = { column = 3 } },
        })).to_be(true)
        expect(import.check_plan({
            kind = "events", format = "xlsx", sheet = "Events", header = true,
            fields = { customer_id = { column = 0 }, event_date = { column = 1, date_format = "DD/MM/YYYY" },
                event_type = { column = 2 }, revenue_impact = { column = 3 } },
        })).to_be(true)
    end)

    it("accepts a customers plan with typed attributes", function()
        expect(import.check_plan({
            kind = "customers", format = "csv", csv = { sep = ",", header = true },
            fields = { customer_id = { column = 0 }, churned = { column = 20 } },
            attributes = { { column = 5, name = "tenure", type = "integer" }, { column = 18, name = "MonthlyCharges", type = "decimal" },
                { column = 3, name = "Partner", type = "boolean" }, { column = 1, name = "gender" },
                { column = 6, name = "since", type = "date", date_format = "DD/MM/YYYY" } },
        })).to_be(true)
    end)

    it("names unknown fields for the kind", function()
        local plan = tx_plan()
        plan.fields.colour = { column = 7 }
        refused(plan, "unknown field for transactions: colour")
        plan = tx_plan()
        plan.kind = "events"
        refused(plan, "unknown fields for events: ")
    end)

    it("refuses missing required fields", function()
        local plan = tx_plan()
        plan.fields.transaction_date = nil
        refused(plan, "required field transaction_date is not mapped")
        plan = tx_plan()
        plan.fields.amount = nil
        refused(plan, "required field amount is not mapped")
    end)

    it("refuses bad kinds, formats and separators", function()
        local plan = tx_plan()
        plan.kind = "orders"
        refused(plan, "kind must be transactions, events or customers")
        plan = tx_plan()
        plan.kind = nil
        refused(plan, "kind is required")
        plan = tx_plan()
        plan.format = "parquet"
        refused(plan, "format must be csv or xlsx")
        plan = tx_plan()
        plan.csv.sep = "::"
        refused(plan, "csv.sep must be one of")
        plan = tx_plan()
        plan.csv.quote = "'"
        refused(plan, "csv.quote must be")
        plan = tx_plan()
        plan.csv.header = "yes"
        refused(plan, "csv.header must be a boolean")
    end)

    it("refuses bad columns and date formats", function()
        local plan = tx_plan()
        plan.fields.amount = { column = -1 }
        refused(plan, "fields.amount.column must be an integer")
        plan = tx_plan()
        plan.fields.amount = { column = 1.5 }
        refused(plan, "fields.amount.column must be an integer")
        plan = tx_plan()
        plan.fields.amount = 2
        refused(plan, "fields.amount must be a table")
        plan = tx_plan()
        plan.fields.transaction_date.date_format = "DD-MON-YYYY"
        refused(plan, "unknown date format \"DD%-MON%-YYYY\"")
        plan = tx_plan()
        plan.fields.transaction_date.date_format = nil
        refused(plan, "field transaction_date needs a date_format")
    end)

    it("refuses unsupported derivations, cancellations and thresholds", function()
        local plan = tx_plan()
        plan.derived = { amount = { from = { "quantity", "discount" }, op = "multiply" } }
        refused(plan, "derived: only amount")
        plan = tx_plan()
        plan.derived = { amount = { from = { "quantity", "unit_price" }, op = "multiply" } }
        refused(plan, "amount is both mapped and derived")
        plan = tx_plan()
        plan.cancellation = { field = "country", prefix = "C" }
        refused(plan, "cancellation field country is not a mapped text field")
        plan = tx_plan()
        plan.max_error_rate = 2
        refused(plan, "max_error_rate must be between 0 and 1")
        plan = tx_plan()
        plan.max_error_rate = "1%"
        refused(plan, "max_error_rate must be a number")
    end)

    it("refuses attributes outside customers and on mapped columns", function()
        local plan = tx_plan()
        plan.attributes = { { column = 9, name = "x", type = "text" } }
        refused(plan, "attributes are only for customers")
        refused({ kind = "customers", fields = { customer_id = { column = 0 } },
            attributes = { { column = 0, name = "id2" } } }, "attribute id2: column 0 is already mapped to customer_id")
        refused({ kind = "customers", fields = { customer_id = { column = 0 } },
            attributes = { { column = 1, name = "x", type = "money" } } }, "attributes%[1%]%.type must be")
        refused({ kind = "customers", fields = { customer_id = { column = 0 } },
            attributes = { { column = 1 } } }, "attributes%[1%]%.name is required")
    end)

    it("raises on a non-table argument", function()
        expect(function() import.check_plan("plan") end).to_error()
    end)
end)
