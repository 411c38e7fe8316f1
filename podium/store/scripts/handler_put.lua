-- Add, update or remove an event handler and keep the per-event sets in step.
--
-- KEYS[1] handlers hash (name -> record)
-- KEYS[2] handler events hash (name -> event)
-- KEYS[3] set of handler names of the event the caller read as current ('' event: unused)
-- KEYS[4] set of handler names of the new event (unused when removing)
--
-- ARGV[1] mode: create (the name must not exist) | update (it must exist) | remove (idem)
-- ARGV[2] name
-- ARGV[3] event the caller read as current ('' if none)
-- ARGV[4] record (msgpack; '' when removing)
-- ARGV[5] new event ('' when removing)
--
-- Returns 1 (done) | 0 (refused by the mode) | 2 (the current event changed: read again)

local exists = redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1
if (ARGV[1] == 'create' and exists) or (ARGV[1] ~= 'create' and not exists) then
  return 0
end
local current = redis.call('HGET', KEYS[2], ARGV[2]) or ''
if current ~= ARGV[3] then
  return 2
end
if current ~= '' then
  redis.call('SREM', KEYS[3], ARGV[2])
end
if ARGV[1] == 'remove' then
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('HDEL', KEYS[2], ARGV[2])
else
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[4])
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[5])
  redis.call('SADD', KEYS[4], ARGV[2])
end
return 1
