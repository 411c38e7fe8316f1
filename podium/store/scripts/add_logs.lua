-- Append execution logs to a task, keeping the expiry of its workflow.
--
-- KEYS[1] task lookup (string: workflow id)
-- KEYS[2] task log list
-- KEYS[3] workflow hash
--
-- ARGV[1] workflow id the caller found in the lookup
-- ARGV[2..] log entries (msgpack)
--
-- Returns {1, length of the list} | {0} (no such task)

if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('EXISTS', KEYS[3]) == 0 then
  return {0}
end
local len = 0
for i = 2, #ARGV do
  len = redis.call('RPUSH', KEYS[2], ARGV[i])
end
local ttl = redis.call('PTTL', KEYS[3])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return {1, len}
