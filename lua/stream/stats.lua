#!lua flags=no-writes
--[[ stats: one consistent snapshot of a stream and one consumer group.
  KEYS[1] stream      STREAM  the queue
  KEYS[2] dead        STREAM  the group's dead letters
  KEYS[3] delayed     ZSET    delayed message id -> due time (ms)
  KEYS[4] counters    HASH    the group's totals: acked, redelivered, dead_lettered
  ARGV[1] group
  Returns: {length, delayed, dead, group found (1/0), pending, lag (-1: unknown),
    consumers, {consumer name, pending, idle ms, ...}, kicked (entries ever added),
    acked, redelivered, dead lettered, ms the oldest entry the group has not read yet
    has waited (-1: none)}
  Work: O(G + C), G groups and C consumers of the group
]]
local rcall = redis.call

local length, pending, lag, consumers = 0, 0, -1, {}
local found, kicked, age = 0, 0, -1
if rcall("EXISTS", KEYS[1]) == 1 then
  length = rcall("XLEN", KEYS[1])
  local stream = rcall("XINFO", "STREAM", KEYS[1])
  for i = 1, #stream, 2 do
    if stream[i] == "entries-added" then
      kicked = stream[i + 1]
    end
  end
  local read_up_to = nil
  for _, info in ipairs(rcall("XINFO", "GROUPS", KEYS[1])) do
    local fields = {}
    for i = 1, #info, 2 do
      fields[info[i]] = info[i + 1]
    end
    if fields["name"] == ARGV[1] then
      found = 1
      pending = fields["pending"]
      lag = fields["lag"] or -1
      read_up_to = fields["last-delivered-id"]
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
    local next_entry = rcall("XRANGE", KEYS[1], "(" .. read_up_to, "+", "COUNT", 1)
    if next_entry[1] then
      local time = rcall("TIME")
      local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
      age = math.max(0, now - tonumber(string.match(next_entry[1][1], "^(%d+)-")))
    end
  end
end
local totals = rcall("HMGET", KEYS[4], "acked", "redelivered", "dead_lettered")
return {length, rcall("ZCARD", KEYS[3]), rcall("XLEN", KEYS[2]), found, pending,
  lag, #consumers / 3, consumers, kicked, tonumber(totals[1] or 0),
  tonumber(totals[2] or 0), tonumber(totals[3] or 0), age}
