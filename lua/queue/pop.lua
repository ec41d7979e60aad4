#!lua flags=allow-oom
--[[ pop: hand out up to N ready messages with a lease, after promoting due work.
  KEYS[1] ready       ZSET  message id -> -priority
  KEYS[2] delayed     ZSET  message id -> due time (ms)
  KEYS[3] inflight    ZSET  message id -> lease deadline (ms)
  KEYS[4] msgs        HASH  message id -> payload
  KEYS[5] deliveries  HASH  message id -> deliveries so far
  KEYS[6] dead        ZSET  message id -> time it died (ms)
  KEYS[7] reasons     HASH  message id -> why it died
  KEYS[8] marker      ZSET  wake-up marker "0" -> when to look at the queue (ms; 0 = now)
  KEYS[9] counters    HASH  redelivered, dead_lettered, ... -> totals (for metrics)
  ARGV[1] visibility timeout (ms): the lease of each message handed out
  ARGV[2] N, the most messages to hand out
  ARGV[3] max deliveries: a message popped more often than this dies instead
  ARGV[4] promote limit: the most delayed messages and expired leases moved per call
  ARGV[5] max dead letters kept; the oldest are dropped beyond it
  Returns: {now, next due, {id, delivery, payload, ...}, {dead id, reason, ...}}
    now: the server clock (ms); next due: when the next delayed message or lease
    is due (ms, server clock; -1: nothing is). Leaves the marker at 0 while ready
    work remains, else, when it handed work out, at the next due time, so that an
    idle worker wakes for it.
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

-- Due delayed messages and expired leases go back to ready, oldest first.
for _, source in ipairs({KEYS[2], KEYS[3]}) do
  local due = rcall("ZRANGE", source, "-inf", now, "BYSCORE", "LIMIT", 0, promote_limit)
  for _, id in ipairs(due) do
    rcall("ZREM", source, id)
    rcall("ZADD", KEYS[1], -priority_of(id), id)
  end
  if source == KEYS[3] and #due > 0 then
    rcall("HINCRBY", KEYS[9], "redelivered", #due)
  end
end

local handed = {}
local buried = {}
local popped = rcall("ZPOPMIN", KEYS[1], wanted)
for i = 1, #popped, 2 do
  local id = popped[i]
  local payload = rcall("HGET", KEYS[4], id)
  local delivery = rcall("HINCRBY", KEYS[5], id, 1)
  local reason = nil
  if not payload then
    reason = "payload missing"
  elseif delivery > max_deliveries then
    reason = "delivered " .. (delivery - 1) .. " times without an ack"
  end
  if reason then
    rcall("ZADD", KEYS[6], now, id)
    rcall("HSET", KEYS[7], id, reason)
    buried[#buried + 1] = id
    buried[#buried + 1] = reason
  else
    rcall("ZADD", KEYS[3], now + lease, id)
    handed[#handed + 1] = id
    handed[#handed + 1] = delivery
    handed[#handed + 1] = payload
  end
end

-- Keep at most max_dead dead letters: drop the oldest, at most promote_limit a call.
if #buried > 0 then
  rcall("HINCRBY", KEYS[9], "dead_lettered", #buried / 2)
  local excess = math.min(rcall("ZCARD", KEYS[6]) - max_dead, promote_limit)
  if excess > 0 then
    local oldest = rcall("ZPOPMIN", KEYS[6], excess)
    for i = 1, #oldest, 2 do
      rcall("HDEL", KEYS[4], oldest[i])
      rcall("HDEL", KEYS[5], oldest[i])
      rcall("HDEL", KEYS[7], oldest[i])
    end
  end
end

local next_due = -1
for _, source in ipairs({KEYS[2], KEYS[3]}) do
  local first = rcall("ZRANGE", source, 0, 0, "WITHSCORES")
  if first[2] and (next_due < 0 or tonumber(first[2]) < next_due) then
    next_due = tonumber(first[2])
  end
end

-- Wake the next idle worker: now for ready work, at the due time for the rest.
if rcall("ZCARD", KEYS[1]) > 0 then
  rcall("ZADD", KEYS[8], 0, "0")
elseif #handed > 0 and next_due >= 0 then
  rcall("ZADD", KEYS[8], "LT", next_due, "0")
end
return {now, next_due, handed, buried}
