-- Bind an idempotency key to a workflow id, only if the key is held by whom the caller expects.
--
-- KEYS[1] the key's binding (hash: wid = workflow id, at = when it was bound, ms)
--
-- ARGV[1] workflow id to bind ("" removes the binding)
-- ARGV[2] the workflow id expected to hold the key now ("" = nobody)
-- ARGV[3] now (ms)
--
-- Returns {holder, bound at}: the binding after the call ({"", 0} if none). The caller's
-- change was applied when holder is ARGV[1] (or, for a removal, when holder is "").

local held = redis.call('HMGET', KEYS[1], 'wid', 'at')
local holder = held[1] or ''
if holder ~= ARGV[2] then
  return {holder, tonumber(held[2]) or 0}
end
if ARGV[1] == '' then
  redis.call('DEL', KEYS[1])
  return {'', 0}
end
redis.call('HSET', KEYS[1], 'wid', ARGV[1], 'at', ARGV[3])
return {ARGV[1], tonumber(ARGV[3])}
