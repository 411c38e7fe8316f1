-- Claim one run of a schedule: store it only if no run has its scheduled time.
-- KEYS[1] the schedule's runs (hash: scheduled time -> record)
-- KEYS[2] the schedule's run index (sorted set: scheduled time, scored by it)
-- ARGV[1] scheduled time (ms)  ARGV[2] record  ARGV[3] oldest scheduled time kept (ms)
-- ARGV[4] retention (ms): both keys expire this long after the schedule's last run
-- Returns 1 if this call stored the run, 0 if another had.
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
-- runs older than the retention go, a bounded number per claim
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[3], 'LIMIT', 0, 100)
if #old > 0 then
  redis.call('HDEL', KEYS[1], unpack(old))
  redis.call('ZREM', KEYS[2], unpack(old))
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
