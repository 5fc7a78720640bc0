-- Extend the leases of jobs a worker still owns. ARGV: prefix, worker, lease_ms, then pairs
-- of id and attempt. A claim counts only for the attempt that made it, so a job that was
-- reaped and claimed again (even by the same worker) is not kept alive by the old claim.
-- Returns the ids whose claim is lost.
local P, worker, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lost = {}
for i = 4, #ARGV, 2 do
  local id, attempt = ARGV[i], tonumber(ARGV[i + 1])
  local f = redis.call('HMGET', P .. 'job:' .. id, 'owner', 'status', 'queue', 'attempts')
  if f[1] == worker and f[2] == 'running' and tonumber(f[4]) == attempt then
    redis.call('ZADD', P .. 'running:' .. f[3], 'XX', now + lease, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
