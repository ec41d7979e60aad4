#!lua flags=allow-oom
--[[ release: let the group take over at once entries this consumer will not finish.
  They move to the group's consumer "(released)", idle, so that the consumer of a
  worker that stops holds nothing and can leave the group.
  KEYS[1] stream      STREAM  the queue
  KEYS[2] lock        STRING  the group's claim lock; deleted so the next claim runs
  ARGV[1] group
  ARGV[2] consumer
  ARGV[3] idle time (ms) to give the entries: more than any min idle time
  ARGV[4] "1": never handed to taskiq, the delivery does not count; "0": it counts
  ARGV[5..] pairs: entry id, delivery number it was handed out with
  Returns: how many entries were released (still pending with this consumer and
    that delivery count)
  Errors: TRL_BADARG when an ARGV is not as described; then nothing is written
  Work: O(K log M), K = (#ARGV - 4) / 2, which the caller keeps small
]]
local rcall = redis.call
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]

-- Whole-number ARGV {index, least[, most]}: checked before anything is written.
for _, rule in ipairs({{3, 0}, {4, 0, 1}}) do
  local text = ARGV[rule[1]]
  local value = text and string.match(text, "^%-?%d+$") and tonumber(text)
  if not value or value < rule[2] or (rule[3] and value > rule[3]) then
    return redis.error_reply("TRL_BADARG ARGV[" .. rule[1] .. "] must be a whole number"
      .. " >= " .. rule[2] .. (rule[3] and " and <= " .. rule[3] or "") .. ", got "
      .. tostring(text))
  end
end

-- Pairs after the fixed ARGV: checked before anything is written.
if (#ARGV - 4) % 2 ~= 0 then
  return redis.error_reply("TRL_BADARG ARGV[5..] must be id, delivery pairs, got "
    .. #ARGV - 4 .. " values")
end

local released = 0
for i = 5, #ARGV - 1, 2 do
  local id = ARGV[i]
  local pending = rcall("XPENDING", stream, group, id, id, 1)
  if pending[1] and pending[1][2] == consumer and pending[1][4] == tonumber(ARGV[i + 1]) then
    local count = pending[1][4]
    if ARGV[4] == "1" then
      count = math.max(0, count - 1)
    end
    rcall("XCLAIM", stream, group, "(released)", 0, id, "IDLE", ARGV[3],
      "RETRYCOUNT", count, "JUSTID")
    released = released + 1
  end
end
if released > 0 then
  rcall("DEL", KEYS[2])
end
return released
