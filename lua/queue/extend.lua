#!lua flags=allow-oom
--[[ extend: renew the leases of messages this worker still holds.
  KEYS[1] inflight    ZSET  message id -> lease deadline (ms)
  KEYS[2] deliveries  HASH  message id -> deliveries so far
  ARGV[1] visibility timeout (ms): the new lease runs from now
  ARGV[2..] pairs: message id, delivery number it was handed out with
  Returns: the ids whose lease is lost (no longer in flight with that delivery number)
  Errors: TRL_BADARG when an ARGV is not as described; then nothing is written
  Work: O(K log M), K = (#ARGV - 1) / 2, which the caller keeps small
]]
local rcall = redis.call

-- Whole-number ARGV {index, least[, most]}: checked before anything is written.
for _, rule in ipairs({{1, 1}}) do
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

local time = rcall("TIME")
local deadline = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV - 1, 2 do
  local id = ARGV[i]
  if rcall("HGET", KEYS[2], id) == ARGV[i + 1] and rcall("ZSCORE", KEYS[1], id) then
    rcall("ZADD", KEYS[1], deadline, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
