-- Specs for the `auth` binding (src/script/auth.c) inside the embedded VM: access tokens signed
-- and verified with the process key ring (a random development key here), the rejections a
-- client can provoke, the password policy with the embedded blocklist, and hashing, which runs
-- synchronously in the spec runner (on the worker pool in the server).
local auth = require "auth"

local TENANT = "0b7e3f1c-2a4d-4c8e-9f10-1234567890ab"

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local function b64url(s)
    local out = {}
    for i = 1, #s, 3 do
        local a, b, c = s:byte(i, i + 2)
        local n = (a << 16) | ((b or 0) << 8) | (c or 0)
        local chars = 2 + (b and 1 or 0) + (c and 1 or 0)
        for k = 1, chars do
            local idx = (n >> (18 - 6 * (k - 1))) & 63
            out[#out + 1] = B64:sub(idx + 1, idx + 1)
        end
    end
    return table.concat(out)
end

local function sign(fields)
    local claims = { sub = "user-1", tenant = TENANT, role = "analyst", ttl = 600 }
    for k, v in pairs(fields or {}) do claims[k] = v end
    return auth.sign_token(claims)
end

describe("auth tokens", function()
    it("round-trips the claims", function()
        local before = os.time()
        local token, exp = sign()
        expect(token).to_be_a("string")
        expect(token).to_match("^[%w_-]+%.[%w_-]+%.[%w_-]+$")
        -- os.time() reads the coarse clock, which may still show the previous second
        expect(exp >= before + 600 and exp <= os.time() + 601).to_be(true)
        local claims, err = auth.verify_token(token)
        expect(err).to_be_nil()
        expect(claims.sub).to_be("user-1")
        expect(claims.tenant).to_be(TENANT)
        expect(claims.role).to_be("analyst")
        expect(claims.exp).to_be(exp)
        expect(claims.exp - claims.iat).to_be(600)
        expect(claims.jti).to_match("^%x+$")
        expect(#claims.jti).to_be(32)
        expect(claims.kid).to_be("dev")
    end)

    it("gives every token its own jti", function()
        local a = auth.verify_token((sign()))
        local b = auth.verify_token((sign()))
        expect(a.jti).never.to_be(b.jti)
    end)

    it("defaults the lifetime to 15 minutes", function()
        local token, exp = auth.sign_token { sub = "u", tenant = TENANT, role = "viewer" }
        local claims = auth.verify_token(token)
        expect(claims.exp - claims.iat).to_be(900)
        expect(exp).to_be(claims.exp)
    end)

    it("refuses invalid claims with nil, err", function()
        local token, err = sign { role = "admin" }
        expect(token).to_be_nil()
        expect(err.code).to_be("invalid_claims")
        token, err = sign { tenant = "not-a-uuid" }
        expect(token).to_be_nil()
        expect(err.code).to_be("invalid_claims")
        token, err = sign { sub = string.rep("x", 65) }
        expect(token).to_be_nil()
        expect(err.code).to_be("invalid_claims")
    end)

    it("raises on misuse", function()
        expect(function() auth.sign_token("user-1") end).to_error()
        expect(function() auth.sign_token { sub = 1, tenant = TENANT, role = "owner" } end).to_error("sub must be a string")
        expect(function() sign { ttl = 0 } end).to_error("ttl")
        expect(function() sign { ttl = 1.5 } end).to_error("ttl")
        expect(function() auth.verify_token() end).to_error()
    end)

    it("rejects a tampered signature", function()
        local token = sign()
        local last = token:sub(-1)
        local tampered = token:sub(1, -2) .. (last == "A" and "B" or "A")
        local claims, code = auth.verify_token(tampered)
        expect(claims).to_be_nil()
        expect(code).to_be("bad_signature")
    end)

    it("rejects a tampered payload", function()
        local h, _, s = sign():match("^([^.]+)%.([^.]+)%.([^.]+)$")
        local payload = b64url(string.format(
            '{"iss":"pulse","aud":"pulse-api","sub":"user-1","tenant":"%s","role":"owner","iat":%d,"exp":%d,"jti":"%s"}',
            TENANT, os.time(), os.time() + 600, string.rep("a", 32)))
        local claims, code = auth.verify_token(h .. "." .. payload .. "." .. s)
        expect(claims).to_be_nil()
        expect(code).to_be("bad_signature")
    end)

    it("rejects alg none and other algorithms", function()
        local payload = sign():match("^[^.]+%.([^.]+)%.")
        local claims, code = auth.verify_token(b64url('{"alg":"none","typ":"JWT","kid":"dev"}') .. "." .. payload .. ".")
        expect(claims).to_be_nil()
        expect(code).to_be("bad_alg")
        claims, code = auth.verify_token(b64url('{"alg":"HS512","typ":"JWT","kid":"dev"}') .. "." .. payload .. ".AAAA")
        expect(claims).to_be_nil()
        expect(code).to_be("bad_alg")
    end)

    it("rejects an unknown kid", function()
        local _, payload, s = sign():match("^([^.]+)%.([^.]+)%.([^.]+)$")
        local claims, code = auth.verify_token(b64url('{"alg":"HS256","typ":"JWT","kid":"other"}') .. "." .. payload .. "." .. s)
        expect(claims).to_be_nil()
        expect(code).to_be("unknown_kid")
    end)

    it("rejects garbage", function()
        for _, t in ipairs { "", "abc", "a.b", "a.b.c", string.rep("x", 5000) } do
            local claims, code = auth.verify_token(t)
            expect(claims).to_be_nil()
            expect(code).to_be("malformed")
        end
    end)
end)

describe("auth.check_password_policy", function()
    it("accepts a long unusual password", function()
        local ok, why = auth.check_password_policy("correct horse battery staple")
        expect(ok).to_be(true)
        expect(why).to_be_nil()
    end)

    it("refuses short passwords", function()
        local ok, why = auth.check_password_policy("short")
        expect(ok).to_be(false)
        expect(why).to_match("10 characters")
    end)

    it("refuses common passwords from the embedded blocklist", function()
        for _, pw in ipairs { "password123", "P@ssw0rd2024", "qwertyuiop" } do
            local ok, why = auth.check_password_policy(pw)
            expect(ok).to_be(false)
            expect(why).to_be_a("string")
        end
    end)

    it("refuses repeats and sequences", function()
        expect((auth.check_password_policy("aaaaaaaaaaaa"))).to_be(false)
        expect((auth.check_password_policy("abcdefghijkl"))).to_be(false)
        expect((auth.check_password_policy("1234567890123"))).to_be(false)
    end)

    it("refuses passwords containing the user's words", function()
        local pw = "margaret-likes-tulips"
        expect((auth.check_password_policy(pw))).to_be(true)
        local ok, why = auth.check_password_policy(pw, { "margaret", "example.com" })
        expect(ok).to_be(false)
        expect(why).to_be_a("string")
    end)

    it("raises on misuse", function()
        expect(function() auth.check_password_policy() end).to_error()
        expect(function() auth.check_password_policy("long enough password", "margaret") end).to_error()
        expect(function() auth.check_password_policy("long enough password", { 1 }) end).to_error("words must be strings")
    end)
end)

describe("auth passwords (synchronous in the spec runner)", function()
    it("hashes and verifies", function()
        local encoded = auth.hash_password("correct horse battery staple")
        expect(encoded).to_match("^%$argon2id%$v=19%$m=%d+,t=%d+,p=%d+%$")
        expect(auth.verify_password(encoded, "correct horse battery staple")).to_be(true)
        expect(auth.verify_password(encoded, "correct horse battery stapler")).to_be(false)
    end)

    it("salts every hash", function()
        expect(auth.hash_password("same password here")).never.to_be(auth.hash_password("same password here"))
    end)

    it("verifies an unknown user (nil hash) as false", function()
        expect(auth.verify_password(nil, "whatever it is")).to_be(false)
    end)

    it("answers false for a hash it cannot read", function()
        local ok, why = auth.verify_password("$argon2id$not-a-hash", "whatever it is")
        expect(ok).to_be(false)
        expect(why).to_be("invalid_hash")
        expect(auth.verify_password("$argon2id$" .. string.rep("x", 300), "pw")).to_be(false)
    end)

    it("refuses an overlong password with nil, err", function()
        local encoded, err = auth.hash_password(string.rep("x", 1025))
        expect(encoded).to_be_nil()
        expect(err.code).to_be("password_too_long")
        expect(auth.verify_password(nil, string.rep("x", 1025))).to_be(false)
    end)

    it("raises on misuse", function()
        expect(function() auth.hash_password() end).to_error()
        expect(function() auth.verify_password(nil) end).to_error()
        expect(function() auth.verify_password({}, "pw") end).to_error()
    end)
end)
