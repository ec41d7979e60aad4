#!lua flags=no-writes
--[[ stats: one consistent snapshot of a stream and one consumer group.
  KEYS[1] stream      STREAM  the queue
  KEYS[2] dead        STREAM  the group's dead letters
  KEYS[3] delayed     ZSET    delayed message id -> due time (ms)
  ARGV[1] group
  Returns: {length, delayed, dead, group found (1/0), pending, lag (-1: unknown),
    consumers, {consumer name, pending, idle ms, ...}}
  Work: O(G + C), G groups and C consumers of the group
]]
local rcall = redis.call

local length, pending, lag, consumers = 0, 0, -1, {}
local found = 0
if rcall("EXISTS", KEYS[1]) == 1 then
  length = rcall("XLEN", KEYS[1])
  for _, info in ipairs(rcall("XINFO", "GROUPS", KEYS[1])) do
    local fields = {}
    for i = 1, #info, 2 do
      fields[info[i]] = info[i + 1]
    end
    if fields["name"] == ARGV[1] then
      found = 1
      pending = fields["pending"]
      lag = fields["lag"] or -1
    end
  end
  if found == 1 then
    for _, info in ipairs(rcall("XINFO", "CONSUMERS", KEYS[1], ARGV[1])) do
      local fields = {}
      for i = 1, #info, 2 do
        fields[info[i]] = info[i + 1]
      end
      consumers[#consumers + 1] = fields["name"]
      consumers[#consumers + 1] = fields["pending"]
      consumers[#consumers + 1] = fields["idle"]
    end
  end
end
return {length, rcall("ZCARD", KEYS[3]), rcall("XLEN", KEYS[2]), found, pending,
  lag, #consumers / 3, consumers}
