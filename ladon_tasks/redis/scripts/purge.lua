-- Deletes the finished records of the wanted states from a window of one method's index:
-- the record, its steps, its index entry and its idempotency key (if it still names
-- this task).
-- Counts (stats.py) are totals and stay. Every process is told, so none answers for a
-- purged task from its cache of finished records. Unfinished tasks are never touched.
-- ARGV: prefix, index key, wanted states ('a,b'), start, count, dry run ('1'|'')
-- Returns {where the next window starts (0: the end was reached), tasks found, ids deleted...}.
local index, start, count, dry = ARGV[2], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6] == '1'
local wanted = {}
for s in string.gmatch(ARGV[3], '[^,]+') do
  if FINISHED[s] then wanted['"' .. s .. '"'] = true end
end
local ids = redis.call('ZRANGE', index, start, start + count - 1)
local gone, found, purged = 0, 0, {}
for _, id in ipairs(ids) do
  local key = rkey(id)
  local raw = redis.call('HMGET', key, 'state', 'service', 'method', 'idempotency_key', 'step', 'principal')
  if not raw[1] then
    redis.call('ZREM', index, id)  -- expired already
    gone = gone + 1
  elseif wanted[raw[1]] then
    found = found + 1
    if not dry then
      if has_idempotency(raw[4]) then
        local ikey = idem_key(cjson.decode(raw[2]), cjson.decode(raw[3]), cjson.decode(raw[4]), raw[6] or nil)
        if redis.call('GET', ikey) == cjson.encode(id) then redis.call('DEL', ikey) end
      end
      redis.call('DEL', key)
      if has_steps(raw[5]) then redis.call('DEL', steps_key(id)) end
      redis.call('ZREM', index, id)
      gone = gone + 1
      purged[#purged + 1] = id
    end
  end
end
if #purged > 0 then redis.call(PUBLISH, CHANNEL, '-' .. table.concat(purged, ',')) end
local following = start + count - gone
if #ids < count then following = 0 end
return {following, found, unpack(purged)}
