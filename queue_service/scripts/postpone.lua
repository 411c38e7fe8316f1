-- postpone.lua: re-schedule a queued or leased message with a new delay and priority
-- (Conductor's postpone: the lease, if any, ends and the message waits for its new due time).
-- KEYS[1] ready zset   KEYS[2] delayed zset   KEYS[3] leased zset   KEYS[4] bodies hash
-- ARGV[1] now_ms   ARGV[2] id   ARGV[3] delay_ms   ARGV[4] priority (0..99)
-- ARGV[5] notify channel ("" for none)   ARGV[6] the notification: "{replica id}:{queue}"
-- Returns 1 if the id existed, 0 otherwise (nothing is created).
local now = tonumber(ARGV[1])
local id = ARGV[2]
if redis.call('HEXISTS', KEYS[4], id) == 0 then return 0 end
redis.call('ZREM', KEYS[1], id)
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
local delay = tonumber(ARGV[3])
local rank = 99 - tonumber(ARGV[4])
if delay <= 0 then
  redis.call('ZADD', KEYS[1], string.format('%.0f', rank * 1e13 + now), id)
else
  redis.call('ZADD', KEYS[2], string.format('%.0f', (now + delay) * 100 + rank), id)
end
if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return 1
