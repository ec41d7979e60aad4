#!lua flags=no-writes
--[[ stats: one consistent snapshot of a list queue's counts.
  KEYS[1] ready       ZSET  message id -> -priority
  KEYS[2] delayed     ZSET  message id -> due time (ms)
  KEYS[3] inflight    ZSET  message id -> lease deadline (ms)
  KEYS[4] dead        ZSET  message id -> time it died (ms)
  KEYS[5] seq         STRING  message counter: exists once anything was ever kicked
  ARGV    none
  Returns: {now (ms), ready, delayed, in flight, dead, earliest lease deadline (ms, -1:
    none), next delayed due time (ms, -1: none), 1 if the queue was ever used else 0}
  Work: O(log M)
]]
local rcall = redis.call

local function first_score(key)
  local first = rcall("ZRANGE", key, 0, 0, "WITHSCORES")
  return first[2] and tonumber(first[2]) or -1
end

local time = rcall("TIME")
return {
  tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000),
  rcall("ZCARD", KEYS[1]),
  rcall("ZCARD", KEYS[2]),
  rcall("ZCARD", KEYS[3]),
  rcall("ZCARD", KEYS[4]),
  first_score(KEYS[3]),
  first_score(KEYS[2]),
  rcall("EXISTS", KEYS[5]),
}
