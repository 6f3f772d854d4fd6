-- Flag a task for cancel; a queued one is cancelled at once and its job, if not yet
-- handed to a worker, taken off its stream.
-- ARGV: prefix, task_id, now, n_pending, (attempt, progress, message, started, where) * n
-- Returns the record (flat) or false when unknown.
local id, now = ARGV[2], ARGV[3]
local key = rkey(id)
local flat = redis.call('HGETALL', key)
if #flat == 0 then return false end
local t = to_table(flat)
local state = cjson.decode(t.state)
if FINISHED[state] then return flat end
local pending = {}
for i = 5, #ARGV do pending[#pending + 1] = ARGV[i] end
local changes = {cancel_requested = 'true'}
take_pending(changes, state, tonumber(t.attempts or '0'), pending)
if state == 'queued' then
  changes.state = cjson.encode('cancelled')
  changes.finished_at = now
  if t.job_entry then  -- not yet handed to a worker: take it off the queue
    local stream, entry = string.match(cjson.decode(t.job_entry), '^(.*) (%S+)$')
    redis.call('XDEL', stream, entry)
  end
end
redis.call('HSET', key, unpack(to_flat(changes)))
for k, v in pairs(changes) do t[k] = v end
if state == 'queued' then
  counted(t, 'queued', 'cancelled')
  finish(key, id, t, 'cancelled')
end
return to_flat(t)
