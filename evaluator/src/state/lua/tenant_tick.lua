--[[
  tenant_tick: load (and advance) the state of ONE tenant for one tick, atomically, in one call.

  KEYS[1]: one key of the tenant: the tick lease `tick:{tenant}:slot` when "lease" is given, else
           the first pair's cooldown key. Its hash tag `{tenant}` is the only tag the script uses:
           every other key is built here as `<kind>:{tenant}:<rule>:<device>` (the format of
           keys.ts), so the call touches only keys in the tenant's hash slot (one Cluster slot),
           which is also the slot KEYS[1] routes the call to.
  ARGV[1]: JSON request. Every timestamp and TTL is passed as a string, so Lua never re-formats one.
    {
      "now": "<tick ms>",
      "statePx": "<ms>",                                  -- TTL of cond: and anom: keys
      "lease": ["<token>", "<px>"],                       -- optional: take KEYS[1] first
      "rules": [ ["<rule part>",                          -- keyPart(rule id)
                  "<cutoff ms>"|false, "<maxLen>", "<window px>",   -- wbuf:  (false: no window)
                  true|false,                             -- anom:  kept
                  "<seen px>"|false] ],                   -- seen:  kept (false: not tracked)
      "devices": ["<device part>", ...],                  -- keyPart(device id)
      "pairs": [ r, d, n, member_1, ..., member_n, [seen max] ... ]   -- flat, one run per pair:
    }                                                     --   rule and device 1-based indexes,
                                                          --   n readings "ts:value" (score = ts),
                                                          --   then, when the rule tracks last-seen,
                                                          --   the newest reading ts or false

  Per pair, in order:
    window: ZADD the new readings (member "ts:value", score ts; an identical reading is stored once,
            so a retried tick does not double-count), PEXPIRE px when readings were given (an idle
            buffer is left to expire), then drop scores <= cutoff and keep the newest maxLen: one
            ZRANGE reads the buffer, and one ZREMRANGEBYRANK runs only when something must go;
    seen:   set to max(stored, max); when neither exists, seed with now; refresh PX;
    anomaly, alert: read; refresh PX when present, so a long-firing alert keeps its state;
    cooldown: PTTL.

  Returns:
    { 0, <holder token or nil> }   the lease is held by another token: nothing was read or written
    { 1, cooldowns, alerts, anomalies, seens, buffers }, flat arrays where i is the 1-based pair index:
      cooldowns  i, ms left              only pairs whose cooldown has time left
      alerts     i, stored JSON          only pairs with a stored lifecycle state
      anomalies  i, stored JSON          only pairs with stored statistics
      seens      i, ms (string)          every pair that tracks last-seen
      buffers    n, member_1..member_n   every pair with a window, in pair order, oldest first
]]

local tag = string.match(KEYS[1], '{[^}]*}')
if not tag then
  return redis.error_reply('tenant_tick: KEYS[1] carries no hash tag')
end

local req = cjson.decode(ARGV[1])
local now = req.now
local state_px = req.statePx

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

local rules = {}
for i, r in ipairs(req.rules) do
  rules[i] = {
    prefix = tag .. ':' .. r[1] .. ':',
    cutoff = r[2] and tonumber(r[2]) or nil,
    max_len = tonumber(r[3]),
    window_px = r[4],
    anomaly = r[5] == true,
    seen_px = r[6] or nil,
  }
end
local devices = req.devices

local cooldowns, alerts, anomalies, seens, buffers = {}, {}, {}, {}, {}
local pairs_ = req.pairs
local n_items = #pairs_
local pos = 1
local index = 0
while pos <= n_items do
  index = index + 1
  local rule = rules[pairs_[pos]]
  local suffix = rule.prefix .. devices[pairs_[pos + 1]]
  local n_add = pairs_[pos + 2]
  local first = pos + 3
  pos = first + n_add

  if rule.cutoff then
    local key = 'wbuf:' .. suffix
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

  if rule.seen_px then
    local max = pairs_[pos]
    pos = pos + 1
    local key = 'seen:' .. suffix
    local stored = redis.call('GET', key)
    -- An unreadable stored value counts as absent.
    local next_value = tonumber(stored) and stored or nil
    if max and (not next_value or tonumber(max) > tonumber(next_value)) then
      next_value = max
    end
    if not next_value then
      next_value = now
    end
    redis.call('SET', key, next_value, 'PX', rule.seen_px)
    seens[#seens + 1] = index
    seens[#seens + 1] = next_value
  end

  if rule.anomaly then
    local key = 'anom:' .. suffix
    local value = redis.call('GET', key)
    if value then
      redis.call('PEXPIRE', key, state_px)
      anomalies[#anomalies + 1] = index
      anomalies[#anomalies + 1] = value
    end
  end

  local alert_key = 'cond:' .. suffix
  local alert = redis.call('GET', alert_key)
  if alert then
    redis.call('PEXPIRE', alert_key, state_px)
    alerts[#alerts + 1] = index
    alerts[#alerts + 1] = alert
  end

  local cooldown = redis.call('PTTL', 'cooldown:' .. suffix)
  if cooldown > 0 then
    cooldowns[#cooldowns + 1] = index
    cooldowns[#cooldowns + 1] = cooldown
  end
end
return { 1, cooldowns, alerts, anomalies, seens, buffers }
