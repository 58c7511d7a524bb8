--[[
  tenant_tick: load (and advance) the state of ONE tenant for one tick, atomically, in one call.

  KEYS[1]: one key of the tenant: the tick lease `tick:{tenant}:slot` when "lease" is given, else
           the tenant's state hash `tstate:{tenant}`. Its hash tag `{tenant}` is the only tag the
           script uses: every other key is built here (`tstate:{tenant}`, and
           `<kind>:{tenant}:<rule>:<device>` for wbuf: and cooldown:, the format of keys.ts), so
           the call touches only keys in the tenant's hash slot (one Cluster slot), which is also
           the slot KEYS[1] routes the call to.
  ARGV[1]: JSON request. Every timestamp and TTL is passed as a string, so Lua never re-formats one.
    {
      "now": "<tick ms>",
      "statePx": "<ms>",                                  -- TTL of the tstate: hash
      "lease": ["<token>", "<px>"],                       -- optional: take KEYS[1] first
      "rules": [ ["<rule part>",                          -- keyPart(rule id)
                  "<cutoff ms>"|false, "<maxLen>", "<window px>",   -- wbuf:  (false: no window)
                  true|false] ],                          -- seen field tracked
      "devices": ["<device part>", ...],                  -- keyPart(device id)
      "pairs": [ r, d, n, member_1, ..., member_n, [seen max] ... ]   -- flat, one run per pair
    }                                                     --   that keeps a window or last-seen
                                                          --   (others are not sent): rule and
                                                          --   device 1-based indexes, n readings
                                                          --   "ts:value" (score = ts), then, when
                                                          --   the rule tracks last-seen, the
                                                          --   newest reading ts or false

  The tenant's small per-pair states live in ONE hash, `tstate:{tenant}`, with fields
  `<rule>:<device>:<kind>`: cond (lifecycle), anom (statistics), seen (last-seen) and cd (index of
  the pairs that were given a `cooldown:` key). One HGETALL reads them all.

  Per tick:
    hash:   HGETALL; for every cd field, PTTL of its cooldown key (an expired one drops the field);
    per sent pair, in order:
      window: ZADD the new readings (member "ts:value", score ts; an identical reading is stored
              once, so a retried tick does not double-count), PEXPIRE px when readings were given
              (an idle buffer is left to expire), then drop scores <= cutoff and keep the newest
              maxLen: one ZRANGE reads the buffer, and one ZREMRANGEBYRANK runs only when something
              must go;
      seen:   max(stored, max); when neither exists, seed with now; written only when it changed;
    then one HSET of the changed seen fields, and PEXPIRE statePx on the hash (so a long-firing
    alert, statistics and last-seen times live as long as the tenant is evaluated).

  Returns:
    { 0, <holder token or nil> }   the lease is held by another token: nothing was read or written
    { 1, fields, cooldowns, seens, buffers }, flat arrays:
      fields     name, value            every stored cond and anom field of the hash
      cooldowns  "<rule>:<device>", ms  pairs whose cooldown has time left
      seens      i, ms (string)         i = 1-based index among the sent pairs that track last-seen
      buffers    n, member_1..member_n  every sent pair with a window, in order, oldest first
]]

local tag = string.match(KEYS[1], '{[^}]*}')
if not tag then
  return redis.error_reply('tenant_tick: KEYS[1] carries no hash tag')
end

local req = cjson.decode(ARGV[1])
local now = req.now

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
local fields, cooldowns, stored_seen, stale = {}, {}, {}, {}
for i = 1, #hash, 2 do
  local name = hash[i]
  if string.sub(name, -3) == ':cd' then
    local prefix = string.sub(name, 1, -4)
    local left = redis.call('PTTL', 'cooldown:' .. tag .. ':' .. prefix)
    if left > 0 then
      cooldowns[#cooldowns + 1] = prefix
      cooldowns[#cooldowns + 1] = left
    else
      stale[#stale + 1] = name
    end
  elseif string.sub(name, -5) == ':seen' then
    stored_seen[name] = hash[i + 1]
  else
    fields[#fields + 1] = name
    fields[#fields + 1] = hash[i + 1]
  end
end
if #stale > 0 then
  redis.call('HDEL', hash_key, unpack(stale))
end

local rules = {}
for i, r in ipairs(req.rules) do
  rules[i] = {
    part = r[1] .. ':',
    cutoff = r[2] and tonumber(r[2]) or nil,
    max_len = tonumber(r[3]),
    window_px = r[4],
    seen = r[5] == true,
  }
end
local devices = req.devices

local seens, buffers, seen_writes = {}, {}, {}
local pairs_ = req.pairs
local n_items = #pairs_
local pos = 1
local index = 0
while pos <= n_items do
  index = index + 1
  local rule = rules[pairs_[pos]]
  local prefix = rule.part .. devices[pairs_[pos + 1]]
  local n_add = pairs_[pos + 2]
  local first = pos + 3
  pos = first + n_add

  if rule.cutoff then
    local key = 'wbuf:' .. tag .. ':' .. prefix
    if n_add > 0 then
      -- ZADD in bounded chunks: a very long argument list would overflow the Lua stack.
      local args = {}
      for j = first, pos - 1 do
        local member = pairs_[j]
        args[#args + 1] = string.sub(member, 1, string.find(member, ':', 1, true) - 1)
        args[#args + 1] = member
        if #args >= 1000 then
          redis.call('ZADD', key, unpack(args))
          args = {}
        end
      end
      if #args > 0 then
        redis.call('ZADD', key, unpack(args))
      end
      redis.call('PEXPIRE', key, rule.window_px)
    end
    local all = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    local total = #all / 2
    -- Sorted by score: the entries at or before the cutoff are a prefix.
    local drop = 0
    while drop < total and tonumber(all[2 * drop + 2]) <= rule.cutoff do
      drop = drop + 1
    end
    if total - drop > rule.max_len then
      drop = total - rule.max_len
    end
    if drop > 0 then
      redis.call('ZREMRANGEBYRANK', key, 0, drop - 1)
    end
    local b = #buffers + 1
    buffers[b] = total - drop
    for j = drop + 1, total do
      b = b + 1
      buffers[b] = all[2 * j - 1]
    end
  end

  if rule.seen then
    local max = pairs_[pos]
    pos = pos + 1
    local name = prefix .. ':seen'
    local stored = stored_seen[name]
    -- An unreadable stored value counts as absent.
    local next_value = tonumber(stored) and stored or nil
    if max and (not next_value or tonumber(max) > tonumber(next_value)) then
      next_value = max
    end
    if not next_value then
      next_value = now
    end
    if next_value ~= stored then
      seen_writes[#seen_writes + 1] = name
      seen_writes[#seen_writes + 1] = next_value
    end
    seens[#seens + 1] = index
    seens[#seens + 1] = next_value
  end
end

for i = 1, #seen_writes, 1000 do
  redis.call('HSET', hash_key, unpack(seen_writes, i, math.min(i + 999, #seen_writes)))
end
if #hash > 0 or #seen_writes > 0 then
  redis.call('PEXPIRE', hash_key, req.statePx)
end
return { 1, fields, cooldowns, seens, buffers }
