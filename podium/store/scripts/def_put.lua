-- Write one field of a definitions hash under a condition, and record its name in a set.
--
-- KEYS[1] definitions hash (field -> record)
-- KEYS[2] names set
--
-- ARGV[1] mode: create (the field must not exist) | update (it must exist) | upsert
-- ARGV[2] field
-- ARGV[3] record (msgpack)
-- ARGV[4] member to add to the names set
--
-- Returns 1 (written) | 0 (refused by the mode)

local exists = redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1
if (ARGV[1] == 'create' and exists) or (ARGV[1] == 'update' and not exists) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
