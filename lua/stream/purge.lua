#!lua flags=allow-oom
--[[ purge: delete the oldest dead letters of a group for good.
  KEYS[1] dead        STREAM  the group's dead letters
  ARGV[1] N, the most dead letters to delete in this call
  Returns: how many were deleted (the caller repeats until 0)
  Work: O(N)
]]
local rcall = redis.call

local wanted = tonumber(ARGV[1]) or 0
if wanted <= 0 then
  return 0
end
local deleted = 0
for _, entry in ipairs(rcall("XRANGE", KEYS[1], "-", "+", "COUNT", wanted)) do
  deleted = deleted + rcall("XDEL", KEYS[1], entry[1])
end
return deleted
