-- Hand back claimed jobs a stopping worker never started. ARGV: prefix, worker, id...
-- They return to the front of their queue in their original order, and the attempt the
-- claim counted is given back. Returns how many were released.
local P, worker = ARGV[1], ARGV[2]
local released = 0
for i = #ARGV, 3, -1 do
  local id = ARGV[i]
  local key = P .. 'job:' .. id
  local f = redis.call('HMGET', key, 'owner', 'status', 'queue')
  if f[1] == worker and f[2] == 'running' then
    redis.call('ZREM', P .. 'running:' .. f[3], id)
    redis.call('HINCRBY', key, 'attempts', -1)
    redis.call('HSET', key, 'status', 'ready', 'owner', '')
    redis.call('LPUSH', P .. 'q:' .. f[3], id)
    released = released + 1
  end
end
return released
