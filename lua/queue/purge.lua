#!lua flags=allow-oom
--[[ purge: delete the oldest dead letters for good.
  KEYS[1] dead        ZSET  message id -> time it died (ms)
  KEYS[2] reasons     HASH  message id -> why it died
  KEYS[3] deliveries  HASH  message id -> deliveries so far
  KEYS[4] msgs        HASH  message id -> payload
  ARGV[1] N, the most dead letters to delete in this call
  Returns: how many were deleted (the caller repeats until 0)
  Errors: TRL_BADARG when an ARGV is not as described; then nothing is written
  Work: O(N log M)
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
local oldest = rcall("ZPOPMIN", KEYS[1], wanted)
for i = 1, #oldest, 2 do
  rcall("HDEL", KEYS[2], oldest[i])
  rcall("HDEL", KEYS[3], oldest[i])
  rcall("HDEL", KEYS[4], oldest[i])
end
return #oldest / 2
