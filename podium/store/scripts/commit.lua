-- Commit a workflow record, some of its tasks and the removal of others, if the stored version
-- is the expected one. Every check runs before the first write: a refused commit writes nothing.
--
-- KEYS[1]  workflow hash (fields: rec = record without its input, inp = the input,
--          ver = version, exp = 1 while expiring)
-- KEYS[2]  tasks hash of the workflow (task id -> task record)
-- KEYS[3]  uniqueness hash of the workflow (unique key -> task id)
-- KEYS[4]  running hash of the workflow name (workflow id -> definition version)
-- KEYS[5]  workflow index over all names, day of the workflow (zset: id by index time)
-- KEYS[6]  workflow index of the workflow name, same day
-- KEYS[7]  correlation set of (name, correlation id)
-- KEYS[8]  expiry ledger (zset: workflow id by the time its retention ends)
-- KEYS[9]  expiry footprints (hash: workflow id -> the index entries to purge after expiry)
-- then 5 keys per written task, in ARGV order:
--   task lookup (string: workflow id), pending hash of the task type (task id -> workflow id),
--   task index over all types for the task's day, task index of the task type, task log list
-- then 2 keys per other stored task (only when ARGV[8] = 1): task lookup, task log list
-- then 5 keys per removed task, as for written tasks
--
-- ARGV[1]  expected version (0 = create: the workflow must not exist)
-- ARGV[2]  workflow record (msgpack)
-- ARGV[3]  workflow id
-- ARGV[4]  workflow definition version
-- ARGV[5]  1 if the workflow status is terminal
-- ARGV[6]  workflow index time (ms)
-- ARGV[7]  retention in ms (0 = keep forever)
-- ARGV[8]  1 if the keys list every task of the workflow (needed when expiry starts or stops)
-- ARGV[9]  1 if the workflow has a correlation id
-- ARGV[10] now (ms)
-- ARGV[11] footprint of the workflow's index entries (msgpack; '' unless ARGV[8] = 1)
-- ARGV[12] n = number of written tasks, then 5 values per task:
--          task id, record (msgpack), unique key, 1 if terminal, index time
-- then m = number of other stored tasks (0 unless ARGV[8] = 1), then their ids
-- then r = number of removed tasks, then 2 values per removed task: task id, unique key
-- then, last, the workflow input (msgpack), kept apart from the record in field inp; '=' keeps
--          the stored one (the writer's own previous commit, at the expected version, wrote it)
--
-- Returns {1, new version} | {0, stored version (0 = no workflow)}
--       | {2, unique key, owning task id} | {3} (call again listing every task)
--       | {4, task id} (a removed task is not a task of the workflow)

local expected = tonumber(ARGV[1])
local stored = tonumber(redis.call('HGET', KEYS[1], 'ver') or '0')
if stored ~= expected then
  return {0, stored}
end

local wid = ARGV[3]
local n = tonumber(ARGV[12])
local base_k, base_a = 9, 12
local m_at = base_a + 1 + n * 5
local m = tonumber(ARGV[m_at])
local r_at = m_at + m + 1
local r = tonumber(ARGV[r_at])
local extra_k = base_k + n * 5
local removed_k = extra_k + m * 2

local removed = {}
for i = 0, r - 1 do
  local tid = ARGV[r_at + 1 + i * 2]
  if redis.call('HEXISTS', KEYS[2], tid) == 0 then
    return {4, tid}
  end
  removed[tid] = true
end

-- A key is taken when its owner is still a task of the workflow. A task whose key changed (a
-- DO_WHILE at its next iteration, a retry in place) leaves its old key behind, and a removed
-- task frees only its last one: an owner that is gone holds nothing.
for i = 0, n - 1 do
  local tid = ARGV[base_a + 1 + i * 5]
  local ukey = ARGV[base_a + 3 + i * 5]
  local owner = redis.call('HGET', KEYS[3], ukey)
  if owner and owner ~= tid and not removed[owner]
      and redis.call('HEXISTS', KEYS[2], owner) == 1 then
    return {2, ukey, owner}
  end
end

local retention = tonumber(ARGV[7])
local want_exp = (ARGV[5] == '1') and retention > 0
local had_exp = redis.call('HGET', KEYS[1], 'exp') == '1'
if ARGV[8] == '1' then
  local listed = {}
  for i = 0, n - 1 do listed[ARGV[base_a + 1 + i * 5]] = true end
  for j = 1, m do listed[ARGV[m_at + j]] = true end
  for _, tid in ipairs(redis.call('HKEYS', KEYS[2])) do
    if not listed[tid] and not removed[tid] then return {3} end
  end
elseif want_exp or had_exp then
  return {3}
end

-- Removals first, so that a new task of this commit may take a removed task's key.
for i = 0, r - 1 do
  local tid = ARGV[r_at + 1 + i * 2]
  local ukey = ARGV[r_at + 2 + i * 2]
  local k = removed_k + i * 5
  redis.call('HDEL', KEYS[2], tid)
  if redis.call('HGET', KEYS[3], ukey) == tid then
    redis.call('HDEL', KEYS[3], ukey)
  end
  redis.call('DEL', KEYS[k + 1], KEYS[k + 5])
  redis.call('HDEL', KEYS[k + 2], tid)
  redis.call('ZREM', KEYS[k + 3], tid)
  redis.call('ZREM', KEYS[k + 4], tid)
end

local new_version = stored + 1
redis.call('HSET', KEYS[1], 'rec', ARGV[2], 'ver', new_version, 'exp', want_exp and 1 or 0)
if ARGV[#ARGV] ~= '=' then redis.call('HSET', KEYS[1], 'inp', ARGV[#ARGV]) end

for i = 0, n - 1 do
  local a = base_a + i * 5
  local k = base_k + i * 5
  local tid = ARGV[a + 1]
  local is_new = redis.call('HEXISTS', KEYS[2], tid) == 0
  redis.call('HSET', KEYS[2], tid, ARGV[a + 2])
  redis.call('HSET', KEYS[3], ARGV[a + 3], tid)
  redis.call('SET', KEYS[k + 1], wid)
  if ARGV[a + 4] == '1' then
    redis.call('HDEL', KEYS[k + 2], tid)
  else
    redis.call('HSET', KEYS[k + 2], tid, wid)
  end
  if is_new then
    redis.call('ZADD', KEYS[k + 3], ARGV[a + 5], tid)
    redis.call('ZADD', KEYS[k + 4], ARGV[a + 5], tid)
  end
end

if ARGV[5] == '1' then
  redis.call('HDEL', KEYS[4], wid)
else
  redis.call('HSET', KEYS[4], wid, ARGV[4])
end
if expected == 0 then
  redis.call('ZADD', KEYS[5], ARGV[6], wid)
  redis.call('ZADD', KEYS[6], ARGV[6], wid)
  -- A new workflow under the id of one that expired: its ledger entry is stale.
  redis.call('ZREM', KEYS[8], wid)
  redis.call('HDEL', KEYS[9], wid)
end
if ARGV[9] == '1' then
  redis.call('SADD', KEYS[7], wid)
end

if want_exp then
  -- The keys below expire by themselves; the ledger lets purge.lua remove the index entries
  -- (sorted sets and hashes shared with other workflows) once the workflow is gone.
  redis.call('ZADD', KEYS[8], tonumber(ARGV[10]) + retention, wid)
  redis.call('HSET', KEYS[9], wid, ARGV[11])
elseif had_exp then
  redis.call('ZREM', KEYS[8], wid)
  redis.call('HDEL', KEYS[9], wid)
end

if want_exp or had_exp then
  -- Expiry starts (terminal) or stops (a finished workflow was resumed): apply it to every
  -- key of the workflow, including the lookups and logs of tasks not in this commit.
  local owned = {KEYS[1], KEYS[2], KEYS[3]}
  for i = 0, n - 1 do
    owned[#owned + 1] = KEYS[base_k + i * 5 + 1]
    owned[#owned + 1] = KEYS[base_k + i * 5 + 5]
  end
  for j = 1, m * 2 do owned[#owned + 1] = KEYS[extra_k + j] end
  for _, key in ipairs(owned) do
    if want_exp then
      redis.call('PEXPIRE', key, retention)
    else
      redis.call('PERSIST', key)
    end
  end
end

return {1, new_version}
