#!lua flags=allow-oom
--[[ ack: acknowledge entries of a group and delete those no other group needs.
  KEYS[1] stream      STREAM  the queue
  KEYS[2] counters    HASH    the group's totals: acked, ... (for metrics)
  ARGV[1] group
  ARGV[2] "1" to delete each acked entry unless another group has yet to read it or
    has it pending; "0" to keep it
  ARGV[3..] entry ids
  Returns: one flag per entry id, in order: 1 if it was acknowledged, 0 if it was not
    pending in the group (taken over by another consumer and acked there, or gone)
  Errors: TRL_BADARG when an ARGV is not as described; then nothing is written
  Work: O(K G log M), K = #ARGV - 2 which the caller keeps small, G groups
]]
local rcall = redis.call
local stream, group = KEYS[1], ARGV[1]

-- Whole-number ARGV {index, least[, most]}: checked before anything is written.
for _, rule in ipairs({{2, 0, 1}}) do
  local text = ARGV[rule[1]]
  local value = text and string.match(text, "^%-?%d+$") and tonumber(text)
  if not value or value < rule[2] or (rule[3] and value > rule[3]) then
    return redis.error_reply("TRL_BADARG ARGV[" .. rule[1] .. "] must be a whole number"
      .. " >= " .. rule[2] .. (rule[3] and " and <= " .. rule[3] or "") .. ", got "
      .. tostring(text))
  end
end

local function id_parts(id)
  local ms, seq = string.match(id, "^(%d+)-(%d+)$")
  return tonumber(ms), tonumber(seq)
end

local function after(a, b)
  local a_ms, a_seq = id_parts(a)
  local b_ms, b_seq = id_parts(b)
  return a_ms > b_ms or (a_ms == b_ms and a_seq > b_seq)
end

local others = {}
if ARGV[2] == "1" then
  for _, info in ipairs(rcall("XINFO", "GROUPS", stream)) do
    local fields = {}
    for i = 1, #info, 2 do
      fields[info[i]] = info[i + 1]
    end
    if fields["name"] ~= group then
      others[#others + 1] = fields
    end
  end
end

local acked = {}
local count = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  acked[#acked + 1] = rcall("XACK", stream, group, id)
  count = count + acked[#acked]
  if ARGV[2] == "1" then
    local needed = false
    for _, other in ipairs(others) do
      if after(id, other["last-delivered-id"])
          or #rcall("XPENDING", stream, other["name"], id, id, 1) > 0 then
        needed = true
        break
      end
    end
    if not needed then
      rcall("XDEL", stream, id)
    end
  end
end
if count > 0 then
  rcall("HINCRBY", KEYS[2], "acked", count)
end
return acked
