-- get.lua: one message and where it is.
-- KEYS[1] ready zset   KEYS[2] delayed zset   KEYS[3] leased zset   KEYS[4] bodies hash
-- ARGV[1] id
-- Returns false if absent, else {state, priority, time_ms, payload}; state is "ready" (time =
-- due), "delayed" (time = due) or "leased" (time = lease expiry).
local id = ARGV[1]
local body = redis.call('HGET', KEYS[4], id)
if not body then return false end
local s = redis.call('ZSCORE', KEYS[1], id)
if s then
  s = tonumber(s)
  local rank = math.floor(s / 1e13)
  return {'ready', 99 - rank, s - rank * 1e13, body}
end
s = redis.call('ZSCORE', KEYS[2], id)
if s then
  s = tonumber(s)
  return {'delayed', 99 - s % 100, math.floor(s / 100), body}
end
s = redis.call('ZSCORE', KEYS[3], id)
if s then
  s = tonumber(s)
  return {'leased', 99 - s % 100, math.floor(s / 100), body}
end
return false
