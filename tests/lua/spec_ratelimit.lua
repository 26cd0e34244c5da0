-- Specs for the `ratelimit` binding (src/script/ratelimit.c) inside the embedded VM: the
-- process-wide limiter on the monotonic clock, as login, register and API-key limits use it.
-- Rates are slow (per hour) so that the clock moving during a spec cannot change an answer.
local ratelimit = require "ratelimit"

-- Buckets are process-wide: give every case its own name.
local serial = 0
local function fresh(name)
    serial = serial + 1
    return string.format("spec_%s_%d", name, serial)
end

describe("ratelimit.take", function()
    it("allows the burst, then refuses with a whole Retry-After", function()
        local name = fresh("login_ip")
        for _ = 1, 3 do
            expect(ratelimit.take(name, "203.0.113.9", 3, 3600, 3)).to_be(true)
        end
        local ok, retry = ratelimit.take(name, "203.0.113.9", 3, 3600, 3)
        expect(ok).to_be(false)
        expect(math.type(retry)).to_be("integer")
        -- one unit every 1200 s, rounded up
        expect(retry).to_be(1200)
        -- refusals do not push the wait further out
        local _, again = ratelimit.take(name, "203.0.113.9", 3, 3600, 3)
        expect(again).to_be(1200)
    end)

    it("returns exactly one value when allowed", function()
        expect(select("#", ratelimit.take(fresh("n"), "k", 1, 60))).to_be(1)
    end)

    it("defaults the burst to the rate", function()
        local name = fresh("register_ip")
        for _ = 1, 5 do
            expect(ratelimit.take(name, "198.51.100.7", 5, 3600)).to_be(true)
        end
        expect(ratelimit.take(name, "198.51.100.7", 5, 3600)).to_be(false)
        -- below one per period, the burst is one
        local slow = fresh("slow")
        expect(ratelimit.take(slow, "k", 0.5, 3600)).to_be(true)
        local ok, retry = ratelimit.take(slow, "k", 0.5, 3600)
        expect(ok).to_be(false)
        expect(retry).to_be(7200)
    end)

    it("rounds a sub-second wait up to one second", function()
        local name = fresh("api")
        expect(ratelimit.take(name, "key-1", 2, 1, 1)).to_be(true)
        local ok, retry = ratelimit.take(name, "key-1", 2, 1, 1)
        expect(ok).to_be(false)
        expect(retry).to_be(1)
    end)

    it("keeps names and keys apart", function()
        local a, b = fresh("login_ip"), fresh("login_account")
        expect(ratelimit.take(a, "x", 1, 3600, 1)).to_be(true)
        expect(ratelimit.take(a, "x", 1, 3600, 1)).to_be(false)
        expect(ratelimit.take(a, "y", 1, 3600, 1)).to_be(true)
        expect(ratelimit.take(b, "x", 1, 3600, 1)).to_be(true)
        -- the key may hold any bytes, NUL included, without meeting another (name, key)
        expect(ratelimit.take(a, "x\0y", 1, 3600, 1)).to_be(true)
        expect(ratelimit.take(a, "", 1, 3600, 1)).to_be(true)
        expect(ratelimit.take(a, "", 1, 3600, 1)).to_be(false)
    end)

    it("accepts long keys (stored as a digest)", function()
        local name = fresh("api_key")
        local long = string.rep("k", 100000)
        expect(ratelimit.take(name, long, 1, 3600, 1)).to_be(true)
        expect(ratelimit.take(name, long, 1, 3600, 1)).to_be(false)
        expect(ratelimit.take(name, long:sub(1, -2) .. "j", 1, 3600, 1)).to_be(true)
    end)

    it("raises on misuse", function()
        local function take(...)
            local args = table.pack(...)
            return function() return ratelimit.take(table.unpack(args, 1, args.n)) end
        end
        expect(take(nil, "k", 1, 60, 1)).to_error("bad argument #1")
        expect(take(42, "k", 1, 60, 1)).to_error("string expected")
        expect(take("", "k", 1, 60, 1)).to_error("bad argument #1")
        expect(take("a\0b", "k", 1, 60, 1)).to_error("bad argument #1")
        expect(take("n", nil, 1, 60, 1)).to_error("bad argument #2")
        expect(take("n", 7, 1, 60, 1)).to_error("bad argument #2")
        expect(take("n", "k", 0, 60, 1)).to_error("rate must be > 0")
        expect(take("n", "k", -1, 60, 1)).to_error("bad argument #3")
        expect(take("n", "k", 0 / 0, 60, 1)).to_error("bad argument #3")
        expect(take("n", "k", math.huge, 60, 1)).to_error("bad argument #3")
        expect(take("n", "k", "many", 60, 1)).to_error("bad argument #3")
        expect(take("n", "k", 1, 0, 1)).to_error("per_seconds must be > 0")
        expect(take("n", "k", 1, -5, 1)).to_error("bad argument #4")
        expect(take("n", "k", 1, nil, 1)).to_error("bad argument #4")
        expect(take("n", "k", 1, 60, 0.5)).to_error("burst must be >= 1")
        expect(take("n", "k", 1, 60, 0 / 0)).to_error("bad argument #5")
        expect(take("n", "k", 1e-300, 1e300, 1)).to_error("bad argument #3")
    end)
end)
