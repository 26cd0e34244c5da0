-- run.lua: runs Lua spec files with the stock interpreter, from the repository root:
--   lua5.4 tests/lua/run.lua tests/lua/spec_schema.lua tests/lua/spec_openapi.lua
-- Exits non-zero when any spec failed (or none was given).

package.path = "lua/?.lua;tests/lua/?.lua;" .. package.path

local spec = require("spec")

local files = { ... }
if #files == 0 then
    io.stderr:write("usage: lua5.4 tests/lua/run.lua SPEC_FILE...\n")
    os.exit(2)
end

local _, failed = spec.run(files)
os.exit(failed == 0 and 0 or 1)
