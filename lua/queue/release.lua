#!lua flags=allow-oom
--[[ release: put messages a worker holds but will not finish back in front of ready.
  KEYS[1] ready       ZSET  message id -> -priority
  KEYS[2] inflight    ZSET  message id -> lease deadline (ms)
  KEYS[3] deliveries  HASH  message id -> deliveries so far
  KEYS[4] marker      ZSET  wake-up marker "0" -> when to look at the queue (ms)
  ARGV[1] "1": the worker never handed these to taskiq, so the delivery does not
    count; "0": it did (the task may have started), so the delivery counts
  ARGV[2..] pairs: message id, delivery number it was handed out with
  Returns: how many messages went back. Re-arms the marker when ready is not empty.
  Errors: TRL_BADARG when an ARGV is not as described; then nothing is written
  Work: O(K log M), K = (#ARGV - 1) / 2, which the caller keeps small
]]
local rcall = redis.call

-- Whole-number ARGV {index, least[, most]}: checked before anything is written.
for _, rule in ipairs({{1, 0, 1}}) do
  local text = ARGV[rule[1]]
  local value = text and string.match(text, "^%-?%d+$") and tonumber(text)
  if not value or value < rule[2] or (rule[3] and value > rule[3]) then
    return redis.error_reply("TRL_BADARG ARGV[" .. rule[1] .. "] must be a whole number"
      .. " >= " .. rule[2] .. (rule[3] and " and <= " .. rule[3] or "") .. ", got "
      .. tostring(text))
  end
end

-- Pairs after the fixed ARGV: checked before anything is written.
if (#ARGV - 1) % 2 ~= 0 then
  return redis.error_reply("TRL_BADARG ARGV[2..] must be id, delivery pairs, got "
    .. #ARGV - 1 .. " values")
end

local uncount = ARGV[1] == "1"
local released = 0
for i = 2, #ARGV - 1, 2 do
  local id = ARGV[i]
  if rcall("HGET", KEYS[3], id) == ARGV[i + 1] and rcall("ZREM", KEYS[2], id) == 1 then
    if uncount then
      rcall("HINCRBY", KEYS[3], id, -1)
    end
    rcall("ZADD", KEYS[1], -(tonumber(string.match(id, ":(%-?%d+)$")) or 0), id)
    released = released + 1
  end
end
if rcall("ZCARD", KEYS[1]) > 0 then
  rcall("ZADD", KEYS[4], 0, "0")
end
return released
