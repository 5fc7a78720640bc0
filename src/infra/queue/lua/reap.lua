-- Re-deliver jobs whose lease expired (their worker died). ARGV: prefix, limit, queue...
-- A job goes back to the front of its queue with its attempts kept; one that has used all
-- its attempts becomes dead with the reason. Returns {requeued, dead}.
local P, limit = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local requeued, dead = 0, 0
for i = 3, #ARGV do
  local q = ARGV[i]
  local running = P .. 'running:' .. q
  local expired = redis.call('ZRANGEBYSCORE', running, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(expired) do
    redis.call('ZREM', running, id)
    local key = P .. 'job:' .. id
    local f = redis.call('HMGET', key, 'attempts', 'max_attempts', 'owner')
    if tonumber(f[1]) >= tonumber(f[2]) then
      redis.call('HSET', key, 'status', 'dead', 'owner', '', 'finished_at', now,
        'last_error', 'lease expired: worker ' .. (f[3] or '?') .. ' stopped renewing it (attempt ' .. f[1] .. ')')
      redis.call('ZADD', P .. 'dead:' .. q, now, id)
      dead = dead + 1
    else
      redis.call('HSET', key, 'status', 'ready', 'owner', '')
      redis.call('LPUSH', P .. 'q:' .. q, id)
      requeued = requeued + 1
    end
  end
end
return {requeued, dead}
