-- Remove a workflow with its tasks, lookups, logs and index entries, if unchanged since read.
--
-- KEYS[1..7] as in commit.lua (workflow hash, tasks hash, uniqueness hash, running hash,
--            workflow index over all names, workflow index of the name, correlation set,
--            expiry ledger, expiry footprints)
-- then 5 keys per task, in ARGV order, as in commit.lua (lookup, pending hash of the type,
--            task index over all types, task index of the type, task log list)
--
-- ARGV[1] version the caller read
-- ARGV[2] workflow id
-- ARGV[3] n = number of tasks, then n task ids
--
-- Returns {1} | {0, stored version (0 = no workflow)} | {3} (the tasks changed: read again)

local stored = tonumber(redis.call('HGET', KEYS[1], 'ver') or '0')
if stored == 0 or stored ~= tonumber(ARGV[1]) then
  return {0, stored}
end
local n = tonumber(ARGV[3])
local base_k = 9
if redis.call('HLEN', KEYS[2]) ~= n then
  return {3}
end
for i = 1, n do
  if redis.call('HEXISTS', KEYS[2], ARGV[3 + i]) == 0 then return {3} end
end

local wid = ARGV[2]
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HDEL', KEYS[4], wid)
redis.call('ZREM', KEYS[5], wid)
redis.call('ZREM', KEYS[6], wid)
redis.call('SREM', KEYS[7], wid)
redis.call('ZREM', KEYS[8], wid)
redis.call('HDEL', KEYS[9], wid)
for i = 0, n - 1 do
  local k = base_k + i * 5
  local tid = ARGV[4 + i]
  redis.call('DEL', KEYS[k + 1], KEYS[k + 5])
  redis.call('HDEL', KEYS[k + 2], tid)
  redis.call('ZREM', KEYS[k + 3], tid)
  redis.call('ZREM', KEYS[k + 4], tid)
end
return {1}
