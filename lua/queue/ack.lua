#!lua flags=allow-oom
--[[ ack: remove finished messages, each only if its delivery number still matches.
  KEYS[1] ready       ZSET  message id -> -priority
  KEYS[2] inflight    ZSET  message id -> lease deadline (ms)
  KEYS[3] msgs        HASH  message id -> payload
  KEYS[4] deliveries  HASH  message id -> deliveries so far
  ARGV[1..] pairs: message id, delivery number it was handed out with
  Returns: how many messages were removed; a stale pair (the message was handed out
    again since, or is gone) removes nothing
  Work: O(K log M), K = #ARGV / 2, which the caller keeps small
]]
local rcall = redis.call

local removed = 0
for i = 1, #ARGV - 1, 2 do
  local id = ARGV[i]
  if rcall("HGET", KEYS[4], id) == ARGV[i + 1] then
    rcall("ZREM", KEYS[2], id)
    rcall("ZREM", KEYS[1], id)
    rcall("HDEL", KEYS[3], id)
    rcall("HDEL", KEYS[4], id)
    removed = removed + 1
  end
end
return removed
