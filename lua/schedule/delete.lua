#!lua flags=allow-oom
--[[ delete: remove a schedule and its index entry, in one step.
  KEYS[1] data     HASH  schedule id -> serialized ScheduledTask
  KEYS[2] entries  HASH  schedule id -> its member in the index
  KEYS[3] index    ZSET  members "r:<id>" and "t:<due ms>:<id>", all scores 0
  ARGV[1] schedule id
  Returns: 1 when the schedule existed, 0 otherwise
  Work: O(log N)
]]
local rcall = redis.call

local member = rcall("HGET", KEYS[2], ARGV[1])
if member then
  rcall("ZREM", KEYS[3], member)
  rcall("HDEL", KEYS[2], ARGV[1])
end
return math.max(rcall("HDEL", KEYS[1], ARGV[1]), member and 1 or 0)
