--[[
  tenant_commit: write the state updates one tenant's evaluation produced, atomically, in one call.

  KEYS[1]: one key of the tenant: the tick lease `tick:{tenant}:slot` when "lease" is given (the
           fence), else the first op's key. Its hash tag `{tenant}` is the only tag the script uses:
           every key written is built here as `<kind>:{tenant}:<rule>:<device>` (the format of
           keys.ts), so the call touches only keys in the tenant's hash slot (one Cluster slot).
  ARGV[1]: JSON request, every TTL passed as a string:
    {
      "lease": "<token>",                                   -- optional fence on KEYS[1]
      "ops": [ kind, "<rule part>", "<device part>", "<value>"|false, "<px>"|false, ... ]
    }                                                       -- flat, 5 items per op:
                                                            --   SET key value PX px, or DEL key
                                                            --   when value is false;
                                                            --   kind: cooldown | anom | cond

  Returns:
    { 1 }                  every op applied
    { 0, <holder or nil> } fenced out: the lease is no longer held by "token" (expired, or taken by
                           another evaluator), so nothing was written — a stale evaluator cannot
                           overwrite state that a newer owner of the tenant now maintains
]]

local KINDS = { cooldown = true, anom = true, cond = true }

local tag = string.match(KEYS[1], '{[^}]*}')
if not tag then
  return redis.error_reply('tenant_commit: KEYS[1] carries no hash tag')
end

local req = cjson.decode(ARGV[1])

if req.lease then
  local holder = redis.call('GET', KEYS[1])
  if holder ~= req.lease then
    return { 0, holder }
  end
end

local ops = req.ops
-- Validate first: a script is not rolled back, so a bad op must not leave half the writes done.
for i = 1, #ops, 5 do
  if not KINDS[ops[i]] then
    return redis.error_reply('tenant_commit: unknown state kind')
  end
end
for i = 1, #ops, 5 do
  local kind = ops[i]
  local key = kind .. ':' .. tag .. ':' .. ops[i + 1] .. ':' .. ops[i + 2]
  local value = ops[i + 3]
  if value then
    redis.call('SET', key, value, 'PX', ops[i + 4])
  else
    redis.call('DEL', key)
  end
end
return { 1 }
