#!lua
--[[ add: store a schedule and index it, in one step.
  KEYS[1] data    HASH  schedule id -> serialized ScheduledTask
  KEYS[2] index   ZSET  schedule id -> 0 for cron and interval schedules, the due time
                        (ms since the epoch) for a time schedule
  ARGV[1] schedule id
  ARGV[2] serialized schedule
  ARGV[3] score: "0" for cron or interval, else the due time in ms (at least 1)
  Returns: 1 when the schedule is new, 0 when it replaced one with the same id
  Errors: TRL_BADARG when the score is not a whole number
  Work: O(log N)
]]
local rcall = redis.call

if not string.match(ARGV[3], "^%d+$") then
  return redis.error_reply("TRL_BADARG score must be a whole number, got " .. ARGV[3])
end
local added = rcall("HSET", KEYS[1], ARGV[1], ARGV[2])
rcall("ZADD", KEYS[2], ARGV[3], ARGV[1])
return added
