-- Remove one field of a definitions hash; drop the name from the names set once the hash
-- is empty.
--
-- KEYS[1] definitions hash (field -> record)
-- KEYS[2] names set
--
-- ARGV[1] field
-- ARGV[2] member of the names set
--
-- Returns 1 (removed) | 0 (no such field)

if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[2])
end
return 1
