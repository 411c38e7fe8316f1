-- Remove the index entries of a workflow whose retention ran out (its own keys expired).
--
-- KEYS[1] workflow hash
-- KEYS[2] expiry ledger (zset: workflow id by the time its retention ends)
-- KEYS[3] expiry footprints (hash: workflow id -> footprint)
-- KEYS[4] running hash of the workflow name
-- KEYS[5] workflow index over all names, day of the workflow
-- KEYS[6] workflow index of the name, same day
-- KEYS[7] correlation set of (name, correlation id)
-- then 3 keys per task, in ARGV order: pending hash of the task type, task index over all
-- types for the task's day, task index of the task type
--
-- ARGV[1] workflow id
-- ARGV[2] now (ms)
-- ARGV[3] n = number of tasks, then n task ids
--
-- Returns 1 (purged) | 0 (not due yet: rescheduled) | 2 (the workflow no longer expires)

local wid = ARGV[1]
local now = tonumber(ARGV[2])
local due = redis.call('ZSCORE', KEYS[2], wid)
if not due or tonumber(due) > now then
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'exp') == '1' then
    -- Redis has not expired it yet (clocks differ by a little): look again in a second,
    -- rather than leave it blocking the head of the ledger.
    redis.call('ZADD', KEYS[2], now + 1000, wid)
    return 0
  end
  redis.call('ZREM', KEYS[2], wid)
  redis.call('HDEL', KEYS[3], wid)
  return 2
end
redis.call('HDEL', KEYS[4], wid)
redis.call('ZREM', KEYS[5], wid)
redis.call('ZREM', KEYS[6], wid)
redis.call('SREM', KEYS[7], wid)
local n = tonumber(ARGV[3])
for i = 0, n - 1 do
  local tid = ARGV[4 + i]
  redis.call('HDEL', KEYS[8 + i * 3], tid)
  redis.call('ZREM', KEYS[9 + i * 3], tid)
  redis.call('ZREM', KEYS[10 + i * 3], tid)
end
redis.call('ZREM', KEYS[2], wid)
redis.call('HDEL', KEYS[3], wid)
return 1
