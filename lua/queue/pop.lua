#!lua flags=allow-oom
--[[ pop: hand out up to N waiting messages with a lease, after promoting due work.
  KEYS[1] queue       LIST  two elements per waiting message without a priority: its
                            sequence, then its payload; the oldest at the tail
  KEYS[2] ready       ZSET  message id -> -priority: messages with a priority, and
                            those put back in front (score 0: expired leases, released,
                            requeued, and any of a queue stored before the list existed)
  KEYS[3] delayed     ZSET  message id -> due time (ms)
  KEYS[4] inflight    ZSET  message id -> lease deadline (ms)
  KEYS[5] msgs        HASH  message id -> payload (of every message not on the list)
  KEYS[6] deliveries  HASH  message id -> deliveries so far
  KEYS[7] dead        ZSET  message id -> time it died (ms)
  KEYS[8] reasons     HASH  message id -> why it died
  KEYS[9] marker      ZSET  wake-up marker "0" -> when to look at the queue (ms; 0 = now)
  KEYS[10] counters   HASH  redelivered, dead_lettered, ... -> totals (for metrics)
  ARGV[1] visibility timeout (ms): the lease of each message handed out
  ARGV[2] N, the most messages to hand out
  ARGV[3] max deliveries: a message popped more often than this dies instead
  ARGV[4] promote limit: the most delayed messages and expired leases moved per call
  ARGV[5] max dead letters kept; the oldest are dropped beyond it
  Returns: {now, next due, {id, delivery, payload, ...}, {dead id, reason, ...}}
    now: the server clock (ms); next due: when the next delayed message or lease
    is due (ms, server clock; -1: nothing is). Order: ready scores <= 0 (priority
    above 0, then what was put back), then the list, then priorities below 0; FIFO
    within each. Due delayed messages without a priority join the list's head. A
    list element where a sequence belongs that is not one is buried as it is.
    Leaves the marker at 0 while messages wait, else, when it handed work out, at
    the next due time, so that an idle worker wakes for it.
  Errors: TRL_BADARG when an ARGV is not as described; then nothing is written
  Work: O((P + N) log M), P <= ARGV[4], N <= ARGV[2], M the size of the queue
]]
local rcall = redis.call

-- Whole-number ARGV {index, least[, most]}: checked before anything is written.
for _, rule in ipairs({{1, 1}, {2, 1}, {3, 1}, {4, 0}, {5, 0}}) do
  local text = ARGV[rule[1]]
  local value = text and string.match(text, "^%-?%d+$") and tonumber(text)
  if not value or value < rule[2] or (rule[3] and value > rule[3]) then
    return redis.error_reply("TRL_BADARG ARGV[" .. rule[1] .. "] must be a whole number"
      .. " >= " .. rule[2] .. (rule[3] and " and <= " .. rule[3] or "") .. ", got "
      .. tostring(text))
  end
end

local function priority_of(id)
  return tonumber(string.match(id, ":(%-?%d+)$")) or 0
end

