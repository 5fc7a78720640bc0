-- Beat leadership: take the lease if free, renew it if ours. ARGV: key, me, lease_ms.
-- Returns 1 when `me` leads for the next lease_ms, else 0.
local current = redis.call('GET', ARGV[1])
if not current then
  redis.call('SET', ARGV[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
if current == ARGV[2] then
  redis.call('PEXPIRE', ARGV[1], ARGV[3])
  return 1
end
return 0
