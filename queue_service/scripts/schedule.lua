-- schedule.lua: set when messages are next due, whatever their state (the decider queue's
-- per-workflow timer).
--
-- A workflow's entry on the decider queue says when the workflow must be decided again. Each
-- decision sets that time, including while a sweeper holds the entry leased (the lease is
-- re-timed). Decisions can finish out of order, so each carries a fence (the workflow's
-- version): a schedule with a lower fence than the stored one is ignored. The payload of a
-- scheduled entry is the fence ('b' followed by its decimal digits).
-- KEYS[1] ready zset   KEYS[2] delayed zset   KEYS[3] leased zset   KEYS[4] bodies hash
-- ARGV[1] now_ms   ARGV[2] notify channel ("" for none)   ARGV[3] the notification: "{replica id}:{queue}"
-- ARGV[4..] groups of four: id, delay_ms, priority (0..99), fence
-- Returns one integer per entry: 1 if applied, 0 if a newer schedule was already in place;
-- then 1 if waiting pops were notified, else 0: only an entry due now, or one that became the
-- earliest delayed entry, changes when a waiting pop must look again.
local now = tonumber(ARGV[1])
local out = {}
local notify = false
local head = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]
for i = 4, #ARGV, 4 do
  local id = ARGV[i]
  local delay = tonumber(ARGV[i + 1])
  local rank = 99 - tonumber(ARGV[i + 2])
  local fence = tonumber(ARGV[i + 3])
  local body = redis.call('HGET', KEYS[4], id)
  local stored = body and tonumber(string.sub(body, 2))
  if stored and fence < stored then
    out[#out + 1] = 0
  else
    redis.call('HSET', KEYS[4], id, 'b' .. ARGV[i + 3])
    if redis.call('ZSCORE', KEYS[3], id) then
      redis.call('ZADD', KEYS[3], string.format('%.0f', (now + delay) * 100 + rank), id)
    else
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZREM', KEYS[2], id)
      if delay <= 0 then
        redis.call('ZADD', KEYS[1], string.format('%.0f', rank * 1e13 + now), id)
        notify = true
      else
        redis.call('ZADD', KEYS[2], string.format('%.0f', (now + delay) * 100 + rank), id)
      end
    end
    out[#out + 1] = 1
  end
end
if not notify then
  local new_head = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]
  notify = new_head ~= nil and (head == nil or tonumber(new_head) < tonumber(head))
end
if notify and ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
out[#out + 1] = notify and 1 or 0
return out
