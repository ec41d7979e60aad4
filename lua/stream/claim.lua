#!lua flags=allow-oom
--[[ claim: move due delayed messages into the stream; then, under an expiring lock,
  take over entries that other consumers left idle, burying those delivered too often,
  and delete consumers that hold nothing and have long been idle.
  KEYS[1] stream      STREAM  the queue; field "data" holds the payload
  KEYS[2] lock        STRING  the group's claim lock; expires by itself
  KEYS[3] cursor      STRING  where the group's next XAUTOCLAIM starts
  KEYS[4] dead        STREAM  the group's dead letters
  KEYS[5] delayed     ZSET    delayed message id -> due time (ms)
  KEYS[6] payloads    HASH    delayed message id -> payload
  KEYS[7] counters    HASH    the group's totals: redelivered, dead_lettered, ...
  ARGV[1] group
  ARGV[2] consumer that takes the entries over
  ARGV[3] lock token
  ARGV[4] lock time to live (ms)
  ARGV[5] min idle time (ms) before an entry may be taken over
  ARGV[6] N, the most entries to take over; "0" only moves delayed messages
  ARGV[7] max deliveries: an entry delivered more often becomes a dead letter
  ARGV[8] promote limit: the most delayed messages moved into the stream
  ARGV[9] maxlen of the stream for moved messages ("0": no trimming)
  ARGV[10] "1" to trim approximately (~), "0" exactly
  ARGV[11] max dead letters kept (approximately); the oldest are dropped beyond it
  ARGV[12] consumer idle time (ms) after which a consumer holding no entries is
    deleted ("0": never)
  ARGV[13] D, the most consumers deleted by one call
  Returns: {now, next due, {id, delivery, payload, ...}, {dead id, reason, ...}}
    now: the server clock (ms); next due: when the next delayed message is due
    (ms, server clock; -1: none). Entries deleted from the stream while pending
    (trimmed by MAXLEN) are recorded as dead letters without a payload.
  Errors: TRL_BADARG when an ARGV is not as described; then nothing is written
  Work: O((P + N) log M + N G + C), P <= ARGV[8], N <= ARGV[6], G the number of
    groups (XINFO GROUPS runs at most once per call), C the consumers of the group
    (XINFO CONSUMERS, under the lock only; D of them deleted at most)
]]
local rcall = redis.call
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]

-- Whole-number ARGV {index, least[, most]}: checked before anything is written.
for _, rule in ipairs({{4, 1}, {5, 0}, {6, 0}, {7, 1}, {8, 0}, {9, 0}, {10, 0, 1}, {11, 0},
    {12, 0}, {13, 0}}) do
  local text = ARGV[rule[1]]
  local value = text and string.match(text, "^%-?%d+$") and tonumber(text)
  if not value or value < rule[2] or (rule[3] and value > rule[3]) then
    return redis.error_reply("TRL_BADARG ARGV[" .. rule[1] .. "] must be a whole number"
      .. " >= " .. rule[2] .. (rule[3] and " and <= " .. rule[3] or "") .. ", got "
      .. tostring(text))
  end
end

