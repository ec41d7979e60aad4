#!lua flags=no-writes
--[[ stats: one consistent snapshot of a list queue's counts, totals and age.
  KEYS[1] queue       LIST  sequence, payload of each waiting message without a
                            priority; the oldest at the tail
  KEYS[2] ready       ZSET  message id -> -priority: the other waiting messages
  KEYS[3] delayed     ZSET  message id -> due time (ms)
  KEYS[4] inflight    ZSET  message id -> lease deadline (ms)
  KEYS[5] dead        ZSET  message id -> time it died (ms)
  KEYS[6] seq         STRING  message counter: how many were ever kicked
  KEYS[7] counters    HASH  acked, redelivered, dead_lettered -> totals
  KEYS[8] epochs      ZSET  second (unix time) -> first sequence kicked in it
  ARGV    none
  Returns: {now (ms), ready (on the list and in ready), delayed, in flight, dead,
    earliest lease deadline (ms, -1: none), next delayed due time (ms, -1: none), 1 if
    the queue was ever used else 0, kicked, acked, redelivered, dead lettered, ms the
    oldest ready message has waited since its kick (-1: none ready; up to 2 s over:
    each producer notes the time of its first kick of each second)}
  Work: O(B log M), B <= 32 priorities looked at for the oldest ready message (and
    the list's tail)
]]
local rcall = redis.call

local function first_score(key)
  local first = rcall("ZRANGE", key, 0, 0, "WITHSCORES")
  return first[2] and tonumber(first[2]) or -1
end

local function sequence_of(id)
  return tonumber(string.match(id, "^(%d+):"))
end

-- The oldest ready message is the list's tail or the first of its priority: look at
-- the first message of each priority in use (at most 32; with more, the oldest of
-- those).
local function oldest_ready_sequence()
  local oldest = tonumber(rcall("LINDEX", KEYS[1], -1))
  local head = rcall("ZRANGE", KEYS[2], 0, 0, "WITHSCORES")
  for _ = 1, 32 do
    if not head[1] then
      break
    end
    local sequence = sequence_of(head[1])
    if sequence and (oldest == nil or sequence < oldest) then
      oldest = sequence
    end
    head = rcall("ZRANGE", KEYS[2], "(" .. head[2], "+inf", "BYSCORE", "LIMIT", 0, 1,
      "WITHSCORES")
  end
  return oldest
end

local time = rcall("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local age = -1
local oldest = oldest_ready_sequence()
if oldest then
  local kicked_in = rcall("ZRANGE", KEYS[8], oldest, "-inf", "BYSCORE", "REV", "LIMIT",
    0, 1)
  if not kicked_in[1] then -- kicked before the oldest second kept: at least this old
    kicked_in = rcall("ZRANGE", KEYS[8], 0, 0)
  end
  if kicked_in[1] then
    age = math.max(0, now - tonumber(kicked_in[1]) * 1000)
  end
end
local totals = rcall("HMGET", KEYS[7], "acked", "redelivered", "dead_lettered")
return {
  now,
  math.ceil(rcall("LLEN", KEYS[1]) / 2) + rcall("ZCARD", KEYS[2]),
  rcall("ZCARD", KEYS[3]),
  rcall("ZCARD", KEYS[4]),
  rcall("ZCARD", KEYS[5]),
  first_score(KEYS[4]),
  first_score(KEYS[3]),
  rcall("EXISTS", KEYS[6]),
  tonumber(rcall("GET", KEYS[6]) or 0),
  tonumber(totals[1] or 0),
  tonumber(totals[2] or 0),
  tonumber(totals[3] or 0),
  age,
}
