#!lua
--[[ kick: queue messages without a priority or a delay on the list.
  KEYS[1] seq       STRING  message counter
  KEYS[2] queue     LIST    two elements per waiting message without a priority: its
                            sequence, then its payload; pushed at the head (LPUSH),
                            popped from the tail
  KEYS[3] marker    ZSET    wake-up marker "0" -> when to look at the queue (ms; 0 = now)
  KEYS[4] epochs    ZSET    second (unix time) -> first sequence noted in it; at most
                            10,000 (the newest): how old a waiting message is
  ARGV[1] "1" to note the first sequence in epochs (unless this second has one), "0"
    not to. A sender notes its first kick of each second: then every message was
    kicked less than a second after the latest entry at or below its sequence.
  ARGV[2..] the payloads, oldest first
  Returns: the sequence of the first message; message i (from 0) has the id
    "<16-digit sequence + i>:0"
  Errors: TRL_BADARG when ARGV[1] is not "0" or "1", or there is no payload
  Work: O(K), K = #ARGV - 1, which the caller keeps small
]]
local rcall = redis.call

local count = #ARGV - 1
if (ARGV[1] ~= "0" and ARGV[1] ~= "1") or count < 1 then
  return redis.error_reply("TRL_BADARG expected \"0\" or \"1\", then payloads, got "
    .. #ARGV .. " arguments starting with " .. tostring(ARGV[1]))
end
local first = rcall("INCRBY", KEYS[1], count) - count + 1
if ARGV[1] == "1" and rcall("ZADD", KEYS[4], "NX", first, rcall("TIME")[1]) == 1 then
  rcall("ZREMRANGEBYRANK", KEYS[4], 0, -10001)
end
if count == 1 then
  rcall("LPUSH", KEYS[2], first, ARGV[2])
else
  local elements = {}
  for i = 1, count do
    elements[2 * i - 1] = first + i - 1
    elements[2 * i] = ARGV[i + 1]
  end
  rcall("LPUSH", KEYS[2], unpack(elements))
end
rcall("ZADD", KEYS[3], 0, "0")
return first
