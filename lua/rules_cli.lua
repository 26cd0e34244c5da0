-- `pulse rules check FILE` and `pulse rules test FILE --data customers.csv`: the rule author's
-- tools, usable in a tenant's own CI. Exit codes: 0 valid (and, for test, every row evaluated),
-- 1 the rule is invalid or failed on a row, 2 usage or unreadable input.
--
-- test's --data file is a CSV with a header; what its columns mean depends on the kind:
--   segments      customer_id, r, f, m [, churn_band | churn_probability]   (scores 1-5), or
--                 customer_id, recency_days, frequency, monetary [, churn_probability]  (scored here
--                 into quintiles the way Pulse does: equal values get equal scores)
--   offers        customer_id, segment [, churn_probability, risk_band, value, monetary, frequency,
--                 recency_days, behaviour_score, categories ("a|b"), offers_sent, offers_accepted,
--                 offers_declined, days_since_last_offer]
--   roi           customer_id, monetary, churn_probability
--   lead_scoring  lead_id, then one column per action type (its count) and any of company_size, job_title
--   triggers      type, from, to, previous, current, signal, days, schedule (one event per row)
local rules = require "rules"

local cli = {}

local function printf(fmt, ...) io.stdout:write(fmt:format(...)) end
local function eprintf(fmt, ...) io.stderr:write(fmt:format(...)) end

local USAGE = [[
Usage: pulse rules check FILE [--kind KIND]
       pulse rules test FILE --data DATA.csv [--kind KIND] [--out RESULT.csv] [--quiet]

  check  compile the rule, check what it declares, run it on Pulse's sample inputs
  test   run it on every row of DATA.csv; print the outcome per row and the distribution
  KIND   segments, offers, triggers, roi or lead_scoring (default: from the file name)
Exit codes: 0 ok, 1 the rule is invalid or failed, 2 usage or unreadable input.
]]

local function read_file(path)
    local f, err = io.open(path, "rb")
    if not f then return nil, err end
    local s = f:read("a")
    f:close()
    return s
end

local function kind_of(path, given)
    if given then return given end
    local base = path:match("([^/]+)%.lua$")
    return base
end

