-- Per-tenant rules at run time: which version of each kind is active (rule_state), its source
-- (rule_versions), one sandbox per tenant per loop thread holding the loaded versions (cached,
-- evicted when idle), and the fallback when the active version fails at run time: the call is
-- answered by the last good version (or the shipped default), the failure is counted on the failing
-- version's row (visible to the tenant) and logged, and the request carries on.
-- A publish is seen at once by every loop thread of the server that took it, and by other servers
-- within FRESH_SECONDS.
local db = require "db"
local json = require "json"
local pulse = require "pulse"
local rules = require "rules"

local store = {}

store.FRESH_SECONDS = 2   -- how long a cached view of rule_state is trusted
store.IDLE_SECONDS = 300  -- a tenant's sandbox unused this long is closed
store.FLUSH_SECONDS = 1   -- failure counts are written at most this often per version

local cache = {}          -- tenant -> entry
local last_sweep = 0

local function close_entry(entry)
    if entry.box then entry.box:close() end
end

local function sweep(now)
    if now - last_sweep < 30 then return end
    last_sweep = now
    for tenant, entry in pairs(cache) do
        if now - entry.used_at > store.IDLE_SECONDS then
            close_entry(entry)
            cache[tenant] = nil
        end
    end
end

-- Drops a tenant's cached rules after a publish or rollback; the other loop threads of this
-- process look at rule_state again on their next call (pulse.changes), other servers within
-- FRESH_SECONDS.
function store.forget(tenant)
    pulse.changes(true)
    local entry = cache[tenant]
    if entry then
        close_entry(entry)
        cache[tenant] = nil
    end
end

function store.forget_all()
    for tenant in pairs(cache) do store.forget(tenant) end
end

-- rule_state rows of a tenant -> { kind = {active = n|nil, fallback = n|nil} }
local function read_state(tenant)
    local rows, err = db.query(
        "SELECT kind, active_version, fallback_version FROM rule_state WHERE tenant_id = $1", tenant)
    if not rows then return nil, err end
    local state = {}
    for _, row in ipairs(rows) do
        state[row.kind] = { active = row.active_version ~= json.null and row.active_version or nil,
            fallback = row.fallback_version ~= json.null and row.fallback_version or nil }
    end
    return state
end

local function same_state(a, b)
    for _, kind in ipairs(rules.KINDS) do
        local x, y = a[kind] or {}, b[kind] or {}
        if x.active ~= y.active or x.fallback ~= y.fallback then return false end
    end
    return true
end

local function entry_for(tenant)
    local now = pulse.now()
    sweep(now)
    local entry = cache[tenant]
    local changes = pulse.changes()
    if entry and entry.changes == changes and now - entry.checked_at < store.FRESH_SECONDS then
        entry.used_at = now
        return entry
    end
    local state, err = read_state(tenant)
    if not state then
        if entry then return entry end -- keep serving the rules we know when the database hiccups
        return nil, err
    end
    if entry and same_state(entry.state, state) then
        entry.checked_at, entry.used_at, entry.changes = now, now, changes
        return entry
    end
    if entry then close_entry(entry) end
    entry = { tenant = tenant, state = state, box = rules.new_box(), loaded = {}, failures = {},
        checked_at = now, used_at = now, changes = changes }
    cache[tenant] = entry
    return entry
end

local function source_of(tenant, kind, version)
    if version == nil then return rules.default_source(kind) end
    local rows, err = db.query(
        "SELECT source FROM rule_versions WHERE tenant_id = $1 AND kind = $2 AND version = $3", tenant, kind, version)
    if not rows then return nil, err end
    if not rows[1] then return nil, ("%s version %d does not exist"):format(kind, version) end
    return rows[1].source, ("@tenant:%s v%d"):format(kind, version)
end

