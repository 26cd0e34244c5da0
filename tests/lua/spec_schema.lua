-- Specs for lua/schema.lua: every keyword, error collection and field paths, UTF-8 lengths,
-- formats, parameter coercion and the load-time checks of declarations.
-- Runs with the default null/array conventions and restores the host's settings at the end.

local schema = require("schema")
local previous_settings = schema.configure(schema.defaults)
local null = schema.null

-- Registrations outlive a run of this file: the embedded VM may run it twice in one state.
local function component(name, s)
    return schema.component_schema(name) or schema.component(name, s)
end

local function errors_of(s, value, where)
    local ok, errors = schema.validate(s, value, where or "body")
    expect(ok).to_be(errors == nil)
    return errors or {}
end

-- "field code" for each error, in order: compact to compare.
local function summary(errors)
    local out = {}
    for i, e in ipairs(errors) do out[i] = e.field .. " " .. e.code end
    return out
end

local function expect_valid(s, value)
    local ok, errors = schema.validate(s, value, "body")
    expect(errors).to_be_nil()
    expect(ok).to_be(true)
end

local function expect_codes(s, value, expected)
    expect(summary(errors_of(s, value))).to_equal(expected)
end

describe("types", function()
    it("accepts each JSON type for its own declaration", function()
        expect_valid({ type = "string" }, "x")
        expect_valid({ type = "integer" }, 5)
        expect_valid({ type = "number" }, 5.5)
        expect_valid({ type = "boolean" }, false)
        expect_valid({ type = "null" }, null)
        expect_valid({ type = "object" }, { a = 1 })
        expect_valid({ type = "array" }, { 1, 2 })
    end)

    it("refuses a value of another type, naming the type expected and the value got", function()
        local errors = errors_of({ type = "string" }, 12)
        expect(errors).to_equal({ { field = "body", code = "invalid_type", message = "must be a string, got 12" } })
        expect(errors_of({ type = "boolean" }, "true")[1].message).to_be('must be a boolean, got "true"')
        expect(errors_of({ type = "object" }, { 1, 2 })[1].message).to_be("must be an object, got an array")
        expect(errors_of({ type = "array" }, { a = 1 })[1].message).to_be("must be an array, got an object")
        expect(errors_of({ type = "integer" }, null)[1].message).to_be("must be an integer, got null")
    end)

    it("treats a float with an integral value as an integer, and any integer as a number", function()
        expect_valid({ type = "integer" }, 5.0)
        expect_valid({ type = "integer" }, -3)
        expect_valid({ type = "number" }, 7)
        expect_codes({ type = "integer" }, 5.5, { "body invalid_type" })
        expect_codes({ type = "integer" }, "5", { "body invalid_type" })
    end)

    it("refuses infinities and NaN even without a declared type", function()
        expect_codes({ type = "number" }, math.huge, { "body invalid_type" })
        expect_codes({}, 0 / 0, { "body invalid_type" })
        expect(errors_of({ type = "number" }, -math.huge)[1].message).to_match("finite")
    end)

    it("accepts a list of types, which is how a field is made nullable", function()
        local s = { type = { "string", "null" }, maxLength = 3 }
        expect_valid(s, "abc")
        expect_valid(s, null)
        expect_codes(s, 4, { "body invalid_type" })
        expect(errors_of(s, 4)[1].message).to_be("must be a string or null of at most 3 characters, got 4")
        expect_codes(s, "abcd", { "body too_long" })
    end)

    it("lets an empty table be an object or an array, and a marked empty array be an array", function()
        expect_valid({ type = "array" }, {})
        expect_valid({ type = "object" }, {})
        expect_valid({ type = "array", maxItems = 0 }, schema.array({}))
        expect_codes({ type = "string" }, {}, { "body invalid_type" })
    end)

    it("classifies Lua values the way JSON sees them", function()
        expect(schema.kind_of(1)).to_be("integer")
        expect(schema.kind_of(1.0)).to_be("integer")
        expect(schema.kind_of(1.5)).to_be("number")
        expect(schema.kind_of({})).to_be("empty")
        expect(schema.kind_of({ 1, 2 })).to_be("array")
        expect(schema.kind_of({ [1] = "a", [3] = "c" })).to_be("object")
        expect(schema.kind_of({ 1, x = 2 })).to_be("object")
        expect(schema.kind_of(null)).to_be("null")
        expect(schema.kind_of(nil)).to_be("missing")
    end)

    it("refuses Lua values that have no JSON form", function()
        expect_codes({}, print, { "body invalid_type" })
    end)

    it("reports a missing value as required", function()
        expect(errors_of({ type = "object" }, nil)).to_equal({
            { field = "body", code = "required", message = "is required; expected an object" },
        })
    end)

    it("accepts anything when no type is declared", function()
        expect_valid({}, "x")
        expect_valid({}, { a = { 1, 2 } })
        expect_valid({}, null)
    end)
end)

