-- Specs for lua/limits.lua: the key a client address is rate-limited by.
local limits = require "limits"

describe("address keys", function()
    it("keeps an IPv4 address as it is", function()
        expect(limits.address_key("203.0.113.9")).to_be("203.0.113.9")
    end)

    it("maps an IPv4-mapped IPv6 address to its IPv4 address", function()
        expect(limits.address_key("::ffff:203.0.113.9")).to_be("203.0.113.9")
    end)

    it("puts every address of an IPv6 /64 in one bucket", function()
        local a = limits.address_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd")
        local b = limits.address_key("2001:db8:1:2::1")
        local c = limits.address_key("2001:0db8:0001:0002:ffff::")
        expect(a).to_be("2001:db8:1:2::/64")
        expect(b).to_be(a)
        expect(c).to_be(a)
        expect(limits.address_key("2001:db8:1:3::1")).never.to_be(a)
    end)

    it("expands a leading ::", function()
        expect(limits.address_key("::1")).to_be("0:0:0:0::/64")
    end)

    it("has a key for a missing address", function()
        expect(limits.address_key(nil)).to_be("unknown")
        expect(limits.address_key("")).to_be("unknown")
    end)
end)
