#!lua flags=allow-oom
--[[ extend: reset the idle time of entries this consumer still holds, so that no
  one takes over a task that is still running.
  KEYS[1] stream      STREAM  the queue
  ARGV[1] group
  ARGV[2] consumer
  ARGV[3..] entry ids
  Returns: the ids this consumer no longer holds (taken over, acked or gone)
  Work: O(K log M), K = #ARGV - 2, which the caller keeps small
]]
local rcall = redis.call
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]

local lost = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local pending = rcall("XPENDING", stream, group, id, id, 1)
  if pending[1] and pending[1][2] == consumer then
    rcall("XCLAIM", stream, group, consumer, 0, id, "JUSTID")
  else
    lost[#lost + 1] = id
  end
end
return lost
