#!lua flags=allow-oom
--[[ requeue: bring dead letters back to ready with a fresh delivery count.
  KEYS[1] dead        ZSET  message id -> time it died (ms)
  KEYS[2] reasons     HASH  message id -> why it died
  KEYS[3] deliveries  HASH  message id -> deliveries so far
  KEYS[4] ready       ZSET  message id -> -priority
  KEYS[5] marker      ZSET  wake-up marker "0" -> when to look at the queue (ms)
  ARGV[1] mode: "ids" to requeue the ids that follow, "oldest" for the oldest N
  ARGV[2..] the ids (mode "ids"), or N (mode "oldest")
  Returns: how many messages went back to ready
  Errors: TRL_BADARG when the mode is unknown
  Work: O(K log M), K ids or K = N, which the caller keeps small
]]
local rcall = redis.call

local ids = {}
if ARGV[1] == "oldest" then
  local wanted = tonumber(ARGV[2]) or 0
  local oldest = wanted > 0 and rcall("ZRANGE", KEYS[1], 0, wanted - 1) or {}
  for _, id in ipairs(oldest) do
    ids[#ids + 1] = id
  end
elseif ARGV[1] == "ids" then
  for i = 2, #ARGV do
    ids[#ids + 1] = ARGV[i]
  end
else
  return redis.error_reply("TRL_BADARG mode must be ids or oldest, got " .. tostring(ARGV[1]))
end

local moved = 0
for _, id in ipairs(ids) do
  if rcall("ZREM", KEYS[1], id) == 1 then
    rcall("HDEL", KEYS[2], id)
    rcall("HDEL", KEYS[3], id)
    rcall("ZADD", KEYS[4], -(tonumber(string.match(id, ":(%-?%d+)$")) or 0), id)
    moved = moved + 1
  end
end
if moved > 0 then
  rcall("ZADD", KEYS[5], 0, "0")
end
return moved
