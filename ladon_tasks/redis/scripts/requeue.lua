-- A job read but not started goes back to its stream as the same attempt (a worker that
-- stops while holding it): the new entry, the record pointed at it and the old entry
-- acknowledged in one step. A task that finished or was cancelled meanwhile is only
-- acknowledged.
-- ARGV: prefix, queue name, job JSON, the old entry's stream, old entry id ('' when there is none)
-- Returns the new entry's id, or false when the task no longer waits.
local name, member, old_stream, old_entry = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if old_entry ~= '' then redis.call('XACK', old_stream, GROUP, old_entry) end
local job = cjson.decode(member)
local key = rkey(job['task_id'])
local state = redis.call('HGET', key, 'state')
if state ~= '"queued"' then return false end
local stream = stream_key(name, job['priority'])
local entry = redis.call('XADD', stream, '*', 'job', member)
redis.call('HSET', key, 'job_entry', cjson.encode(stream .. ' ' .. entry))
ring(stream)
return entry
