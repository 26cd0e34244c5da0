-- Lead scoring: a lead's actions and attributes -> points and a lifecycle stage.
-- Default: up to 109 points is a Marketing Qualified Lead (MQL), 110 or more a Sales Qualified
-- Lead (SQL); a "Book Consultant" action makes the lead SQL whatever its points.
--
-- score(lead) receives lead = {
--   actions = { { type = "email_open", count = 3 }, { type = "book_consultant", count = 1 }, ... },
--   attributes = { company_size = 250, industry = "telecom", job_title = "CTO" },  -- any of them may be missing
-- }
-- and returns { points = <integer >= 0>, stage = "MQL" | "SQL", reasons = { "<why>", ... } }.
local M = {}

M.points = {
    email_open = 5, email_click = 10, page_view = 2, pricing_page_view = 15, content_download = 20,
    webinar_attended = 25, demo_request = 40, free_trial = 50, book_consultant = 30,
}
-- Per action type, at most this many occurrences count (a bot opening mails does not make a buyer).
M.max_count = 5
M.attribute_points = { company_size = { min = 100, points = 15 }, decision_maker = 20 }
M.sql_threshold = 110
M.always_sql = { book_consultant = true }

local DECISION_TITLES = { "ceo", "cto", "cfo", "coo", "founder", "owner", "director", "head", "vp", "president" }

local function is_decision_maker(title)
    if type(title) ~= "string" then return false end
    title = title:lower()
    for _, word in ipairs(DECISION_TITLES) do
        if title:find(word, 1, true) then return true end
    end
    return false
end

function M.score(lead)
    local points, reasons, forced = 0, {}, nil
    for _, a in ipairs(lead.actions or {}) do
        local per = M.points[a.type]
        if per then
            local n = math.min(a.count or 1, M.max_count)
            points = points + per * n
            reasons[#reasons + 1] = ("%s x%d: +%d"):format(a.type, n, per * n)
            if M.always_sql[a.type] and (a.count or 1) > 0 then forced = a.type end
        end
    end
    local attrs = lead.attributes or {}
    local size = M.attribute_points.company_size
    if type(attrs.company_size) == "number" and attrs.company_size >= size.min then
        points = points + size.points
        reasons[#reasons + 1] = ("company size %d: +%d"):format(math.floor(attrs.company_size), size.points)
    end
    if is_decision_maker(attrs.job_title) then
        points = points + M.attribute_points.decision_maker
        reasons[#reasons + 1] = ("decision maker (%s): +%d"):format(attrs.job_title, M.attribute_points.decision_maker)
    end
    local stage = points >= M.sql_threshold and "SQL" or "MQL"
    if forced then
        stage = "SQL"
        reasons[#reasons + 1] = forced .. ": SQL whatever the points"
    end
    return { points = math.floor(points), stage = stage, reasons = reasons }
end

return M
