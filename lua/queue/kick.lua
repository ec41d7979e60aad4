#!lua
--[[ kick: store a message and queue it now, or delay it.
  KEYS[1] seq       STRING  message counter
  KEYS[2] msgs      HASH    message id -> payload
  KEYS[3] ready     ZSET    message id -> -priority (equal scores pop in id order)
  KEYS[4] delayed   ZSET    message id -> due time (ms)
  KEYS[5] marker    ZSET    wake-up marker "0" -> when to look at the queue (ms; 0 = now)
  ARGV[1] payload
  ARGV[2] priority, a whole number (higher pops first)
  ARGV[3] delay in ms, a whole number; "0" queues the message now
  Returns: the new message id, "<16-digit sequence>:<priority>"
  Errors: TRL_BADARG when the priority or the delay is not a whole number
  Work: O(log N)
]]
local rcall = redis.call

local priority = ARGV[2]
local delay = ARGV[3]
if not string.match(priority, "^%-?%d+$") or not string.match(delay, "^%d+$") then
  return redis.error_reply("TRL_BADARG priority and delay must be whole numbers, got "
    .. tostring(priority) .. " and " .. tostring(delay))
end

local seq = rcall("INCR", KEYS[1])
local id = string.format("%016.0f", seq) .. ":" .. priority
rcall("HSET", KEYS[2], id, ARGV[1])

if tonumber(delay) > 0 then
  local now = rcall("TIME")
  local due = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(delay)
  rcall("ZADD", KEYS[4], due, id)
  rcall("ZADD", KEYS[5], "LT", due, "0")
else
  rcall("ZADD", KEYS[3], -tonumber(priority), id)
  rcall("ZADD", KEYS[5], 0, "0")
end
return id
