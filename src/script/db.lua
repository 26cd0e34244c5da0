-- db.tx(fn, ...): runs fn inside BEGIN ... COMMIT on one connection pinned to the request.
-- fn raising an error, or returning nil plus an error, rolls back; the error is re-raised or
-- returned as is. Embedded in the binary (core helper); the C primitives live in src/script/db.c.
local db = require "db"

local function finish_after_error(err)
    db._finish(false) -- a failed ROLLBACK only means the connection is gone: nothing to undo
    return err
end

function db.tx(fn, ...)
    local ok, err = db._begin()
    if not ok then
        return nil, err
    end
    local results = table.pack(pcall(fn, ...))
    if not results[1] then
        error(finish_after_error(results[2]), 0)
    end
    if results[2] == nil and results[3] ~= nil then
        return nil, finish_after_error(results[3])
    end
    local committed, commit_err = db._finish(true)
    if not committed then
        return nil, commit_err
    end
    return table.unpack(results, 2, results.n)
end

return db
