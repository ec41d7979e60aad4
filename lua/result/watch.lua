#!lua
--[[ watch: look for a task's result and, when there is none yet, register a waiter
  so that set.lua leaves a notice the waiter can block on.
  KEYS[1] result  STRING  serialized TaskiqResult
  KEYS[2] watch   STREAM  at most one entry; lives as long as its longest waiter
  ARGV[1] how long the waiter may block, in ms (the watch key lives at least that long)
  Returns: {1} when the result is stored; otherwise {0, id}: XREAD BLOCK on KEYS[2]
    after id returns as soon as the result is stored
  Errors: TRL_BADARG when an ARGV is not as described; then nothing is written
  Work: O(1)
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

local lifetime = ARGV[1]
if rcall("EXISTS", KEYS[1]) == 1 then
  return {1}
end

local last = rcall("XREVRANGE", KEYS[2], "+", "-", "COUNT", "1")[1]
local id
if last then
  id = last[1]
else
  id = rcall("XADD", KEYS[2], "MAXLEN", "1", "*", "waiting", "1")
end
if rcall("PTTL", KEYS[2]) < tonumber(lifetime) then
  rcall("PEXPIRE", KEYS[2], lifetime)
end
return {0, id}
