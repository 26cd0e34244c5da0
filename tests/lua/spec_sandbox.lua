-- Specs for the `sandbox` binding (src/script/sandbox.c) inside the embedded VM: every escape a
-- tenant rule might try fails with an error the caller can report, and the host VM and the box
-- keep working afterwards.
local sandbox = require "sandbox"

local CAP = 4 * 1024 * 1024

-- A box holding module "m": a function of one input, written as the body of that function.
local function rule(body, limits)
    local box = sandbox.new(limits or { memory = CAP })
    local ok, err = box:load("m", "return function(input)\n" .. body .. "\nend", "@rules/m.lua")
    assert(ok, err and err.message)
    return box
end

local function fails(box, kind, input, seed)
    local result, err = box:call("m", nil, input, seed)
    expect(result).to_be_nil()
    expect(type(err)).to_be("table")
    expect(err.kind).to_be(kind)
    return err
end

-- The box still answers a plain call, and its memory is under its cap.
local function still_usable(box, cap)
    box:load("ok", "return { f = function(x) return { doubled = x.n * 2 } end }")
    local r, err = box:call("ok", "f", { n = 21 })
    expect(err).to_be_nil()
    expect(r).to_equal({ doubled = 42 })
    expect(box:stats().memory).to_be_less_than(cap or CAP)
end

describe("sandbox: data in and out", function()
    it("runs a rule on a deep copy and copies the result out", function()
        local box = sandbox.new()
        expect(box:load("offers", [[
            local M = {}
            M.names = { "champions", "at_risk" }
            function M.offer(p)
                p.mutated = true
                return { offer = { kind = "discount", discount_pct = p.spend > 100 and 15 or 5 },
                         n = 3, half = 0.5, tags = { "a", "b" }, flag = false }
            end
            return M
        ]], "@rules/offers.lua")).to_be(true)
        local input = { spend = 250, name = "x" }
        local r = box:call("offers", "offer", input)
        expect(r).to_equal({ offer = { kind = "discount", discount_pct = 15 }, n = 3, half = 0.5, tags = { "a", "b" },
                             flag = false })
        expect(math.type(r.n)).to_be("integer")
        expect(math.type(r.half)).to_be("float")
        expect(input.mutated).to_be_nil()
        expect(box:get("offers", "names")).to_equal({ "champions", "at_risk" })
        local v, err = box:get("nope", "names")
        expect(v).to_be_nil()
        expect(err.kind).to_be("type")
        local _, err2 = box:call("offers", "missing", {})
        expect(err2.kind).to_be("type")
        box:close()
    end)

    it("refuses values that cannot cross, naming the path", function()
        local box = rule([[
            if input.what == "fn" then return { offer = { discount_pct = print } } end
            if input.what == "cycle" then local t = {} t.self = t return { t = t } end
            if input.what == "deep" then local t = {} local r = t for i = 1, 40 do t.x = {} t = t.x end return r end
            if input.what == "large" then local t = {} for i = 1, 100001 do t[i] = i end return t end
            if input.what == "key" then return { [{}] = 1 } end
            return input
        ]])
        local err = fails(box, "copy", { what = "fn" })
        expect(err.message).to_be("result.offer.discount_pct: a function cannot leave a rule")
        expect(fails(box, "copy", { what = "cycle" }).message).to_match("^result%.t%.self: .*cycle")
        expect(fails(box, "copy", { what = "deep" }).message).to_contain("32 levels")
        expect(fails(box, "copy", { what = "large" }).message).to_contain("number of values")
        expect(fails(box, "copy", { what = "key" }).message).to_contain("a table used as a key")
        -- and into the box: no host function, coroutine or userdata ever reaches a rule
        expect(fails(box, "copy", { f = print }).message).to_be("input.f: a function cannot enter a rule")
        expect(fails(box, "copy", { list = { coroutine.create(print) } }).message).to_be(
            "input.list[1]: a coroutine cannot enter a rule")
        expect(fails(box, "copy", { io.stdout }).message).to_be("input[1]: a userdata cannot enter a rule")
        local cyc = {}
        cyc.me = cyc
        expect(fails(box, "copy", cyc).message).to_contain("cycle")
        still_usable(box)
    end)
end)

