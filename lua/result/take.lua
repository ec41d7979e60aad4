#!lua flags=allow-oom
--[[ take: read a task's result and delete it together with its progress.
  KEYS[1] result    STRING  serialized TaskiqResult
  KEYS[2] progress  STRING  serialized TaskProgress
  ARGV    none
  Returns: the serialized result, or nil when there is none (then nothing is deleted)
  Work: O(1)
]]
local rcall = redis.call

local value = rcall("GET", KEYS[1])
if not value then
  return nil
end
rcall("DEL", KEYS[1], KEYS[2])
return value
