#!lua
--[[ add: store a schedule and index it, in one step.
  KEYS[1] data     HASH  schedule id -> serialized ScheduledTask
  KEYS[2] entries  HASH  schedule id -> its member in the index
  KEYS[3] index    ZSET  all scores 0, ordered by member:
                         "r:<id>" for a cron or interval schedule,
                         "t:<due time, 16-digit ms>:<id>" for a time schedule
  ARGV[1] schedule id
  ARGV[2] serialized schedule
  ARGV[3] its index member
  Returns: 1 when the schedule is new, 0 when it replaced one with the same id
  Work: O(log N)
]]
local rcall = redis.call

local old = rcall("HGET", KEYS[2], ARGV[1])
if old and old ~= ARGV[3] then
  rcall("ZREM", KEYS[3], old)
end
local added = rcall("HSET", KEYS[1], ARGV[1], ARGV[2])
rcall("HSET", KEYS[2], ARGV[1], ARGV[3])
rcall("ZADD", KEYS[3], 0, ARGV[3])
return added
