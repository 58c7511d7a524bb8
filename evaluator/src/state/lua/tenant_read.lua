--[[
  tenant_read: a snapshot of ONE tenant's state, optionally taking its tick lease first, in one call.
  Used when the evaluator holds no valid copy of the tenant's state (first tick after a start, a
  tenant that moved in, another evaluator committed since); the steady state needs only
  tenant_write. The state is a cache of PostgreSQL: it is used only when its "seq" is the
  tenant's fence seq there, else the evaluator rebuilds it from PostgreSQL.

  KEYS[1]: one key of the tenant: the tick lease `tick:{tenant}:slot` when "lease" is given, else
           the tenant's state hash `tstate:{tenant}`. Its hash tag `{tenant}` is the only tag the
           script uses: every other key is built here (`tstate:{tenant}`, and
           `<kind>:{tenant}:<rule>:<device>` for wbuf: and cooldown:, the format of keys.ts, which
           keys.test.ts checks against this file), so the call touches only keys in the tenant's
           hash slot (one Cluster slot).
  ARGV[1]: JSON request:
    {
      "lease": ["<token>", "<px>"],        -- optional: take KEYS[1] first (SET NX PX)
      "buffers": ["<rule>:<device>", ...]  -- the window buffers to read (keyPart-escaped parts)
    }

  Per call: HGETALL of the state hash; for every cd field (its value: when the cooldown ends, on the
  evaluator's tick clock, ms), PTTL of its cooldown key (for the "1" of an earlier release, whose
  end is the key's expiry); GET of every requested buffer. Nothing is written: an ended cooldown's
  field is deleted by the next store of the evaluation that saw it end. A buffer still stored as a sorted set (an older
  release) is read with ZRANGE and returned in the string form, so an upgrade loses no window.

  Returns:
    { 0, <holder token or nil> }  the lease is held by another token: nothing was read or written
    { 1, seq, fields, cooldowns, buffers }
      seq        the hash's "seq" (the fence seq of the evaluation that wrote it), or false
      fields     name, value, ...          every cond, anom and seen field of the hash
      cooldowns  "<rule>:<device>", ms left, cd field value, ...  pairs whose cooldown key lives
      buffers    one per requested buffer, in order: "ts:value,+d:value,..." or false (none)
]]

local tag = string.match(KEYS[1], '{[^}]*}')
if not tag then
  return redis.error_reply('tenant_read: KEYS[1] carries no hash tag')
end

local req = cjson.decode(ARGV[1])

if req.lease then
  local key = KEYS[1]
  local token = req.lease[1]
  if not redis.call('SET', key, token, 'NX', 'PX', req.lease[2]) then
    local holder = redis.call('GET', key)
    -- The same token again (a retried call) keeps its lease.
    if holder ~= token then
      return { 0, holder }
    end
  end
end

local hash_key = 'tstate:' .. tag
local hash = redis.call('HGETALL', hash_key)
local seq = false
local fields, cooldowns = {}, {}
for i = 1, #hash, 2 do
  local name = hash[i]
  if name == 'seq' then
    seq = hash[i + 1]
  elseif name == 'gen' then
    -- The generation stamp of an earlier release: not state.
  elseif string.sub(name, -3) == ':cd' then
    local prefix = string.sub(name, 1, -4)
    local left = redis.call('PTTL', 'cooldown:' .. tag .. ':' .. prefix)
    -- A stored end decides (the caller compares it with its tick); an earlier release's "1" only
    -- while its key lives.
    if hash[i + 1] ~= '1' or left > 0 then
      cooldowns[#cooldowns + 1] = prefix
      cooldowns[#cooldowns + 1] = left
      cooldowns[#cooldowns + 1] = hash[i + 1]
    end
  else
    fields[#fields + 1] = name
    fields[#fields + 1] = hash[i + 1]
  end
end

local buffers = {}
for i, part in ipairs(req.buffers) do
  local key = 'wbuf:' .. tag .. ':' .. part
  local value = redis.pcall('GET', key)
  if type(value) == 'table' and value.err then
    -- WRONGTYPE: the sorted set of an older release, member "ts:value" scored by ts.
    value = table.concat(redis.call('ZRANGE', key, 0, -1), ',')
    if value == '' then
      value = false
    end
  end
  buffers[i] = value
end

return { 1, seq, fields, cooldowns, buffers }
