-- File audit records, each at the head of its target's list, keeping the newest and expiring
-- the list a retention after its last record.
--
-- KEYS[i]   the list of the i-th record's target (one key per record, repeats allowed)
--
-- ARGV[1]   records kept per list, at most
-- ARGV[2]   retention (ms)
-- ARGV[2+i] the i-th record (msgpack)
--
-- Returns the number of records filed.

local keep = tonumber(ARGV[1]) - 1
local retention = ARGV[2]
for i = 1, #KEYS do
  redis.call('LPUSH', KEYS[i], ARGV[2 + i])
  redis.call('LTRIM', KEYS[i], 0, keep)
  redis.call('PEXPIRE', KEYS[i], retention)
end
return #KEYS
