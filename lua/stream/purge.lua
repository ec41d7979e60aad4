#!lua flags=allow-oom
--[[ purge: delete the oldest dead letters of a group for good.
  KEYS[1] dead        STREAM  the group's dead letters
  ARGV[1] N, the most dead letters to delete in this call
  Returns: how many were deleted (the caller repeats until 0)
  Errors: TRL_BADARG when an ARGV is not as described; then nothing is written
  Work: O(N)
]]
local rcall = redis.call

-- Whole-number ARGV {index, least[, most]}: checked before anything is written.
for _, rule in ipairs({{1, 0}}) do
  local text = ARGV[rule[1]]
  local value = text and string.match(text, "^%-?%d+$") and tonumber(text)
  if not value or value < rule[2] or (rule[3] and value > rule[3]) then
    return redis.error_reply("TRL_BADARG ARGV[" .. rule[1] .. "] must be a whole number"
      .. " >= " .. rule[2] .. (rule[3] and " and <= " .. rule[3] or "") .. ", got "
      .. tostring(text))
  end
end

local wanted = tonumber(ARGV[1]) or 0
if wanted <= 0 then
  return 0
end
local deleted = 0
for _, entry in ipairs(rcall("XRANGE", KEYS[1], "-", "+", "COUNT", wanted)) do
  deleted = deleted + rcall("XDEL", KEYS[1], entry[1])
end
return deleted
