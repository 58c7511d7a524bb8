--[[
  tenant_read: a snapshot of ONE tenant's state, optionally taking its tick lease first, in one call.
  Used when the evaluator holds no valid copy of the tenant's state (first tick after a start, a
  tenant that moved in, another evaluator committed since); the steady state needs only
  tenant_write. The state is a cache of PostgreSQL: it is used only when its "seq" is the
  tenant's fence seq there, else the evaluator rebuilds it from PostgreSQL.

  KEYS: every key the call touches, declared, so that Valkey Cluster routes the call to the node
        of the tenant's slot and refuses it (ASK, TRYAGAIN) while that slot is moving between
        nodes instead of letting it read half a state. All of them carry the tenant's hash tag
        (one slot), and the script builds no key (keys.ts builds them; keys.test.ts checks that
        every key a script touches is a KEYS entry):
    KEYS[1]            the tick lease `tick:{tenant}:slot` when "lease" is given, then
    KEYS[h]            the state hash `tstate:{tenant}` (h = 2 with a lease, else 1), then
    KEYS[h+1..h+b]     the window buffer `wbuf:{tenant}:<rule>:<device>` of each of "buffers", then
    KEYS[h+b+1..]      the cooldown key `cooldown:{tenant}:<rule>:<device>` of each of "cooldowns".
  ARGV[1]: JSON request:
    {
      "lease": ["<token>", "<px>"],        -- optional: take KEYS[1] first (SET NX PX)
      "buffers": ["<rule>:<device>", ...], -- the window buffers to read (keyPart-escaped parts)
      "cooldowns": ["<rule>:<device>", ...], -- pairs whose cooldown key is declared (rules with a
                                           -- cooldown): read only for an earlier release's "1"
      "pairs": ["<rule>:<device>", ...]    -- optional: read the hash fields of these pairs only
    }

  A plan larger than the evaluator's bound per call is read in several calls, each with "pairs"
  (its slice of the plan) instead of the whole hash, so that no call blocks the server for longer
  than one slice takes. Each call returns the hash's "seq"; the evaluator uses the state only when
  every call saw the same one (else a write came in between, and it rebuilds from PostgreSQL).

  Per call: HGETALL of the state hash (with "pairs": HGET of "seq" and HMGET of the pairs' cond,
  anom, seen and cd fields); for every cd field (its value: when the cooldown ends, on the
  evaluator's tick clock, ms) the end as stored, or for the "1" of an earlier release (whose end
  is the key's expiry) the PTTL of its declared cooldown key; GET of every requested buffer. Nothing is written: an ended cooldown's
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

local req = cjson.decode(ARGV[1])
local buffers_req = req.buffers
local cooldowns_req = req.cooldowns or {}
local h = req.lease and 2 or 1
if #KEYS ~= h + #buffers_req + #cooldowns_req then
  return redis.error_reply('tenant_read: KEYS do not match the request')
end

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

local hash_key = KEYS[h]
local seq = false
local fields, cooldowns = {}, {}

-- The declared cooldown key of each pair part.
local cooldown_key = {}
for i, part in ipairs(cooldowns_req) do
  cooldown_key[part] = KEYS[h + #buffers_req + i]
end

-- A cd field: when the pair's cooldown ends (tick clock), or "1" (an earlier release).
local function cooldown(prefix, value)
  -- A stored end decides (the caller compares it with its tick); an earlier release's "1" only
  -- while its key lives (undeclared: the rule has no cooldown any more).
  local left = 0
  if value == '1' then
    local key = cooldown_key[prefix]
    left = key and redis.call('PTTL', key) or -2
  end
  if value ~= '1' or left > 0 then
    cooldowns[#cooldowns + 1] = prefix
    cooldowns[#cooldowns + 1] = left
    cooldowns[#cooldowns + 1] = value
  end
end

if req.pairs then
  seq = redis.call('HGET', hash_key, 'seq')
  -- In slices: unpack() of a long list overflows Lua's stack.
  for i = 1, #req.pairs, 250 do
    local last = math.min(i + 249, #req.pairs)
    local names = {}
    for j = i, last do
      local part = req.pairs[j]
      names[#names + 1] = part .. ':cond'
      names[#names + 1] = part .. ':anom'
      names[#names + 1] = part .. ':seen'
      names[#names + 1] = part .. ':cd'
    end
    local values = redis.call('HMGET', hash_key, unpack(names))
    for k = 1, #names do
      local value = values[k]
      if value then
        if k % 4 == 0 then
          cooldown(req.pairs[i + k / 4 - 1], value)
        else
          fields[#fields + 1] = names[k]
          fields[#fields + 1] = value
        end
      end
    end
  end
else
  local hash = redis.call('HGETALL', hash_key)
  for i = 1, #hash, 2 do
    local name = hash[i]
    if name == 'seq' then
      seq = hash[i + 1]
    elseif name == 'gen' then
      -- The generation stamp of an earlier release: not state.
    elseif string.sub(name, -3) == ':cd' then
      cooldown(string.sub(name, 1, -4), hash[i + 1])
    else
      fields[#fields + 1] = name
      fields[#fields + 1] = hash[i + 1]
    end
  end
end

local buffers = {}
for i = 1, #buffers_req do
  local key = KEYS[h + i]
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
