--[[
  tenant_commit: write the state updates one tenant's evaluation produced, atomically, in one call.

  KEYS[1]: one key of the tenant: the tick lease `tick:{tenant}:slot` when "lease" is given (the
           fence), else the tenant's state hash `tstate:{tenant}`. Its hash tag `{tenant}` is the
           only tag the script uses: every key written is built here (`tstate:{tenant}` and
           `cooldown:{tenant}:<rule>:<device>`, the format of keys.ts), so the call touches only
           keys in the tenant's hash slot (one Cluster slot).
  ARGV[1]: JSON request, every TTL passed as a string:
    {
      "lease": "<token>",                                   -- optional fence on KEYS[1]
      "statePx": "<ms>",                                    -- least TTL of the tstate: hash
      "ops": [ kind, "<rule part>", "<device part>", "<value>"|false, "<px>"|false, ... ]
    }                                                       -- flat, 5 items per op:
                                                            --   cooldown: SET cooldown key "1"
                                                            --     PX px, and the hash's cd field;
                                                            --   anom, cond: the hash field
                                                            --     <rule>:<device>:<kind> set to
                                                            --     value, or deleted when false

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
local hash_key = 'tstate:' .. tag
local sets, dels = {}, {}
for i = 1, #ops, 5 do
  local kind = ops[i]
  local prefix = ops[i + 1] .. ':' .. ops[i + 2]
  local value = ops[i + 3]
  if kind == 'cooldown' then
    redis.call('SET', 'cooldown:' .. tag .. ':' .. prefix, value, 'PX', ops[i + 4])
    sets[#sets + 1] = prefix .. ':cd'
    sets[#sets + 1] = '1'
  elseif value then
    sets[#sets + 1] = prefix .. ':' .. kind
    sets[#sets + 1] = value
  else
    dels[#dels + 1] = prefix .. ':' .. kind
  end
end
for i = 1, #dels, 1000 do
  redis.call('HDEL', hash_key, unpack(dels, i, math.min(i + 999, #dels)))
end
for i = 1, #sets, 1000 do
  redis.call('HSET', hash_key, unpack(sets, i, math.min(i + 999, #sets)))
end
if #sets > 0 and redis.call('PTTL', hash_key) < tonumber(req.statePx) then
  redis.call('PEXPIRE', hash_key, req.statePx)
end
return { 1 }
