-- wrk script: POST /api/v1/auth/login/json with a wrong password, counting answers by status.
-- Each wrk thread has its own Lua state: the counters are read back per thread in done().
local body = '{"email":"bench-owner@example.com","password":"not the right password at all"}'
local threads = {}
c401, c429, cother = 0, 0, 0

setup = function(thread)
    table.insert(threads, thread)
end

request = function()
    return wrk.format("POST", "/api/v1/auth/login/json", { ["content-type"] = "application/json" }, body)
end

response = function(status)
    if status == 401 then c401 = c401 + 1
    elseif status == 429 then c429 = c429 + 1
    else cother = cother + 1 end
end

done = function()
    local a, b, c = 0, 0, 0
    for _, t in ipairs(threads) do
        a, b, c = a + t:get("c401"), b + t:get("c429"), c + t:get("cother")
    end
    io.write(("statuses 401=%d 429=%d other=%d\n"):format(a, b, c))
end
