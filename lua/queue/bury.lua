#!lua flags=allow-oom
--[[ bury: move a message this worker holds to the dead letters, with the reason.
  KEYS[1] inflight    ZSET  message id -> lease deadline (ms)
  KEYS[2] deliveries  HASH  message id -> deliveries so far
  KEYS[3] dead        ZSET  message id -> time it died (ms)
  KEYS[4] reasons     HASH  message id -> why it died
  KEYS[5] msgs        HASH  message id -> payload
  KEYS[6] counters    HASH  dead_lettered, ... -> totals (for metrics)
  ARGV[1] message id
  ARGV[2] delivery number it was handed out with
  ARGV[3] reason
  ARGV[4] max dead letters kept; the oldest are dropped beyond it
  Returns: 1 when buried, 0 when the message is no longer held with that delivery
  Errors: TRL_BADARG when an ARGV is not as described; then nothing is written
  Work: O(log M + D), D <= 100 oldest dead letters dropped
]]
local rcall = redis.call

-- Whole-number ARGV {index, least[, most]}: checked before anything is written.
for _, rule in ipairs({{2, 1}, {4, 0}}) do
  local text = ARGV[rule[1]]
  local value = text and string.match(text, "^%-?%d+$") and tonumber(text)
  if not value or value < rule[2] or (rule[3] and value > rule[3]) then
    return redis.error_reply("TRL_BADARG ARGV[" .. rule[1] .. "] must be a whole number"
      .. " >= " .. rule[2] .. (rule[3] and " and <= " .. rule[3] or "") .. ", got "
      .. tostring(text))
  end
end

local id = ARGV[1]
if rcall("HGET", KEYS[2], id) ~= ARGV[2] or rcall("ZREM", KEYS[1], id) == 0 then
  return 0
end
local time = rcall("TIME")
rcall("ZADD", KEYS[3], tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000), id)
rcall("HSET", KEYS[4], id, ARGV[3])
rcall("HINCRBY", KEYS[6], "dead_lettered", 1)

local excess = math.min(rcall("ZCARD", KEYS[3]) - tonumber(ARGV[4]), 100)
if excess > 0 then
  local oldest = rcall("ZPOPMIN", KEYS[3], excess)
  for i = 1, #oldest, 2 do
    rcall("HDEL", KEYS[5], oldest[i])
    rcall("HDEL", KEYS[2], oldest[i])
    rcall("HDEL", KEYS[4], oldest[i])
  end
end
return 1