describe("sandbox: budgets", function()
    local loops = {
        plain = "while true do end",
        pcall = "local ok = pcall(function() while true do end end) return ok",
        xpcall = "return xpcall(function() while true do end end, function(e) return e end)",
        pcall_loop = "for i = 1, math.maxinteger do pcall(function() while true do end end) end",
        looping_handler = "return xpcall(error, function() while true do end end)",
        nested = "return pcall(pcall, pcall, function() while true do end end)",
        close = "local c <close> = setmetatable({}, { __close = function() while true do end end }) while true do end",
        handler_then_loop = "for i = 1, math.maxinteger do xpcall(function() while true do end end, function() return 1 end) end",
    }
    for name, body in pairs(loops) do
        it("kills an infinite loop (" .. name .. ")", function()
            local box = rule(body, { memory = CAP, instructions = 1000000 })
            local err = fails(box, "budget")
            expect(err.message).to_contain("instruction budget exceeded")
            expect(err.source).to_be("rules/m.lua")
            still_usable(box)
            expect(box:stats().failures).to_be(1)
        end)
    end

    it("stops a pattern explosion on the wall clock", function()
        local box = rule([[return string.rep("x", 100000):find(".-.-.-.-y")]],
            { memory = CAP, instructions = 1e15, wall_ms = 50 })
        local t0 = os.clock()
        local err = fails(box, "timeout")
        expect(os.clock() - t0).to_be_less_than(2)
        expect(err.message).to_contain("wall-clock budget exceeded")
        still_usable(box)
    end)

    it("stops a plain loop on the wall clock when instructions are plenty", function()
        local box = rule("local s = 0 while true do s = s + #tostring(s) end", { memory = CAP, instructions = 1e15, wall_ms = 30 })
        fails(box, "timeout")
        still_usable(box)
    end)

    it("turns deep recursion into an error", function()
        local box = rule("local function f(n) return 1 + f(n + 1) end return f(1)")
        local _, err = box:call("m", nil, {})
        expect(err.kind == "runtime" or err.kind == "memory").to_be(true)
        still_usable(box)
    end)

    local bombs = {
        rep = [[return string.rep("x", 1 << 30)]],
        doubling = [[local s = "x" while true do s = s .. s end]],
        table = [[local t = {} local i = 0 while true do i = i + 1 t[i] = { i } end]],
        pcall_rep = [[local ok = pcall(string.rep, "x", 1 << 30) return { caught = ok }]],
        pcall_table = [[local t = {}
            for round = 1, 3 do pcall(function() while true do t[#t + 1] = tostring(#t) end end) end
            return #t]],
    }
    for name, body in pairs(bombs) do
        it("refuses a memory bomb (" .. name .. ") and stays under its cap", function()
            local box = rule(body, { memory = CAP, instructions = 1e9, wall_ms = 5000 })
            local err = fails(box, "memory")
            expect(err.message).to_contain("memory")
            expect(box:stats().memory).to_be_less_than(CAP)
            still_usable(box)
        end)
    end

    it("counts instructions and calls", function()
        local box = rule("local s = 0 for i = 1, 100000 do s = s + i end return s")
        expect(box:call("m", nil, {})).to_be(5000050000)
        local s = box:stats()
        expect(s.calls).to_be(2) -- the load and the call
        expect(s.last_instructions > 100000).to_be(true)
        expect(s.peak >= s.memory).to_be(true)
    end)
end)

describe("sandbox: the allow-list", function()
    it("offers no way out", function()
        local box = rule([[
            local names = { "io", "require", "load", "loadstring", "loadfile", "dofile", "debug", "collectgarbage",
                            "coroutine", "rawset", "package", "module", "setfenv", "getfenv", "newproxy", "utf8.nothing" }
            local found = {}
            for _, n in ipairs(names) do if _ENV[n] ~= nil then found[#found + 1] = n end end
            for _, n in ipairs({ "execute", "getenv", "exit", "remove", "rename", "tmpname", "clock", "setlocale" }) do
                if os[n] ~= nil then found[#found + 1] = "os." .. n end
            end
            if string.dump ~= nil then found[#found + 1] = "string.dump" end
            if ("").dump ~= nil then found[#found + 1] = "(''):dump" end
            return found
        ]])
        expect(box:call("m", nil, {})).to_equal({})
    end)

    it("keeps what rules need", function()
        local box = rule([[
            return { s = ("Hello"):upper(), f = string.format("%05.1f", 3.14159), t = table.concat({ 1, 2 }, ","),
                     m = math.floor(2.5), u = utf8.char(233), y = type(os.time()), d = os.date("!%Y", 0),
                     v = _VERSION, sel = select("#", 1, 2, 3), n = tonumber("0x10"), p = print("dropped") }
        ]])
        expect(box:call("m", nil, {})).to_equal({ s = "HELLO", f = "003.1", t = "1,2", m = 2, u = "\u{e9}", y = "number",
                                                  d = "1970", v = _VERSION, sel = 3, n = 16 })
    end)

    local writes = {
        ["string.x = 1"] = "read-only table 'string'",
        ["math.pi = 3"] = "read-only table 'math'",
        ["table.insert = nil"] = "read-only table 'table'",
        ["os.time = nil"] = "read-only table 'os'",
        ["utf8.x = 1"] = "read-only table 'utf8'",
        ["_G.x = 1"] = "read-only table '_G'",
        ["_G.string.upper = nil"] = "read-only table 'string'",
        ["rawset(string, 'x', 1)"] = "rawset",
        ["setmetatable(string, {})"] = "protected metatable",
        ["setmetatable(_G, {})"] = "protected metatable",
        ["setmetatable(_ENV, {})"] = "protected metatable",
        ["setmetatable('', {})"] = "table expected",
        ["getmetatable('').__index.upper = nil"] = "index",
        ["setmetatable({}, { __gc = function() while true do end end })"] = "__gc",
        ["os.date(string.rep('%Y', 40))"] = "64",
    }
    for code, message in pairs(writes) do
        it("refuses " .. code, function()
            local box = rule(code)
            local err = fails(box, "runtime")
            expect(err.message).to_contain(message)
            expect(err.line).to_be(2)
            still_usable(box)
        end)
    end

    it("locks the metatables a rule can see", function()
        local box = rule([[return { getmetatable(""), getmetatable(string), getmetatable(_G), getmetatable(_ENV) }]])
        expect(box:call("m", nil, {})).to_equal({ false, false, false, false })
    end)

    it("keeps one rule's globals out of another's, and the library unchanged", function()
        local box = sandbox.new()
        expect(box:load("a", [[
            string = { upper = function() return "hijacked" end }
            leaked = "from a"
            counter = 0
            return function() counter = counter + 1 return { counter = counter, up = string.upper("x") } end
        ]])).to_be(true)
        expect(box:load("b", [[return function() return { leaked = leaked, up = ("x"):upper(),
            up2 = string.upper("y"), counter = counter } end]])).to_be(true)
        expect(box:call("a", nil, {})).to_equal({ counter = 1, up = "hijacked" })
        expect(box:call("a", nil, {})).to_equal({ counter = 2, up = "hijacked" })
        expect(box:call("b", nil, {})).to_equal({ up = "X", up2 = "Y" })
    end)

    it("makes math.random deterministic per seed", function()
        local box = rule([[
            local r = {}
            for i = 1, 5 do r[#r + 1] = math.random(1, 1000) end
            r[#r + 1] = math.random()
            r[#r + 1] = math.random(6)
            return r
        ]])
        local a1 = box:call("m", nil, {}, 42)
        local a2 = box:call("m", nil, {}, 42)
        local b = box:call("m", nil, {}, 43)
        local z = box:call("m", nil, {})
        expect(a1).to_equal(a2)
        expect(a1).never.to_equal(b)
        expect(z).to_equal(box:call("m", nil, {}, 0))
        for i = 1, 5 do expect(a1[i] >= 1 and a1[i] <= 1000).to_be(true) end
        expect(a1[6] >= 0 and a1[6] < 1).to_be(true)
    end)

    it("matches strings as Lua's own patterns do", function()
        local cases = {
            { "find", "hello world", "o w" }, { "find", "hello", "l+" }, { "find", "a.b", ".", 1, true },
            { "find", "hello", "" }, { "find", "hello", "xyz" }, { "find", "hello", "l", -2 },
            { "match", "key = value", "(%w+)%s*=%s*(%w+)" }, { "match", "  trim  ", "^%s*(.-)%s*$" },
            { "match", "2024-01-31", "(%d+)-(%d+)-(%d+)" }, { "match", "f(a(b)c)d", "%b()" },
            { "match", "THE (quick) fox", "%f[%a]%a+" }, { "match", "abcabc", "(abc)%1" },
            { "match", "hello", "()ll()" }, { "match", "[x]", "[]x[]+" }, { "match", "a-b", "[%a-]+" },
            { "match", "abc", "^b" }, { "match", "a$b", "a$b" }, { "match", "x^y", "x^y" },
            { "match", "hello", "[^aeiou]+" }, { "match", "aaa", "a-b?" }, { "match", "tel: 555-1234", "%d%d%d%-%d+" },
            { "gsub", "hello world", "o", "0" }, { "gsub", "hello world", "(%w+)", "<%1>" },
            { "gsub", "abc", "%w", "%0%0" }, { "gsub", "abc", "", "-" }, { "gsub", "hello", "l", "L", 1 },
            { "gsub", "$name is $age", "%$(%w+)", { name = "Ann", age = 30 } },
            { "gsub", "a,b,,c", "[^,]*", "x" }, { "gsub", "abc", "^a", "z" },
        }
        local box = rule([==[
            local out = {}
            for i, c in ipairs(input) do
                out[i] = { string[c[1]](table.unpack(c, 2, 6)) }
            end
            local words = {}
            for k, v in string.gmatch("a=1, b=2, c=3", "(%w+)=(%w+)") do words[#words + 1] = k .. v end
            for w in ("one two  three"):gmatch("%a+") do words[#words + 1] = w end
            for w in ("abc"):gmatch("") do words[#words + 1] = "[" .. w .. "]" end
            out.words = words
            out.fn = { ("hello world"):gsub("%w+", function(w) return w:upper() end) }
            return out
        ]==])
        local got = box:call("m", nil, cases)
        for i, c in ipairs(cases) do
            local want = { string[c[1]](table.unpack(c, 2, 6)) }
            expect(got[i]).to_equal(want)
        end
        expect(got.words).to_equal({ "a1", "b2", "c3", "one", "two", "three", "[]", "[]", "[]", "[]" })
        expect(got.fn).to_equal({ "HELLO WORLD", 2 })
        local bad = rule([[return ("x"):find("%")]])
        expect(fails(bad, "runtime").message).to_contain("malformed pattern")
    end)
end)

describe("sandbox: errors and loading", function()
    it("names the rule's file and line", function()
        local box = sandbox.new()
        box:load("seg", "local M = {}\nfunction M.segment(c)\n  local x = nil\n  return x.field\nend\nreturn M",
            "@rules/segments.lua")
        local _, err = box:call("seg", "segment", {})
        expect(err.kind).to_be("runtime")
        expect(err.source).to_be("rules/segments.lua")
        expect(err.line).to_be(4)
        expect(err.message).to_contain("rules/segments.lua:4:")
        box:load("e", "return function()\n\n  error('boom')\nend", "@tenant:segments v3")
        local _, err2 = box:call("e", nil, {})
        expect(err2.source).to_be("tenant:segments v3")
        expect(err2.line).to_be(3)
        expect(err2.message).to_be("tenant:segments v3:3: boom")
    end)

    it("reports a syntax error with its line", function()
        local box = sandbox.new()
        local ok, err = box:load("bad", "local M = {}\nfunction M.f()\n  return 1 +\nend\nreturn M", "@rules/bad.lua")
        expect(ok).to_be_nil()
        expect(err.kind).to_be("syntax")
        expect(err.source).to_be("rules/bad.lua")
        expect(err.line).to_be(4)
        local ok2, err2 = box:load("bad2", "return 1", "@rules/bad2.lua")
        expect(ok2).to_be_nil()
        expect(err2.kind).to_be("type")
        expect(err2.message).to_contain("must return a table or a function")
    end)

    it("refuses a binary chunk", function()
        local box = sandbox.new()
        local ok, err = box:load("bin", string.dump(function() return {} end))
        expect(ok).to_be_nil()
        expect(err.kind).to_be("syntax")
        expect(err.message).to_contain("binary")
    end)

    it("runs a loading chunk under the budget too", function()
        local box = sandbox.new{ instructions = 100000 }
        local ok, err = box:load("loop", "while true do end")
        expect(ok).to_be_nil()
        expect(err.kind).to_be("budget")
        expect(box:load("fine", "return {}")).to_be(true)
    end)

    it("closes once, and refuses use after close", function()
        local box = sandbox.new()
        box:close()
        box:close()
        expect(function() box:call("m", nil, {}) end).to_error("closed sandbox")
        expect(function() sandbox.new{ memory = -1 } end).to_error("memory must be a positive number")
        do
            local scoped <close> = sandbox.new()
            expect(scoped:load("x", "return {}")).to_be(true)
        end
    end)

    it("stays within its cap after all the abuse above, in one box", function()
        local box = sandbox.new{ memory = CAP, instructions = 2000000, wall_ms = 200 }
        local abuse = {
            "while true do end", "return string.rep('x', 1 << 30)", "local t = {} while true do t[#t + 1] = {} end",
            "return pcall(function() local s = 'x' while true do s = s .. s end end)",
            "local function f() return 1 + f() end return f()", "return string.rep('ab', 1e5):find('.-.-.-.-y')",
            "string.x = 1", "return getmetatable('').__index", "return function() end",
        }
        for i, src in ipairs(abuse) do
            box:load("abuse" .. i, "return function()\n" .. src .. "\nend")
            local r, err = box:call("abuse" .. i, nil, {})
            expect(r).to_be_nil()
            expect(type(err.kind)).to_be("string")
        end
        still_usable(box)
        expect(box:stats().failures >= #abuse).to_be(true)
    end)
end)
