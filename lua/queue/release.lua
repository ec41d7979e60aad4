#!lua flags=allow-oom
--[[ release: put messages a worker holds but will not run back in front of ready.
  KEYS[1] ready       ZSET  message id -> -priority
  KEYS[2] inflight    ZSET  message id -> lease deadline (ms)
  KEYS[3] deliveries  HASH  message id -> deliveries so far
  KEYS[4] marker      ZSET  wake-up marker
  ARGV[1..] pairs: message id, delivery number it was handed out with
  Returns: how many messages went back; the delivery does not count against
    max deliveries. Always re-arms the marker when ready is not empty.
  Work: O(K log M), K = #ARGV / 2, which the caller keeps small
]]
local rcall = redis.call

local released = 0
for i = 1, #ARGV - 1, 2 do
  local id = ARGV[i]
  if rcall("HGET", KEYS[3], id) == ARGV[i + 1] and rcall("ZREM", KEYS[2], id) == 1 then
    rcall("HINCRBY", KEYS[3], id, -1)
    rcall("ZADD", KEYS[1], -(tonumber(string.match(id, ":(%-?%d+)$")) or 0), id)
    released = released + 1
  end
end
if rcall("ZCARD", KEYS[1]) > 0 then
  rcall("ZADD", KEYS[4], 0, "0")
end
return released