local time = rcall("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local lease = tonumber(ARGV[1])
local wanted = tonumber(ARGV[2])
local max_deliveries = tonumber(ARGV[3])
local promote_limit = tonumber(ARGV[4])
local max_dead = tonumber(ARGV[5])

-- Due delayed messages join the list (or ready, with a priority); expired leases go
-- back in front of ready. Oldest first.
local due = rcall("ZRANGE", KEYS[3], "-inf", now, "BYSCORE", "LIMIT", 0, promote_limit)
for _, id in ipairs(due) do
  rcall("ZREM", KEYS[3], id)
  local sequence = string.match(id, "^(%d+):0$")
  local payload = sequence and rcall("HGET", KEYS[5], id)
  if payload then
    rcall("LPUSH", KEYS[1], tonumber(sequence), payload)
    rcall("HDEL", KEYS[5], id)
  else -- a priority, or no payload (buried as such when popped)
    rcall("ZADD", KEYS[2], -priority_of(id), id)
  end
end
local expired = rcall("ZRANGE", KEYS[4], "-inf", now, "BYSCORE", "LIMIT", 0,
  promote_limit)
for _, id in ipairs(expired) do
  rcall("ZREM", KEYS[4], id)
  rcall("ZADD", KEYS[2], -priority_of(id), id)
end
if #expired > 0 then
  rcall("HINCRBY", KEYS[10], "redelivered", #expired)
end

local handed = {}
local buried = {}
-- Lease one message, or bury it when its payload is gone or it was handed out too
-- often.
local function hand_out(id, payload)
  local delivery = rcall("HINCRBY", KEYS[6], id, 1)
  local reason = nil
  if not payload then
    reason = "payload missing"
  elseif delivery > max_deliveries then
    reason = "delivered " .. (delivery - 1) .. " times without an ack"
  end
  if reason then
    rcall("ZADD", KEYS[7], now, id)
    rcall("HSET", KEYS[8], id, reason)
    buried[#buried + 1] = id
    buried[#buried + 1] = reason
  else
    rcall("ZADD", KEYS[4], now + lease, id)
    handed[#handed + 1] = id
    handed[#handed + 1] = delivery
    handed[#handed + 1] = payload
  end
end

local function from_ready(count)
  local popped = count > 0 and rcall("ZPOPMIN", KEYS[2], count) or {}
  for i = 1, #popped, 2 do
    hand_out(popped[i], rcall("HGET", KEYS[5], popped[i]))
  end
end

-- From the list's tail: sequence, payload, sequence, payload, ... A stray element
-- where a sequence belongs (pushed by hand) is buried as it is and the next one is
-- read as a sequence, so the list realigns. A payload taken off the list is kept in
-- msgs from now on (for redelivery and dead letters).
local function from_list(count)
  local elements = count > 0 and rcall("RPOP", KEYS[1], 2 * count) or {}
  local i = 1
  while i <= #elements do
    local sequence = elements[i]
    if string.match(sequence, "^%d+$") then
      local payload = elements[i + 1]
      if payload == nil then -- the list held an odd number: take the one left
        payload = rcall("RPOP", KEYS[1])
      end
      local id = string.format("%016.0f:0", tonumber(sequence))
      if payload then
        rcall("HSET", KEYS[5], id, payload)
      end
      hand_out(id, payload)
      i = i + 2
    else
      hand_out(sequence, nil)
      i = i + 1
    end
  end
end

local function still_wanted()
  return wanted - #handed / 3 - #buried / 2
end

from_ready(math.min(rcall("ZCOUNT", KEYS[2], "-inf", 0), wanted))
from_list(still_wanted())
from_ready(still_wanted())

-- Keep at most max_dead dead letters: drop the oldest, at most promote_limit a call.
if #buried > 0 then
  rcall("HINCRBY", KEYS[10], "dead_lettered", #buried / 2)
  local excess = math.min(rcall("ZCARD", KEYS[7]) - max_dead, promote_limit)
  if excess > 0 then
    local oldest = rcall("ZPOPMIN", KEYS[7], excess)
    for i = 1, #oldest, 2 do
      rcall("HDEL", KEYS[5], oldest[i])
      rcall("HDEL", KEYS[6], oldest[i])
      rcall("HDEL", KEYS[8], oldest[i])
    end
  end
end

local next_due = -1
for _, source in ipairs({KEYS[3], KEYS[4]}) do
  local first = rcall("ZRANGE", source, 0, 0, "WITHSCORES")
  if first[2] and (next_due < 0 or tonumber(first[2]) < next_due) then
    next_due = tonumber(first[2])
  end
end

-- Wake the next idle worker: now for waiting work, at the due time for the rest.
if rcall("ZCARD", KEYS[2]) > 0 or rcall("LLEN", KEYS[1]) > 0 then
  rcall("ZADD", KEYS[9], 0, "0")
elseif #handed > 0 and next_due >= 0 then
  rcall("ZADD", KEYS[9], "LT", next_due, "0")
end
return {now, next_due, handed, buried}
