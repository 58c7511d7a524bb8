--[[
  tenant_commit: write the state updates one tenant's evaluation produced, atomically, in one call.

  KEYS: every key written (and the lease key when fenced), all of the same tenant (hash tag
        {tenant}, one Cluster slot). ARGV[1] refers to them by 1-based index.
  ARGV[1]: JSON request, every number passed as a string:
    {
      "lease": { "key": i, "token": "<holder>" },                 -- optional fence
      "ops": [ { "key": i, "set": "<value>", "px": "<ms>" }        -- SET key value PX ms
             | { "key": i, "del": true } ]                         -- DEL key
    }

  Returns:
    { 1 }                  every op applied
    { 0, <holder or nil> } fenced out: the lease is no longer held by "token" (expired, or taken by
                           another evaluator), so nothing was written — a stale evaluator cannot
                           overwrite state that a newer owner of the tenant now maintains
]]

local req = cjson.decode(ARGV[1])

if req.lease then
  local holder = redis.call('GET', KEYS[req.lease.key])
  if holder ~= req.lease.token then
    return { 0, holder }
  end
end

for _, op in ipairs(req.ops) do
  local key = KEYS[op.key]
  if op.del then
    redis.call('DEL', key)
  else
    redis.call('SET', key, op.set, 'PX', op.px)
  end
end
return { 1 }