-- One CSV line -> fields (quotes with doubled "" inside; no newlines inside fields).
local function split_csv(line, sep)
    local out, i, n = {}, 1, #line
    while i <= n + 1 do
        if line:sub(i, i) == '"' then
            local buf, j = {}, i + 1
            while true do
                local q = line:find('"', j, true)
                if not q then return nil, "unterminated quote" end
                buf[#buf + 1] = line:sub(j, q - 1)
                if line:sub(q + 1, q + 1) == '"' then
                    buf[#buf + 1] = '"'
                    j = q + 2
                else
                    i = q + 1
                    break
                end
            end
            out[#out + 1] = table.concat(buf)
            if i <= n and line:sub(i, i) ~= sep then return nil, "text after a closing quote" end
            i = i + 1
        else
            local s = line:find(sep, i, true) or (n + 1)
            out[#out + 1] = line:sub(i, s - 1)
            i = s + 1
        end
    end
    return out
end

-- -> header names, rows (tables keyed by lower-case header) | nil, message
function cli.read_csv(text)
    text = text:gsub("^\239\187\191", "")
    local lines = {}
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
        line = line:gsub("\r$", "")
        if line:match("%S") then lines[#lines + 1] = line end
    end
    if #lines == 0 then return nil, "the file is empty" end
    local first = lines[1]
    local sep = ","
    for _, c in ipairs({ ";", "\t", "|" }) do
        local _, nc = first:gsub(c == "|" and "%|" or c, "")
        local _, ncomma = first:gsub(",", "")
        if nc > ncomma then sep = c end
    end
    local header, err = split_csv(first, sep)
    if not header then return nil, "line 1: " .. err end
    for i, h in ipairs(header) do header[i] = h:lower():gsub("^%s+", ""):gsub("%s+$", "") end
    local rows = {}
    for ln = 2, #lines do
        local fields
        fields, err = split_csv(lines[ln], sep)
        if not fields then return nil, ("line %d: %s"):format(ln, err) end
        if #fields ~= #header then
            return nil, ("line %d: %d fields, the header has %d"):format(ln, #fields, #header)
        end
        local row = { _line = ln }
        for i, h in ipairs(header) do row[h] = fields[i] end
        rows[#rows + 1] = row
    end
    return header, rows
end

local function num(row, name, required)
    local v = row[name]
    if v == nil or v == "" then
        if required then error(("line %d: column %s is empty"):format(row._line, name), 0) end
        return nil
    end
    local n = tonumber(v)
    if not n then error(("line %d: %s = %q is not a number"):format(row._line, name, v), 0) end
    return n
end

local function int(row, name, required)
    local n = num(row, name, required)
    if n and n ~= math.floor(n) then error(("line %d: %s = %s is not a whole number"):format(row._line, name, row[name]), 0) end
    return n and math.tointeger(n)
end

-- Quintile scores 1-5 as Pulse computes them: rank by value (ascending; descending when
-- `reverse`), the score from the rank of the first member of a tie group, so equal values always
-- share a score.
function cli.quintiles(values, reverse)
    local idx = {}
    for i = 1, #values do idx[i] = i end
    table.sort(idx, function(a, b)
        if values[a] ~= values[b] then
            if reverse then return values[a] > values[b] end
            return values[a] < values[b]
        end
        return a < b
    end)
    local scores, n, first = {}, #values, 0
    for pos, i in ipairs(idx) do
        if pos == 1 or values[i] ~= values[idx[pos - 1]] then first = pos - 1 end
        scores[i] = 1 + math.floor(5 * first / n)
    end
    return scores
end

local function segment_inputs(header, rows, bands)
    local has = {}
    for _, h in ipairs(header) do has[h] = true end
    local inputs = {}
    if has.r and has.f and has.m then
        for i, row in ipairs(rows) do
            local c = { r = int(row, "r", true), f = int(row, "f", true), m = int(row, "m", true) }
            for _, k in ipairs({ "r", "f", "m" }) do
                if c[k] < 1 or c[k] > 5 then error(("line %d: %s = %d is not a score from 1 to 5"):format(row._line, k, c[k]), 0) end
            end
            inputs[i] = c
        end
    elseif has.recency_days and has.frequency and has.monetary then
        local rec, freq, mon = {}, {}, {}
        for i, row in ipairs(rows) do
            rec[i], freq[i], mon[i] = num(row, "recency_days", true), num(row, "frequency", true), num(row, "monetary", true)
        end
        local r, f, m = cli.quintiles(rec, true), cli.quintiles(freq), cli.quintiles(mon)
        for i = 1, #rows do inputs[i] = { r = r[i], f = f[i], m = m[i] } end
    else
        error("segments data needs columns r, f, m (scores) or recency_days, frequency, monetary", 0)
    end
    for i, row in ipairs(rows) do
        if row.churn_band and row.churn_band ~= "" then
            inputs[i].churn_band = row.churn_band
        elseif has.churn_probability then
            inputs[i].churn_band = rules.churn_band(num(row, "churn_probability"), bands)
        end
    end
    return inputs
end

local function offer_inputs(rows)
    local inputs = {}
    for i, row in ipairs(rows) do
        local cats = {}
        for c in (row.categories or ""):gmatch("[^|]+") do cats[#cats + 1] = c end
        inputs[i] = {
            segment = row.segment or "Unknown", churn_probability = num(row, "churn_probability"),
            risk_band = row.risk_band ~= "" and row.risk_band or nil, value = num(row, "value"),
            monetary = num(row, "monetary") or 0, frequency = int(row, "frequency") or 0,
            recency_days = int(row, "recency_days") or 0, behaviour_score = num(row, "behaviour_score"),
            categories = cats,
            offers = { sent = int(row, "offers_sent") or 0, accepted = int(row, "offers_accepted") or 0,
                declined = int(row, "offers_declined") or 0, days_since_last = int(row, "days_since_last_offer") },
        }
    end
    return inputs
end

local LEAD_ATTRS = { lead_id = true, company_size = true, job_title = true, _line = true }
local function lead_inputs(header, rows)
    local inputs = {}
    for i, row in ipairs(rows) do
        local actions = {}
        for _, h in ipairs(header) do
            if not LEAD_ATTRS[h] then
                local n = int(row, h)
                if n and n > 0 then actions[#actions + 1] = { type = h, count = n } end
            end
        end
        inputs[i] = { actions = actions, attributes = { company_size = num(row, "company_size"),
            job_title = row.job_title ~= "" and row.job_title or nil } }
    end
    return inputs
end

local function trigger_inputs(rows)
    local inputs = {}
    for i, row in ipairs(rows) do
        inputs[i] = { type = row.type, from = row.from ~= "" and row.from or nil, to = row.to ~= "" and row.to or nil,
            previous = num(row, "previous"), current = num(row, "current"),
            signal = row.signal ~= "" and row.signal or nil, days = int(row, "days"),
            schedule = row.schedule ~= "" and row.schedule or nil, customer = {} }
    end
    return inputs
end

local function report_errors(path, list, stream)
    for _, e in ipairs(list) do
        if e.line then
            stream:write(("%s:%d: %s\n"):format(path, e.line, e.message))
        else
            stream:write(("%s: %s\n"):format(path, e.message))
        end
    end
end

local function load_rule(path, kind)
    if not rules.is_kind(kind) then
        eprintf("pulse rules: unknown kind %q (segments, offers, triggers, roi, lead_scoring): name the file <kind>.lua or pass --kind\n", tostring(kind))
        return nil, 2
    end
    local src, err = read_file(path)
    if not src then
        eprintf("pulse rules: cannot read %s: %s\n", path, err)
        return nil, 2
    end
    return src
end

local function check(path, kind)
    local src, code = load_rule(path, kind)
    if not src then return code end
    local report = rules.validate(kind, src, { chunkname = "@" .. path })
    report_errors(path, report.errors, io.stderr)
    for _, w in ipairs(report.warnings) do io.stderr:write(("%s: warning: %s\n"):format(path, w.message)) end
    if not report.valid then
        printf("%s: invalid %s rule (%d error%s)\n", path, kind, #report.errors, #report.errors == 1 and "" or "s")
        return 1
    end
    printf("%s: valid %s rule (%d sample calls in %.1f ms, peak memory %d KiB)\n", path, kind, report.calls,
        report.milliseconds, (report.memory_peak or 0) // 1024)
    return 0
end

local function csv_cell(v)
    if v == nil then return "" end
    if type(v) == "table" then v = table.concat(v, "|") end
    v = tostring(v)
    if v:find('[,"\n]') then return '"' .. v:gsub('"', '""') .. '"' end
    return v
end

local function test(path, kind, data_path, out_path, quiet)
    local src, code = load_rule(path, kind)
    if not src then return code end
    local text, err = read_file(data_path)
    if not text then
        eprintf("pulse rules: cannot read %s: %s\n", data_path, err)
        return 2
    end
    local header, rows = cli.read_csv(text)
    if not header then
        eprintf("pulse rules: %s: %s\n", data_path, rows)
        return 2
    end
    local box = rules.new_box()
    local decl, errors = rules.load(box, kind, kind, src, "@" .. path)
    if not decl then
        report_errors(path, errors, io.stderr)
        return 1
    end
    local ok, inputs = pcall(function()
        if kind == "segments" then return segment_inputs(header, rows, decl.churn_bands) end
        if kind == "offers" then return offer_inputs(rows) end
        if kind == "lead_scoring" then return lead_inputs(header, rows) end
        if kind == "triggers" then return trigger_inputs(rows) end
        return nil
    end)
    if not ok then
        eprintf("pulse rules: %s: %s\n", data_path, inputs)
        return 2
    end
    local out = out_path and io.open(out_path, "wb")
    if out_path and not out then
        eprintf("pulse rules: cannot write %s\n", out_path)
        return 2
    end
    local failures, counts, started = 0, {}, os.clock()
    local function tally(key) counts[key] = (counts[key] or 0) + 1 end
    local function emit(line)
        if out then out:write(line, "\n") elseif not quiet then io.stdout:write(line, "\n") end
    end

    if kind == "roi" then
        local mon, churn = {}, {}
        for i, row in ipairs(rows) do
            local okr, e = pcall(function()
                mon[i], churn[i] = num(row, "monetary", true), num(row, "churn_probability", true)
            end)
            if not okr then eprintf("pulse rules: %s: %s\n", data_path, e); return 2 end
        end
        local order = {}
        for i = 1, #rows do order[i] = i end
        table.sort(order, function(a, b) if mon[a] ~= mon[b] then return mon[a] > mon[b] end return a < b end)
        local top = math.floor(#rows * decl.target.monetary_top_share + 0.5)
        local t = { customers = 0, monetary = 0 }
        for pos = 1, top do
            local i = order[pos]
            if churn[i] > decl.target.min_churn then t.customers, t.monetary = t.customers + 1, t.monetary + mon[i] end
        end
        local r, e = rules.call(box, kind, kind, "compute", decl, t)
        if not r then report_errors(path, { e }, io.stderr); return 1 end
        printf("targeted customers: %d of %d (top %.0f%% by monetary, churn > %.0f%%)\n", t.customers, #rows,
            decl.target.monetary_top_share * 100, decl.target.min_churn * 100)
        printf("value %.2f  cost %.2f  net %.2f  ROI %s\n", r.value, r.cost, r.net,
            r.roi_pct and ("%.1f %%"):format(r.roi_pct) or "n/a (no cost)")
        return 0
    end

    local fn = ({ segments = "segment", offers = "offer", lead_scoring = "score", triggers = "fire" })[kind]
    local id_col = ({ lead_scoring = "lead_id", triggers = "type" })[kind] or "customer_id"
    if kind == "segments" then emit("customer_id,r,f,m,churn_band,segment,score")
    elseif kind == "offers" then emit("customer_id,segment,discount_pct,validity_days,categories,message_key")
    elseif kind == "lead_scoring" then emit("lead_id,points,stage,reasons")
    else emit("line,type,campaign,channel,delay_hours,reason") end
    for i, input in ipairs(inputs) do
        local row = rows[i]
        local id = row[id_col] or tostring(row._line)
        local result, e = rules.call(box, kind, kind, fn, decl, input, i)
        if result == nil and e then
            failures = failures + 1
            local where = e.line and (path .. ":" .. e.line .. ": ") or (path .. ": ")
            eprintf("%s: line %d: %s%s\n", data_path, row._line, where, e.message)
        elseif kind == "segments" then
            local score = rules.call(box, kind, kind, "score", decl, input, i)
            tally(result)
            emit(table.concat({ csv_cell(id), input.r, input.f, input.m, csv_cell(input.churn_band), csv_cell(result),
                csv_cell(score) }, ","))
        elseif kind == "offers" then
            tally(result and (result.discount_pct .. "% off") or "no offer")
            emit(table.concat({ csv_cell(id), csv_cell(input.segment), csv_cell(result and result.discount_pct),
                csv_cell(result and result.validity_days), csv_cell(result and result.categories),
                csv_cell(result and result.message_key) }, ","))
        elseif kind == "lead_scoring" then
            tally(result.stage)
            emit(table.concat({ csv_cell(id), result.points, result.stage, csv_cell(result.reasons) }, ","))
        else
            if #result == 0 then tally("no action") end
            for _, a in ipairs(result) do
                tally(a.campaign)
                emit(table.concat({ row._line, csv_cell(input.type), csv_cell(a.campaign), a.channel, a.delay_hours,
                    csv_cell(a.reason) }, ","))
            end
        end
    end
    if out then out:close() end
    box:close()
    local keys = {}
    for k in pairs(counts) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) if counts[a] ~= counts[b] then return counts[a] > counts[b] end return a < b end)
    io.stderr:flush()
    printf("\n%d rows, %d failed, %.1f ms\n", #inputs, failures, (os.clock() - started) * 1000)
    for _, k in ipairs(keys) do
        printf("  %-24s %7d  %5.1f %%\n", k, counts[k], 100 * counts[k] / math.max(#inputs, 1))
    end
    return failures == 0 and 0 or 1
end

-- cli.main(args) -> exit code; args = the words after `pulse rules`.
function cli.main(args)
    local cmd, file, opts = args[1], nil, {}
    local i = 2
    while i <= #args do
        local a = args[i]
        if a == "--kind" or a == "--data" or a == "--out" then
            if not args[i + 1] then eprintf("pulse rules: %s needs a value\n%s", a, USAGE); return 2 end
            opts[a:sub(3)] = args[i + 1]
            i = i + 2
        elseif a == "--quiet" then
            opts.quiet = true
            i = i + 1
        elseif a == "--help" or a == "-h" then
            io.stdout:write(USAGE)
            return 0
        elseif a:sub(1, 2) == "--" then
            eprintf("pulse rules: unknown option %s\n%s", a, USAGE)
            return 2
        elseif file then
            eprintf("pulse rules: one FILE at a time (got %s and %s)\n", file, a)
            return 2
        else
            file = a
            i = i + 1
        end
    end
    if cmd == nil or cmd == "--help" or cmd == "-h" then
        io.stdout:write(USAGE)
        return cmd == nil and 2 or 0
    end
    if cmd ~= "check" and cmd ~= "test" then
        eprintf("pulse rules: unknown command %q\n%s", cmd, USAGE)
        return 2
    end
    if not file then eprintf("pulse rules %s: which FILE?\n%s", cmd, USAGE); return 2 end
    local kind = kind_of(file, opts.kind)
    if cmd == "check" then return check(file, kind) end
    if not opts.data then eprintf("pulse rules test: --data DATA.csv is required\n%s", USAGE); return 2 end
    return test(file, kind, opts.data, opts.out, opts.quiet)
end

return cli
