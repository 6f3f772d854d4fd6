-- A process leaving cleanly hands over every task it holds: a running one goes back to
-- 'queued' (its attempt fenced off) or - its lost attempts spent - fails; then its lease
-- ends now, so any live process adopts the tasks at its next pass instead of a lease
-- later.
-- ARGV: prefix, owner, most lost attempts on top of max_attempts, now, what happened
-- Returns how many tasks were handed over.
local owner, max_lost, now, reason = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local set = owned_key(owner)
local handed = 0
for _, id in ipairs(redis.call('SMEMBERS', set)) do
  local key = rkey(id)
  local flat = redis.call('HGETALL', key)
  local t = to_table(flat)
  local state = #flat > 0 and cjson.decode(t.state) or nil
  if not state or FINISHED[state] then
    redis.call('SREM', set, id)
  elseif state == 'running' then
    local changes = {}
    local attempts, most = tonumber(t.attempts or '0'), tonumber(t.max_attempts or '1') + max_lost
    if t.cancel_requested == 'true' then
      changes.state, changes.finished_at = '"cancelled"', now
    elseif attempts >= most then
      changes.state, changes.finished_at, changes.error_type = '"failed"', now, '"WorkerDied"'
      changes.error_message = cjson.encode(reason .. '; attempt ' .. attempts .. ' was its last')
    else
      changes.state, changes.message = '"queued"', cjson.encode('handed back: ' .. reason)
      handed = handed + 1
    end
    redis.call('HSET', key, unpack(to_flat(changes)))
    for k, v in pairs(changes) do t[k] = v end
    local final = cjson.decode(t.state)
    counted(t, 'running', final, final == 'queued' and 'reissued' or nil)
    if FINISHED[final] then finish(key, id, t, final) else emit(id, t, final) end
  else
    handed = handed + 1
  end
end
if redis.call('SCARD', set) > 0 then redis.call('ZADD', P .. KEY.owners, 0, owner)
else redis.call('ZREM', P .. KEY.owners, owner) end
return handed
