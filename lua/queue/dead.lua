#!lua flags=no-writes
--[[ dead: list dead letters, oldest first, with what is known about them.
  KEYS[1] dead        ZSET  message id -> time it died (ms)
  KEYS[2] reasons     HASH  message id -> why it died
  KEYS[3] deliveries  HASH  message id -> deliveries so far
  KEYS[4] msgs        HASH  message id -> payload
  ARGV[1] offset
  ARGV[2] N, the most entries to return
  Returns: {total, {id, died at (ms), deliveries, reason, payload, ...}}
  Errors: TRL_BADARG when an ARGV is not as described; then nothing is written
  Work: O(log M + N)
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
local entries = {}
local page = {}
if wanted > 0 then
  page = rcall("ZRANGE", KEYS[1], first, first + wanted - 1, "WITHSCORES")
end
for i = 1, #page, 2 do
  local id = page[i]
  entries[#entries + 1] = id
  entries[#entries + 1] = page[i + 1]
  entries[#entries + 1] = rcall("HGET", KEYS[3], id) or "0"
  entries[#entries + 1] = rcall("HGET", KEYS[2], id) or ""
  entries[#entries + 1] = rcall("HGET", KEYS[4], id) or ""
end
return {rcall("ZCARD", KEYS[1]), entries}
