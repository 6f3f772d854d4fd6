-- A state change, checked against the state machine and fenced by attempt; progress kept
-- back by report() lands first. Moving to 'running' counts a new attempt. The task's job
-- moves in the same step (see JobChange in stores/base.py): an entry a worker read is
-- acknowledged whatever the answer, a new entry or a delayed retry is added only if the
-- change is made - so no crash or error between two calls can orphan a task.
-- Where the attempt runs is recorded with its start (target 'running', or a start kept
-- back by report()), and the counts (stats.py) follow the move: back to 'queued' from a
-- running attempt is a retry when the change records an error, else a reissue.
-- ARGV: prefix, task_id, target state, attempt|'', owner|'', now, where|'', record|'',
--       n_pending, (attempt, progress, message, started, where) * n_pending,
--       n_ops, (kind, key, value, extra) * n_ops   with kind one of
--         'ack' (stream, entry id, ''), 'enqueue' (stream, job JSON, ''),
--         'delay' (delayed set, job JSON, due time in seconds),
--         'read' (stream, consumer, count): the slot's next jobs, read whatever the
--           answer, streams asked in the order given until count entries came,
--       then field, JSON, field, JSON... of the record.
-- Returns the new record (flat) - or true unless `record` is '1': a caller without
-- completion hooks would decode it for nothing -, or false: unknown task, illegal move,
-- stale attempt; with 'read' operations, {that, entries read}, each entry {stream, id,
-- {field, value...}}.
local id, target, attempt, owner, now, where = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local wants_record = ARGV[8] == '1'
local n_pending = tonumber(ARGV[9])
local pending = {}
for i = 10, 9 + PENDING_WIDTH * n_pending do pending[#pending + 1] = ARGV[i] end
local ops_at = 10 + PENDING_WIDTH * n_pending
local n_ops = tonumber(ARGV[ops_at])
local fields_at = ops_at + 1 + 4 * n_ops

-- acknowledgements first: a stale or refused change still ends the entry's lease; the
-- slot's next jobs are read as a free slot's XREADGROUP would (a missing group: none)
local reading, handed = false, {}
for i = ops_at + 1, fields_at - 1, 4 do
  if ARGV[i] == 'ack' then redis.call('XACK', ARGV[i + 1], GROUP, ARGV[i + 2]) end
  if ARGV[i] == 'read' then
    reading = true
    local need = tonumber(ARGV[i + 3]) - #handed
    if need > 0 then
      local got = redis.pcall('XREADGROUP', 'GROUP', GROUP, ARGV[i + 2], 'COUNT', need, 'STREAMS', ARGV[i + 1], '>')
      if type(got) == 'table' and not got.err then
        for _, entry in ipairs(got[1][2]) do handed[#handed + 1] = {ARGV[i + 1], entry[1], entry[2]} end
      end
    end
  end
end
local function answer(value)
  if reading then return {value, handed} end
  return value
end

local key = rkey(id)
local flat = redis.call('HGETALL', key)
if #flat == 0 then return answer(false) end
local t = to_table(flat)
if owner ~= '' and cjson.decode(t.owner or '""') ~= owner then return answer(false) end
local current, unrecorded = state_for(t, attempt)
if not current then return answer(false) end
if not (LEGAL[current] and LEGAL[current][target]) then return answer(false) end
local stored = cjson.decode(t.state)
local attempts = tonumber(t.attempts or '0')
if unrecorded then attempts = tonumber(attempt) end
local changes = {}
local started, started_where = take_pending(changes, current, attempts, pending)
changes.state = cjson.encode(target)
if target == 'running' then
  changes.attempts = string.format('%d', attempts + 1)
  changes.started_at = now
  changes.finished_at = '0.0'
  if where ~= '' then changes.ran_on = ran_on(t, attempts + 1, where) end
elseif unrecorded then
  changes.attempts = attempt
  changes.started_at = started or now
  local at = started_where or where
  if at ~= '' then changes.ran_on = ran_on(t, attempts, at) end
end
for i = fields_at, #ARGV, 2 do changes[ARGV[i]] = ARGV[i + 1] end
for i = ops_at + 1, fields_at - 1, 4 do
  if ARGV[i] == 'enqueue' then
    changes.job_entry = cjson.encode(ARGV[i + 1] .. ' ' .. redis.call('XADD', ARGV[i + 1], '*', 'job', ARGV[i + 2]))
    ring(ARGV[i + 1])
  elseif ARGV[i] == 'delay' then
    redis.call('ZADD', ARGV[i + 1], ARGV[i + 3], ARGV[i + 2])
  end
end
if FINISHED[target] and not changes.finished_at then
  local done = tonumber(t.finished_at or '0')
  if not done or done == 0 then changes.finished_at = now end
end
local requeued = nil
if target == 'queued' and current == 'running' then
  requeued = (changes.error_type and changes.error_type ~= '""') and 'retried' or 'reissued'
end
redis.call('HSET', key, unpack(to_flat(changes)))
for k, v in pairs(changes) do t[k] = v end
counted(t, stored, target, requeued)
if FINISHED[target] then finish(key, id, t, target) else emit(id, t, target) end
if not wants_record then return answer(true) end
return answer(to_flat(t))
