-- Delete up to `limit` jobs of one queue in one state. ARGV: prefix, queue, state, limit.
-- Running jobs belong to live workers and are never purged. Returns how many were deleted.
local P, q, state, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local ids
if state == 'ready' then
  ids = redis.call('LRANGE', P .. 'q:' .. q, 0, limit - 1)
  redis.call('LTRIM', P .. 'q:' .. q, #ids, -1)
else
  ids = redis.call('ZRANGE', P .. state .. ':' .. q, 0, limit - 1)
  for _, id in ipairs(ids) do redis.call('ZREM', P .. state .. ':' .. q, id) end
end
for _, id in ipairs(ids) do redis.call('DEL', P .. 'job:' .. id) end
return #ids
