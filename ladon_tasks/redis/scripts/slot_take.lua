-- One task per key: take a place in a key's slot set for an attempt about to begin, if
-- fewer than `limit` other tasks hold one. A holder is the task id with the attempt it
-- took its place for; it holds the place while that attempt may run - its record says
-- running at that attempt, or queued just before it (a queued job's start is written
-- late, see RedisStore.begin) -, or, with no record yet, for `grace` seconds after a
-- start refused beyond the limit took it (on_limit='refuse', before the record exists).
-- Anything else - finished, retried, reissued after its owner or worker died - frees it
-- here, at the next take: a place is freed with its lease, by the same write.
-- ARGV: prefix, slot key, limit, task id, attempt ('' : the record's attempts + 1), now, grace, ttl
-- Returns 1 when the place is taken (or was the task's already), 0 when the key is full.
local skey = P .. KEY.slots .. ARGV[2]
local limit, id, attempt, now, grace = tonumber(ARGV[3]), ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])

local function holds(other, entry)
  local n, at = string.match(entry, '^(%d+) (.+)$')
  n, at = tonumber(n), tonumber(at)
  local found = redis.call('HMGET', rkey(other), 'state', 'attempts', 'cancel_requested')
  local state, attempts = found[1], tonumber(found[2] or '0')
  if not state then return now - at < grace end
  if state == '"running"' then return attempts == n end
  if state == '"queued"' then return attempts == n - 1 and found[3] ~= 'true' end
  return false
end

if attempt == '' then
  attempt = tonumber(redis.call('HGET', rkey(id), 'attempts') or '0') + 1
end
local all = redis.call('HGETALL', skey)
local count = 0
for i = 1, #all, 2 do
  if all[i] ~= id then
    if holds(all[i], all[i + 1]) then count = count + 1 else redis.call('HDEL', skey, all[i]) end
  end
end
if count >= limit then return 0 end
redis.call('HSET', skey, id, string.format('%d %s', attempt, ARGV[6]))
redis.call('EXPIRE', skey, tonumber(ARGV[8]))
return 1