local time = rcall("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local function add(payload)
  if ARGV[9] ~= "0" then
    local how = ARGV[10] == "1" and "~" or "="
    return rcall("XADD", stream, "MAXLEN", how, ARGV[9], "*", "data", payload)
  end
  return rcall("XADD", stream, "*", "data", payload)
end

local function id_parts(id)
  local ms, seq = string.match(id, "^(%d+)-(%d+)$")
  return tonumber(ms), tonumber(seq)
end

local function after(a, b)
  local a_ms, a_seq = id_parts(a)
  local b_ms, b_seq = id_parts(b)
  return a_ms > b_ms or (a_ms == b_ms and a_seq > b_seq)
end

-- The other groups of the stream, {name, last delivered id} each: read once, when
-- the first buried entry asks.
local others = nil
local function other_groups()
  if others then
    return others
  end
  others = {}
  for _, info in ipairs(rcall("XINFO", "GROUPS", stream)) do
    local fields = {}
    for i = 1, #info, 2 do
      fields[info[i]] = info[i + 1]
    end
    if fields["name"] ~= group then
      others[#others + 1] = {fields["name"], fields["last-delivered-id"]}
    end
  end
  return others
end

-- True when another group has yet to read the entry or has it pending.
local function needed_elsewhere(id)
  for _, other in ipairs(other_groups()) do
    if after(id, other[2]) or #rcall("XPENDING", stream, other[1], id, id, 1) > 0 then
      return true
    end
  end
  return false
end

-- Due delayed messages join the stream, oldest first.
local due = rcall("ZRANGE", KEYS[5], "-inf", now, "BYSCORE", "LIMIT", 0, tonumber(ARGV[8]))
for _, id in ipairs(due) do
  local payload = rcall("HGET", KEYS[6], id)
  if payload then
    add(payload)
  end
  rcall("ZREM", KEYS[5], id)
  rcall("HDEL", KEYS[6], id)
end
local next_due = -1
local first = rcall("ZRANGE", KEYS[5], 0, 0, "WITHSCORES")
if first[2] then
  next_due = tonumber(first[2])
end

if tonumber(ARGV[6]) <= 0 or not rcall("SET", KEYS[2], ARGV[3], "NX", "PX", ARGV[4]) then
  return {now, next_due, {}, {}}
end

local cursor = rcall("GET", KEYS[3]) or "0-0"
local claimed = rcall("XAUTOCLAIM", stream, group, consumer, ARGV[5], cursor,
  "COUNT", ARGV[6])
if claimed[1] == "0-0" then
  rcall("DEL", KEYS[3])
else
  rcall("SET", KEYS[3], claimed[1])
end

-- Consumers that hold nothing and have long been idle: workers that are gone
-- (their entries were just taken over, or they had none). A living worker that is
-- deleted is created again by its next read.
local max_idle, left = tonumber(ARGV[12]), tonumber(ARGV[13])
if max_idle > 0 and left > 0 then
  -- pcall: a user without the rights to look or delete only keeps its consumers;
  -- the take-over above must not be undone by a refusal here.
  local listed = redis.pcall("XINFO", "CONSUMERS", stream, group)
  for _, info in ipairs(type(listed) == "table" and not listed.err and listed or {}) do
    local fields = {}
    for i = 1, #info, 2 do
      fields[info[i]] = info[i + 1]
    end
    if fields["pending"] == 0 and fields["idle"] > max_idle and fields["name"] ~= consumer
    then
      redis.pcall("XGROUP", "DELCONSUMER", stream, group, fields["name"])
      left = left - 1
      if left == 0 then
        break
      end
    end
  end
end

local handed = {}
local buried = {}
local max_deliveries = tonumber(ARGV[7])
for _, id in ipairs(claimed[3] or {}) do
  local reason = "deleted from the stream before it was acked (trimmed by MAXLEN?)"
  rcall("XADD", KEYS[4], "MAXLEN", "~", ARGV[11], "*", "data", "", "origin", id,
    "deliveries", 0, "reason", reason)
  buried[#buried + 1] = id
  buried[#buried + 1] = reason
end
for _, entry in ipairs(claimed[2]) do
  local id, fields = entry[1], entry[2]
  local payload = nil
  for i = 1, #fields, 2 do
    if fields[i] == "data" then
      payload = fields[i + 1]
    end
  end
  local pending = rcall("XPENDING", stream, group, id, id, 1)
  local delivery = pending[1] and pending[1][4] or 1
  local reason = nil
  if not payload then
    reason = "payload missing"
  elseif delivery > max_deliveries then
    reason = "delivered " .. (delivery - 1) .. " times without an ack"
  end
  if reason then
    rcall("XADD", KEYS[4], "MAXLEN", "~", ARGV[11], "*", "data", payload or "",
      "origin", id, "deliveries", delivery, "reason", reason)
    rcall("XACK", stream, group, id)
    if not needed_elsewhere(id) then
      rcall("XDEL", stream, id)
    end
    buried[#buried + 1] = id
    buried[#buried + 1] = reason
  else
    handed[#handed + 1] = id
    handed[#handed + 1] = delivery
    handed[#handed + 1] = payload
  end
end
if #handed > 0 then
  rcall("HINCRBY", KEYS[7], "redelivered", #handed / 3)
end
if #buried > 0 then
  rcall("HINCRBY", KEYS[7], "dead_lettered", #buried / 2)
end
return {now, next_due, handed, buried}
