#!lua
--[[ kick_sorted: store messages with a priority or a delay and queue or delay them.
  KEYS[1] seq       STRING  message counter
  KEYS[2] msgs      HASH    message id -> payload
  KEYS[3] ready     ZSET    message id -> -priority (equal scores pop in id order)
  KEYS[4] delayed   ZSET    message id -> due time (ms)
  KEYS[5] marker    ZSET    wake-up marker "0" -> when to look at the queue (ms; 0 = now)
  KEYS[6] epochs    ZSET    second (unix time) -> first sequence kicked in it; at most
                            10,000 (the newest): how old a waiting message is
  ARGV[1..] triples, one per message: payload, priority (a whole number; higher
    pops first; 0 waits in front of the list of kick.lua), delay in ms (a whole
    number; "0" queues the message now)
  Returns: the new message ids in ARGV order, each "<16-digit sequence>:<priority>"
  Errors: TRL_BADARG when ARGV is not triples, or a priority or a delay is not a
    whole number; then nothing is stored
  Work: O(K log N), K = #ARGV / 3, which the caller keeps small
]]
local rcall = redis.call

local count = #ARGV / 3
if count < 1 or count ~= math.floor(count) then
  return redis.error_reply("TRL_BADARG expected payload, priority, delay triples, got "
    .. #ARGV .. " arguments")
end
for i = 2, #ARGV, 3 do
  if not string.match(ARGV[i], "^%-?%d+$") or not string.match(ARGV[i + 1], "^%d+$") then
    return redis.error_reply("TRL_BADARG priority and delay must be whole numbers, got "
      .. ARGV[i] .. " and " .. ARGV[i + 1])
  end
end

local first = rcall("INCRBY", KEYS[1], count) - count + 1
local time = rcall("TIME")
-- The first sequence of each second that kicked anything, for the age of the oldest.
if rcall("ZADD", KEYS[6], "NX", first, time[1]) == 1 then
  rcall("ZREMRANGEBYRANK", KEYS[6], 0, -10001)
end
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local wake = nil -- when the marker should say to look: 0 for now
local ids = {}
for i = 1, #ARGV, 3 do
  local priority, delay = ARGV[i + 1], tonumber(ARGV[i + 2])
  local id = string.format("%016.0f", first + #ids) .. ":" .. priority
  ids[#ids + 1] = id
  rcall("HSET", KEYS[2], id, ARGV[i])
  if delay > 0 then
    rcall("ZADD", KEYS[4], now + delay, id)
    if wake == nil or now + delay < wake then
      wake = now + delay
    end
  else
    rcall("ZADD", KEYS[3], -tonumber(priority), id)
    wake = 0
  end
end

if wake == 0 then
  rcall("ZADD", KEYS[5], 0, "0")
else
  rcall("ZADD", KEYS[5], "LT", wake, "0")
end
return ids
