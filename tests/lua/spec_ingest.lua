-- Specs for the `ingest` binding (src/script/ingest.c) inside the embedded VM: the import
-- preview over CSV bytes (dialect, column types, first rows, errors) and multipart/form-data
-- splitting, as POST /api/v1/imports/preview uses them.
local ingest = require "ingest"
local json = require "json"

describe("ingest.preview", function()
    it("previews a comma CSV with a header", function()
        local p = assert(ingest.preview("CustomerID,Name,Amount,Active\n1,Ann,12.50,yes\n2,Bob,7,no\n3,Cy,1.25,yes\n"))
        expect(p.format).to_be("csv")
        expect(p.dialect.sep).to_be(",")
        expect(p.dialect.quote).to_be('"')
        expect(p.dialect.header).to_be(true)
        expect(p.dialect.decimal_comma).to_be(false)
        expect(p.dialect.bom).to_be(false)
        expect(p.dialect.crlf).to_be(false)
        expect(p.dialect.ambiguous).to_be(false)
        expect(#p.columns).to_be(4)
        expect(p.columns[1].index).to_be(1)
        expect(p.columns[1].name).to_be("CustomerID")
        expect(p.columns[1].type).to_be("integer")
        expect(p.columns[2].type).to_be("text")
        expect(p.columns[3].type).to_be("decimal")
        expect(p.columns[4].type).to_be("boolean")
        expect(p.columns[1].values).to_be(3)
        expect(p.columns[1].nulls).to_be(0)
        expect(p.rows).to_equal({ { "1", "Ann", "12.50", "yes" }, { "2", "Bob", "7", "no" }, { "3", "Cy", "1.25", "yes" } })
        expect(p.rows_sampled).to_be(3)
        expect(p.errors).to_equal({})
        -- empty lists encode as []
        expect(json.encode(p.errors)).to_be("[]")
        expect(json.encode(p.rows[1])).to_be('["1","Ann","12.50","yes"]')
    end)

    it("reads a ';' CSV with decimal commas", function()
        local p = assert(ingest.preview("Produkt;Preis;Menge\nA;1.234,50;3\nB;12,75;1\nC;0,99;10\n"))
        expect(p.dialect.sep).to_be(";")
        expect(p.dialect.decimal_comma).to_be(true)
        expect(p.columns[2].name).to_be("Preis")
        expect(p.columns[2].type).to_be("decimal")
        expect(p.columns[3].type).to_be("integer")
        expect(p.rows[1][2]).to_be("1.234,50")
    end)

    it("reads cdnow-like whitespace rows without a header", function()
        local data = table.concat({
            "00001 19970101  1   11.77",
            "00002 19970112  1   12.00",
            "00002 19970112  5   77.00",
            "00003 19970102  2   20.76",
            "00003 19970330  2   20.76",
            "00003 19970402  2   19.54",
        }, "\n") .. "\n"
        local p = assert(ingest.preview(data))
        expect(p.dialect.sep).to_be("whitespace")
        expect(p.dialect.header).to_be(false)
        expect(#p.columns).to_be(4)
        expect(p.columns[1].name).to_be("column_1")
        expect(p.columns[1].type).to_be("integer")
        expect(p.columns[1].leading_zeros).to_be(6)
        expect(p.columns[2].type).to_be("date")
        expect(p.columns[2].date_format).to_be("YYYYMMDD")
        expect(p.columns[4].type).to_be("decimal")
        expect(p.rows[1]).to_equal({ "00001", "19970101", "1", "11.77" })
        expect(p.rows_sampled).to_be(6)
    end)

    it("reports an ambiguous DD/MM column with its alternative", function()
        local p = assert(ingest.preview("id,day\n1,03/04/2024\n2,05/06/2024\n3,11/12/2023\n"))
        local c = p.columns[2]
        expect(c.type).to_be("date")
        expect(c.ambiguous).to_be(true)
        expect(c.date_format).to_be("DD/MM/YYYY")
        expect(c.alternatives).to_equal({ "MM/DD/YYYY" })
        expect(c.reason).to_be_a("string")
        -- settled by the data when a day is over 12
        p = assert(ingest.preview("id,day\n1,03/04/2024\n2,25/06/2024\n"))
        expect(p.columns[2].ambiguous).to_be(false)
        expect(p.columns[2].date_format).to_be("DD/MM/YYYY")
        expect(p.columns[2].alternatives).to_be_nil()
    end)

    it("detects a file without a header", function()
        local p = assert(ingest.preview("1,2.5,2024-01-02\n2,3.5,2024-01-03\n3,4,2024-01-04\n"))
        expect(p.dialect.header).to_be(false)
        expect(p.columns[3].name).to_be("column_3")
        expect(p.columns[3].type).to_be("date")
        expect(#p.rows).to_be(3)
    end)

    it("returns empty_file for an empty or blank file", function()
        local p, err = ingest.preview("")
        expect(p).to_be_nil()
        expect(err.code).to_be("empty_file")
        expect(err.message).to_be_a("string")
        p, err = ingest.preview("\n  \r\n")
        expect(err.code).to_be("empty_file")
    end)

    it("refuses binary and legacy files as not_tabular", function()
        local _, err = ingest.preview("abc\0def\n")
        expect(err.code).to_be("not_tabular")
        _, err = ingest.preview("\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1 old xls")
        expect(err.code).to_be("not_tabular")
        _, err = ingest.preview("PK\3\4 not really a zip")
        expect(err.code).to_be("not_tabular")
    end)

    it("lets options override the separator and the header", function()
        local data = "a;b,c\n1;2,3\n4;5,6\n"
        local p = assert(ingest.preview(data, { sep = ",", header = false }))
        expect(p.dialect.sep).to_be(",")
        expect(p.dialect.header).to_be(false)
        expect(p.dialect.confidence).to_be(1.0)
        expect(p.rows[1]).to_equal({ "a;b", "c" })
        expect(p.rows_sampled).to_be(3)
        p = assert(ingest.preview(data, { sep = ";" }))
        expect(p.dialect.sep).to_be(";")
        expect(p.dialect.header).to_be(true)
        expect(p.columns[2].name).to_be("b,c")
        p = assert(ingest.preview("x|y\n1|2\n", { sep = "|", header = true, decimal_comma = true }))
        expect(p.dialect.decimal_comma).to_be(true)
    end)

    it("limits the preview rows but types every row", function()
        local lines = { "n,v" }
        for i = 1, 50 do lines[#lines + 1] = i .. "," .. (i == 50 and "oops" or tostring(i)) end
        local p = assert(ingest.preview(table.concat(lines, "\n"), { max_rows = 5 }))
        expect(#p.rows).to_be(5)
        expect(p.rows_sampled).to_be(50)
        expect(p.columns[2].type).to_be("text")
    end)

    it("lists rows with a different field count", function()
        local p = assert(ingest.preview("a,b,c\n1,2,3\n4,5\n6,7,8\n9,10,11,12\n"))
        expect(#p.errors).to_be(2)
        expect(p.errors[1].row).to_be(3)
        expect(p.errors[1].message).to_match("2 fields")
        expect(p.errors[2].row).to_be(5)
    end)

    it("shows bad UTF-8 as Latin-1 and reports it", function()
        local p = assert(ingest.preview("name,city\nJos\xE9,K\xF6ln\nAnn,Paris\n"))
        expect(p.rows[1]).to_equal({ "José", "Köln" })
        expect(p.errors[1].row).to_be(2)
        expect(json.encode(p.rows)).to_be_a("string")
    end)

    it("refuses bad options and raises on misuse", function()
        local _, err = ingest.preview("a\n1\n", { max_rows = 0 })
        expect(err.code).to_be("bad_option")
        _, err = ingest.preview("a\n1\n", { max_rows = 1001 })
        expect(err.code).to_be("bad_option")
        _, err = ingest.preview("a\n1\n", { sep = "x" })
        expect(err.code).to_be("bad_option")
        _, err = ingest.preview("a\n1\n", { header = "yes" })
        expect(err.code).to_be("bad_option")
        expect(function() ingest.preview(nil) end).to_error("bad argument #1")
        expect(function() ingest.preview("a", 5) end).to_error("bad argument #2")
    end)
end)

describe("ingest.multipart", function()
    local binary = "PK\3\4\0\1\2\255\r\n--not-the-boundary\r\n\0end"
    local body = table.concat({
        "preamble to ignore",
        "--XyZ123",
        'Content-Disposition: form-data; name="sheet"',
        "",
        "Sales 2024",
        "--XyZ123",
        'Content-Disposition: form-data; name="upload"; filename="C:\\\\Users\\\\me\\\\data.xlsx"',
        "Content-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "",
        binary,
        "--XyZ123--",
        "epilogue",
    }, "\r\n")

    it("splits fields and files, binary bytes intact", function()
        local mp = assert(ingest.multipart(body, "multipart/form-data; boundary=XyZ123"))
        expect(mp.fields).to_equal({ sheet = "Sales 2024" })
        expect(#mp.files).to_be(1)
        local f = mp.files[1]
        expect(f.field).to_be("upload")
        expect(f.filename).to_be("data.xlsx")
        expect(f.content_type).to_be("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        expect(f.data).to_be(binary)
        -- a quoted boundary, and the files list encodes as [] when there is none
        local only = "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--\r\n"
        mp = assert(ingest.multipart(only, 'multipart/form-data; charset=utf-8; boundary="b"'))
        expect(mp.fields.x).to_be("1")
        expect(json.encode(mp.files)).to_be("[]")
    end)

    it("decodes filename* and defaults a file's content type", function()
        local b = "--q\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.csv\"; filename*=UTF-8''na%C3%AFve.csv\r\n\r\n"
            .. "a,b\r\n--q--"
        local mp = assert(ingest.multipart(b, "multipart/form-data; boundary=q"))
        expect(mp.files[1].filename).to_be("naïve.csv")
        expect(mp.files[1].content_type).to_be("application/octet-stream")
        expect(mp.files[1].data).to_be("a,b")
    end)

    it("refuses malformed bodies with bad_multipart", function()
        local function code(b, ct)
            local mp, err = ingest.multipart(b, ct)
            expect(mp).to_be_nil()
            return err.code, err.message
        end
        expect(code(body, "multipart/form-data")).to_be("bad_multipart")       -- missing boundary
        expect(code(body, "application/json")).to_be("bad_multipart")
        expect(code(body, nil)).to_be("bad_multipart")
        local _, msg = code(body:gsub("%-%-XyZ123%-%-.*$", ""), "multipart/form-data; boundary=XyZ123")
        expect(msg).to_match("no closing")
        local long = "--b\r\nContent-Disposition: form-data; name=\"" .. string.rep("x", 2000) .. "\"\r\n\r\n1\r\n--b--"
        _, msg = code(long, "multipart/form-data; boundary=b")
        expect(msg).to_match("longer than")
        local parts = {}
        for i = 1, 101 do parts[#parts + 1] = "--b\r\nContent-Disposition: form-data; name=\"f" .. i .. "\"\r\n\r\nv" end
        _, msg = code(table.concat(parts, "\r\n") .. "\r\n--b--", "multipart/form-data; boundary=b")
        expect(msg).to_match("more than 100 parts")
        expect(function() ingest.multipart(nil, "x") end).to_error("bad argument #1")
    end)
end)
