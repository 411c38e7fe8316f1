-- Read one workflow: its record and version, and (ARGV[1] == "1") every task record, as one
-- consistent snapshot (a script runs atomically) in one command.
-- KEYS[1] the workflow hash (rec, ver, inp), KEYS[2] its tasks hash (task id -> record)
-- Returns nil when the workflow does not exist, else {rec, ver, {task, ...}, inp}: the task list
-- is empty unless asked for; inp is the workflow input kept apart from rec (nil for a record
-- that holds its input itself).
local head = redis.call("HMGET", KEYS[1], "rec", "ver", "inp")
if not head[1] then
  return false
end
local tasks = {}
if ARGV[1] == "1" then
  tasks = redis.call("HVALS", KEYS[2])
end
return {head[1], head[2], tasks, head[3]}
