#!lua flags=allow-oom
--[[ bury: move an entry a worker holds to the group's dead letters, with the reason.
  KEYS[1] stream      STREAM  the queue
  KEYS[2] dead        STREAM  the group's dead letters
  KEYS[3] counters    HASH    the group's totals: dead_lettered, ... (for metrics)
  ARGV[1] group
  ARGV[2] entry id
  ARGV[3] deliveries so far
  ARGV[4] reason
  ARGV[5] payload ("" when there is none)
  ARGV[6] max dead letters kept (approximately); the oldest are dropped beyond it
  Returns: 1 when buried, 0 when the entry was no longer pending in the group
  Errors: TRL_BADARG when an ARGV is not as described; then nothing is written
  Work: O(G log M), G the number of groups
]]
local rcall = redis.call
local stream, group, id = KEYS[1], ARGV[1], ARGV[2]

-- Whole-number ARGV {index, least[, most]}: checked before anything is written.
for _, rule in ipairs({{3, 0}, {6, 0}}) do
  local text = ARGV[rule[1]]
  local value = text and string.match(text, "^%-?%d+$") and tonumber(text)
  if not value or value < rule[2] or (rule[3] and value > rule[3]) then
    return redis.error_reply("TRL_BADARG ARGV[" .. rule[1] .. "] must be a whole number"
      .. " >= " .. rule[2] .. (rule[3] and " and <= " .. rule[3] or "") .. ", got "
      .. tostring(text))
  end
end

local function id_parts(entry_id)
  local ms, seq = string.match(entry_id, "^(%d+)-(%d+)$")
  return tonumber(ms), tonumber(seq)
end

local function after(a, b)
  local a_ms, a_seq = id_parts(a)
  local b_ms, b_seq = id_parts(b)
  return a_ms > b_ms or (a_ms == b_ms and a_seq > b_seq)
end

-- True when another group has yet to read the entry or has it pending.
local function needed_elsewhere()
  for _, info in ipairs(rcall("XINFO", "GROUPS", stream)) do
    local fields = {}
    for i = 1, #info, 2 do
      fields[info[i]] = info[i + 1]
    end
    if fields["name"] ~= group then
      if after(id, fields["last-delivered-id"]) then
        return true
      end
      if #rcall("XPENDING", stream, fields["name"], id, id, 1) > 0 then
        return true
      end
    end
  end
  return false
end

if rcall("XACK", stream, group, id) == 0 then
  return 0
end
rcall("XADD", KEYS[2], "MAXLEN", "~", ARGV[6], "*", "data", ARGV[5], "origin", id,
  "deliveries", ARGV[3], "reason", ARGV[4])
if not needed_elsewhere() then
  rcall("XDEL", stream, id)
end
rcall("HINCRBY", KEYS[3], "dead_lettered", 1)
return 1
