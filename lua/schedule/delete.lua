#!lua flags=allow-oom
--[[ delete: remove a schedule and its index entry, in one step.
  KEYS[1] data    HASH  schedule id -> serialized ScheduledTask
  KEYS[2] index   ZSET  schedule id -> 0 or due time (ms)
  ARGV[1] schedule id
  Returns: 1 when the schedule existed, 0 otherwise
  Work: O(log N)
]]
local rcall = redis.call

local removed = rcall("HDEL", KEYS[1], ARGV[1])
return math.max(removed, rcall("ZREM", KEYS[2], ARGV[1]))
