-- Trim finished jobs of some queues by age and count, for queues that see no acks.
-- ARGV: prefix, done_retention_ms, done_max, dead_max, dead_retention_ms, queue...
-- Returns how many were deleted.
local P = ARGV[1]
local retention, done_max, dead_max = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local dead_retention = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deleted = 0
local function drop(set, ids)
  for _, id in ipairs(ids) do
    redis.call('ZREM', set, id)
    redis.call('DEL', P .. 'job:' .. id)
    deleted = deleted + 1
  end
end
for i = 6, #ARGV do
  local q = ARGV[i]
  local done = P .. 'done:' .. q
  drop(done, redis.call('ZRANGEBYSCORE', done, '-inf', now - retention, 'LIMIT', 0, 5000))
  local extra = redis.call('ZCARD', done) - done_max
  if extra > 0 then drop(done, redis.call('ZRANGE', done, 0, math.min(extra, 5000) - 1)) end
  local dead = P .. 'dead:' .. q
  drop(dead, redis.call('ZRANGEBYSCORE', dead, '-inf', now - dead_retention, 'LIMIT', 0, 5000))
  extra = redis.call('ZCARD', dead) - dead_max
  if extra > 0 then drop(dead, redis.call('ZRANGE', dead, 0, math.min(extra, 5000) - 1)) end
end
return deleted
