-- Enqueue jobs. ARGV: prefix, then per job 8 values:
--   id, queue, task, payload, max_attempts, delay_ms, idempotency_key ('' = none), idempotency_ttl_ms
-- Returns, per job, {1, id} when queued or {0, existing_id} when the idempotency key was taken.
-- Publishes on <prefix>wake when a job is ready now.
local P = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local woken = false
for i = 2, #ARGV, 8 do
  local id, q, task, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local max, delay, idem, ttl = ARGV[i + 4], tonumber(ARGV[i + 5]), ARGV[i + 6], tonumber(ARGV[i + 7])
  local fresh = true
  if idem ~= '' then
    if not redis.call('SET', P .. 'idem:' .. idem, id, 'NX', 'PX', ttl) then
      fresh = false
      out[#out + 1] = {0, redis.call('GET', P .. 'idem:' .. idem)}
    end
  end
  if fresh then
    local key = P .. 'job:' .. id
    redis.call('HSET', key, 'queue', q, 'task', task, 'payload', payload, 'attempts', 0,
      'max_attempts', max, 'created_at', now, 'idempotency_key', idem)
    if delay > 0 then
      redis.call('HSET', key, 'status', 'delayed')
      redis.call('ZADD', P .. 'delayed:' .. q, now + delay, id)
    else
      redis.call('HSET', key, 'status', 'ready')
      redis.call('RPUSH', P .. 'q:' .. q, id)
    end
    redis.call('SADD', P .. 'queues', q)
    if delay <= 0 then woken = true end
    out[#out + 1] = {1, id}
  end
end
-- Wake idle workers at once instead of leaving them to their next poll.
if woken then redis.call('PUBLISH', P .. 'wake', '1') end
return out
