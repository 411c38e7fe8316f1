-- remove.lua: delete messages wherever they are (ready, delayed or leased).
-- KEYS[1] ready zset   KEYS[2] delayed zset   KEYS[3] leased zset   KEYS[4] bodies hash
-- ARGV[1..] ids
-- Returns one integer per id: 1 if it existed, 0 otherwise.
local out = {}
for i = 1, #ARGV do
  local id = ARGV[i]
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  out[i] = redis.call('HDEL', KEYS[4], id)
end
return out
