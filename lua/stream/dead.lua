#!lua flags=no-writes
--[[ dead: list a group's dead letters, oldest first.
  KEYS[1] dead        STREAM  the group's dead letters
  ARGV[1] offset
  ARGV[2] N, the most entries to return
  Returns: {total, {id, deliveries, reason, payload, origin id, ...}}; the time an
    entry died is in its id
  Errors: TRL_BADARG when an ARGV is not as described; then nothing is written
  Work: O(offset + N); the caller keeps offset + N small (at most 10000)
]]
local rcall = redis.call

-- Whole-number ARGV {index, least[, most]}: checked before anything is written.
for _, rule in ipairs({{1, 0}, {2, 0}}) do
  local text = ARGV[rule[1]]
  local value = text and string.match(text, "^%-?%d+$") and tonumber(text)
  if not value or value < rule[2] or (rule[3] and value > rule[3]) then
    return redis.error_reply("TRL_BADARG ARGV[" .. rule[1] .. "] must be a whole number"
      .. " >= " .. rule[2] .. (rule[3] and " and <= " .. rule[3] or "") .. ", got "
      .. tostring(text))
  end
end

local first = math.max(0, tonumber(ARGV[1]) or 0)
local wanted = tonumber(ARGV[2]) or 0
local listed = {}
if wanted > 0 then
  local page = rcall("XRANGE", KEYS[1], "-", "+", "COUNT", first + wanted)
  for i = first + 1, #page do
    local id, fields = page[i][1], page[i][2]
    local found = {}
    for j = 1, #fields, 2 do
      found[fields[j]] = fields[j + 1]
    end
    listed[#listed + 1] = id
    listed[#listed + 1] = found["deliveries"] or "0"
    listed[#listed + 1] = found["reason"] or ""
    listed[#listed + 1] = found["data"] or ""
    listed[#listed + 1] = found["origin"] or ""
  end
end
return {rcall("XLEN", KEYS[1]), listed}
