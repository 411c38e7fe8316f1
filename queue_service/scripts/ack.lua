-- ack.lua: finish leased messages (delete them).
-- KEYS[1] leased zset   KEYS[2] bodies hash
-- ARGV[1..] ids
-- Returns one integer per id: 1 if it was leased and is now gone, 0 otherwise (an unknown id,
-- or one that is queued because its lease expired: it will be delivered again).
local out = {}
for i = 1, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('HDEL', KEYS[2], ARGV[i])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
