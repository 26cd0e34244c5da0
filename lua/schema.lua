-- schema.lua: request validation for routes declared as Lua tables. Schemas are a subset of JSON
-- Schema (as used by OpenAPI 3.1); each one is checked and compiled once, at registration, so a
-- typo fails at load time and a request pays only for table lookups. Errors name every offending
-- field ({field, code, message}); path and query strings are coerced before validation.
-- Note: `pattern` is a Lua pattern (string.find, unanchored), not a regular expression.

local schema = {}

local type, pairs, ipairs, next, tostring, tonumber, error, pcall =
    type, pairs, ipairs, next, tostring, tonumber, error, pcall
local getmetatable, setmetatable = getmetatable, setmetatable
local math_type, tointeger, floor, huge = math.type, math.tointeger, math.floor, math.huge
local find, match, sub, byte, format, lower = string.find, string.match, string.sub, string.byte,
    string.format, string.lower
local concat, sort = table.concat, table.sort
local utf8_len = utf8.len

---------------------------------------------------------------------------------------------------
-- JSON values as Lua sees them. The C decoder hands us its own null and array marker, so both are
-- pluggable; the defaults let the module (and its specs) run on a stock interpreter.

local array_mt = { __name = "schema.array" }
local default_null = setmetatable({}, { __name = "schema.null", __tostring = function() return "null" end })

local function default_is_array(t)
    if getmetatable(t) == array_mt then return true end
    local n = #t
    if n == 0 then return next(t) == nil end
    local count = 0
    for key in pairs(t) do
        if math_type(key) ~= "integer" or key < 1 or key > n then return false end
        count = count + 1
    end
    return count == n
end

local function default_mark_array(t)
    return setmetatable(t, array_mt)
end

local null = default_null
local is_array = default_is_array
local mark_array = default_mark_array -- for the lists coerce_params builds from query strings

schema.null = null
schema.array_mt = array_mt

schema.defaults = { null = default_null, is_array = default_is_array, mark_array = default_mark_array }

-- Call before any schema is declared: compiled schemas remember the null they were built with.
-- Returns the previous settings, so a spec can swap them in and restore them.
function schema.configure(options)
    if type(options) ~= "table" then error("schema.configure: expected a table of options", 2) end
    local previous = { null = null, is_array = is_array, mark_array = mark_array }
    if options.null ~= nil then
        null = options.null
        schema.null = null
    end
    for _, name in ipairs({ "is_array", "mark_array" }) do
        if options[name] ~= nil and type(options[name]) ~= "function" then
            error("schema.configure: " .. name .. " must be a function", 2)
        end
    end
    is_array = options.is_array or is_array
    mark_array = options.mark_array or mark_array
    return previous
end

-- Marks a table as a JSON array for the default is_array (so an empty list stays a list).
function schema.array(t)
    return default_mark_array(t or {})
end

-- The JSON kind of a Lua value. Floats with an integral value are integers, as in JSON; an empty
-- table cannot say whether it was [] or {}, so it is "empty" and matches both.
local function kind_of(v)
    local t = type(v)
    if t == "string" then return "string" end
    if t == "number" then
        if math_type(v) == "integer" then return "integer" end
        if v ~= v or v == huge or v == -huge then return "nonfinite" end
        if v == floor(v) then return "integer" end
        return "number"
    end
    if t == "boolean" then return "boolean" end
    if v == null then return "null" end
    if t == "table" then
        if next(v) == nil then return "empty" end
        return is_array(v) and "array" or "object"
    end
    if v == nil then return "missing" end
    return "unsupported"
end
schema.kind_of = kind_of

-- JSON equality: 1 == 1.0, tables compared by content.
local function deep_equal(a, b)
    if a == b then return true end
    if type(a) ~= "table" or type(b) ~= "table" then return false end
    for key, value in pairs(a) do
        if not deep_equal(value, b[key]) then return false end
    end
    for key in pairs(b) do
        if a[key] == nil then return false end
    end
    return true
end
schema.deep_equal = deep_equal

---------------------------------------------------------------------------------------------------
-- Formats. Each checker takes a string and returns a boolean; they never raise.

local function is_leap_year(year)
    return year % 4 == 0 and (year % 100 ~= 0 or year % 400 == 0)
end

local days_in_month = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function is_calendar_date(year, month, day)
    if month < 1 or month > 12 or day < 1 then return false end
    local last = days_in_month[month]
    if month == 2 and is_leap_year(year) then last = 29 end
    return day <= last
end

