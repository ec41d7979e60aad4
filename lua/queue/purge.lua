#!lua flags=allow-oom
--[[ purge: delete the oldest dead letters for good.
  KEYS[1] dead        ZSET  message id -> time it died (ms)
  KEYS[2] reasons     HASH  message id -> why it died
  KEYS[3] deliveries  HASH  message id -> deliveries so far
  KEYS[4] msgs        HASH  message id -> payload
  ARGV[1] N, the most dead letters to delete in this call
  Returns: how many were deleted (the caller repeats until 0)
  Work: O(N log M)
]]
local rcall = redis.call

local wanted = tonumber(ARGV[1]) or 0
if wanted <= 0 then
  return 0
end
local oldest = rcall("ZPOPMIN", KEYS[1], wanted)
for i = 1, #oldest, 2 do
  rcall("HDEL", KEYS[2], oldest[i])
  rcall("HDEL", KEYS[3], oldest[i])
  rcall("HDEL", KEYS[4], oldest[i])
end
return #oldest / 2
