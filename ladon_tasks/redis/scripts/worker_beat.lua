-- A worker says it is alive: its description (JSON) under worker:<id> for ttl ms, and its
-- id in the workers set. An entry not renewed expires: a killed worker leaves the list.
-- ARGV: prefix, worker id, description JSON, ttl in ms ('0': the worker leaves now)
-- Returns nothing.
local key = P .. KEY.worker .. ARGV[2]
if tonumber(ARGV[4]) <= 0 then
  redis.call('DEL', key)
  redis.call('SREM', P .. KEY.workers, ARGV[2])
  return false
end
redis.call('SET', key, ARGV[3], 'PX', ARGV[4])
redis.call('SADD', P .. KEY.workers, ARGV[2])
return false
