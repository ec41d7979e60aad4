#!lua
--[[ kick: queue messages without a priority or a delay on the list.
  KEYS[1] seq       STRING  message counter
  KEYS[2] queue     LIST    two elements per waiting message without a priority: its
                            sequence, then its payload; pushed at the head (LPUSH),
                            popped from the tail
  KEYS[3] marker    ZSET    wake-up marker "0" -> when to look at the queue (ms; 0 = now)
  KEYS[4] epochs    ZSET    second (unix time) -> first sequence kicked in it; at most
                            10,000 (the newest): how old a waiting message is
  ARGV[1..] the payloads, oldest first
  Returns: the sequence of the first message; message i (from 0) has the id
    "<16-digit sequence + i>:0"
  Errors: TRL_BADARG when there is no payload
  Work: O(K), K = #ARGV, which the caller keeps small
]]
local rcall = redis.call

local count = #ARGV
if count == 0 then
  return redis.error_reply("TRL_BADARG expected at least one payload")
end
local first = rcall("INCRBY", KEYS[1], count) - count + 1
local second = rcall("TIME")[1]
-- The first sequence of each second that kicked anything, for the age of the oldest.
if not rcall("ZSCORE", KEYS[4], second) then
  rcall("ZADD", KEYS[4], first, second)
  rcall("ZREMRANGEBYRANK", KEYS[4], 0, -10001)
end
if count == 1 then
  rcall("LPUSH", KEYS[2], first, ARGV[1])
else
  local elements = {}
  for i = 1, count do
    elements[2 * i - 1] = first + i - 1
    elements[2 * i] = ARGV[i]
  end
  rcall("LPUSH", KEYS[2], unpack(elements))
end
rcall("ZADD", KEYS[3], 0, "0")
return first
