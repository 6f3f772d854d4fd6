-- A job read but not started goes back to its stream as the same attempt (a worker that
-- stops while holding it): the new entry, the record pointed at it and the old entry
-- acknowledged in one step. A task that finished or was cancelled meanwhile is only
-- acknowledged.
-- KEYS[1]: the job's stream, KEYS[2]: the task's record, KEYS[3]: the old entry's stream
-- ARGV: prefix, job JSON, old entry id ('' when there is none)
-- Returns the new entry's id, or false when the task no longer waits.
if ARGV[3] ~= '' then redis.call('XACK', KEYS[3], GROUP, ARGV[3]) end
local state = redis.call('HGET', KEYS[2], 'state')
if state ~= '"queued"' then return false end
local entry = redis.call('XADD', KEYS[1], '*', 'job', ARGV[2])
redis.call('HSET', KEYS[2], 'job_entry', cjson.encode(KEYS[1] .. ' ' .. entry))
ring(KEYS[1])
return entry
