-- Who runs task bodies now: the workers whose heartbeat has not run out (ids whose entry
-- expired leave the workers set here), and the web processes whose owner lease is live
-- (they run thread and process executor tasks), with how many tasks each holds.
-- ARGV: prefix
-- Returns {description JSON...}, {{owner id, ms its lease has left, tasks held}...}
local found = {}
for _, id in ipairs(redis.call('SMEMBERS', P .. KEY.workers)) do
  local doc = redis.call('GET', P .. KEY.worker .. id)
  if doc then found[#found + 1] = doc else redis.call('SREM', P .. KEY.workers, id) end
end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local owners = {}
local live = redis.call('ZRANGEBYSCORE', P .. KEY.owners, ms, '+inf', 'WITHSCORES')
for i = 1, #live, 2 do
  owners[#owners + 1] = {live[i], string.format('%d', tonumber(live[i + 1]) - ms),
                         redis.call('SCARD', owned_key(live[i]))}
end
return {found, owners}
