--[[
  tenant_write: store the state ONE committed evaluation of a tenant left, atomically, in one call,
  fenced by the evaluation-fence seq the state belongs to.

  Valkey is a cache of PostgreSQL. An evaluation is committed in PostgreSQL first (tenant_fences
  moves seq k -> k+1 with its alert writes); only then does the evaluator store here the state that
  evaluation left, labelled with its version in the hash field "seq". So the stored state is always the state
  of some committed evaluation, and an evaluator that finds a seq other than the fence's in
  PostgreSQL rebuilds the state from PostgreSQL instead of using it.

  A state's version is "<seq>:<tick ms>" of the evaluation that left it ("0": never evaluated), so
  it names one evaluation even if PostgreSQL lost an asynchronously committed one and gave its seq
  again. Two modes:
    "delta": the writes are computed from the state of version "expect" (the evaluator's copy, or
             what it read): applied only when the stored version is "expect" (no version counts
             as "0", the state of a tenant never evaluated).
    "full":  the writes are the whole state of the plan's pairs (after a rebuild from PostgreSQL,
             or a delta refused because the stored state lagged): the hash is replaced; applied
             only when the stored seq is older than "seq" (or absent), so a late write never
             overwrites the state of a newer evaluation.

  A state larger than the evaluator's bound per call is written in several calls (a chunk each),
  so that no call blocks the server for longer than one chunk takes. The request then carries
  "marker", "first" and "last": the first call checks the fence as above (and, "full", replaces the
  hash), and every call but the last leaves "seq" at the marker ("<version>:partial"), which no
  read takes for a version: until the last call sets the version, a reader rebuilds from
  PostgreSQL. A later call applies only while "seq" is still its marker, so a newer write that came
  in between (it replaced the marker) wins, and a write cut short (a crash between calls) leaves a
  state that is never used and that the next full write replaces. A marker starts with its seq, so
  a full write of an older seq is refused by it too.

  KEYS: every key the call touches, declared, so that Valkey Cluster routes the call to the node
        of the tenant's slot and refuses it (ASK, TRYAGAIN) while that slot is moving between
        nodes instead of letting it write half a state on the wrong node. All carry the tenant's
        hash tag (one slot); the script builds no key (keys.ts does; keys.test.ts checks it):
    KEYS[1]   the tenant's state hash `tstate:{tenant}`, then
    KEYS[2..] one key per "b" or "c" op, in the order of the ops: the window buffer
              `wbuf:{tenant}:<rule>:<device>` of a "b", the cooldown key
              `cooldown:{tenant}:<rule>:<device>` of a "c" (each checked to end with the op's
              "<rule>:<device>").
  ARGV[1]: JSON request, every number passed as a string; ARGV[2..]: the values written (window
           buffers "ts:value,+d:value,..." oldest first, hash field values), so the JSON decoder
           never sees them:
    {
      "mode": "delta" | "full",
      "expect": "<version>",         -- delta: the version of the state the writes were computed from
      "seq": "<seq>",                -- the seq of the committed evaluation
      "version": "<seq>:<tick ms>",  -- its version, stored in the hash field "seq"
      "statePx": "<ms>",             -- least TTL of the state hash, ensured by every call
      "marker": "<version>:partial", -- optional, a write in several calls: "seq" until the last
      "first": true|false,           -- with "marker": the first call (checks the fence)
      "last": true|false,            -- with "marker": the last call (stores the version)
      "ops": [ op, a, b, c, ... ]    -- flat, 4 items per op:
    }                                --   "b", "<rule>:<device>", i|false, "<px>":
                                     --      SET wbuf: key to ARGV[i] PX px, or DEL when false
                                     --   "f", "<field>", i|false, false:
                                     --      HSET the hash field to ARGV[i], or HDEL when false
                                     --   "c", "<rule>:<device>", "<px>", "<until>":
                                     --      SET its cooldown: key "1" PX px, and the field
                                     --      <rule>:<device>:cd to until (when it ends, tick clock ms)

  Returns:
    { 1 }                   applied
    { 2, <stored seq or nil> }  refused by the seq fence (or, after the first call of several, the
                                marker is gone): nothing was written by this call
]]

local OPS = { b = true, f = true, c = true }

local req = cjson.decode(ARGV[1])
local hash_key = KEYS[1]
local stored = redis.call('HGET', hash_key, 'seq')

if req.mode ~= 'delta' and req.mode ~= 'full' then
  return redis.error_reply('tenant_write: unknown mode')
end
-- One call, or the first / last of several (see above).
local first = req.marker == nil or req.first
local last = req.marker == nil or req.last

if not first then
  if stored ~= req.marker then
    return { 2, stored }
  end
elseif req.mode == 'delta' then
  if (stored or '0') ~= req.expect then
    return { 2, stored }
  end
else
  local stored_seq = stored and tonumber(string.match(stored, '^%d+'))
  if stored_seq and stored_seq >= tonumber(req.seq) then
    return { 2, stored }
  end
end

local ops = req.ops
-- Validate first: a script is not rolled back, so a bad op must not leave half the writes done.
local op_key = {}
local next_key = 2
for i = 1, #ops, 4 do
  if not OPS[ops[i]] then
    return redis.error_reply('tenant_write: unknown op')
  end
  if ops[i] ~= 'c' and ops[i + 2] and not ARGV[ops[i + 2]] then
    return redis.error_reply('tenant_write: value missing')
  end
  if ops[i] ~= 'f' then
    local key, part = KEYS[next_key], ops[i + 1]
    if not key or string.sub(key, -#part - 1) ~= ':' .. part then
      return redis.error_reply('tenant_write: KEYS do not match the ops')
    end
    op_key[i] = key
    next_key = next_key + 1
  end
end
if KEYS[next_key] then
  return redis.error_reply('tenant_write: KEYS do not match the ops')
end

if req.mode == 'full' and first then
  redis.call('DEL', hash_key)
end

local sets, dels = { 'seq', last and req.version or req.marker }, {}
for i = 1, #ops, 4 do
  local op = ops[i]
  if op == 'b' then
    if ops[i + 2] then
      redis.call('SET', op_key[i], ARGV[ops[i + 2]], 'PX', ops[i + 3])
    else
      redis.call('DEL', op_key[i])
    end
  elseif op == 'f' then
    if ops[i + 2] then
      sets[#sets + 1] = ops[i + 1]
      sets[#sets + 1] = ARGV[ops[i + 2]]
    else
      dels[#dels + 1] = ops[i + 1]
    end
  else
    redis.call('SET', op_key[i], '1', 'PX', ops[i + 2])
    sets[#sets + 1] = ops[i + 1] .. ':cd'
    sets[#sets + 1] = ops[i + 3] or '1'
  end
end

for i = 1, #dels, 1000 do
  redis.call('HDEL', hash_key, unpack(dels, i, math.min(i + 999, #dels)))
end
for i = 1, #sets, 1000 do
  redis.call('HSET', hash_key, unpack(sets, i, math.min(i + 999, #sets)))
end
-- The TTL only grows here: a commit never shortens a long last-seen retention set by a tick.
local ttl = redis.call('PTTL', hash_key)
if ttl < tonumber(req.statePx) then
  redis.call('PEXPIRE', hash_key, req.statePx)
end
return { 1 }
