-- Shared by every script (see lua.py): the functions below run after a header that
-- defines LEGAL, FINISHED, STATES (the state machine of model.py), KEY (the layout of
-- keys.py), the limits EVENTS_MAXLEN and PUBLISH_MAX, PENDING_WIDTH and the run-time
-- histogram's DURATION_BUCKETS and NEVER_RAN (stats.py), PUBLISH, the command finish
-- messages go out with (SPUBLISH on Redis Cluster), and BELL (true on Redis Cluster).
-- Every script takes the key prefix as ARGV[1] and builds its keys from it (lua.py says why).

local P = ARGV[1]
local CHANNEL = P .. KEY.finished
local STATS = P .. KEY.stats

local function rkey(id) return P .. KEY.task .. id end
-- the stream of queue `name` at `priority` (keys.py: Keys.stream)
local function stream_key(name, priority) return P .. KEY.queue .. name .. ':' .. string.format('%03d', tonumber(priority)) end
local function delayed_key(name) return P .. KEY.queue .. name .. ':delayed' end

-- On Redis Cluster a job added to a stream rings its shard's bell with the stream's
-- <queue>:<NNN>, so that a worker waiting for work reads this shard now rather than
-- when its turn comes (sharded_queue.py); one server needs no bell.
local function ring(stream)
  if BELL then redis.call('SPUBLISH', P .. KEY.jobs, string.sub(stream, #P + #KEY.queue + 1)) end
end
local function steps_key(id) return P .. KEY.steps .. id end
-- a record whose body ran steps (or that started with steps) names one in `step`
local function has_steps(raw) return raw and raw ~= '""' end
local function method_index(m) return P .. KEY.method_index .. m end
local function owned_key(owner) return P .. KEY.owned .. owner end

local function has_idempotency(raw) return raw and raw ~= '""' and raw ~= 'null' end
local function has_owner(t) return t.owner and t.owner ~= '""' end

-- the text of keys.idempotency_text: a task's principal (JSON text, or nil when it has
-- none) scopes its key to that caller
local function idem_key(service, method, key, principal)
  local text = service .. '\n' .. method .. '\n' .. key
  local who = principal and cjson.decode(principal) or ''
  if who ~= '' then text = text .. '\n' .. who end
  return P .. KEY.idempotency .. redis.sha1hex(text)
end

local function to_table(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

local function to_flat(t)
  local flat = {}
  for k, v in pairs(t) do flat[#flat + 1] = k; flat[#flat + 1] = v end
  return flat
end

-- HSET of field, value, field, value... however many: Lua's unpack passes at most a few
-- thousand values (LUAI_MAXCSTACK, 8000), and a task recovered with 10,000 steps has
-- 20,000, so they go in pieces of HSET_PIECE values (an even number: whole pairs).
local HSET_PIECE = 1000
local function hset_flat(key, flat)
  for i = 1, #flat, HSET_PIECE do
    redis.call('HSET', key, unpack(flat, i, math.min(i + HSET_PIECE - 1, #flat)))
  end
end

-- every value is a JSON text already: the record as one JSON object, no re-encoding
local function to_json(t)
  local parts = {}
  for k, v in pairs(t) do
    if k ~= 'job_entry' then parts[#parts + 1] = '"' .. k .. '":' .. v end
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- The state an attempt sees, or nil when the attempt is not the record's current one.
-- A queue worker does not write 'running' before a short body ends: an attempt newer
-- than the record's count on a queued, not cancelled record is running unrecorded.
local function state_for(t, attempt)
  local state = cjson.decode(t.state)
  if attempt == '' then return state, false end
  local n, attempts = tonumber(attempt), tonumber(t.attempts or '0')
  if state == 'running' and attempts == n then return state, false end
  if state == 'queued' and attempts < n and t.cancel_requested ~= 'true' then return 'running', true end
  return nil, false
end

-- one lifecycle event on the capped stream (ladon-tasks events follows it)
local function emit(id, t, state)
  redis.call('XADD', P .. KEY.events, 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'task', id,
             'service', cjson.decode(t.service), 'method', cjson.decode(t.method), 'state', state,
             'attempt', t.attempts or '0', 'error', cjson.decode(t.error_type or '""'))
end

-- a task just finished: TTL on record, its steps and idempotency key, an event, waiters
-- told (the record rides in the message when small, so a waiter need not read it back)
local function finish(key, id, t, state)
  local ttl_ms = math.floor(tonumber(t.result_ttl) * 1000)
  local ikey = nil
  if has_idempotency(t.idempotency_key) then
    ikey = idem_key(cjson.decode(t.service), cjson.decode(t.method), cjson.decode(t.idempotency_key), t.principal)
    if redis.call('GET', ikey) ~= cjson.encode(id) then ikey = nil end
  end
  if has_owner(t) then redis.call('SREM', owned_key(cjson.decode(t.owner)), id) end
  local skey = has_steps(t.step) and steps_key(id) or nil
  if ttl_ms <= 0 then
    redis.call('DEL', key)
    if skey then redis.call('DEL', skey) end
    if ikey then redis.call('DEL', ikey) end
    redis.call('ZREM', method_index(cjson.decode(t.method)), id)
  else
    local ttl = string.format('%d', ttl_ms)
    redis.call('PEXPIRE', key, ttl)
    if skey then redis.call('PEXPIRE', skey, ttl) end
    if ikey then redis.call('PEXPIRE', ikey, ttl) end
  end
  emit(id, t, state)
  local doc = to_json(t)
  if #doc <= PUBLISH_MAX then redis.call(PUBLISH, CHANNEL, id .. '\n' .. doc)
  else redis.call(PUBLISH, CHANNEL, id) end
end

-- progress/message kept back by report(): only onto the attempt that runs; returns when
-- and where a start kept back happened
local function take_pending(changes, state, attempts, pending)
  local started, where = nil, nil
  for i = 1, #pending, PENDING_WIDTH do
    local attempt, progress, message = pending[i], pending[i + 1], pending[i + 2]
    if state == 'running' and (attempt == '' or tonumber(attempt) == attempts) then
      if progress ~= '' then changes.progress = progress end
      if message ~= '' then changes.message = message end
      if pending[i + 3] ~= '' then started = pending[i + 3] end
      if pending[i + 4] ~= '' then where = pending[i + 4] end
    end
  end
  return started, where
end

-- the record's list of where each attempt ran, with `where` for attempt n (JSON)
local function ran_on(t, n, where)
  local runs = {}
  if t.ran_on and t.ran_on ~= '[]' then runs = cjson.decode(t.ran_on) end
  for i = #runs + 1, n - 1 do runs[i] = '' end
  runs[n] = where
  return cjson.encode(runs)
end

-- The counts of stats.py follow a record that was created (before == nil) or moved from
-- `before`, its stored state, to `after`; `requeued`: 'retried' or 'reissued' for a
-- running attempt that went back to queued. Call it once t holds the new fields.
local function count(method, name, by) redis.call('HINCRBY', STATS, method .. '|' .. name, by) end

-- What a start is bounded by (create.lua): the unfinished tasks and the bytes of their
-- arguments, as one number, so that a move keeps both with one command: tasks * HELD_UNIT
-- + bytes (exact in Lua's doubles: RedisStore bounds tasks below 2^20 and bytes below
-- 2^31). A task that counts holds its bytes in its record ('held'), and gives them back
-- when it finishes; a task started before there was a bound holds none and gives none.
local HELD = P .. KEY.held
local HELD_UNIT = 4294967296
local function held_parts(value) return math.floor(value / HELD_UNIT), value % HELD_UNIT end

local function counted(t, before, after, requeued)
  local m = cjson.decode(t.method)
  if before == nil then count(m, 'submitted', 1) end
  if before ~= nil and not FINISHED[before] and FINISHED[after] and t.held then
    redis.call('DECRBY', HELD, HELD_UNIT + (tonumber(t.held) or 0))
  end
  if before == 'running' and after ~= 'running' then count(m, 'running', -1) end
  if after == 'running' and before ~= 'running' then count(m, 'running', 1) end
  if requeued then count(m, requeued, 1) end
  if FINISHED[after] then
    local started = tonumber(t.started_at or '0') or 0
    if started > 0 then
      local done = tonumber(t.finished_at or '0') or 0
      if done <= 0 then done = started end
      local seconds = math.max(0, done - started)
      local bucket = #DURATION_BUCKETS
      for i, bound in ipairs(DURATION_BUCKETS) do
        if seconds <= bound then bucket = i - 1; break end
      end
      count(m, after .. '|' .. bucket, 1)
      redis.call('HINCRBYFLOAT', STATS, m .. '|' .. after .. '|sum', string.format('%.17g', seconds))
    else
      count(m, after .. '|' .. NEVER_RAN, 1)
    end
  end
end
