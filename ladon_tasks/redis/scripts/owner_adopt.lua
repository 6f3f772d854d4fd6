-- One task of an owner whose lease ran out: queued again under a live owner (fenced: the
-- lost attempt can no longer write, and the old owner can no longer start it), or -
-- its lost attempts spent, no live owner able to run it, or a cancel asked for - ended.
-- ARGV: prefix, task_id, dead owner, new owner ('' when none can run it), most lost
--       attempts on top of max_attempts, now, what happened (for the message)
-- Returns the record (flat), or false when the task is gone, finished or adopted already.
local id, dead, new, max_lost, now, reason = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]
local dead_set = owned_key(dead)
local function forget()
  redis.call('SREM', dead_set, id)
  if redis.call('SCARD', dead_set) == 0 then redis.call('ZREM', P .. KEY.owners, dead) end
end
local key = rkey(id)
local flat = redis.call('HGETALL', key)
if #flat == 0 then forget(); return false end
local t = to_table(flat)
local state = cjson.decode(t.state)
if FINISHED[state] or cjson.decode(t.owner or '""') ~= dead then forget(); return false end
local attempts, most = tonumber(t.attempts or '0'), tonumber(t.max_attempts or '1') + max_lost
local changes = {}
if t.cancel_requested == 'true' then
  changes.state, changes.finished_at = '"cancelled"', now
elseif new == '' or (state == 'running' and attempts >= most) then
  changes.state, changes.finished_at = '"failed"', now
  changes.error_type = '"WorkerDied"'
  if new == '' then
    changes.error_message = cjson.encode(reason .. '; no live process serves ' .. cjson.decode(t.method))
  else
    changes.error_message = cjson.encode(reason .. '; attempt ' .. attempts .. ' was its last')
  end
else
  changes.state, changes.owner = '"queued"', cjson.encode(new)
  changes.message = cjson.encode('reissued: ' .. reason)
  redis.call('SADD', owned_key(new), id)
end
redis.call('HSET', key, unpack(to_flat(changes)))
for k, v in pairs(changes) do t[k] = v end
local final = cjson.decode(t.state)
counted(t, state, final, (state == 'running' and final == 'queued') and 'reissued' or nil)
if FINISHED[final] then
  t.owner = cjson.encode(dead)  -- finish() leaves the dead owner's set
  finish(key, id, t, final)
else
  emit(id, t, final)
end
forget()
return to_flat(t)
