-- One step of a running attempt (ladon_tasks/steps.py): its record in the task's steps
-- hash, and the record's `step` (its name) and `steps_done`, in one step. Fenced like
-- every write of an attempt: nothing is written unless that attempt runs and no cancel
-- was asked for, so a dead or cancelled attempt's late step is never recorded. An attempt
-- a queue worker has not recorded yet becomes 'running' here (with its start time and
-- where it runs, kept back by report()), as in report.lua; progress kept back lands first.
-- `steps_done` counts succeeded records: a body never runs a succeeded step again, so a
-- name is recorded succeeded once per task.
-- ARGV: prefix, task_id, attempt, now, n_pending, (attempt, progress, message, started,
--       where) * n_pending, step name, step name (JSON), step (JSON), succeeded ('1'|'')
-- Returns 1 when recorded, 0 when refused.
local id, attempt, now = ARGV[2], ARGV[3], ARGV[4]
local n_pending = tonumber(ARGV[5])
local pending = {}
for i = 6, 5 + PENDING_WIDTH * n_pending do pending[#pending + 1] = ARGV[i] end
local at = 6 + PENDING_WIDTH * n_pending
local name, name_json, step, succeeded = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3] == '1'

local key = rkey(id)
local raw = redis.call('HMGET', key, 'state', 'attempts', 'cancel_requested', 'service', 'method', 'ran_on',
                       'steps_done')
if not raw[1] or raw[3] == 'true' then return 0 end
local t = {state = raw[1], attempts = raw[2], cancel_requested = raw[3], service = raw[4], method = raw[5],
           ran_on = raw[6] or nil}
local state, unrecorded = state_for(t, attempt)
if state ~= 'running' then return 0 end
local n = tonumber(attempt)
local changes = {}
local started, where = take_pending(changes, 'running', n, pending)
if unrecorded then
  changes.state = '"running"'
  changes.attempts = attempt
  changes.started_at = started or now
  if where then changes.ran_on = ran_on(t, n, where) end
end
local done = tonumber(raw[7] or '0') or 0
if succeeded then done = done + 1 end
changes.step = name_json
changes.steps_done = string.format('%d', done)
redis.call('HSET', steps_key(id), name, step)
redis.call('HSET', key, unpack(to_flat(changes)))
if unrecorded then
  t.attempts = attempt
  counted(t, 'queued', 'running')
  emit(id, t, 'running')
end
return 1
