#!lua
--[[ set: store a task's result with its time to live, clear its progress, and
  wake whoever waits for it.
  KEYS[1] result    STRING  serialized TaskiqResult
  KEYS[2] progress  STRING  serialized TaskProgress; deleted
  KEYS[3] watch     STREAM  exists only while a reader waits (see watch.lua); gets a
    "ready" entry, which ends the reader's XREAD BLOCK
  ARGV[1] serialized result
  ARGV[2] time to live in milliseconds; "0" keeps the result until it is read or deleted
  Returns: 1
  Errors: TRL_BADARG when an ARGV is not as described; then nothing is written
  Work: O(1)
]]
local rcall = redis.call

-- Whole-number ARGV {index, least[, most]}: checked before anything is written.
for _, rule in ipairs({{2, 0}}) do
  local text = ARGV[rule[1]]
  local value = text and string.match(text, "^%-?%d+$") and tonumber(text)
  if not value or value < rule[2] or (rule[3] and value > rule[3]) then
    return redis.error_reply("TRL_BADARG ARGV[" .. rule[1] .. "] must be a whole number"
      .. " >= " .. rule[2] .. (rule[3] and " and <= " .. rule[3] or "") .. ", got "
      .. tostring(text))
  end
end

local ttl = ARGV[2]
if tonumber(ttl) == 0 then
  rcall("SET", KEYS[1], ARGV[1])
else
  rcall("SET", KEYS[1], ARGV[1], "PX", ttl)
end
rcall("DEL", KEYS[2])
if rcall("EXISTS", KEYS[3]) == 1 then
  rcall("XADD", KEYS[3], "MAXLEN", "1", "*", "ready", "1")
end
return 1
