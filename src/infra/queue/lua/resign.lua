-- Give up beat leadership if we hold it. ARGV: key, me. Returns 1 when released.
if redis.call('GET', ARGV[1]) == ARGV[2] then
  return redis.call('DEL', ARGV[1])
end
return 0
