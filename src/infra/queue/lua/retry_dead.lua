-- Move dead jobs back to their queue with fresh attempts. ARGV: prefix, id...
-- Returns how many were moved (ids that are not dead are skipped).
local P = ARGV[1]
local moved = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local key = P .. 'job:' .. id
  local f = redis.call('HMGET', key, 'status', 'queue')
  if f[1] == 'dead' then
    redis.call('ZREM', P .. 'dead:' .. f[2], id)
    redis.call('HSET', key, 'status', 'ready', 'attempts', 0, 'owner', '')
    redis.call('HDEL', key, 'finished_at')
    redis.call('RPUSH', P .. 'q:' .. f[2], id)
    moved = moved + 1
  end
end
return moved