describe("enum and const", function()
    it("accepts only the listed values and lists them in the message", function()
        local s = { type = "string", enum = { "bronze", "silver", "gold" } }
        expect_valid(s, "gold")
        expect(errors_of(s, "platinum")).to_equal({ {
            field = "body", code = "not_in_enum",
            message = 'must be one of "bronze", "silver", "gold", got "platinum"',
        } })
    end)

    it("compares numbers by value (1 equals 1.0) and tables by content", function()
        expect_valid({ enum = { 1, 2 } }, 1.0)
        expect_valid({ enum = { { 1, 2 }, { a = "b" } } }, { a = "b" })
        expect_codes({ enum = { { 1, 2 } } }, { 2, 1 }, { "body not_in_enum" })
    end)

    it("can list null", function()
        local s = { type = { "string", "null" }, enum = { "a", null } }
        expect_valid(s, null)
        expect_codes(s, "b", { "body not_in_enum" })
    end)

    it("checks const, including false", function()
        expect_valid({ const = false }, false)
        expect(errors_of({ const = "v1" }, "v2")).to_equal({ {
            field = "body", code = "not_const", message = 'must be exactly "v1", got "v2"',
        } })
        expect_codes({ const = false }, true, { "body not_const" })
    end)
end)

describe("numeric bounds", function()
    local limit = { type = "integer", minimum = 1, maximum = 500 }

    it("checks minimum and maximum inclusively", function()
        expect_valid(limit, 1)
        expect_valid(limit, 500)
        expect(errors_of(limit, 0)).to_equal({ {
            field = "body", code = "too_small", message = "must be an integer between 1 and 500, got 0",
        } })
        expect(errors_of(limit, 501)[1].code).to_be("too_large")
    end)

    it("checks exclusive bounds (OpenAPI 3.1: the bound is a number)", function()
        local s = { type = "number", exclusiveMinimum = 0, exclusiveMaximum = 1 }
        expect_valid(s, 0.5)
        expect_codes(s, 0, { "body too_small" })
        expect_codes(s, 1, { "body too_large" })
        expect(errors_of(s, 1)[1].message).to_be("must be a number greater than 0 and less than 1, got 1")
    end)

    it("describes one-sided bounds", function()
        expect(errors_of({ type = "number", minimum = 0.5 }, 0.25)[1].message)
            .to_be("must be a number of at least 0.5, got 0.25")
        expect(errors_of({ type = "integer", maximum = 10 }, 11)[1].message)
            .to_be("must be an integer of at most 10, got 11")
    end)
end)

