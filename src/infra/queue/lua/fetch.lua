-- Claim up to `max` jobs for a worker, queues in priority order. ARGV: prefix, worker,
-- lease_ms, max, promote_limit, queue...
-- Due delayed jobs are promoted first (at most promote_limit per queue per call, so a huge
-- backlog never makes one call slow). Each claimed job gets a lease in running:<queue>.
-- Returns {id, queue, task, payload, attempt, max_attempts} per job.
local P, worker = ARGV[1], ARGV[2]
local lease, max, limit = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 6, #ARGV do
  local q = ARGV[i]
  local due = redis.call('ZRANGEBYSCORE', P .. 'delayed:' .. q, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', P .. 'delayed:' .. q, id)
    redis.call('RPUSH', P .. 'q:' .. q, id)
    redis.call('HSET', P .. 'job:' .. id, 'status', 'ready')
  end
end
local out = {}
for i = 6, #ARGV do
  if #out >= max then break end
  local q = ARGV[i]
  local ids = redis.call('LPOP', P .. 'q:' .. q, max - #out)
  if ids then
    for _, id in ipairs(ids) do
      local key = P .. 'job:' .. id
      if redis.call('EXISTS', key) == 1 then
        local attempt = redis.call('HINCRBY', key, 'attempts', 1)
        redis.call('HSET', key, 'status', 'running', 'owner', worker, 'started_at', now)
        redis.call('ZADD', P .. 'running:' .. q, now + lease, id)
        local f = redis.call('HMGET', key, 'task', 'payload', 'max_attempts')
        out[#out + 1] = {id, q, f[1], f[2], attempt, tonumber(f[3])}
      end
    end
  end
end
return out
