-- wrk script: GET /api/bench/customers/<random id in 1..100000>
math.randomseed(os.time())
request = function()
    return wrk.format("GET", "/api/bench/customers/" .. math.random(1, 100000))
end
