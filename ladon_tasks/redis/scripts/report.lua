-- Progress and messages of running attempts, several tasks per call. An attempt a queue
-- worker has not recorded yet becomes 'running' here (with its start time and where it
-- runs), unless the task was cancelled meanwhile.
-- ARGV: prefix, then (task_id, attempt|'', progress|'', message|'', started|'', where|'') * n
-- Returns one answer per task: 1 go on, 0 stop.
local answers = {}
local width = 1 + PENDING_WIDTH
for i = 2, #ARGV, width do
  local key = rkey(ARGV[i])
  local raw = redis.call('HMGET', key, 'state', 'attempts', 'cancel_requested', 'service', 'method', 'ran_on')
  local go = 0
  if raw[1] then
    local t = {state = raw[1], attempts = raw[2], cancel_requested = raw[3], service = raw[4], method = raw[5],
               ran_on = raw[6] or nil}
    local state, unrecorded = state_for(t, ARGV[i + 1])
    local changes = {}
    if unrecorded then
      changes.state = '"running"'
      changes.attempts = ARGV[i + 1]
      if ARGV[i + 4] ~= '' then changes.started_at = ARGV[i + 4] end
      if ARGV[i + 5] ~= '' then changes.ran_on = ran_on(t, tonumber(ARGV[i + 1]), ARGV[i + 5]) end
    end
    if state == 'running' then
      if ARGV[i + 2] ~= '' then changes.progress = ARGV[i + 2] end
      if ARGV[i + 3] ~= '' then changes.message = ARGV[i + 3] end
      if raw[3] ~= 'true' then go = 1 end
    end
    if next(changes) then redis.call('HSET', key, unpack(to_flat(changes))) end
    if unrecorded then
      t.attempts = ARGV[i + 1]
      counted(t, 'queued', 'running')
      emit(ARGV[i], t, 'running')
    end
  end
  answers[#answers + 1] = go
end
return answers
