-- Rate limits, in one place so an operator can tune them: each is {rate, per_seconds, burst}.
-- Counted per process across all loop threads (src/core/ratelimit.c). Past a limit the answer is
-- 429 with Retry-After. Each can be overridden from the environment: PULSE_LIMIT_<NAME> set to
-- "rate/per_seconds" or "rate/per_seconds/burst" (e.g. PULSE_LIMIT_LOGIN_IP=5/60); a malformed
-- value fails at load time.
local limits = {
    -- sign-in and sign-up, against password guessing and account spraying
    login_ip = { rate = 20, per = 60, burst = 20 },      -- per client address
    login_account = { rate = 10, per = 300, burst = 10 }, -- per e-mail address tried
    register_ip = { rate = 5, per = 3600, burst = 5 },   -- per client address
    register_account = { rate = 3, per = 3600, burst = 3 }, -- per e-mail address signed up with
    refresh_ip = { rate = 60, per = 60, burst = 60 },    -- per client address
    password_change = { rate = 10, per = 300, burst = 10 }, -- per signed-in user, wrong current passwords
    invite_tenant = { rate = 30, per = 3600, burst = 30 }, -- invitations per organization
    -- the API, per identity (a user or an API key)
    api = { rate = 600, per = 60, burst = 300 },
}

for name, limit in pairs(limits) do
    local var = "PULSE_LIMIT_" .. name:upper()
    local value = os.getenv(var)
    if value and value ~= "" then
        local rate, per, burst = value:match("^%s*(%d+)/(%d+)/?(%d*)%s*$")
        rate, per, burst = tonumber(rate), tonumber(per), tonumber(burst)
        if not rate or rate < 1 or per < 1 or (burst and burst < 1) then
            error(var .. " must be rate/per_seconds or rate/per_seconds/burst (positive integers), got " .. value, 0)
        end
        limit.rate, limit.per, limit.burst = rate, per, burst or rate
    end
end

-- limits.check(name, key, what[, params]) -> nil when allowed, else the 429 problem (with
-- Retry-After) to answer. `what` completes "Too many ...". params: the limit whose rate to use,
-- when a bucket of its own shares another's numbers (default: name).
function limits.check(name, key, what, params)
    local l = limits[params or name]
    local ok, retry = require("ratelimit").take(name, key, l.rate, l.per, l.burst)
    if ok then return nil end
    return require("problem").new(429, "rate_limited", "Too many " .. what .. "; try again in " .. retry .. " s.",
        { headers = { ["retry-after"] = tostring(retry) } })
end

-- The key a client address is limited by: an IPv6 client is its /64 (one subscriber usually
-- holds a whole /64, so per-address keys would give it 2^64 budgets); an IPv4-mapped IPv6
-- address is its IPv4 address.
function limits.address_key(addr)
    if not addr or addr == "" then return "unknown" end
    local v4 = addr:match("^::[fF][fF][fF][fF]:(%d+%.%d+%.%d+%.%d+)$")
    if v4 then return v4 end
    if not addr:find(":", 1, true) then return addr end
    -- expand "::" to the missing zero groups, then keep the first four groups
    local head, tail = addr:match("^(.-)::(.*)$")
    local groups = {}
    local function add(part)
        for g in part:gmatch("[^:]+") do groups[#groups + 1] = g end
    end
    if head then
        local left, right = {}, {}
        for g in head:gmatch("[^:]+") do left[#left + 1] = g end
        for g in tail:gmatch("[^:]+") do right[#right + 1] = g end
        for _, g in ipairs(left) do groups[#groups + 1] = g end
        for _ = 1, 8 - #left - #right do groups[#groups + 1] = "0" end
        for _, g in ipairs(right) do groups[#groups + 1] = g end
    else
        add(addr)
    end
    for i = 1, 4 do groups[i] = (groups[i] or "0"):lower():gsub("^0+(%x)", "%1") end
    return table.concat(groups, ":", 1, 4) .. "::/64"
end

return limits
