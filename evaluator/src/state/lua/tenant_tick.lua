--[[
  tenant_tick: load (and advance) the state of ONE tenant for one tick, atomically, in one call.

  KEYS: every key the call touches, all of the same tenant (hash tag {tenant}, one Cluster slot).
        The request in ARGV[1] refers to them by 1-based index.
  ARGV[1]: JSON request. Every number is passed as a string, so Lua never re-formats one.
    {
      "now": "<tick ms>",
      "lease": { "key": i, "token": "<holder>", "px": "<ms>" },        -- optional
      "pairs": [ {                                                      -- one per (rule, device)
        "cooldown": i,                                                  -- cooldown:{t}:r:d
        "alert": { "key": i, "px": "<ms>" },                            -- cond:{t}:r:d
        "window": { "key": i, "cutoff": "<ms>", "maxLen": "<n>",        -- wbuf:{t}:r:d  (optional)
                    "px": "<ms>", "add": ["<score>", "<member>", ...] },
        "anomaly": { "key": i, "px": "<ms>" },                          -- anom:{t}:r:d  (optional)
        "seen": { "key": i, "max": "<ms>", "px": "<ms>" }               -- seen:{t}:r:d  (optional;
      } ]                                                               --   "max" absent: no reading)
    }

  Per pair, in order:
    window: ZADD the new readings (member "ts:value", score ts; an identical reading is stored once,
            so a retried tick does not double-count), PEXPIRE px when something was added (an idle
            buffer is left to expire), drop scores <= cutoff (= now - window), keep the newest maxLen;
    seen:   set to max(stored, max); when neither exists, seed with now; refresh PX;
    alert, anomaly: read; refresh PX when present, so a long-firing alert keeps its state;
    cooldown: PTTL.

  Returns:
    { 0, <holder token or nil> }   the lease is held by another token: nothing was read or written
    { 1, pair_1, ..., pair_n }     with pair_i = { buffer, cooldown_pttl, anomaly, seen, alert }
      buffer        array of members "ts:value" oldest first, or nil when the pair has no window
      cooldown_pttl integer ms left; -2 when there is no cooldown
      anomaly       stored JSON or nil;  seen: stored ms (string) or nil;  alert: stored JSON or nil
]]

local req = cjson.decode(ARGV[1])

if req.lease then
  local lease = req.lease
  local key = KEYS[lease.key]
  if not redis.call('SET', key, lease.token, 'NX', 'PX', lease.px) then
    local holder = redis.call('GET', key)
    -- The same token again (a retried call) keeps its lease.
    if holder ~= lease.token then
      return { 0, holder }
    end
  end
end

-- ZADD in bounded chunks: unpack() of a very long list would overflow the Lua stack.
local function zadd_all(key, flat)
  local n = #flat
  local i = 1
  while i <= n do
    local last = math.min(i + 999, n)
    redis.call('ZADD', key, unpack(flat, i, last))
    i = last + 1
  end
end

local function read_and_touch(key, px)
  local value = redis.call('GET', key)
  if value then
    redis.call('PEXPIRE', key, px)
  end
  return value
end

local out = { 1 }
for _, pair in ipairs(req.pairs) do
  local buffer = false
  local w = pair.window
  if w then
    local key = KEYS[w.key]
    if #w.add > 0 then
      zadd_all(key, w.add)
      redis.call('PEXPIRE', key, w.px)
    end
    redis.call('ZREMRANGEBYSCORE', key, '-inf', w.cutoff)
    redis.call('ZREMRANGEBYRANK', key, 0, -(tonumber(w.maxLen) + 1))
    buffer = redis.call('ZRANGE', key, 0, -1)
  end

  local seen = false
  local s = pair.seen
  if s then
    local key = KEYS[s.key]
    local stored = redis.call('GET', key)
    -- An unreadable stored value counts as absent.
    local next_value = tonumber(stored) and stored or nil
    if s.max and (not next_value or tonumber(s.max) > tonumber(next_value)) then
      next_value = s.max
    end
    if not next_value then
      next_value = req.now
    end
    redis.call('SET', key, next_value, 'PX', s.px)
    seen = next_value
  end

  local anomaly = false
  if pair.anomaly then
    anomaly = read_and_touch(KEYS[pair.anomaly.key], pair.anomaly.px)
  end

  local alert = read_and_touch(KEYS[pair.alert.key], pair.alert.px)
  local cooldown = redis.call('PTTL', KEYS[pair.cooldown])

  out[#out + 1] = { buffer, cooldown, anomaly, seen, alert }
end
return out
