#!lua
--[[ requeue: put dead letters back into the stream as new entries.
  KEYS[1] stream      STREAM  the queue
  KEYS[2] dead        STREAM  the group's dead letters
  ARGV[1] mode: "ids" to requeue the dead-letter ids that follow, "oldest" for the
    oldest N
  ARGV[2..] the ids (mode "ids"), or N (mode "oldest")
  Returns: how many dead letters went back into the stream
  Errors: TRL_BADARG when the mode is unknown
  Work: O(K), K ids or K = N, which the caller keeps small
]]
local rcall = redis.call

local entries = {}
if ARGV[1] == "oldest" then
  local wanted = tonumber(ARGV[2]) or 0
  if wanted > 0 then
    entries = rcall("XRANGE", KEYS[2], "-", "+", "COUNT", wanted)
  end
elseif ARGV[1] == "ids" then
  for i = 2, #ARGV do
    local found = rcall("XRANGE", KEYS[2], ARGV[i], ARGV[i])
    if found[1] then
      entries[#entries + 1] = found[1]
    end
  end
else
  return redis.error_reply("TRL_BADARG mode must be ids or oldest, got " .. tostring(ARGV[1]))
end

local moved = 0
for _, entry in ipairs(entries) do
  local id, fields = entry[1], entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == "data" then
      rcall("XADD", KEYS[1], "*", "data", fields[i + 1])
      moved = moved + 1
    end
  end
  rcall("XDEL", KEYS[2], id)
end
return moved
