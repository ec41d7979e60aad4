#!lua flags=no-writes
--[[ fetch: one page of the schedules whose index score lies in a range.
  KEYS[1] data    HASH  schedule id -> serialized ScheduledTask
  KEYS[2] index   ZSET  schedule id -> 0 for cron and interval, due time (ms) for time
  ARGV[1] lowest score (0..0 for the recurring schedules; 1..now for due time
          schedules, the caller's clock)
  ARGV[2] highest score
  ARGV[3] offset into the range
  ARGV[4] N, the page size
  Returns: {id, serialized schedule or false, ...} in score order, at most N pairs; a
    shorter page is the last one
  Work: O(log M + N), M the number of schedules; nothing else in Redis is looked at
]]
local rcall = redis.call

local ids = rcall("ZRANGE", KEYS[2], ARGV[1], ARGV[2], "BYSCORE", "LIMIT", ARGV[3], ARGV[4])
local page = {}
for _, id in ipairs(ids) do
  page[#page + 1] = id
  page[#page + 1] = rcall("HGET", KEYS[1], id)
end
return page
