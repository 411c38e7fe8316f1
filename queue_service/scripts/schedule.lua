-- schedule.lua: set when a message is next due, whatever its state (the decider queue's timer).
--
-- A workflow's entry on the decider queue says when the workflow must be decided again. Each
-- decision sets that time, including while a sweeper holds the entry leased (the lease is
-- re-timed). Decisions can finish out of order, so each carries a fence (the workflow's
-- version): a schedule with a lower fence than the stored one is ignored. The payload of a
-- scheduled entry is the fence ('b' followed by its decimal digits).
-- KEYS[1] ready zset   KEYS[2] delayed zset   KEYS[3] leased zset   KEYS[4] bodies hash
-- ARGV[1] now_ms   ARGV[2] id   ARGV[3] delay_ms   ARGV[4] priority (0..99)   ARGV[5] fence
-- ARGV[6] notify channel ("" for none)   ARGV[7] queue name
-- Returns 1 if the schedule was applied, 0 if a newer one was already in place.
local now = tonumber(ARGV[1])
local id = ARGV[2]
local delay = tonumber(ARGV[3])
local rank = 99 - tonumber(ARGV[4])
local fence = tonumber(ARGV[5])
local body = redis.call('HGET', KEYS[4], id)
if body then
  local stored = tonumber(string.sub(body, 2))
  if stored and fence < stored then return 0 end
end
redis.call('HSET', KEYS[4], id, 'b' .. ARGV[5])
if redis.call('ZSCORE', KEYS[3], id) then
  redis.call('ZADD', KEYS[3], string.format('%.0f', (now + delay) * 100 + rank), id)
  return 1
end
redis.call('ZREM', KEYS[1], id)
redis.call('ZREM', KEYS[2], id)
if delay <= 0 then
  redis.call('ZADD', KEYS[1], string.format('%.0f', rank * 1e13 + now), id)
  if ARGV[6] ~= '' then redis.call('PUBLISH', ARGV[6], ARGV[7]) end
else
  redis.call('ZADD', KEYS[2], string.format('%.0f', (now + delay) * 100 + rank), id)
  if ARGV[6] ~= '' then redis.call('PUBLISH', ARGV[6], ARGV[7]) end
end
return 1
