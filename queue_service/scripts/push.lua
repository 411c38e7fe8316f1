-- push.lua: add messages to one queue on one shard; idempotent per id.
--
-- Scores (integers, exact in a double):
--   ready   = (99 - priority) * 1e13 + due_ms   -> highest priority first, then oldest due
--   delayed = due_ms * 100 + (99 - priority)    -> soonest due first
--   leased  = expiry_ms * 100 + (99 - priority) -> the priority survives a lease
--
-- KEYS[1] ready zset     KEYS[2] delayed zset
-- KEYS[3] leased zset    KEYS[4] bodies hash (id -> payload)
-- ARGV[1] now_ms
-- ARGV[2] mode: "push" (an id already queued is re-scheduled with the new delay, priority and
--         payload) or "absent" (an id already present is left alone)
-- ARGV[3] notify channel ("" for none)   ARGV[4] the notification: "{replica id}:{queue}"
-- ARGV[5..] groups of four: id, delay_ms, priority (0..99), payload
-- Returns one integer per message: 1 if the id was new, 0 if it was already queued or leased;
-- then 1 if waiting pops were notified, else 0 (below).
-- A leased id is never touched: pushing it again must not deliver it twice.
local now = tonumber(ARGV[1])
local update = ARGV[2] == 'push'
local out = {}
local head = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]
local ready = false
for i = 5, #ARGV, 4 do
  local id = ARGV[i]
  local delay = tonumber(ARGV[i + 1])
  local rank = 99 - tonumber(ARGV[i + 2])
  local exists = redis.call('HEXISTS', KEYS[4], id) == 1
  if exists and (not update or redis.call('ZSCORE', KEYS[3], id)) then
    out[#out + 1] = 0
  else
    if exists then
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZREM', KEYS[2], id)
    end
    redis.call('HSET', KEYS[4], id, ARGV[i + 3])
    if delay <= 0 then
      redis.call('ZADD', KEYS[1], string.format('%.0f', rank * 1e13 + now), id)
      ready = true
    else
      redis.call('ZADD', KEYS[2], string.format('%.0f', (now + delay) * 100 + rank), id)
    end
    if exists then out[#out + 1] = 0 else out[#out + 1] = 1 end
  end
end
-- Waiting pops sleep until the earliest delayed message: they need waking only when a message
-- is ready now, or when a delayed one became that earliest.
local wake = ready
if not wake then
  local new_head = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]
  wake = new_head ~= nil and (head == nil or tonumber(new_head) < tonumber(head))
end
if wake and ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
out[#out + 1] = wake and 1 or 0
return out