-- The loaded module of (kind, version) in the tenant's box: { module, decl, version } | nil, err
local function loaded(entry, kind, version)
    local module = kind .. "@" .. tostring(version or 0)
    local l = entry.loaded[module]
    if l then
        if l.broken then return nil, l.broken end
        return l
    end
    local source, chunkname = source_of(entry.tenant, kind, version)
    if not source then return nil, { message = chunkname } end
    local decl, errors = rules.load(entry.box, module, kind, source, chunkname)
    if not decl then
        local e = errors[1]
        entry.loaded[module] = { broken = e }
        return nil, e
    end
    l = { module = module, decl = decl, version = version }
    if kind == "segments" then l.table = nil end
    entry.loaded[module] = l
    return l
end

local function record_failure(entry, kind, version, e)
    local key = kind .. "@" .. tostring(version)
    local f = entry.failures[key]
    if not f then
        f = { pending = 0, flushed_at = 0 }
        entry.failures[key] = f
    end
    f.pending = f.pending + 1
    f.last_error = e.message or tostring(e)
    pulse.log("warn", ("rule %s v%s of tenant %s failed: %s"):format(kind, tostring(version), entry.tenant, f.last_error))
    local now = pulse.now()
    if version == nil or now - f.flushed_at < store.FLUSH_SECONDS then return end
    local n = f.pending
    f.pending, f.flushed_at = 0, now
    db.query([[UPDATE rule_versions SET failures = failures + $4, last_error = $5, last_failure_at = now()
               WHERE tenant_id = $1 AND kind = $2 AND version = $3]], entry.tenant, kind, version, n,
        f.last_error:sub(1, 1000))
end

-- The versions to try, in order: active, fallback (last good), shipped default.
local function chain(entry, kind)
    local s = entry.state[kind] or {}
    local list = {}
    if s.active then
        list[#list + 1] = s.active
        if s.fallback and s.fallback ~= s.active then list[#list + 1] = s.fallback end
    end
    list[#list + 1] = false -- the default
    return list
end

-- store.rule(tenant, kind) -> the loaded rule that answers now ({module, decl, version}), the box,
-- and the entry; falls back past versions that do not load.
function store.rule(tenant, kind)
    local entry, err = entry_for(tenant)
    if not entry then return nil, err end
    for _, v in ipairs(chain(entry, kind)) do
        local version = v or nil
        local l, e = loaded(entry, kind, version)
        if l then return l, entry end
        if version then record_failure(entry, kind, version, e) end
    end
    return nil, "the shipped " .. kind .. " rule does not load"
end

-- store.call(tenant, kind, fn, input, seed) -> output, info { version, fell_back, error } | nil, err
-- An output of nil is a valid answer for some kinds (no offer): check err to tell a failure.
function store.call(tenant, kind, fn, input, seed)
    local entry, err = entry_for(tenant)
    if not entry then return nil, err end
    local first_error
    for _, v in ipairs(chain(entry, kind)) do
        local version = v or nil
        local l, e = loaded(entry, kind, version)
        if l then
            local out
            out, e = rules.call(entry.box, l.module, kind, fn, l.decl, input, seed)
            if out ~= nil or not e then
                return out, { version = version or 0, fell_back = first_error ~= nil, error = first_error }
            end
        end
        first_error = first_error or e
        if version then record_failure(entry, kind, version, e) end
    end
    return nil, "every version of the " .. kind .. " rule failed: " .. tostring(first_error and first_error.message)
end

-- store.segment_table(tenant) -> the lookup tables of the answering segments rule (rules.segment_table)
-- with its version; a failing version falls back like a call.
function store.segment_table(tenant)
    local entry, err = entry_for(tenant)
    if not entry then return nil, err end
    local first_error
    for _, v in ipairs(chain(entry, "segments")) do
        local version = v or nil
        local l, e = loaded(entry, "segments", version)
        if l then
            if l.table then return l.table end
            local t
            t, e = rules.segment_table(entry.box, l.module, l.decl)
            if t then
                t.version = version or 0
                t.fell_back = first_error ~= nil
                l.table = t
                return t
            end
        end
        first_error = first_error or e
        if version then record_failure(entry, "segments", version, e) end
    end
    return nil, "every version of the segments rule failed: " .. tostring(first_error and first_error.message)
end

return store
