#!lua flags=allow-oom
--[[ ack: remove finished messages, each only if its delivery number still matches.
  KEYS[1] ready       ZSET  message id -> -priority
  KEYS[2] inflight    ZSET  message id -> lease deadline (ms)
  KEYS[3] msgs        HASH  message id -> payload
  KEYS[4] deliveries  HASH  message id -> deliveries so far
  KEYS[5] counters    HASH  acked, ... -> totals (for metrics)
  ARGV[1..] pairs: message id, delivery number it was handed out with
  Returns: one flag per pair, in order: 1 if the message was removed, 0 if the pair
    was stale (the message was handed out again since, or is gone: nothing removed)
  Errors: TRL_BADARG when an ARGV is not as described; then nothing is written
  Work: O(K log M), K = #ARGV / 2, which the caller keeps small
]]
local rcall = redis.call

-- Pairs after the fixed ARGV: checked before anything is written.
if (#ARGV - 0) % 2 ~= 0 then
  return redis.error_reply("TRL_BADARG ARGV[1..] must be id, delivery pairs, got "
    .. #ARGV - 0 .. " values")
end

local removed = {}
local acked = 0
for i = 1, #ARGV - 1, 2 do
  local id = ARGV[i]
  if rcall("HGET", KEYS[4], id) == ARGV[i + 1] then
    rcall("ZREM", KEYS[2], id)
    rcall("ZREM", KEYS[1], id)
    rcall("HDEL", KEYS[3], id)
    rcall("HDEL", KEYS[4], id)
    removed[#removed + 1] = 1
    acked = acked + 1
  else
    removed[#removed + 1] = 0
  end
end
if acked > 0 then
  rcall("HINCRBY", KEYS[5], "acked", acked)
end
return removed
