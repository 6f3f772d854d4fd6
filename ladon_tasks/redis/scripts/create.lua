-- A new task: its record, its index entry and - for executor='queue' - its job, in one
-- step, so a task is never recorded without its job nor queued without its record. A
-- task held in process names its owner, whose set of tasks it joins in the same step.
-- The method's counts (stats.py) count it. Once a minute per process (register) the
-- method joins the methods set and the job's stream the queues set. A task that starts
-- with steps (an operator's recover) gets them in the same step. A new unfinished task
-- is refused, writing nothing, when the store holds max_tasks unfinished tasks already,
-- or its arguments would take the unfinished tasks' past max_bytes: checked here, with
-- the write, so starts at the same moment cannot slip past the bound together. A job
-- whose record has a not_before (a delayed start) goes to its queue's delayed set.
-- Many creates go in one call (group commit: group_commit.py), one after the other,
-- each with its own checks - its idempotency key, the bound, its counts and event - as
-- if it came alone: a create sees those before it in the call as written.
-- ARGV: prefix, then per create: how many values it has, then its values: task_id,
--       score (submitted_at), method, register ('1'|''), job queue name|'', job
--       priority|'', job JSON|'', max_tasks, max_bytes, n_steps, (step name, step
--       JSON) * n_steps, then field, JSON, field, JSON... of the record.
-- Returns one answer per create, in order: false when created, or the existing record
-- (flat) when the idempotency key names a task still retained, or {'elsewhere',
-- task_id} when the key names a task of another shard (a Redis Cluster deployment sets
-- such a key apart: sharded.py), or {'full', why} when the bound refuses it, or
-- {'error', message} when Redis refused one of its commands (the others still answer).
local function create(A)
  local id, score, method, queue, payload = A[1], A[2], A[3], A[5], A[7]
  local stream = queue ~= '' and stream_key(queue, A[6]) or ''
  local max_tasks, max_bytes = tonumber(A[8]), tonumber(A[9])
  local key = rkey(id)
  local n_steps = tonumber(A[10])
  local steps_at = 11
  local fields_at = steps_at + 2 * n_steps
  local t = {}
  for i = fields_at, #A, 2 do t[A[i]] = A[i + 1] end
  local ikey = nil
  if has_idempotency(t.idempotency_key) then
    ikey = idem_key(cjson.decode(t.service), method, cjson.decode(t.idempotency_key), t.principal)
    local existing = redis.call('GET', ikey)
    if existing then
      local named = cjson.decode(existing)
      if type(named) == 'table' then return {'elsewhere', named[1]} end
      local found = redis.call('HGETALL', rkey(named))
      if #found > 0 then return found end
    end
  end
  local state = cjson.decode(t.state)
  if not FINISHED[state] then
    local size = #(t.args or '')
    local tasks, bytes = held_parts(redis.call('INCRBY', HELD, HELD_UNIT + size))
    if tasks > max_tasks or bytes > max_bytes then
      redis.call('DECRBY', HELD, HELD_UNIT + size)
      if tasks > max_tasks then
        return {'full', string.format('%d tasks are queued or running, the most this store holds', tasks - 1)}
      end
      return {'full', string.format('the arguments of unfinished tasks would take more than the %d bytes '
        .. 'this store holds', max_bytes)}
    end
    t.held = tostring(size)
  end
  local not_before = tonumber(t.not_before or '0')
  if stream ~= '' and not_before > 0 then
    -- a delayed start waits in its queue's delayed set, as a retry does (move_due.lua)
    redis.call('ZADD', delayed_key(queue), not_before, payload)
  elseif stream ~= '' then
    t.job_entry = cjson.encode(stream .. ' ' .. redis.call('XADD', stream, '*', 'job', payload))
    ring(stream)
  end
  redis.call('HSET', key, unpack(to_flat(t)))
  if n_steps > 0 then
    local steps = {}
    for i = steps_at, fields_at - 1 do steps[#steps + 1] = A[i] end
    hset_flat(steps_key(id), steps)
  end
  if ikey then redis.call('SET', ikey, cjson.encode(id)) end
  redis.call('ZADD', method_index(method), score, id)
  if has_owner(t) then redis.call('SADD', owned_key(cjson.decode(t.owner)), id) end
  if A[4] == '1' then
    redis.call('SADD', P .. KEY.methods, method)
    if stream ~= '' then redis.call('SADD', P .. KEY.queues, string.sub(stream, #P + #KEY.queue + 1)) end
  end
  counted(t, nil, state)
  if FINISHED[state] then finish(key, id, t, state) end
  return false
end

local answers = {}
local at = 2
while at <= #ARGV do
  local n = tonumber(ARGV[at])
  local values = {}
  for i = 1, n do values[i] = ARGV[at + i] end
  at = at + n + 1
  local ok, answer = pcall(create, values)
  if not ok then
    answer = {'error', type(answer) == 'table' and (answer.err or cjson.encode(answer)) or tostring(answer)}
  end
  answers[#answers + 1] = answer
end
return answers
