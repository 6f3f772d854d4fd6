-- Due retries and delayed starts move from the delayed set to their priority's stream, unless the task
-- finished or was cancelled while it waited; the record learns its new entry, so a
-- cancel can take it off the queue.
-- ARGV: prefix, queue name, now (seconds)
-- Returns how many due jobs were looked at.
local name, now = ARGV[2], tonumber(ARGV[3])
local delayed = delayed_key(name)
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 100)
for _, member in ipairs(due) do
  redis.call('ZREM', delayed, member)
  local job = cjson.decode(member)
  local key = rkey(job['task_id'])
  local state = redis.call('HGET', key, 'state')
  if state == '"queued"' then
    local stream = stream_key(name, job['priority'])
    local entry = redis.call('XADD', stream, '*', 'job', member)
    redis.call('HSET', key, 'job_entry', cjson.encode(stream .. ' ' .. entry))
    ring(stream)
  end
end
return #due
