-- unack.lua: change the lease of a leased message (set_unack_timeout / nack).
-- KEYS[1] ready zset   KEYS[2] leased zset
-- ARGV[1] now_ms   ARGV[2] id   ARGV[3] lease_ms (<= 0: visible again at once)
-- ARGV[4] notify channel ("" for none)   ARGV[5] the notification: "{replica id}:{queue}"
-- Returns 1 if the id was leased, 0 otherwise.
local now = tonumber(ARGV[1])
local score = redis.call('ZSCORE', KEYS[2], ARGV[2])
if not score then return 0 end
local rank = tonumber(score) % 100
local ms = tonumber(ARGV[3])
if ms <= 0 then
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('ZADD', KEYS[1], string.format('%.0f', rank * 1e13 + now), ARGV[2])
  if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
else
  redis.call('ZADD', KEYS[2], string.format('%.0f', (now + ms) * 100 + rank), ARGV[2])
end
return 1
