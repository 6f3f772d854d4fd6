-- A job queued again (reissue, hand-back): its new entry, and the record pointed at it.
-- ARGV: prefix, job JSON; KEYS[1]: the job's stream, KEYS[2]: the task's record
-- Returns the new entry's id.
local entry = redis.call('XADD', KEYS[1], '*', 'job', ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'job_entry', cjson.encode(KEYS[1] .. ' ' .. entry))
end
return entry
