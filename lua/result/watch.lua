#!lua
--[[ watch: look for a task's result and, when there is none yet, register a waiter
  so that set.lua leaves a notice the waiter can block on.
  KEYS[1] result  STRING  serialized TaskiqResult
  KEYS[2] watch   STREAM  at most one entry; lives as long as its longest waiter
  ARGV[1] how long the waiter may block, in ms (the watch key lives at least that long)
  Returns: {1} when the result is stored; otherwise {0, id}: XREAD BLOCK on KEYS[2]
    after id returns as soon as the result is stored
  Errors: TRL_BADARG when ARGV[1] is not a positive whole number of milliseconds
  Work: O(1)
]]
local rcall = redis.call

local lifetime = ARGV[1]
if lifetime == nil or not string.match(lifetime, "^%d+$") or tonumber(lifetime) == 0 then
  return redis.error_reply("TRL_BADARG wait must be a positive whole number of ms, got "
    .. tostring(lifetime))
end

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