describe("string length and pattern", function()
    it("counts UTF-8 characters, not bytes", function()
        local s = { type = "string", minLength = 2, maxLength = 3 }
        expect_valid(s, "日本語") -- 9 bytes, 3 characters
        expect_valid(s, "né")
        expect(errors_of(s, "日本語だ")).to_equal({ {
            field = "body", code = "too_long", message = "must be a string of 2 to 3 characters, got 4 characters",
        } })
        expect(errors_of(s, "é")[1].code).to_be("too_short")
    end)

    it("reports invalid UTF-8 as its own error, even without length limits", function()
        expect(errors_of({ type = "string" }, "ab\xff")).to_equal({ {
            field = "body", code = "invalid_utf8", message = "must be valid UTF-8 text",
        } })
        expect_codes({ type = "string", maxLength = 10 }, "\xed\xa0\x80", { "body invalid_utf8" }) -- a surrogate
        expect_codes({ type = "string" }, "\xc0\x80", { "body invalid_utf8" })                    -- overlong
    end)

    it("matches a Lua pattern, unanchored unless the pattern says so", function()
        local sku = { type = "string", pattern = "^%u%u%-%d+$" }
        expect_valid(sku, "AB-12")
        expect(errors_of(sku, "ab-12")).to_equal({ {
            field = "body", code = "pattern_mismatch", message = 'must match the Lua pattern ^%u%u%-%d+$, got "ab-12"',
        } })
        expect_valid({ type = "string", pattern = "%d" }, "abc1def")
    end)

    it("quotes long or odd values briefly in messages", function()
        local long = string.rep("x", 100)
        local message = errors_of({ type = "string", pattern = "^y" }, long)[1].message
        expect(#message).to_be_less_than(120)
        expect(message).to_contain('..."')
        expect(errors_of({ enum = { "a" } }, 'say "hi"\n')[1].message).to_contain('"say \\"hi\\"\\u000a"')
    end)
end)

describe("formats", function()
    local function valid(format, text)
        local ok = schema.validate({ type = "string", format = format }, text, "body")
        return ok
    end

    it("email", function()
        for _, text in ipairs({ "ana@example.com", "first.last+tag@sub.example.co.uk", "o'neil@example.org",
            "x@xn--bcher-kva.example" }) do
            expect(valid("email", text)).to_be(true)
        end
        for _, text in ipairs({ "", "plain", "@example.com", "ana@", "ana@example", "ana@@example.com",
            "a b@example.com", ".ana@example.com", "ana.@example.com", "a..b@example.com", "ana@-example.com",
            "ana@example-.com", "ana@exa_mple.com", "ana@10.0.0.1", "ana@example..com", "ana@example.com.",
            "jörg@example.com", string.rep("a", 65) .. "@example.com" }) do
            expect({ text, valid("email", text) }).to_equal({ text, false })
        end
    end)

    it("uuid", function()
        expect(valid("uuid", "123e4567-e89b-12d3-a456-426614174000")).to_be(true)
        expect(valid("uuid", "123E4567-E89B-12D3-A456-426614174000")).to_be(true)
        expect(valid("uuid", "123e4567e89b12d3a456426614174000")).to_be(false)
        expect(valid("uuid", "123e4567-e89b-12d3-a456-42661417400g")).to_be(false)
        expect(valid("uuid", "{123e4567-e89b-12d3-a456-426614174000}")).to_be(false)
    end)

    it("date: YYYY-MM-DD and a real calendar day", function()
        for _, text in ipairs({ "2024-01-31", "2024-02-29", "2000-02-29", "2023-12-31", "0001-01-01" }) do
            expect({ text, valid("date", text) }).to_equal({ text, true })
        end
        for _, text in ipairs({ "2023-02-29", "2023-02-30", "1900-02-29", "2023-04-31", "2023-13-01",
            "2023-00-10", "2023-01-00", "2023-1-01", "23-01-01", "2023-01-01T00:00:00Z", "2023/01/01", " 2023-01-01" }) do
            expect({ text, valid("date", text) }).to_equal({ text, false })
        end
    end)

    it("date: the message says what is expected", function()
        local errors = errors_of({ type = "string", format = "date" }, "2023-02-30")
        expect(errors).to_equal({ {
            field = "body", code = "invalid_format",
            message = 'must be a calendar date (YYYY-MM-DD), got "2023-02-30"',
        } })
    end)

    it("date-time: RFC 3339", function()
        for _, text in ipairs({ "2024-01-31T09:30:00Z", "2024-01-31t09:30:00z", "2024-01-31T09:30:00.123456Z",
            "2024-01-31T09:30:00+02:00", "2024-01-31T09:30:00-05:30", "2016-12-31T23:59:60Z",
            "2016-12-31T18:59:60-05:00" }) do
            expect({ text, valid("date-time", text) }).to_equal({ text, true })
        end
        for _, text in ipairs({ "2024-01-31T09:30:00", "2024-01-31 09:30:00Z", "2024-01-31T24:00:00Z",
            "2024-01-31T09:60:00Z", "2024-02-30T09:30:00Z", "2024-01-31T09:30:00+2:00", "2024-01-31T09:30:00+24:00",
            "2024-01-31T09:30Z", "2024-01-31T09:30:00.Z", "2024-01-31T12:00:60Z", "2024-01-31" }) do
            expect({ text, valid("date-time", text) }).to_equal({ text, false })
        end
    end)

    it("uri: absolute http(s) URLs only", function()
        for _, text in ipairs({ "https://example.com", "http://example.com:8080/a/b?c=d#e", "HTTPS://Example.com/",
            "https://user:pw@example.com/x", "http://[::1]:80/", "https://shop.example/p%20q" }) do
            expect({ text, valid("uri", text) }).to_equal({ text, true })
        end
        for _, text in ipairs({ "ftp://example.com", "mailto:a@example.com", "https://", "https:///path",
            "https://exa mple.com", "https://example.com/a b", "https://example.com:99999/", "https://example.com:8o/",
            "example.com", "https://example.com/\"x\"", "javascript:alert(1)" }) do
            expect({ text, valid("uri", text) }).to_equal({ text, false })
        end
    end)

    it("ignores the format of non-strings when no type is declared", function()
        expect_valid({ format = "email" }, 42)
    end)

    it("accepts application formats added with add_format", function()
        pcall(schema.add_format, "spec-sku", function(text) return text:find("^SKU%d+$") ~= nil end, "a SKU (SKU123)")
        local s = { type = "string", format = "spec-sku" }
        expect_valid(s, "SKU42")
        expect(errors_of(s, "42")[1].message).to_be('must be a SKU (SKU123), got "42"')
        expect(function() schema.add_format("email", function() return true end) end).to_error("already exists")
    end)
end)

local customer = {
    type = "object",
    required = { "email" },
    additionalProperties = false,
    properties = {
        email = { type = "string", format = "email", maxLength = 254 },
        name = { type = "string", minLength = 1, maxLength = 200 },
        attributes = {
            type = "object",
            properties = { tags = { type = "array", items = { type = "string", maxLength = 5 } } },
        },
        tags = { type = "array", items = { type = "string" }, maxItems = 3 },
    },
}

describe("objects", function()
    it("accepts a valid object", function()
        expect_valid(customer, { email = "ana@example.com", name = "Ana", attributes = { tags = { "vip" } }, tags = {} })
    end)

    it("reports a missing required field at its own path, saying what is expected", function()
        expect(errors_of(customer, { name = "Ana" })).to_equal({ {
            field = "body.email", code = "required",
            message = "is required; expected an email address of at most 254 characters",
        } })
    end)

    it("treats null as present: a required field set to null is a type error", function()
        expect_codes(customer, { email = null }, { "body.email invalid_type" })
    end)

    it("refuses unknown fields when additionalProperties is false, listing the allowed ones", function()
        expect(errors_of(customer, { email = "ana@example.com", nmae = "Ana" })).to_equal({ {
            field = "body.nmae", code = "unknown_field",
            message = "is not an allowed field; expected one of: attributes, email, name, tags",
        } })
    end)

    it("validates undeclared fields against additionalProperties when it is a schema", function()
        local s = { type = "object", additionalProperties = { type = "integer" }, properties = { name = { type = "string" } } }
        expect_valid(s, { name = "x", a = 1, b = 2 })
        expect_codes(s, { name = "x", b = "2", a = "1" }, { "body.a invalid_type", "body.b invalid_type" })
    end)

    it("allows undeclared fields by default", function()
        expect_valid({ type = "object", properties = { a = { type = "string" } } }, { a = "x", other = { 1 } })
    end)

    it("checks minProperties and maxProperties", function()
        local s = { type = "object", minProperties = 1, maxProperties = 2 }
        expect(errors_of(s, {})).to_equal({ {
            field = "body", code = "too_few_properties", message = "must have 1 to 2 fields, got 0",
        } })
        expect_codes(s, { a = 1, b = 2, c = 3 }, { "body too_many_properties" })
    end)

    it("requires fields that are not described in properties", function()
        expect_codes({ type = "object", required = { "id" } }, { x = 1 }, { "body.id required" })
    end)

    it("quotes keys that are not identifiers in field paths", function()
        local s = { type = "object", additionalProperties = false }
        expect_codes(s, { ["first name"] = "x" }, { 'body["first name"] unknown_field' })
    end)
end)

describe("arrays", function()
    it("names items by 0-based index, nested inside objects", function()
        local value = { email = "ana@example.com", attributes = { tags = { "ok", "fine", "toolong" } } }
        expect(summary(errors_of(customer, value))).to_equal({ "body.attributes.tags[2] too_long" })
    end)

    it("checks minItems and maxItems", function()
        local s = { type = "array", minItems = 1, maxItems = 2 }
        expect(errors_of(s, { 1, 2, 3 })).to_equal({ {
            field = "body", code = "too_many_items", message = "must have 1 to 2 items, got 3",
        } })
        expect_codes(s, {}, { "body too_few_items" })
    end)

    it("checks uniqueItems for scalars and for tables, pointing at the duplicate", function()
        local s = { type = "array", uniqueItems = true }
        expect_valid(s, { 1, 2, "1" })
        expect(errors_of(s, { "a", "b", "a" })).to_equal({ {
            field = "body[2]", code = "duplicate_items", message = "duplicates item [0]; items must be unique",
        } })
        expect_codes(s, { 1, 1.0 }, { "body[1] duplicate_items" })
        expect_codes(s, { { a = 1 }, { a = 2 }, { a = 1 } }, { "body[2] duplicate_items" })
    end)

    it("validates every item, not only the first bad one", function()
        expect_codes({ type = "array", items = { type = "integer" } }, { 1, "x", 3, "y" },
            { "body[1] invalid_type", "body[3] invalid_type" })
    end)
end)

describe("oneOf and anyOf", function()
    local id_or_email = { oneOf = { { type = "integer", minimum = 1 }, { type = "string", format = "email" } } }

    it("oneOf accepts a value matching exactly one branch", function()
        expect_valid(id_or_email, 7)
        expect_valid(id_or_email, "ana@example.com")
        expect(errors_of(id_or_email, "nope")).to_equal({ {
            field = "body", code = "one_of",
            message = "must match exactly one of: an integer of at least 1; an email address (it matched none)",
        } })
    end)

    it("oneOf refuses a value matching two branches", function()
        local s = { oneOf = { { type = "number" }, { type = "integer" } } }
        expect_valid(s, 1.5)
        expect(errors_of(s, 2)[1].message).to_contain("(it matched 2)")
    end)

    it("anyOf accepts a value matching at least one branch", function()
        local s = { anyOf = { { type = "string", maxLength = 2 }, { type = "string", pattern = "^x" } } }
        expect_valid(s, "xyzzy")
        expect_valid(s, "ab")
        expect_codes(s, "abc", { "body any_of" })
    end)

    it("does not leak the errors of the branches it tried", function()
        local s = { type = "object", properties = { v = id_or_email } }
        expect(summary(errors_of(s, { v = {} }))).to_equal({ "body.v one_of" })
    end)
end)

describe("error collection", function()
    it("reports every offending field at once, in a stable order", function()
        local value = { email = "not-an-email", name = "", tags = { "a", "b", 3, "d" }, extra = true, other = 1 }
        expect(summary(errors_of(customer, value))).to_equal({
            "body.email invalid_format",
            "body.name too_short",
            "body.tags too_many_items",
            "body.tags[2] invalid_type",
            "body.extra unknown_field",
            "body.other unknown_field",
        })
    end)

    it("gives each error a field, a code and a message, all strings", function()
        for _, e in ipairs(errors_of(customer, { tags = 5 })) do
            expect(type(e.field) .. type(e.code) .. type(e.message)).to_be("stringstringstring")
        end
    end)

    it("returns true and no error list when the value is valid", function()
        local ok, errors = schema.validate(customer, { email = "a@example.com" }, "body")
        expect({ ok, errors }).to_equal({ true })
    end)

    it("uses the location prefix given, or none", function()
        expect(summary(errors_of({ type = "object", required = { "a" } }, {}, "query"))).to_equal({ "query.a required" })
        local _, errors = schema.validate({ type = "object", required = { "a" } }, {})
        expect(errors[1].field).to_be("a")
    end)

    it("starts clean after a failed validation", function()
        errors_of(customer, { tags = { 1, 2 } })
        expect_valid(customer, { email = "a@example.com" })
        expect(summary(errors_of({ type = "string" }, 1))).to_equal({ "body invalid_type" })
    end)

    it("formats a list of errors on one line for logs and details", function()
        local errors = errors_of(customer, { name = "" })
        expect(schema.format_errors(errors)).to_be(
            "body.email: is required; expected an email address of at most 254 characters; " ..
            "body.name: must be a string of 1 to 200 characters, got 0 characters")
    end)

    it("validates a recursive schema through a shared table", function()
        local node = { type = "object", additionalProperties = false, properties = { name = { type = "string" } } }
        node.properties.children = { type = "array", items = node }
        expect_valid(node, { name = "root", children = { { name = "a", children = { { name = "b" } } } } })
        expect_codes(node, { children = { { children = { { name = 1 } } } } }, { "body.children[0].children[0].name invalid_type" })
    end)
end)

describe("coerce_params", function()
    local query = {
        limit = { type = "integer", minimum = 1, maximum = 500, default = 50 },
        q = { type = "string", maxLength = 200 },
        ratio = { type = "number" },
        active = { type = "boolean" },
        ids = { type = "array", items = { type = "integer", minimum = 1 }, maxItems = 3 },
        status = { type = "string", enum = { "open", "closed" }, required = true },
    }

    local function coerce(raw)
        return schema.coerce_params(query, raw, "query")
    end

    it("coerces strings to the declared types and applies defaults", function()
        local values, errors = coerce({ q = "ana", ratio = "0.25", active = "true", status = "open" })
        expect(errors).to_be_nil()
        expect(values).to_equal({ limit = 50, q = "ana", ratio = 0.25, active = true, status = "open" })
        expect(math.type(values.limit)).to_be("integer")
    end)

    it("reads booleans as true/false/1/0 only", function()
        expect(coerce({ active = "1", status = "open" }).active).to_be(true)
        expect(coerce({ active = "0", status = "open" }).active).to_be(false)
        expect(coerce({ active = "false", status = "open" }).active).to_be(false)
        local _, errors = coerce({ active = "yes", status = "open" })
        expect(errors).to_equal({ { field = "query.active", code = "invalid_type", message = 'must be a boolean, got "yes"' } })
    end)

    it("says what was expected and what came", function()
        local values, errors = coerce({ limit = "abc", status = "open" })
        expect(values).to_be_nil()
        expect(errors).to_equal({ {
            field = "query.limit", code = "invalid_type", message = 'must be an integer between 1 and 500, got "abc"',
        } })
        expect(schema.format_errors(errors)).to_be('query.limit: must be an integer between 1 and 500, got "abc"')
    end)

    it("validates coerced values against the rest of the schema", function()
        local _, errors = coerce({ limit = "0", status = "pending" })
        expect(summary(errors)).to_equal({ "query.limit too_small", "query.status not_in_enum" })
    end)

    it("refuses numbers in forms Lua would accept but HTTP clients should not send", function()
        for _, text in ipairs({ "0x10", " 5", "5 ", "1e2", "5.0", "", "99999999999999999999", "+" }) do
            local _, errors = coerce({ limit = text, status = "open" })
            expect({ text, errors and errors[1].code }).to_equal({ text, "invalid_type" })
        end
        expect(coerce({ limit = "+7", status = "open" }).limit).to_be(7)
        for _, text in ipairs({ "nan", "inf", "1e999", "0x1p4", "1.2.3", "." }) do
            local _, errors = coerce({ ratio = text, status = "open" })
            expect({ text, errors and errors[1].code }).to_equal({ text, "invalid_type" })
        end
        expect(coerce({ ratio = "-1.5e2", status = "open" }).ratio).to_be(-150.0)
    end)

    it("reports a missing required query parameter", function()
        local _, errors = coerce({})
        expect(errors).to_equal({ {
            field = "query.status", code = "required", message = 'is required; expected one of "open", "closed"',
        } })
    end)

    it("ignores parameters it does not declare", function()
        local values = coerce({ status = "open", utm_source = "mail" })
        expect(values.utm_source).to_be_nil()
    end)

    it("collects every parameter error at once", function()
        local _, errors = coerce({ limit = "x", ratio = "y", active = "z" })
        expect(summary(errors)).to_equal({
            "query.active invalid_type", "query.limit invalid_type", "query.ratio invalid_type", "query.status required",
        })
    end)

    it("reads arrays from repeated keys and from comma-separated values", function()
        expect(coerce({ ids = { "1", "2" }, status = "open" }).ids).to_equal({ 1, 2 })
        expect(coerce({ ids = "4,5", status = "open" }).ids).to_equal({ 4, 5 })
        expect(coerce({ ids = { "1,2", "3" }, status = "open" }).ids).to_equal({ 1, 2, 3 })
        expect(coerce({ ids = "", status = "open" }).ids).to_equal({})
    end)

    it("names the bad item of an array parameter and checks the array's own limits", function()
        local _, errors = coerce({ ids = "1,x,0", status = "open" })
        expect(summary(errors)).to_equal({ "query.ids[1] invalid_type", "query.ids[2] too_small" })
        _, errors = coerce({ ids = "1,2,3,4", status = "open" })
        expect(summary(errors)).to_equal({ "query.ids too_many_items" })
    end)

    it("refuses a scalar parameter given more than once", function()
        local _, errors = coerce({ limit = { "1", "2" }, status = "open" })
        expect(errors).to_equal({ { field = "query.limit", code = "repeated", message = "must be given once, got 2 values" } })
        expect(coerce({ limit = { "9" }, status = "open" }).limit).to_be(9)
    end)

    it("hands out a fresh copy of a table default", function()
        local params = { tags = { type = "array", items = { type = "string" }, default = { "a" } } }
        local first = schema.coerce_params(params, {}, "query")
        first.tags[1] = "changed"
        expect(schema.coerce_params(params, {}, "query").tags).to_equal({ "a" })
    end)

    it("requires every path parameter", function()
        local path = { id = { type = "integer", minimum = 1 } }
        expect(schema.coerce_params(path, { id = "42" }, "path")).to_equal({ id = 42 })
        local _, errors = schema.coerce_params(path, {}, "path")
        expect(summary(errors)).to_equal({ "path.id required" })
        _, errors = schema.coerce_params(path, { id = "0" }, "path")
        expect(errors[1].message).to_be("must be an integer of at least 1, got 0")
    end)

    it("prefers the most specific of several declared types", function()
        local params = { v = { type = { "string", "integer" } } }
        expect(schema.coerce_params(params, { v = "5" }, "query").v).to_be(5)
        expect(schema.coerce_params(params, { v = "five" }, "query").v).to_be("five")
    end)

    it("checks UTF-8 in decoded strings", function()
        local _, errors = coerce({ q = "\xff", status = "open" })
        expect(summary(errors)).to_equal({ "query.q invalid_utf8" })
    end)
end)

describe("schema.check", function()
    it("returns the schema when it is sound", function()
        local s = { type = "string" }
        expect(schema.check(s)).to_be(s)
        expect(schema.check(customer, "customer")).to_be(customer)
    end)

    it("catches an unknown keyword and suggests the right one", function()
        expect(function() schema.check({ type = "string", maxlength = 3 }, "POST /x body") end)
            .to_error('invalid schema at POST /x body: unknown keyword "maxlength" (did you mean "maxLength"?)')
        expect(function() schema.check({ type = "integer", minimun = 1 }) end).to_error('did you mean "minimum"')
        expect(function() schema.check({ type = "object", requird = { "a" } }) end).to_error('did you mean "required"')
    end)

    it("points at the nested schema at fault", function()
        expect(function()
            schema.check({ type = "object", properties = { tags = { type = "array", items = { type = "strng" } } } }, "body")
        end).to_error('invalid schema at body.properties.tags.items: unknown type "strng" (did you mean "string"?)')
    end)

    it("names the declaration's own line, not the schema module's", function()
        expect(function() schema.check({ typo = 1 }) end).to_error("spec_schema.lua:%d+: invalid schema")
    end)

    it("catches keywords of the wrong type", function()
        local cases = {
            { { type = "string", minLength = "3" }, "minLength must be a non-negative integer" },
            { { type = "string", maxLength = -1 }, "maxLength must be a non-negative integer" },
            { { type = "integer", maximum = "10" }, "maximum must be a number" },
            { { type = "string", pattern = 5 }, "pattern must be a string" },
            { { type = "object", required = "email" }, "required must be a list of property names" },
            { { type = "object", properties = { "email" } }, "properties must be keyed by name" },
            { { type = "object", additionalProperties = "no" }, "additionalProperties must be a boolean or a schema" },
            { { type = "array", uniqueItems = "yes" }, "uniqueItems must be a boolean" },
            { { type = "array", items = { { type = "string" } } }, "tuple form is not supported" },
            { { enum = {} }, "enum must be a non-empty list" },
            { { oneOf = { "string" } }, "a schema must be a table" },
            { { type = "string", description = 5 }, "description must be a string" },
            { { type = 5 }, "type must be a type name or a list of type names" },
            { { type = { "string", 5 } }, 'unknown type "5"' },
            { { "string" }, "unexpected list entry [1]" },
        }
        for _, case in ipairs(cases) do
            expect(function() schema.check(case[1]) end).to_error(case[2])
        end
    end)

    it("catches a required field that can never be present", function()
        expect(function()
            schema.check({ type = "object", additionalProperties = false, required = { "emial" },
                properties = { email = { type = "string" } } })
        end).to_error('required lists "emial", which is not in properties and additionalProperties is false (did you mean "email"?)')
    end)

    it("catches contradictions and misplaced keywords", function()
        expect(function() schema.check({ type = "integer", minimum = 10, maximum = 1 }) end)
            .to_error("minimum (10) is greater than maximum (1)")
        expect(function() schema.check({ type = "integer", maxLength = 3 }) end)
            .to_error("maxLength applies to strings, but type is integer")
        expect(function() schema.check({ type = "string", items = { type = "string" } }) end)
            .to_error("items applies to arrays")
        expect(function() schema.check({ type = "object", required = { "a", "a" } }) end)
            .to_error('required lists "a" twice')
    end)

    it("explains keywords from other dialects", function()
        expect(function() schema.check({ type = "string", nullable = true }) end).to_error('add "null" to type')
        expect(function() schema.check({ ["$ref"] = "#/components/schemas/X" }) end).to_error("schema.component")
        expect(function() schema.check({ type = "number", exclusiveMinimum = true }) end)
            .to_error("the bound itself")
        expect(function() schema.check({ type = "int" }) end).to_error('did you mean "integer"')
        expect(function() schema.check({ allOf = { {} } }) end).to_error("allOf is not supported")
    end)

    it("refuses required = true inside a body (it would silently do nothing)", function()
        expect(function()
            schema.check({ type = "object", properties = { email = { type = "string", required = true } } })
        end).to_error("only for path and query parameters")
    end)

    it("catches unknown formats and malformed Lua patterns", function()
        expect(function() schema.check({ type = "string", format = "emial" }) end)
            .to_error('unknown format "emial" (did you mean "email"?)')
        for _, pattern in ipairs({ "[a-", "%", "(%d", "%d)", "%b(", "%f%d", "(a)%2" }) do
            expect(function() schema.check({ type = "string", pattern = pattern }) end)
                .to_error("is not a valid Lua pattern")
        end
        expect(schema.check({ type = "string", pattern = "^[%]]+(%d)%1$" }).pattern).to_be("^[%]]+(%d)%1$")
    end)

    it("checks that defaults, examples and enum members fit the schema", function()
        expect(function() schema.check({ type = "integer", minimum = 1, default = 0 }) end)
            .to_error("default does not match the schema: must be an integer of at least 1, got 0")
        expect(function() schema.check({ type = "string", format = "email", example = "nope" }) end)
            .to_error("example does not match the schema")
        expect(function() schema.check({ type = "string", enum = { "a", 1 } }) end)
            .to_error("enum value 1 does not match the declared type")
        expect(function()
            schema.check({ type = "object", properties = { n = { type = "integer" } }, default = { n = "x" } })
        end).to_error("default does not match the schema: n must be an integer")
    end)

    it("reports every problem of a declaration at once", function()
        local ok, err = pcall(schema.check, { type = "object", properties = { a = { type = "strin" }, b = { maxLenght = 1 } } })
        expect(ok).to_be(false)
        expect(err).to_contain('schema.properties.a: unknown type "strin"')
        expect(err).to_contain('properties.b: unknown keyword "maxLenght" (did you mean "maxLength"?)')
    end)

    it("accepts documentation keywords and x- extensions", function()
        schema.check({ type = "string", description = "d", title = "t", example = "e", examples = { "f" },
            deprecated = true, readOnly = true, ["x-internal"] = { any = "thing" } })
    end)

    it("does not cache a declaration that failed", function()
        local s = { type = "strnig" }
        expect(function() schema.check(s) end).to_error("unknown type")
        expect(function() schema.validate(s, "x") end).to_error("unknown type")
    end)
end)

describe("schema.check_params", function()
    it("accepts scalar and array parameters, with required = true", function()
        local params = { limit = { type = "integer", default = 5 }, tags = { type = "array", items = { type = "string" } },
            q = { type = "string", required = true } }
        expect(schema.check_params(params, "query")).to_be(params)
    end)

    it("refuses parameters that cannot come from a URL", function()
        expect(function() schema.check_params({ filter = { type = "object" } }, "query") end)
            .to_error('invalid schema at query.filter: parameters cannot be of type "object"')
        expect(function() schema.check_params({ id = { minimum = 1 } }, "path") end)
            .to_error("a parameter must declare its type")
        expect(function() schema.check_params({ ids = { type = "array" } }, "query") end)
            .to_error("an array parameter must declare items")
        expect(function() schema.check_params({ limit = { type = "integer", mximum = 3 } }, "query") end)
            .to_error('did you mean "maximum"')
    end)
end)

describe("components", function()
    it("registers a schema under a name and finds it both ways", function()
        local s = component("SpecSchemaThing", { type = "object" })
        expect(schema.component_name(s)).to_be("SpecSchemaThing")
        expect(schema.component_schema("SpecSchemaThing")).to_be(s)
        expect(schema.component("SpecSchemaThing", s)).to_be(s) -- idempotent
    end)

    it("refuses a name taken by another schema, a second name, a bad name or a bad schema", function()
        local s = component("SpecSchemaOnce", { type = "string" })
        expect(function() schema.component("SpecSchemaOnce", { type = "string" }) end).to_error("already registered")
        expect(function() schema.component("SpecSchemaTwice", s) end).to_error("already registered as 'SpecSchemaOnce'")
        expect(function() schema.component("has space", { type = "string" }) end).to_error("name must match")
        expect(function() schema.component("SpecSchemaBad", { type = "strin" }) end).to_error("unknown type")
    end)
end)

describe("configure", function()
    it("uses the host's null, array test and array marker, and returns the previous settings", function()
        local host_null, host_mt = setmetatable({}, {}), {}
        local previous = schema.configure({
            null = host_null,
            is_array = function(t) return getmetatable(t) == host_mt end,
            mark_array = function(t) return setmetatable(t, host_mt) end,
        })
        local results = {
            schema.validate({ type = "null" }, host_null),
            schema.validate({ type = "array" }, setmetatable({ 1 }, host_mt)),
            (schema.validate({ type = "array" }, { 1 })), -- to this host an unmarked table is an object
        }
        local values = schema.coerce_params({ ids = { type = "array", items = { type = "integer" } } }, { ids = "" }, "query")
        local null_while_configured = schema.null
        schema.configure(previous) -- before expecting anything: a failure must not leak the settings
        expect(results).to_equal({ true, true, false })
        expect(getmetatable(values.ids)).to_be(host_mt)
        expect(null_while_configured).to_be(host_null)
        expect(schema.null).to_be(previous.null)
    end)

    it("marks the lists it builds from query strings as arrays", function()
        local values = schema.coerce_params({ ids = { type = "array", items = { type = "integer" } } }, { ids = "" }, "query")
        expect(getmetatable(values.ids)).to_be(schema.array_mt)
        expect(schema.kind_of(values.ids)).to_be("empty")
    end)

    it("refuses settings of the wrong kind", function()
        expect(function() schema.configure({ is_array = true }) end).to_error("is_array must be a function")
        expect(function() schema.configure("x") end).to_error("expected a table")
    end)
end)

describe("describe", function()
    it("phrases what a schema expects", function()
        expect(schema.describe({ type = "array", items = { type = "string" }, maxItems = 50 }))
            .to_be("an array of strings of at most 50 items")
        expect(schema.describe({ type = "string", format = "uuid" })).to_be("a UUID")
        expect(schema.describe({})).to_be("a value")
        expect(schema.describe({ type = "integer", minimum = 3, maximum = 3 })).to_be("an integer of exactly 3")
    end)
end)

schema.configure(previous_settings)
