-- Progress and messages of running attempts, several tasks per call. An attempt a queue
-- worker has not recorded yet becomes 'running' here (with its start time), unless the
-- task was cancelled meanwhile.
-- ARGV: prefix, then (task_id, attempt|'', progress|'', message|'', started|'') * n
-- Returns one answer per task: 1 go on, 0 stop.
local answers = {}
for i = 2, #ARGV, 5 do
  local key = rkey(ARGV[i])
  local raw = redis.call('HMGET', key, 'state', 'attempts', 'cancel_requested', 'service', 'method')
  local go = 0
  if raw[1] then
    local t = {state = raw[1], attempts = raw[2], cancel_requested = raw[3], service = raw[4], method = raw[5]}
    local state, unrecorded = state_for(t, ARGV[i + 1])
    local changes = {}
    if unrecorded then
      changes.state = '"running"'
      changes.attempts = ARGV[i + 1]
      if ARGV[i + 4] ~= '' then changes.started_at = ARGV[i + 4] end
    end
    if state == 'running' then
      if ARGV[i + 2] ~= '' then changes.progress = ARGV[i + 2] end
      if ARGV[i + 3] ~= '' then changes.message = ARGV[i + 3] end
      if raw[3] ~= 'true' then go = 1 end
    end
    if next(changes) then redis.call('HSET', key, unpack(to_flat(changes))) end
    if unrecorded then
      t.attempts = ARGV[i + 1]
      emit(ARGV[i], t, 'running')
    end
  end
  answers[#answers + 1] = go
end
return answers
