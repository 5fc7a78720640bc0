-- Extend the leases of jobs a worker still owns. ARGV: prefix, worker, lease_ms, id...
-- Returns the ids it no longer owns (reaped and re-delivered, or finished elsewhere).
local P, worker, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lost = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local f = redis.call('HMGET', P .. 'job:' .. id, 'owner', 'status', 'queue')
  if f[1] == worker and f[2] == 'running' then
    redis.call('ZADD', P .. 'running:' .. f[3], 'XX', now + lease, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
