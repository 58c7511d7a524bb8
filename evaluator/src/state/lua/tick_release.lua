--[[
  tick_release: give a tick lease back, only if the caller still holds it (compare-and-delete), so
  an evaluator whose lease expired can never delete the lease of the one that took over.

  KEYS[1]: tick:{tenant}:slot
  ARGV[1]: token of the caller

  Returns:
     1  released
     0  refused: held by another token
    -1  no lease (never taken, or expired)
]]

local holder = redis.call('GET', KEYS[1])
if not holder then
  return -1
end
if holder ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
