#!lua flags=no-writes
--[[ fetch: one page of the index between two members, with the schedules' data.
  KEYS[1] data     HASH  schedule id -> serialized ScheduledTask
  KEYS[2] index    ZSET  members "r:<id>" (cron, interval) and
                         "t:<due time, 16-digit ms>:<id>" (time), all scores 0
  ARGV[1] lowest member, ZRANGE BYLEX syntax: "[r:" for the recurring ones, or
          "(<last member of the previous page>" to go on after it
  ARGV[2] highest member, ZRANGE BYLEX syntax: "(r;" ends the recurring ones,
          "(t:<16-digit ms>" the time schedules due before that moment
  ARGV[3] N, the page size
  Returns: {member, serialized schedule or false, ...}, at most N pairs in member
    order; a shorter page is the last. Deleting schedules between pages never makes
    the next page skip one, since a page starts after a member, not at an offset.
  Errors: TRL_BADARG when an ARGV is not as described; then nothing is written
  Work: O(log M + N), M the number of schedules; nothing else in Redis is looked at
]]
local rcall = redis.call

-- Whole-number ARGV {index, least[, most]}: checked before anything is written.
for _, rule in ipairs({{3, 1}}) do
  local text = ARGV[rule[1]]
  local value = text and string.match(text, "^%-?%d+$") and tonumber(text)
  if not value or value < rule[2] or (rule[3] and value > rule[3]) then
    return redis.error_reply("TRL_BADARG ARGV[" .. rule[1] .. "] must be a whole number"
      .. " >= " .. rule[2] .. (rule[3] and " and <= " .. rule[3] or "") .. ", got "
      .. tostring(text))
  end
end

local members = rcall("ZRANGE", KEYS[2], ARGV[1], ARGV[2], "BYLEX", "LIMIT", 0, ARGV[3])
local page = {}
for _, member in ipairs(members) do
  local id = string.sub(member, 1, 2) == "r:" and string.sub(member, 3)
    or string.match(member, "^t:%d+:(.*)$")
  page[#page + 1] = member
  page[#page + 1] = id and rcall("HGET", KEYS[1], id) or false
end
return page
