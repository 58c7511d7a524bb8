--[[
  tick_lease: take the tick lease of one tenant-slot (SET NX PX), so exactly one evaluator
  evaluates a tenant per tick slot, even while a tenant is being handed over between shards.

  KEYS[1]: tick:{tenant}:slot
  ARGV[1]: token of the would-be holder (unique per evaluator process)
  ARGV[2]: lease duration, ms

  Returns:
    { 1 }          acquired — or already held by this same token (a retried call), expiry unchanged
    { 0, holder }  held by another token (returned for logs)
]]

if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return { 1 }
end
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  return { 1 }
end
return { 0, holder }
