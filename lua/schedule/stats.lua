#!lua flags=no-writes
--[[ stats: how many schedules there are and when the next time schedule is due.
  KEYS[1] data     HASH  schedule id -> serialized ScheduledTask
  KEYS[2] index    ZSET  members "r:<id>" (cron, interval) and
                         "t:<due time, 16-digit ms>:<id>" (time), all scores 0
  ARGV    none
  Returns: {now (ms), schedules, due time of the next time schedule (ms, -1: none)}
  Work: O(log M), M the number of schedules
]]
local rcall = redis.call

local time = rcall("TIME")
local next_due = -1
local first = rcall("ZRANGE", KEYS[2], "[t:", "(t;", "BYLEX", "LIMIT", 0, 1)
if first[1] then
  next_due = tonumber(string.match(first[1], "^t:(%d+):")) or -1
end
return {
  tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000),
  rcall("HLEN", KEYS[1]),
  next_due,
}
