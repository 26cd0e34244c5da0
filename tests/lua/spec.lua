-- spec.lua: a tiny test framework for the Lua specs, usable both with the stock interpreter
-- (tests/lua/run.lua) and inside the embedded VM. Spec files see describe, it, before_each and
-- expect as globals of their own environment; spec.run prints one line per failure (file:line)
-- and ends with the line "N passed, N failed", which CI parses: keep that format exact.

local spec = {}

local state = {
    file = nil,      -- the spec file being run
    names = {},      -- describe names, outermost first
    hooks = {},      -- before_each functions, one list per describe level
    passed = 0,
    failed = 0,
    out = print,
}

---------------------------------------------------------------------------------------------------
-- Showing values and comparing them.

local function show(v, depth)
    depth = depth or 0
    if type(v) == "string" then return (string.format("%q", v):gsub("\\\n", "\\n")) end
    if type(v) ~= "table" then return tostring(v) end
    if depth > 3 then return "{...}" end
    local keys = {}
    for key in pairs(v) do keys[#keys + 1] = key end
    table.sort(keys, function(a, b)
        if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
        return type(a) < type(b)
    end)
    local parts = {}
    local n = #v
    for _, key in ipairs(keys) do
        local shown = show(v[key], depth + 1)
        if math.type(key) == "integer" and key >= 1 and key <= n then
            parts[#parts + 1] = shown
        elseif type(key) == "string" and key:find("^[%a_][%w_]*$") then
            parts[#parts + 1] = key .. " = " .. shown
        else
            parts[#parts + 1] = "[" .. show(key, depth + 1) .. "] = " .. shown
        end
    end
    local text = "{" .. table.concat(parts, ", ") .. "}"
    if #text > 400 then text = text:sub(1, 397) .. "..." end
    return text
end
spec.show = show

local function key_path(key)
    if type(key) == "string" and key:find("^[%a_][%w_]*$") then return "." .. key end
    return "[" .. show(key) .. "]"
end

-- Returns nil when equal, else the path of the first difference and both values there.
-- Metatables are ignored: a marked array equals a plain list with the same items.
local function difference(actual, expected, where, seen)
    if actual == expected then return nil end
    if type(actual) ~= "table" or type(expected) ~= "table" then return where, actual, expected end
    seen = seen or {}
    if seen[actual] == expected then return nil end
    seen[actual] = expected
    for key, value in pairs(expected) do
        local path, a, e = difference(actual[key], value, where .. key_path(key), seen)
        if path then return path, a, e end
    end
    for key, value in pairs(actual) do
        if expected[key] == nil then return where .. key_path(key), value, nil end
    end
    return nil
end

function spec.equal(a, b)
    return difference(a, b, "") == nil
end

---------------------------------------------------------------------------------------------------
-- Matchers: each returns ok, message (when it fails), message (when it fails under .never).

local matchers = {}

function matchers.to_equal(actual, expected)
    local where, a, e = difference(actual, expected, "")
    if not where then return true, nil, "expected anything but " .. show(expected) end
    local at = where ~= "" and (" at " .. where) or ""
    return false, "expected " .. show(e) .. at .. ", got " .. show(a) ..
        (where ~= "" and ("\n  whole value: " .. show(actual)) or ""), nil
end

function matchers.to_be(actual, expected)
    return actual == expected, "expected " .. show(expected) .. ", got " .. show(actual),
        "expected anything but " .. show(expected)
end

function matchers.to_be_truthy(actual)
    return actual ~= nil and actual ~= false, "expected a truthy value, got " .. show(actual),
        "expected a falsy value, got " .. show(actual)
end

function matchers.to_be_falsy(actual)
    return actual == nil or actual == false, "expected a falsy value, got " .. show(actual),
        "expected a truthy value, got " .. show(actual)
end

function matchers.to_be_nil(actual)
    return actual == nil, "expected nil, got " .. show(actual), "expected a value, got nil"
end

function matchers.to_be_a(actual, type_name)
    local t = type(actual)
    if t == "number" and (type_name == "integer" or type_name == "float") then t = math.type(actual) end
    return t == type_name, "expected a " .. type_name .. ", got " .. t .. " " .. show(actual),
        "expected anything but a " .. type_name
end

-- Strings: contains the text literally. Tables: has a value deep-equal to x.
function matchers.to_contain(actual, x)
    local found = false
    if type(actual) == "string" then
        found = actual:find(tostring(x), 1, true) ~= nil
    elseif type(actual) == "table" then
        for _, value in pairs(actual) do
            if difference(value, x, "") == nil then found = true break end
        end
    end
    return found, "expected " .. show(actual) .. " to contain " .. show(x),
        "expected " .. show(actual) .. " not to contain " .. show(x)
end

function matchers.to_match(actual, pattern)
    local ok = type(actual) == "string" and actual:find(pattern) ~= nil
    return ok, "expected " .. show(actual) .. " to match " .. show(pattern),
        "expected " .. show(actual) .. " not to match " .. show(pattern)
end

function matchers.to_have_length(actual, n)
    local length = type(actual) == "string" and #actual or (type(actual) == "table" and #actual or nil)
    return length == n, "expected length " .. tostring(n) .. ", got " .. tostring(length) .. ": " .. show(actual),
        "expected a length other than " .. tostring(n)
end

function matchers.to_be_less_than(actual, limit)
    return type(actual) == "number" and actual < limit, "expected a number below " .. show(limit) .. ", got " .. show(actual),
        "expected a number of at least " .. show(limit) .. ", got " .. show(actual)
end

-- `actual` is a function; it must raise an error whose text contains `pattern` literally or
-- matches it as a Lua pattern (no pattern: any error will do).
function matchers.to_error(actual, pattern)
    if type(actual) ~= "function" then return false, "to_error needs a function, got " .. show(actual), nil end
    local ok, err = pcall(actual)
    if ok then return false, "expected an error" .. (pattern and (" matching " .. show(pattern)) or "") .. ", got none",
        nil end
    local text = tostring(err)
    local matched = pattern == nil or text:find(pattern, 1, true) ~= nil
    if not matched then
        local found, result = pcall(string.find, text, pattern)
        matched = found and result ~= nil
    end
    return matched, "expected an error matching " .. show(pattern) .. ", got " .. show(text),
        "expected no error matching " .. show(pattern) .. ", got " .. show(text)
end

local Failure = {} -- metatable marking an expectation failure (as opposed to a crash)

local function fail(message)
    error(setmetatable({ message = message }, Failure), 0)
end

local function expectation(actual, negated)
    local e = {}
    for name, check in pairs(matchers) do
        e[name] = function(...)
            local ok, message, negated_message = check(actual, ...)
            if negated then
                ok, message = not ok, negated_message or ("expected " .. name .. " to fail")
            end
            if not ok then fail(message) end
            return e
        end
    end
    if not negated then e.never = expectation(actual, true) end
    return e
end

function spec.expect(actual)
    return expectation(actual, false)
end

---------------------------------------------------------------------------------------------------
-- Running.

-- The innermost stack frame inside the current spec file says where a failure happened.
local function spec_line(skip)
    if not debug or not debug.getinfo then return nil end
    local source = "@" .. state.file
    for level = skip, 60 do
        local info = debug.getinfo(level, "Sl")
        if not info then break end
        if info.source == source then return info.currentline end
    end
    return nil
end

local function on_error(err)
    local line = spec_line(2)
    local message
    if getmetatable(err) == Failure then
        message = err.message
    else
        message = "error: " .. tostring(err)
    end
    return { line = line, message = message }
end

local function report_failure(name, failure)
    state.failed = state.failed + 1
    local where = state.file .. ":" .. tostring(failure.line or "?")
    local line = "FAIL " .. where .. ": " .. name .. ": " .. tostring(failure.message)
    state.out((line:gsub("\n%s*", " | "))) -- one line per failure, whatever the messages hold
end

function spec.describe(name, fn)
    local depth = #state.names + 1
    state.names[depth] = tostring(name)
    state.hooks[depth] = {}
    local ok, failure = xpcall(fn, on_error)
    if not ok then report_failure(table.concat(state.names, " > "), failure) end
    state.names[depth] = nil
    state.hooks[depth] = nil
end

function spec.before_each(fn)
    local hooks = state.hooks[#state.names]
    if not hooks then error("before_each must be called inside describe", 2) end
    hooks[#hooks + 1] = fn
end

local function run_hooks()
    for depth = 1, #state.names do
        for _, hook in ipairs(state.hooks[depth]) do hook() end
    end
end

function spec.it(name, fn)
    local full = table.concat(state.names, " > ")
    full = full ~= "" and (full .. " > " .. tostring(name)) or tostring(name)
    local ok, failure = xpcall(function()
        run_hooks()
        fn()
    end, on_error)
    if ok then
        state.passed = state.passed + 1
    else
        report_failure(full, failure)
    end
end

local function environment()
    return setmetatable({
        describe = spec.describe,
        it = spec.it,
        before_each = spec.before_each,
        expect = spec.expect,
        spec = spec,
    }, { __index = _G })
end

-- Runs each spec file; prints failures and "N passed, N failed"; returns passed, failed.
-- options.print replaces print (e.g. to route output to a log inside the server).
function spec.run(files, options)
    state.passed, state.failed = 0, 0
    state.out = options and options.print or print
    for _, file in ipairs(files) do
        state.file, state.names, state.hooks = file, {}, {}
        local chunk, load_error = loadfile(file, "t", environment())
        if not chunk then
            report_failure("loading the file", { line = nil, message = load_error })
        else
            local ok, failure = xpcall(chunk, on_error)
            if not ok then report_failure("running the file", failure) end
        end
    end
    state.out(state.passed .. " passed, " .. state.failed .. " failed")
    return state.passed, state.failed
end

return spec