local function check_date(s)
    local year, month, day = match(s, "^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
    return year ~= nil and is_calendar_date(tonumber(year), tonumber(month), tonumber(day))
end

-- RFC 3339 section 5.6. A leap second (:60) is accepted only at 23:59 UTC.
local function check_date_time(s)
    local date, hour, minute, second, rest = match(s, "^(%d%d%d%d%-%d%d%-%d%d)[Tt](%d%d):(%d%d):(%d%d)(.*)$")
    if not date or not check_date(date) then return false end
    hour, minute, second = tonumber(hour), tonumber(minute), tonumber(second)
    if hour > 23 or minute > 59 or second > 60 then return false end
    local after_fraction = match(rest, "^%.%d+()")
    if after_fraction then rest = sub(rest, after_fraction) end
    local offset
    if rest == "Z" or rest == "z" then
        offset = 0
    else
        local sign, offset_hour, offset_minute = match(rest, "^([+-])(%d%d):(%d%d)$")
        if not sign then return false end
        offset_hour, offset_minute = tonumber(offset_hour), tonumber(offset_minute)
        if offset_hour > 23 or offset_minute > 59 then return false end
        offset = (offset_hour * 60 + offset_minute) * (sign == "-" and -1 or 1)
    end
    if second == 60 and (hour * 60 + minute - offset) % 1440 ~= 23 * 60 + 59 then return false end
    return true
end

local function labels_fit(s, from) -- every dot-separated label from `from` on has 1..63 bytes
    while true do
        local dot = find(s, ".", from, true)
        if (dot or #s + 1) - from > 63 then return false end
        if not dot then return true end
        from = dot + 1
    end
end

-- Pragmatic addr-spec, ASCII only: a dot-atom local part (no quoted strings or comments) and a
-- domain of two or more labels of letters, digits and inner hyphens, the last not all digits
-- (so "user@10.0.0.1" is refused: literal addresses are not wanted here). Few C calls: it is
-- on the hot path of most bodies.
local function check_email(s)
    local length = #s
    if length > 254 or not find(s, "^[%w!#%$%%&'%*%+/=%?%^_`{|}~%.%-]+@[%w%.%-]+$") then return false end
    local at = find(s, "@", 1, true)
    if at > 65 or byte(s, 1) == 46 or byte(s, at - 1) == 46 or find(s, "..", 1, true) then return false end
    local first, last = byte(s, at + 1), byte(s, length)
    if first == 46 or first == 45 or last == 46 or last == 45 then return false end
    if not find(s, ".", at + 1, true) or find(s, "-.", at, true) or find(s, ".-", at, true) then return false end
    if last >= 48 and last <= 57 and find(s, "%.%d+$") then return false end
    return length - at <= 63 or labels_fit(s, at + 1)
end

local function check_uuid(s)
    return #s == 36 and find(s, "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

-- Absolute http(s) URL with a host; characters outside RFC 3986 must be percent-encoded.
local function check_uri(s)
    local rest = match(s, "^[Hh][Tt][Tt][Pp][Ss]?://(.*)$")
    if not rest or find(s, "[%c%s\"<>\\%^`{|}\128-\255]") then return false end
    local authority = match(rest, "^[^/%?#]*")
    local host_port = match(authority, "[^@]*$")
    local host, port
    if sub(host_port, 1, 1) == "[" then
        host, port = match(host_port, "^(%[[%x:%.]+%])(.*)$")
    else
        host, port = match(host_port, "^([^:]*)(.*)$")
        if host and not find(host, "^[%w%.%-_~%%!%$&'%(%)%*%+,;=]+$") then return false end
    end
    if not host or host == "" then return false end
    if port ~= "" then
        local digits = match(port, "^:(%d%d?%d?%d?%d?)$")
        if not digits or tonumber(digits) > 65535 then return false end
    end
    return true
end

local formats = {
    email = check_email,
    uuid = check_uuid,
    date = check_date,
    ["date-time"] = check_date_time,
    uri = check_uri,
}

local format_nouns = {
    email = "an email address",
    uuid = "a UUID",
    date = "a calendar date (YYYY-MM-DD)",
    ["date-time"] = "an RFC 3339 date-time (e.g. 2024-01-31T09:30:00Z)",
    uri = "an http(s) URL",
}

-- Adds an application format: checker(string) -> boolean; noun describes it in messages.
function schema.add_format(name, checker, noun)
    if type(name) ~= "string" or type(checker) ~= "function" then
        error("schema.add_format: expected a name and a checker function", 2)
    end
    if formats[name] then error("schema.add_format: format '" .. name .. "' already exists", 2) end
    formats[name] = checker
    format_nouns[name] = noun or ("a valid " .. name)
end

---------------------------------------------------------------------------------------------------
-- Human text for error messages. Only called once an error is certain.

local function escape_char(ch)
    if ch == '"' or ch == "\\" then return "\\" .. ch end
    return format("\\u%04x", byte(ch))
end

-- A value quoted JSON-style for a message: cut at 60 bytes on a character boundary.
local function quote(s)
    local text = s
    if #text > 60 then
        local cut = 57
        while cut > 1 and (byte(text, cut + 1) or 0) & 0xC0 == 0x80 do cut = cut - 1 end
        text = sub(text, 1, cut) .. "..."
    end
    if not utf8_len(text) then text = text:gsub("[\128-\255]", "?") end
    text = text:gsub('[%c"\\]', escape_char)
    return '"' .. text .. '"'
end

local function repr(v)
    local kind = kind_of(v)
    if kind == "string" then return quote(v) end
    if kind == "integer" and math_type(v) == "float" and v >= -2^53 and v <= 2^53 then
        return tostring(tointeger(v))
    end
    if kind == "integer" or kind == "number" or kind == "nonfinite" then return tostring(v) end
    if kind == "boolean" then return tostring(v) end
    if kind == "null" then return "null" end
    if kind == "object" then return "an object" end
    if kind == "array" then return "an array" end
    if kind == "empty" then
        if getmetatable(v) == array_mt or (is_array ~= default_is_array and is_array(v)) then return "an empty array" end
        return is_array == default_is_array and "an empty object or array" or "an empty object"
    end
    if kind == "missing" then return "nothing" end
    return "a " .. type(v)
end

local function list_repr(values)
    local parts = {}
    for i = 1, #values do parts[i] = repr(values[i]) end
    return concat(parts, ", ")
end

local type_nouns = {
    string = "a string", integer = "an integer", number = "a number", boolean = "a boolean",
    object = "an object", array = "an array", null = "null",
}

local function plural(n, word)
    return n .. " " .. word .. (n == 1 and "" or "s")
end

local function range_phrase(low, high, unit)
    local suffix = unit and (" " .. unit .. "s") or ""
    if low and high then
        if low == high then return "of exactly " .. (unit and plural(low, unit) or repr(low)) end
        return (unit and "of " or "between ") .. repr(low) .. (unit and " to " or " and ") .. repr(high) .. suffix
    end
    if low then return "of at least " .. (unit and plural(low, unit) or repr(low)) end
    if high then return "of at most " .. (unit and plural(high, unit) or repr(high)) end
    return nil
end

local function numeric_phrase(s)
    local parts = {}
    local low_phrase = range_phrase(s.minimum, s.maximum)
    if low_phrase then parts[1] = low_phrase end
    if s.exclusiveMinimum then parts[#parts + 1] = "greater than " .. repr(s.exclusiveMinimum) end
    if s.exclusiveMaximum then parts[#parts + 1] = "less than " .. repr(s.exclusiveMaximum) end
    return concat(parts, " and ")
end

-- "an integer between 1 and 500", "a string of at most 200 characters", "one of "a", "b"".
local function describe(s)
    if s.const ~= nil then return "exactly " .. repr(s.const) end
    if s.enum then return "one of " .. list_repr(s.enum) end
    local names = type(s.type) == "table" and s.type or { s.type }
    local nouns = {}
    for i = 1, #names do nouns[i] = type_nouns[names[i]] end
    if s.format and format_nouns[s.format] and (#names == 0 or names[1] == "string") then
        nouns[1] = format_nouns[s.format]
    elseif s.type == "array" and s.items and type(s.items.type) == "string" and s.items.enum == nil then
        nouns[1] = "an array of " .. s.items.type .. "s"
    end
    local phrase = #nouns > 0 and concat(nouns, " or ") or "a value"
    local details = {}
    local numeric = numeric_phrase(s)
    if numeric ~= "" then details[#details + 1] = numeric end
    details[#details + 1] = range_phrase(s.minLength, s.maxLength, "character")
    details[#details + 1] = range_phrase(s.minItems, s.maxItems, "item")
    details[#details + 1] = range_phrase(s.minProperties, s.maxProperties, "field")
    if s.pattern then details[#details + 1] = "matching the Lua pattern " .. s.pattern end
    if #details > 0 then phrase = phrase .. " " .. concat(details, " and ") end
    return phrase
end
schema.describe = describe

---------------------------------------------------------------------------------------------------
-- Validation state. One validation runs at a time per Lua state (it never yields), so the path
-- is a reusable stack and strings are built only when an error is recorded. `silent` > 0 while
-- probing oneOf/anyOf branches: failures are counted, not reported.

local errors, silent, depth, root = nil, 0, 0, ""
local path = {}

local function current_field()
    local parts = { root }
    for i = 1, depth do
        local key = path[i]
        if math_type(key) == "integer" then
            parts[#parts + 1] = "[" .. (key - 1) .. "]" -- clients read JSON: indexes are 0-based
        elseif type(key) == "string" and find(key, "^[%a_][%w_]*$") then
            parts[#parts + 1] = (#parts == 1 and root == "") and key or "." .. key
        else
            parts[#parts + 1] = "[" .. quote(tostring(key)) .. "]"
        end
    end
    return concat(parts)
end

local function add_error(code, message)
    local list = errors
    if not list then
        list = {}
        errors = list
    end
    list[#list + 1] = { field = current_field(), code = code, message = message }
end

local function fail_expected(c, code, v)
    if silent > 0 then return end
    add_error(code, "must be " .. describe(c.s) .. ", got " .. repr(v))
end

local function fail_type(c, v, kind)
    if silent > 0 then return end
    if kind == "nonfinite" then return add_error("invalid_type", "must be a finite number, got " .. repr(v)) end
    add_error("invalid_type", "must be " .. describe(c.s) .. ", got " .. repr(v))
end

local function fail_required(c)
    if silent > 0 then return end
    add_error("required", c and ("is required; expected " .. describe(c.s)) or "is required")
end

local function fail_unknown_field(c)
    if silent > 0 then return end
    local names = c.property_names
    if names and #names > 0 then
        add_error("unknown_field", "is not an allowed field; expected one of: " .. concat(names, ", "))
    else
        add_error("unknown_field", "is not an allowed field; this object takes no other fields")
    end
end

local function fail_count(code, what, low, high, got)
    if silent > 0 then return end
    add_error(code, "must have " .. range_phrase(low, high, what):gsub("^of ", "") .. ", got " .. got)
end

local visit -- forward declaration: visit(c, value) -> ok

local function push(key)
    depth = depth + 1
    path[depth] = key
end

local function pop()
    depth = depth - 1
end

local function visit_string(c, s)
    local length = utf8_len(s)
    if not length then
        if silent == 0 then add_error("invalid_utf8", "must be valid UTF-8 text") end
        return false
    end
    local ok = true
    local s_min, s_max = c.min_length, c.max_length
    if (s_min and length < s_min) or (s_max and length > s_max) then
        if silent == 0 then
            add_error(length < (s_min or 0) and "too_short" or "too_long",
                "must be " .. describe(c.s) .. ", got " .. plural(length, "character"))
        end
        ok = false
    end
    if c.pattern and not find(s, c.pattern) then
        if silent == 0 then add_error("pattern_mismatch", "must match the Lua pattern " .. c.pattern .. ", got " .. quote(s)) end
        ok = false
    end
    if c.format_check and not c.format_check(s) then
        if silent == 0 then add_error("invalid_format", "must be " .. format_nouns[c.format] .. ", got " .. quote(s)) end
        ok = false
    end
    return ok
end

local function visit_number(c, n)
    local ok = true
    if (c.minimum and n < c.minimum) or (c.exclusive_minimum and n <= c.exclusive_minimum) then
        fail_expected(c, "too_small", n)
        ok = false
    end
    if (c.maximum and n > c.maximum) or (c.exclusive_maximum and n >= c.exclusive_maximum) then
        fail_expected(c, "too_large", n)
        ok = false
    end
    return ok
end

local function key_less(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == "string" or ta == "number" then return a < b end
    return tostring(a) < tostring(b)
end

local function visit_extra_fields(c, obj)
    local additional, props = c.additional, c.properties
    local extras
    local count = 0
    for key in pairs(obj) do
        count = count + 1
        if additional ~= nil and (props == nil or props[key] == nil) then
            extras = extras or {}
            extras[#extras + 1] = key
        end
    end
    local ok = true
    if extras then
        sort(extras, key_less) -- pairs order is arbitrary; errors must not be
        for i = 1, #extras do
            local key = extras[i]
            push(key)
            if additional == false then
                fail_unknown_field(c)
                ok = false
            elseif not visit(additional, obj[key]) then
                ok = false
            end
            pop()
        end
    end
    if (c.min_properties and count < c.min_properties) or (c.max_properties and count > c.max_properties) then
        fail_count(count < (c.min_properties or 0) and "too_few_properties" or "too_many_properties",
            "field", c.min_properties, c.max_properties, count)
        ok = false
    end
    return ok
end

local function visit_object(c, obj)
    local ok = true
    local names = c.property_names
    if names then
        local props, required = c.properties, c.required_set
        for i = 1, #names do
            local name = names[i]
            local value = obj[name]
            if value ~= nil then
                depth = depth + 1 -- push/pop inlined: this loop is the hot path
                path[depth] = name
                if not visit(props[name], value) then ok = false end
                depth = depth - 1
            elseif required and required[name] then
                push(name)
                fail_required(props[name])
                pop()
                ok = false
            end
        end
    end
    local undeclared = c.required_undeclared
    if undeclared then
        for i = 1, #undeclared do
            local name = undeclared[i]
            if obj[name] == nil then
                push(name)
                fail_required(nil)
                pop()
                ok = false
            end
        end
    end
    if c.additional ~= nil or c.min_properties or c.max_properties then
        ok = visit_extra_fields(c, obj) and ok
    end
    return ok
end

-- Item count and uniqueness; shared with query-parameter arrays, whose items are coerced apart.
local function check_array_shape(c, arr)
    local ok = true
    local n = #arr
    if (c.min_items and n < c.min_items) or (c.max_items and n > c.max_items) then
        fail_count(n < (c.min_items or 0) and "too_few_items" or "too_many_items", "item", c.min_items, c.max_items, n)
        ok = false
    end
    if c.unique_items and n > 1 then
        local first_index = {}
        for i = 1, n do
            local item = arr[i]
            local earlier = type(item) ~= "table" and first_index[item]
            if not earlier and type(item) == "table" then
                for j = 1, i - 1 do
                    if deep_equal(arr[j], item) then earlier = j break end
                end
            end
            if earlier then
                if silent == 0 then
                    push(i)
                    add_error("duplicate_items", "duplicates item [" .. (earlier - 1) .. "]; items must be unique")
                    pop()
                end
                ok = false
            elseif type(item) ~= "table" and item == item then
                first_index[item] = i
            end
        end
    end
    return ok
end

local function visit_array(c, arr)
    local ok = check_array_shape(c, arr)
    local items = c.items
    if items then
        for i = 1, #arr do
            depth = depth + 1
            path[depth] = i
            if not visit(items, arr[i]) then ok = false end
            depth = depth - 1
        end
    end
    return ok
end

local function enum_contains(c, v)
    if type(v) ~= "table" or v == null then return c.enum_set[v] == true end
    local tables = c.enum_tables
    for i = 1, #tables do
        if deep_equal(tables[i], v) then return true end
    end
    return false
end

local function count_matches(branches, v)
    silent = silent + 1
    local matches = 0
    for i = 1, #branches do
        if visit(branches[i], v) then matches = matches + 1 end
    end
    silent = silent - 1
    return matches
end

local function fail_branches(code, branches, quantifier, matches)
    if silent > 0 then return end
    local shapes = {}
    for i = 1, #branches do shapes[i] = describe(branches[i].s) end
    add_error(code, "must match " .. quantifier .. " of: " .. concat(shapes, "; ") ..
        (matches > 1 and (" (it matched " .. matches .. ")") or " (it matched none)"))
end

local function visit_by_kind(c, v, kind)
    if kind == "string" then return visit_string(c, v) end
    if kind == "integer" or kind == "number" then
        return not c.has_numeric or visit_number(c, v)
    end
    if kind == "object" then return not c.has_object or visit_object(c, v) end
    if kind == "array" then return not c.has_array or visit_array(c, v) end
    if kind == "empty" then
        local types = c.types
        local ok = true
        if c.has_object and (not types or types.object) then ok = visit_object(c, v) end
        if c.has_array and (not types or types.array) then ok = visit_array(c, v) and ok end
        return ok
    end
    return true
end

local function type_matches(types, kind)
    if types[kind] then return true end
    if kind == "integer" then return types.number == true end
    if kind == "empty" then return types.object == true or types.array == true end
    return false
end

-- const, enum, oneOf, anyOf: rare, so one flag (c.has_choices) keeps them off the common path.
local function visit_choices(c, v)
    if c.has_const and not deep_equal(v, c.const) then
        fail_expected(c, "not_const", v)
        return false, true
    end
    if c.enum_set and not enum_contains(c, v) then
        fail_expected(c, "not_in_enum", v)
        return false, true
    end
    local ok = true
    if c.one_of then
        local matches = count_matches(c.one_of, v)
        if matches ~= 1 then
            fail_branches("one_of", c.one_of, "exactly one", matches)
            ok = false
        end
    end
    if c.any_of and count_matches(c.any_of, v) == 0 then
        fail_branches("any_of", c.any_of, "at least one", 0)
        ok = false
    end
    return ok, false
end

visit = function(c, v)
    local kind
    if type(v) == "string" then
        kind = "string" -- the common case, without a call
    else
        kind = kind_of(v)
        if kind == "missing" then
            fail_required(c)
            return false
        end
    end
    local types = c.types
    if (types and not types[kind] and not type_matches(types, kind)) or kind == "unsupported" or kind == "nonfinite" then
        fail_type(c, v, kind)
        return false
    end
    local ok = true
    if c.has_choices then
        local final
        ok, final = visit_choices(c, v)
        if final then return false end -- not an allowed value: its other checks would only add noise
    end
    if kind == "string" then return visit_string(c, v) and ok end
    return visit_by_kind(c, v, kind) and ok
end

-- Runs one validation with fresh state; returns ok, errors (errors is nil when ok).
local function run_validation(c, value, where)
    errors, silent, depth, root = nil, 0, 0, where or ""
    local ok = visit(c, value)
    local found = errors
    errors = nil
    for i = depth, 1, -1 do path[i] = nil end
    depth = 0
    if ok and found == nil then return true, nil end
    return false, found
end

---------------------------------------------------------------------------------------------------
-- Checking and compiling declarations. A pass compiles one declaration tree, collecting every
-- problem; nothing is cached unless the whole tree is sound.

local compiled = setmetatable({}, { __mode = "k" })
local compiled_params = setmetatable({}, { __mode = "k" })

local keyword_family = {
    minimum = "numeric", maximum = "numeric", exclusiveMinimum = "numeric", exclusiveMaximum = "numeric",
    minLength = "string", maxLength = "string", pattern = "string", format = "string",
    properties = "object", required = "object", additionalProperties = "object",
    minProperties = "object", maxProperties = "object",
    items = "array", minItems = "array", maxItems = "array", uniqueItems = "array",
}
local family_types = {
    numeric = { integer = true, number = true }, string = { string = true },
    object = { object = true }, array = { array = true },
}
local family_nouns = { numeric = "numbers", string = "strings", object = "objects", array = "arrays" }

local known_keywords = {
    type = true, enum = true, const = true, oneOf = true, anyOf = true,
    default = true, description = true, title = true, example = true, examples = true,
    deprecated = true, readOnly = true, writeOnly = true,
}
for keyword in pairs(keyword_family) do known_keywords[keyword] = true end

local unsupported_hints = {
    ["$ref"] = "schemas are Lua tables: share the table, and register it with schema.component to get a $ref in OpenAPI",
    nullable = 'OpenAPI 3.1 has no "nullable": add "null" to type, e.g. type = {"string", "null"}',
    allOf = "allOf is not supported: merge the schemas into one table",
    ["not"] = "not is not supported",
    multipleOf = "multipleOf is not supported",
    patternProperties = "patternProperties is not supported: use additionalProperties with a schema",
    ["if"] = "if/then/else is not supported",
    prefixItems = "tuple validation (prefixItems) is not supported",
}

local type_names = { string = true, integer = true, number = true, boolean = true, object = true, array = true, null = true }
local type_aliases = {
    int = "integer", bool = "boolean", float = "number", double = "number", str = "string", text = "string",
    list = "array", table = "object", map = "object", dict = "object", ["nil"] = "null",
}

local function edit_distance(a, b)
    local previous = {}
    for j = 0, #b do previous[j] = j end
    for i = 1, #a do
        local current = { [0] = i }
        for j = 1, #b do
            local cost = byte(a, i) == byte(b, j) and 0 or 1
            current[j] = math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
        end
        previous = current
    end
    return previous[#b]
end

local function suggestion(word, candidates)
    local best, best_distance = nil, 3
    local limit = math.min(2, #word // 2) -- "b" is not a typo of "a"
    for candidate in pairs(candidates) do
        local distance = edit_distance(lower(word), lower(candidate))
        if distance <= limit and (distance < best_distance or (distance == best_distance and candidate < best)) then
            best, best_distance = candidate, distance
        end
    end
    return best and (' (did you mean "' .. best .. '"?)') or ""
end

local function problem(pass, loc, message)
    pass.problems[#pass.problems + 1] = loc .. ": " .. message
end

local function is_sequence(t)
    if type(t) ~= "table" then return false end
    local n = #t
    for key in pairs(t) do
        if math_type(key) ~= "integer" or key < 1 or key > n then return false end
    end
    return true
end

local function sorted_keys(t)
    local keys = {}
    for key in pairs(t) do keys[#keys + 1] = key end
    sort(keys, key_less)
    return keys
end

local family_keywords = sorted_keys(keyword_family)

local function is_count(v)
    return math_type(v) == "integer" and v >= 0 or (math_type(v) == "float" and v >= 0 and v == floor(v))
end

local function skip_set(p, i) -- i is at '['; returns the index after ']', mirroring lstrlib's classEnd
    local n = #p
    local j = i + 1
    if sub(p, j, j) == "^" then j = j + 1 end
    repeat
        if j > n then return nil end
        local ch = sub(p, j, j)
        j = j + 1
        if ch == "%" then
            if j > n then return nil end
            j = j + 1
        end
    until sub(p, j, j) == "]"
    return j + 1
end

-- Lua only parses the part of a pattern it reaches, so a bad pattern could hide until some
-- request reaches it; walk the whole syntax here instead.
local function pattern_problem(p)
    local i, n = 1, #p
    local open, closed, count = {}, {}, 0
    while i <= n do
        local ch = sub(p, i, i)
        if ch == "%" then
            local nx = sub(p, i + 1, i + 1)
            if nx == "" then return "ends with '%'" end
            if nx == "b" then
                if i + 3 > n then return "missing arguments to %b" end
                i = i + 4
            elseif nx == "f" then
                if sub(p, i + 2, i + 2) ~= "[" then return "missing '[' after %f" end
                i = skip_set(p, i + 2)
                if not i then return "missing ']'" end
            elseif find(nx, "%d") then
                if not closed[tonumber(nx)] then return "invalid capture reference %" .. nx end
                i = i + 2
            else
                i = i + 2
            end
        elseif ch == "[" then
            i = skip_set(p, i)
            if not i then return "missing ']'" end
        elseif ch == "(" then
            count = count + 1
            open[#open + 1] = count
            i = i + 1
        elseif ch == ")" then
            if #open == 0 then return "unmatched ')'" end
            closed[open[#open]] = true
            open[#open] = nil
            i = i + 1
        else
            i = i + 1
        end
    end
    if #open > 0 then return "unfinished capture" end
    local ok, err = pcall(find, "", p)
    if not ok then return tostring(err) end
    return nil
end

local compile_node -- forward declaration

local function compile_types(c, s, loc, pass)
    local declared = s.type
    if declared == nil then return end
    local list = type(declared) == "string" and { declared } or declared
    if not is_sequence(list) or #list == 0 then
        return problem(pass, loc, "type must be a type name or a list of type names")
    end
    local set = {}
    for _, name in ipairs(list) do
        if not type_names[name] then
            local alias = type_aliases[name]
            problem(pass, loc, 'unknown type "' .. tostring(name) .. '"' ..
                (alias and (' (did you mean "' .. alias .. '"?)') or suggestion(tostring(name), type_names)))
        elseif set[name] then
            problem(pass, loc, 'type lists "' .. name .. '" twice')
        end
        set[name] = true
    end
    c.types = set
end

local function compile_enum(c, s, loc, pass)
    if s.const ~= nil then
        c.has_const, c.const = true, s.const
    end
    if s.enum == nil then return end
    if not is_sequence(s.enum) or #s.enum == 0 then
        return problem(pass, loc, "enum must be a non-empty list of values")
    end
    local set, tables = {}, {}
    for _, value in ipairs(s.enum) do
        if type(value) == "table" and value ~= null then
            tables[#tables + 1] = value
        elseif value ~= value then
            problem(pass, loc, "enum cannot contain NaN")
        else
            set[value] = true
        end
        if c.types and not type_matches(c.types, kind_of(value)) then
            problem(pass, loc, "enum value " .. repr(value) .. " does not match the declared type")
        end
    end
    c.enum_set, c.enum_tables = set, tables
end

local function compile_bound(c, s, loc, pass, keyword, field, check, expected)
    local value = s[keyword]
    if value == nil then return end
    if not check(value) then
        local hint = (type(value) == "boolean" and keyword:find("^exclusive"))
            and " (in OpenAPI 3.1 it is the bound itself, e.g. exclusiveMinimum = 0)" or ""
        return problem(pass, loc, keyword .. " must be " .. expected .. ", got " .. repr(value) .. hint)
    end
    c[field] = value
end

local function is_finite_number(v)
    return type(v) == "number" and v == v and v ~= huge and v ~= -huge
end

local function compile_bounds(c, s, loc, pass)
    compile_bound(c, s, loc, pass, "minimum", "minimum", is_finite_number, "a number")
    compile_bound(c, s, loc, pass, "maximum", "maximum", is_finite_number, "a number")
    compile_bound(c, s, loc, pass, "exclusiveMinimum", "exclusive_minimum", is_finite_number, "a number")
    compile_bound(c, s, loc, pass, "exclusiveMaximum", "exclusive_maximum", is_finite_number, "a number")
    compile_bound(c, s, loc, pass, "minLength", "min_length", is_count, "a non-negative integer")
    compile_bound(c, s, loc, pass, "maxLength", "max_length", is_count, "a non-negative integer")
    compile_bound(c, s, loc, pass, "minItems", "min_items", is_count, "a non-negative integer")
    compile_bound(c, s, loc, pass, "maxItems", "max_items", is_count, "a non-negative integer")
    compile_bound(c, s, loc, pass, "minProperties", "min_properties", is_count, "a non-negative integer")
    compile_bound(c, s, loc, pass, "maxProperties", "max_properties", is_count, "a non-negative integer")
    local pairs_to_order = {
        { "minimum", "maximum" }, { "minLength", "maxLength" }, { "minItems", "maxItems" },
        { "minProperties", "maxProperties" }, { "exclusiveMinimum", "exclusiveMaximum" },
    }
    for _, pair in ipairs(pairs_to_order) do
        local low, high = s[pair[1]], s[pair[2]]
        if type(low) == "number" and type(high) == "number" and low > high then
            problem(pass, loc, pair[1] .. " (" .. repr(low) .. ") is greater than " .. pair[2] .. " (" .. repr(high) .. ")")
        end
    end
    c.has_numeric = (c.minimum or c.maximum or c.exclusive_minimum or c.exclusive_maximum) ~= nil
end

local function compile_string_rules(c, s, loc, pass)
    if s.pattern ~= nil then
        if type(s.pattern) ~= "string" then
            problem(pass, loc, "pattern must be a string (a Lua pattern)")
        else
            local bad = pattern_problem(s.pattern)
            if bad then problem(pass, loc, "pattern is not a valid Lua pattern: " .. bad) end
            c.pattern = s.pattern
        end
    end
    if s.format ~= nil then
        if not formats[s.format] then
            local names = {}
            for name in pairs(formats) do names[#names + 1] = name end
            sort(names)
            problem(pass, loc, 'unknown format "' .. tostring(s.format) .. '"' .. suggestion(tostring(s.format), formats) ..
                "; known formats: " .. concat(names, ", "))
        else
            c.format, c.format_check = s.format, formats[s.format]
        end
    end
end

local function compile_required(c, s, loc, pass, param_mode)
    local required = s.required
    if required == nil then return end
    if param_mode and type(required) == "boolean" then
        c.param_required = required
        return
    end
    if not is_sequence(required) then
        local hint = type(required) == "boolean" and " (required = true is only for path and query parameters)" or ""
        return problem(pass, loc, "required must be a list of property names" .. hint)
    end
    local set, undeclared = {}, {}
    for _, name in ipairs(required) do
        if type(name) ~= "string" then
            problem(pass, loc, "required must list property names (strings), got " .. repr(name))
        elseif set[name] then
            problem(pass, loc, 'required lists "' .. name .. '" twice')
        else
            set[name] = true
            local declared = type(s.properties) == "table" and s.properties[name] ~= nil
            if not declared then
                if s.additionalProperties == false then
                    problem(pass, loc, 'required lists "' .. name .. '", which is not in properties and additionalProperties is false' ..
                        suggestion(name, type(s.properties) == "table" and s.properties or {}))
                end
                undeclared[#undeclared + 1] = name
            end
        end
    end
    c.required_set = set
    if #undeclared > 0 then c.required_undeclared = undeclared end
end

local function compile_object_rules(c, s, loc, pass, param_mode)
    local props = s.properties
    if props ~= nil then
        if type(props) ~= "table" then
            problem(pass, loc, "properties must be a table of name = schema")
        else
            local names, nodes = {}, {}
            for _, name in ipairs(sorted_keys(props)) do
                if type(name) ~= "string" then
                    problem(pass, loc, "properties must be keyed by name, got key " .. repr(name))
                else
                    names[#names + 1] = name
                    nodes[name] = compile_node(props[name], loc .. ".properties." .. name, pass, false)
                end
            end
            c.properties, c.property_names = nodes, names
        end
    end
    local additional = s.additionalProperties
    if additional == false then
        c.additional = false
    elseif type(additional) == "table" then
        c.additional = compile_node(additional, loc .. ".additionalProperties", pass, false)
    elseif additional ~= nil and additional ~= true then
        problem(pass, loc, "additionalProperties must be a boolean or a schema")
    end
    compile_required(c, s, loc, pass, param_mode)
    c.has_object = (c.properties or c.required_set or c.min_properties or c.max_properties) ~= nil or c.additional ~= nil
end

local function compile_array_rules(c, s, loc, pass)
    local items = s.items
    if items ~= nil then
        if type(items) == "table" and items[1] ~= nil then
            problem(pass, loc, "items must be one schema (tuple form is not supported)")
        else
            c.items = compile_node(items, loc .. ".items", pass, false)
        end
    end
    if s.uniqueItems ~= nil and type(s.uniqueItems) ~= "boolean" then
        problem(pass, loc, "uniqueItems must be a boolean")
    end
    c.unique_items = s.uniqueItems == true
    c.has_array = (c.items or c.min_items or c.max_items) ~= nil or c.unique_items
end

local function compile_branches(c, s, loc, pass, keyword, field)
    local list = s[keyword]
    if list == nil then return end
    if not is_sequence(list) or #list == 0 then
        return problem(pass, loc, keyword .. " must be a non-empty list of schemas")
    end
    local nodes = {}
    for i, branch in ipairs(list) do
        nodes[i] = compile_node(branch, loc .. "." .. keyword .. "[" .. i .. "]", pass, false)
    end
    c[field] = nodes
end

local doc_keyword_types = {
    description = "string", title = "string", deprecated = "boolean", readOnly = "boolean", writeOnly = "boolean",
}

local function check_keywords(s, loc, pass, param_mode)
    for _, key in ipairs(sorted_keys(s)) do
        local value = s[key]
        if type(key) ~= "string" then
            problem(pass, loc, "unexpected list entry [" .. tostring(key) .. "] (a schema is a table of keywords)")
        elseif unsupported_hints[key] then
            problem(pass, loc, unsupported_hints[key])
        elseif not known_keywords[key] and sub(key, 1, 2) ~= "x-" then
            problem(pass, loc, 'unknown keyword "' .. key .. '"' .. suggestion(key, known_keywords))
        elseif doc_keyword_types[key] and type(value) ~= doc_keyword_types[key] then
            problem(pass, loc, key .. " must be a " .. doc_keyword_types[key])
        elseif key == "examples" and not is_sequence(value) then
            problem(pass, loc, "examples must be a list of values")
        end
    end
    local types = s.type
    if types == nil then return end
    local set, valid = {}, false
    for _, name in ipairs(type(types) == "table" and types or { types }) do
        set[name] = true
        valid = valid or type_names[name] ~= nil
    end
    if not valid then return end -- the unknown type is reported already
    for _, keyword in ipairs(family_keywords) do
        local family = keyword_family[keyword]
        local applies = false
        for name in pairs(family_types[family]) do
            if set[name] then applies = true end
        end
        local param_flag = param_mode and keyword == "required" and type(s.required) == "boolean"
        if s[keyword] ~= nil and not applies and not param_flag then
            local declared = {}
            for i, name in ipairs(type(types) == "table" and types or { types }) do declared[i] = tostring(name) end
            problem(pass, loc, keyword .. " applies to " .. family_nouns[family] .. ", but type is " .. concat(declared, "|"))
        end
    end
end

-- Declared values (default, example, examples) must themselves be valid: checked after the pass.
local function queue_value_checks(c, s, loc, pass)
    local checks = pass.value_checks
    if s.default ~= nil then checks[#checks + 1] = { c, s.default, loc, "default" } end
    if s.example ~= nil then checks[#checks + 1] = { c, s.example, loc, "example" } end
    if is_sequence(s.examples) then
        for i, example in ipairs(s.examples) do checks[#checks + 1] = { c, example, loc, "examples[" .. i .. "]" } end
    end
end

local bad_node = { s = {} } -- stands in for a non-table schema so compilation can go on

compile_node = function(s, loc, pass, param_mode)
    if type(s) ~= "table" or s == null then
        problem(pass, loc, "a schema must be a table, got " .. type(s))
        return bad_node
    end
    local c = compiled[s] or pass.nodes[s]
    if c then return c end
    c = { s = s }
    pass.nodes[s] = c -- before the children: shared and recursive schemas compile once
    check_keywords(s, loc, pass, param_mode)
    compile_types(c, s, loc, pass)
    compile_enum(c, s, loc, pass)
    compile_bounds(c, s, loc, pass)
    compile_string_rules(c, s, loc, pass)
    compile_object_rules(c, s, loc, pass, param_mode)
    compile_array_rules(c, s, loc, pass)
    compile_branches(c, s, loc, pass, "oneOf", "one_of")
    compile_branches(c, s, loc, pass, "anyOf", "any_of")
    c.has_choices = c.has_const or c.enum_set ~= nil or c.one_of ~= nil or c.any_of ~= nil
    queue_value_checks(c, s, loc, pass)
    return c
end

-- error() levels count frames; 0 means "no position" and must stay 0 as it is passed down.
local function deeper(level)
    return level == 0 and 0 or level + 1
end

local function new_pass()
    return { nodes = {}, problems = {}, value_checks = {} }
end

local function finish_pass(pass, level)
    if #pass.problems == 0 then
        for _, check in ipairs(pass.value_checks) do
            local ok, found = run_validation(check[1], check[2], "")
            if not ok then
                local first = found[1]
                problem(pass, check[3], check[4] .. " does not match the schema: " ..
                    (first.field ~= "" and (first.field .. " ") or "") .. first.message)
            end
        end
    end
    if #pass.problems > 0 then
        error("invalid schema at " .. concat(pass.problems, "\ninvalid schema at "), deeper(level))
    end
    for s, c in pairs(pass.nodes) do compiled[s] = c end
end

local function compile(s, where, level)
    local c = compiled[s]
    if c then return c end
    local pass = new_pass()
    -- The top level may be a parameter (the router checks them one by one), so it may carry
    -- required = true; nested schemas may not: there it would be a body field's silent no-op.
    c = compile_node(s, where or "schema", pass, true)
    finish_pass(pass, deeper(level))
    return c
end

-- Raises a descriptive error if `s` is not a valid schema; returns `s`. `where` labels the error
-- (e.g. "POST /api/v1/customers body"); `level` is passed on to error (default 2: the caller).
function schema.check(s, where, level)
    compile(s, where, level or 2)
    return s
end

local scalar_param_types = { string = true, integer = true, number = true, boolean = true }

local function check_param_types(c, loc, pass)
    local types = c.types
    if not types then return problem(pass, loc, "a parameter must declare its type") end
    for name in pairs(types) do
        if name == "array" then
            local items = c.items and c.items.types
            if not items then
                problem(pass, loc, "an array parameter must declare items = { type = ... }")
            else
                for item_type in pairs(items) do
                    if not scalar_param_types[item_type] then
                        problem(pass, loc, "array parameter items must be strings, integers, numbers or booleans")
                    end
                end
            end
        elseif not scalar_param_types[name] then
            problem(pass, loc, 'parameters cannot be of type "' .. name .. '"')
        end
    end
end

local function compile_params(params, where, level)
    local entry = compiled_params[params]
    if entry then return entry end
    where = where or "params"
    local pass = new_pass()
    local names, nodes = {}, {}
    if type(params) ~= "table" then
        problem(pass, where, "parameters must be a table of name = schema")
    else
        for _, name in ipairs(sorted_keys(params)) do
            local s = params[name]
            local loc = where .. "." .. tostring(name)
            if type(name) ~= "string" then
                problem(pass, where, "parameters must be keyed by name, got key " .. repr(name))
            else
                local c = compile_node(s, loc, pass, true)
                if c ~= bad_node then check_param_types(c, loc, pass) end
                names[#names + 1] = name
                nodes[name] = c
            end
        end
    end
    sort(names)
    finish_pass(pass, deeper(level))
    entry = { names = names, nodes = nodes }
    compiled_params[params] = entry
    return entry
end

-- Like schema.check for a table of path or query parameters (name = schema).
function schema.check_params(params, where, level)
    compile_params(params, where, level or 2)
    return params
end

---------------------------------------------------------------------------------------------------
-- Public validation.

-- Returns true, nil or false, errors. `where` prefixes every field ("body" -> "body.email").
function schema.validate(s, value, where)
    local c = compiled[s] or compile(s, where, 2)
    return run_validation(c, value, where)
end

-- "body.email: must be ...; query.limit: ..." for logs and a problem's detail.
function schema.format_errors(list)
    local lines = {}
    for i, err in ipairs(list or {}) do
        lines[i] = (err.field ~= "" and (err.field .. ": ") or "") .. err.message
    end
    return concat(lines, "; ")
end

---------------------------------------------------------------------------------------------------
-- Path and query parameters arrive as strings (a list of strings for a repeated query key).

local function to_integer(text)
    if not find(text, "^[+-]?%d+$") then return nil end
    return tointeger(tonumber(text))
end

local function to_number(text)
    if not find(text, "^[+-]?%.?%d[%d%.]*[eE]?[+-]?%d*$") then return nil end
    local n = tonumber(text)
    if n == nil or n ~= n or n == huge or n == -huge then return nil end
    return n
end

local function to_boolean(text)
    if text == "true" or text == "1" then return true end
    if text == "false" or text == "0" then return false end
    return nil
end

-- The most specific declared type that accepts the text wins ("5" is an integer before a string).
local function coerce_scalar(c, text)
    local types = c.types
    if types.integer then
        local v = to_integer(text)
        if v ~= nil then return v end
    end
    if types.number then
        local v = to_number(text)
        if v ~= nil then return v end
    end
    if types.boolean then
        local v = to_boolean(text)
        if v ~= nil then return v end
    end
    if types.string then return text end
    return nil
end

local function append_split(list, text)
    if type(text) ~= "string" then text = tostring(text) end
    if text == "" then return end
    local start = 1
    while true do
        local comma = find(text, ",", start, true)
        if not comma then
            list[#list + 1] = sub(text, start)
            return
        end
        list[#list + 1] = sub(text, start, comma - 1)
        start = comma + 1
    end
end

local function coerce_array(c, raw)
    local texts = {}
    if type(raw) == "table" then
        for i = 1, #raw do append_split(texts, raw[i]) end
    else
        append_split(texts, raw)
    end
    local items = c.items
    local values = mark_array({})
    local ok = true
    for i = 1, #texts do
        push(i)
        local v = coerce_scalar(items, texts[i])
        if v == nil then
            fail_expected(items, "invalid_type", texts[i])
            ok = false
        else
            values[i] = v
            if not visit(items, v) then ok = false end
        end
        pop()
    end
    if ok and not check_array_shape(c, values) then ok = false end
    return values, ok
end

local function coerce_one(c, raw)
    if c.types.array then return coerce_array(c, raw) end
    if type(raw) == "table" then
        if #raw ~= 1 then
            if silent == 0 then add_error("repeated", "must be given once, got " .. #raw .. " values") end
            return nil, false
        end
        raw = raw[1]
    end
    local v = coerce_scalar(c, tostring(raw))
    if v == nil then
        fail_expected(c, "invalid_type", tostring(raw))
        return nil, false
    end
    return v, visit(c, v)
end

local function copy_value(v)
    if type(v) ~= "table" or v == null then return v end
    local copy = setmetatable({}, getmetatable(v))
    for key, value in pairs(v) do copy[key] = copy_value(value) end
    return copy
end

-- Returns values, nil or nil, errors. Declared parameters only (unknown query keys are ignored);
-- defaults fill absent ones; with where == "path" every declared parameter is required, elsewhere
-- only those declared with required = true.
function schema.coerce_params(params, raw, where)
    local entry = compiled_params[params] or compile_params(params, where, 2)
    errors, silent, depth, root = nil, 0, 0, where or ""
    raw = raw or {}
    local values = {}
    local all_required = where == "path"
    local names, nodes = entry.names, entry.nodes
    for i = 1, #names do
        local name = names[i]
        local c = nodes[name]
        local text = raw[name]
        push(name)
        if text == nil then
            if c.s.default ~= nil then
                values[name] = copy_value(c.s.default)
            elseif all_required or c.param_required then
                fail_required(c)
            end
        else
            local value, ok = coerce_one(c, text)
            if ok then values[name] = value end
        end
        pop()
    end
    local found = errors
    errors = nil
    if found then return nil, found end
    return values, nil
end

---------------------------------------------------------------------------------------------------
-- Named schemas: OpenAPI turns them into #/components/schemas/<name> references.

local component_names = setmetatable({}, { __mode = "k" })
local component_schemas = {}

-- Registers `s` under `name` (checked first); returns `s`, so a declaration can be one expression.
function schema.component(name, s)
    if type(name) ~= "string" or not find(name, "^[%w%.%-_]+$") then
        error("schema.component: name must match [A-Za-z0-9._-]+, got " .. repr(name), 2)
    end
    compile(s, name, 2)
    local existing = component_schemas[name]
    if existing and existing ~= s then
        error("schema.component: '" .. name .. "' is already registered for another schema", 2)
    end
    if component_names[s] and component_names[s] ~= name then
        error("schema.component: this schema is already registered as '" .. component_names[s] .. "'", 2)
    end
    component_schemas[name] = s
    component_names[s] = name
    return s
end

function schema.component_name(s)
    return component_names[s]
end

function schema.component_schema(name)
    return component_schemas[name]
end

return schema
