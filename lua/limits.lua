-- Rate limits, in one place so an operator can tune them: each is {rate, per_seconds, burst}.
-- Counted per process across all loop threads (src/core/ratelimit.c). Past a limit the answer is
-- 429 with Retry-After.
return {
    -- sign-in and sign-up, against password guessing and account spraying
    login_ip = { rate = 20, per = 60, burst = 20 },      -- per client address
    login_account = { rate = 10, per = 300, burst = 10 }, -- per e-mail address tried
    register_ip = { rate = 5, per = 3600, burst = 5 },   -- per client address
    refresh_ip = { rate = 60, per = 60, burst = 60 },    -- per client address
    -- the API, per identity (a user or an API key)
    api = { rate = 600, per = 60, burst = 300 },
}
