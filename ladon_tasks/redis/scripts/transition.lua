-- A state change, checked against the state machine and fenced by attempt; progress kept
-- back by report() lands first. Moving to 'running' counts a new attempt.
-- ARGV: prefix, task_id, target state, attempt|'', now, n_pending,
--       (attempt, progress, message, started) * n_pending, then field, JSON, ...
-- Returns the new record (flat), or false: unknown task, illegal move, stale attempt.
local id, target, attempt, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local n_pending = tonumber(ARGV[6])
local key = rkey(id)
local flat = redis.call('HGETALL', key)
if #flat == 0 then return false end
local t = to_table(flat)
local current, unrecorded = state_for(t, attempt)
if not current then return false end
if not (LEGAL[current] and LEGAL[current][target]) then return false end
local attempts = tonumber(t.attempts or '0')
if unrecorded then attempts = tonumber(attempt) end
local pending = {}
for i = 7, 6 + 4 * n_pending do pending[#pending + 1] = ARGV[i] end
local changes = {}
local started = take_pending(changes, current, attempts, pending)
changes.state = cjson.encode(target)
if target == 'running' then
  changes.attempts = string.format('%d', attempts + 1)
  changes.started_at = now
  changes.finished_at = '0.0'
elseif unrecorded then
  changes.attempts = attempt
  changes.started_at = started or now
end
for i = 7 + 4 * n_pending, #ARGV, 2 do changes[ARGV[i]] = ARGV[i + 1] end
if FINISHED[target] and not changes.finished_at then
  local done = tonumber(t.finished_at or '0')
  if not done or done == 0 then changes.finished_at = now end
end
redis.call('HSET', key, unpack(to_flat(changes)))
for k, v in pairs(changes) do t[k] = v end
if FINISHED[target] then finish(key, id, t, target) else emit(id, t, target) end
return to_flat(t)
