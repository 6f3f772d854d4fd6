-- Owners whose lease ran out, with some of the tasks they still hold. An owner that holds
-- nothing any more is forgotten here.
-- ARGV: prefix, most owners, most tasks per owner
-- Returns {owner, ms since its lease ran out, {task_id...}} per owner that holds tasks.
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local owners = P .. KEY.owners
local expired = redis.call('ZRANGEBYSCORE', owners, '-inf', ms, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local found = {}
for i = 1, #expired, 2 do
  local owner, expiry = expired[i], tonumber(expired[i + 1])
  local ids = redis.call('SRANDMEMBER', owned_key(owner), tonumber(ARGV[3]))
  if #ids == 0 then
    redis.call('ZREM', owners, owner)
  else
    found[#found + 1] = {owner, string.format('%d', ms - expiry), ids}
  end
end
return found
