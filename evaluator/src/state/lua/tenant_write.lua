--[[
  tenant_write: apply writes to ONE tenant's state, atomically, in one call, fenced by the tick
  lease and by the state's generation stamp.

  The evaluator keeps a copy of each tenant's state that it read or wrote last, tagged with the
  stamp it last stored in the hash field "gen". A write names the stamp it expects ("expect"; ""
  for none) and the new one ("stamp", unique per write of every process). When the stored stamp is
  the expected one, nobody else has written the tenant's state since, so the copy is exact and the
  writes computed from it are applied; otherwise nothing is written and the evaluator reads the
  tenant afresh (tenant_read). Every write of tenant state goes through this script, so the stamp
  changes whenever the state does.

  KEYS[1]: one key of the tenant: the tick lease `tick:{tenant}:slot` when "lease" or "hold" is
           given, else the tenant's state hash `tstate:{tenant}`. Its hash tag `{tenant}` is the
           only tag the script uses: every key written is built here (`tstate:{tenant}`, and
           `<kind>:{tenant}:<rule>:<device>` for wbuf: and cooldown:, the format of keys.ts).
  ARGV[1]: JSON request, every TTL passed as a string; ARGV[2..]: the values written (window
           buffers "ts:value,ts:value,..." oldest first, hash field values), so the JSON decoder
           never sees them:
    {
      "lease": ["<token>", "<px>"],  -- optional: take KEYS[1] first (SET NX PX; same token: kept)
      "hold": "<token>",             -- optional instead: write only while KEYS[1] holds token
      "expect": "<stamp>" | "",      -- the stamp the writer's copy was made from
      "force": true|false,           -- apply even when the stamp differs (the writer then keeps
                                     --   no copy, so no copy anywhere matches the new stamp)
      "stamp": "<stamp>",            -- stored when something was written
      "statePx": "<ms>",             -- least TTL of the state hash, ensured by every call
      "ops": [ op, a, b, c, ... ]    -- flat, 4 items per op:
    }                                --   "b", "<rule>:<device>", i|false, "<px>":
                                     --      SET wbuf: key to ARGV[i] PX px, or DEL when false
                                     --   "f", "<field>", i|false, false:
                                     --      HSET the hash field to ARGV[i], or HDEL when false
                                     --   "c", "<rule>:<device>", "<px>", false:
                                     --      SET cooldown: key "1" PX px, and the field <rule>:<device>:cd

  Returns:
    { 1, 1 }                applied; the stamp matched (now "stamp" when ops were given)
    { 1, 0 }                applied with "force" although the stamp differed
    { 0, <holder or nil> }  the lease is held by another token: nothing was written
    { 2, <stamp or nil> }   the stored stamp is not "expect" (and no "force"): nothing was written
]]

local OPS = { b = true, f = true, c = true }

local tag = string.match(KEYS[1], '{[^}]*}')
if not tag then
  return redis.error_reply('tenant_write: KEYS[1] carries no hash tag')
end

local req = cjson.decode(ARGV[1])

if req.lease then
  local key = KEYS[1]
  local token = req.lease[1]
  if not redis.call('SET', key, token, 'NX', 'PX', req.lease[2]) then
    local holder = redis.call('GET', key)
    if holder ~= token then
      return { 0, holder }
    end
  end
elseif req.hold then
  local holder = redis.call('GET', KEYS[1])
  if holder ~= req.hold then
    return { 0, holder }
  end
end

local hash_key = 'tstate:' .. tag
local stored = redis.call('HGET', hash_key, 'gen')
local matched = (stored or '') == req.expect
if not matched and not req.force then
  return { 2, stored }
end

local ops = req.ops
-- Validate first: a script is not rolled back, so a bad op must not leave half the writes done.
for i = 1, #ops, 4 do
  if not OPS[ops[i]] then
    return redis.error_reply('tenant_write: unknown op')
  end
  if ops[i] ~= 'c' and ops[i + 2] and not ARGV[ops[i + 2]] then
    return redis.error_reply('tenant_write: value missing')
  end
end

local wbuf = 'wbuf:' .. tag .. ':'
local sets, dels = {}, {}
for i = 1, #ops, 4 do
  local op = ops[i]
  if op == 'b' then
    if ops[i + 2] then
      redis.call('SET', wbuf .. ops[i + 1], ARGV[ops[i + 2]], 'PX', ops[i + 3])
    else
      redis.call('DEL', wbuf .. ops[i + 1])
    end
  elseif op == 'f' then
    if ops[i + 2] then
      sets[#sets + 1] = ops[i + 1]
      sets[#sets + 1] = ARGV[ops[i + 2]]
    else
      dels[#dels + 1] = ops[i + 1]
    end
  else
    redis.call('SET', 'cooldown:' .. tag .. ':' .. ops[i + 1], '1', 'PX', ops[i + 2])
    sets[#sets + 1] = ops[i + 1] .. ':cd'
    sets[#sets + 1] = '1'
  end
end

-- A new stamp for every write: also after a forced write, whose writer then drops its copy, so
-- no copy anywhere matches the stamp.
if #ops > 0 then
  sets[#sets + 1] = 'gen'
  sets[#sets + 1] = req.stamp
end
for i = 1, #dels, 1000 do
  redis.call('HDEL', hash_key, unpack(dels, i, math.min(i + 999, #dels)))
end
for i = 1, #sets, 1000 do
  redis.call('HSET', hash_key, unpack(sets, i, math.min(i + 999, #sets)))
end
-- The TTL only grows here: a commit never shortens a long last-seen retention set by a tick.
local ttl = redis.call('PTTL', hash_key)
if ttl ~= -2 and ttl < tonumber(req.statePx) then
  redis.call('PEXPIRE', hash_key, req.statePx)
end
return { 1, matched and 1 or 0 }
