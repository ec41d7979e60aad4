#!lua
--[[ delay: keep a message aside until it is due; claim moves it into the stream.
  KEYS[1] delayed     ZSET  delayed message id -> due time (ms)
  KEYS[2] payloads    HASH  delayed message id -> payload
  ARGV[1] message id (unique, chosen by the caller)
  ARGV[2] payload
  ARGV[3] delay in ms, a whole number
  Returns: the due time (ms, server clock)
  Errors: TRL_BADARG when an ARGV is not as described; then nothing is written
  Work: O(log M)
]]
local rcall = redis.call

-- Whole-number ARGV {index, least[, most]}: checked before anything is written.
for _, rule in ipairs({{3, 0}}) do
  local text = ARGV[rule[1]]
  local value = text and string.match(text, "^%-?%d+$") and tonumber(text)
  if not value or value < rule[2] or (rule[3] and value > rule[3]) then
    return redis.error_reply("TRL_BADARG ARGV[" .. rule[1] .. "] must be a whole number"
      .. " >= " .. rule[2] .. (rule[3] and " and <= " .. rule[3] or "") .. ", got "
      .. tostring(text))
  end
end

local time = rcall("TIME")
local due = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) + tonumber(ARGV[3])
rcall("HSET", KEYS[2], ARGV[1], ARGV[2])
rcall("ZADD", KEYS[1], due, ARGV[1])
return due
