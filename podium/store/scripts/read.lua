-- Read one workflow: its record and version, and (ARGV[1] == "1") every task record, as one
-- consistent snapshot (a script runs atomically) in one command.
-- KEYS[1] the workflow hash (rec, ver), KEYS[2] its tasks hash (task id -> record)
-- Returns nil when the workflow does not exist, else {rec, ver} or {rec, ver, {task, ...}}.
local head = redis.call("HMGET", KEYS[1], "rec", "ver")
if not head[1] then
  return false
end
if ARGV[1] == "1" then
  return {head[1], head[2], redis.call("HVALS", KEYS[2])}
end
return {head[1], head[2]}
