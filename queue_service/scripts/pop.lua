-- pop.lua: lease up to `count` due messages of one queue on one shard.
--
-- First returns expired leases to ready and promotes due delayed messages (each bounded by
-- `scan_limit`), then leases the head of ready: highest priority first, oldest due first.
-- KEYS[1] ready zset   KEYS[2] delayed zset   KEYS[3] leased zset   KEYS[4] bodies hash
-- ARGV[1] now_ms   ARGV[2] count   ARGV[3] lease_ms   ARGV[4] scan_limit
-- Returns {next_due_ms, {id1, payload1, priority1, id2, ...}}: next_due_ms is the earliest time
-- something becomes ready (a delayed message or a lease expiring), -1 if nothing is waiting,
-- and is only computed when fewer than `count` messages were leased.
local now = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])

local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', string.format('(%.0f', now * 100),
  'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #expired, 2 do
  local rank = tonumber(expired[i + 1]) % 100
  redis.call('ZADD', KEYS[1], string.format('%.0f', rank * 1e13 + now), expired[i])
  redis.call('ZREM', KEYS[3], expired[i])
end

local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', now * 100 + 99),
  'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #due, 2 do
  local score = tonumber(due[i + 1])
  local rank = score % 100
  redis.call('ZADD', KEYS[1], string.format('%.0f', rank * 1e13 + (score - rank) / 100), due[i])
  redis.call('ZREM', KEYS[2], due[i])
end

local head = redis.call('ZRANGE', KEYS[1], 0, count - 1, 'WITHSCORES')
local out = {}
for i = 1, #head, 2 do
  local id = head[i]
  local rank = math.floor(tonumber(head[i + 1]) / 1e13)
  local body = redis.call('HGET', KEYS[4], id)
  if body then
    redis.call('ZADD', KEYS[3], string.format('%.0f', (now + lease) * 100 + rank), id)
    out[#out + 1] = id
    out[#out + 1] = body
    out[#out + 1] = 99 - rank
  end
end
local taken = #head / 2
if taken > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, taken - 1) end

local next_due = -1
if taken < count then
  local d = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #d > 0 then next_due = math.floor(tonumber(d[2]) / 100) end
  local l = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  if #l > 0 then
    local expiry = math.floor(tonumber(l[2]) / 100)
    if next_due < 0 or expiry < next_due then next_due = expiry end
  end
end
return {next_due, out}
