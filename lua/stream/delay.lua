#!lua
--[[ delay: keep a message aside until it is due; claim moves it into the stream.
  KEYS[1] delayed     ZSET  delayed message id -> due time (ms)
  KEYS[2] payloads    HASH  delayed message id -> payload
  ARGV[1] message id (unique, chosen by the caller)
  ARGV[2] payload
  ARGV[3] delay in ms, a whole number
  Returns: the due time (ms, server clock)
  Errors: TRL_BADARG when the delay is not a whole number
  Work: O(log M)
]]
local rcall = redis.call

if not string.match(ARGV[3], "^%d+$") then
  return redis.error_reply("TRL_BADARG delay must be a whole number of ms, got " .. ARGV[3])
end
local time = rcall("TIME")
local due = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) + tonumber(ARGV[3])
rcall("HSET", KEYS[2], ARGV[1], ARGV[2])
rcall("ZADD", KEYS[1], due, ARGV[1])
return due
