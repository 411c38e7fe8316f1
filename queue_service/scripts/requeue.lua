-- requeue.lua: return expired leases to ready, keeping their priority. Safe to run from any
-- number of replicas at once: each id moves at most once, atomically.
-- KEYS[1] ready zset   KEYS[2] leased zset
-- ARGV[1] now_ms   ARGV[2] limit   ARGV[3] notify channel ("" for none)   ARGV[4] the notification: "{replica id}:{queue}"
-- Returns the number of messages moved.
local now = tonumber(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', string.format('(%.0f', now * 100),
  'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #expired, 2 do
  local rank = tonumber(expired[i + 1]) % 100
  redis.call('ZADD', KEYS[1], string.format('%.0f', rank * 1e13 + now), expired[i])
  redis.call('ZREM', KEYS[2], expired[i])
end
local moved = #expired / 2
if moved > 0 and ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return moved
