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

return limits
