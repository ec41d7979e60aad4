#!lua flags=allow-oom
--[[ leave: delete this consumer from its group when it holds no entries, so that
  a worker that stopped cleanly leaves nothing behind in XINFO CONSUMERS.
  KEYS[1] stream      STREAM  the queue
  ARGV[1] group
  ARGV[2] consumer
  Returns: 1 when the consumer is gone (deleted now, or it never existed), 0 when it
    still holds entries (they stay with it, for a claim to take over)
  Work: O(1)
]]
local rcall = redis.call
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]

if rcall("EXISTS", stream) == 0 then
  return 1
end
local found = redis.pcall("XPENDING", stream, group, "-", "+", 1, consumer)
if found.err then
  return 1 -- no such group: no consumer either
end
if #found > 0 then
  return 0
end
rcall("XGROUP", "DELCONSUMER", stream, group, consumer)
return 1
