-- Finish claimed jobs. ARGV: prefix, worker, done_retention_ms, done_max, dead_max,
-- dead_retention_ms, then per
-- job 5 values: id, attempt, kind ('done' | 'retry' | 'dead'), delay_ms, error.
-- An ack from a worker that no longer owns the job (its lease was reaped and the job
-- re-delivered) is stale and ignored. Finished jobs are trimmed by age and count.
-- Returns {accepted, stale}.
local P, worker = ARGV[1], ARGV[2]
local retention, done_max, dead_max = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local dead_retention = tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local accepted, stale, touched = 0, 0, {}
for i = 7, #ARGV, 5 do
  local id, attempt, kind, delay, err = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4]
  local key = P .. 'job:' .. id
  local f = redis.call('HMGET', key, 'owner', 'attempts', 'queue', 'status')
  if f[1] ~= worker or tonumber(f[2]) ~= attempt or f[4] ~= 'running' then
    stale = stale + 1
  else
    local q = f[3]
    redis.call('ZREM', P .. 'running:' .. q, id)
    if kind == 'done' then
      redis.call('HSET', key, 'status', 'done', 'owner', '', 'finished_at', now)
      redis.call('HDEL', key, 'payload')
      redis.call('ZADD', P .. 'done:' .. q, now, id)
    elseif kind == 'retry' then
      redis.call('HSET', key, 'status', 'delayed', 'owner', '', 'last_error', err)
      redis.call('ZADD', P .. 'delayed:' .. q, now + delay, id)
    else
      redis.call('HSET', key, 'status', 'dead', 'owner', '', 'last_error', err, 'finished_at', now)
      redis.call('ZADD', P .. 'dead:' .. q, now, id)
    end
    accepted = accepted + 1
    touched[q] = true
  end
end
local function drop(set, ids)
  for _, id in ipairs(ids) do
    redis.call('ZREM', set, id)
    redis.call('DEL', P .. 'job:' .. id)
  end
end
for q, _ in pairs(touched) do
  local done = P .. 'done:' .. q
  drop(done, redis.call('ZRANGEBYSCORE', done, '-inf', now - retention, 'LIMIT', 0, 1000))
  local extra = redis.call('ZCARD', done) - done_max
  if extra > 0 then drop(done, redis.call('ZRANGE', done, 0, math.min(extra, 1000) - 1)) end
  local dead = P .. 'dead:' .. q
  drop(dead, redis.call('ZRANGEBYSCORE', dead, '-inf', now - dead_retention, 'LIMIT', 0, 1000))
  extra = redis.call('ZCARD', dead) - dead_max
  if extra > 0 then drop(dead, redis.call('ZRANGE', dead, 0, math.min(extra, 1000) - 1)) end
end
return {accepted, stale}
