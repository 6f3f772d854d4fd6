-- A process that holds tasks in process says it is alive: its owner lease runs until
-- now + lease, by the Redis server's clock (the hosts' clocks need not agree).
-- ARGV: prefix, owner, lease in ms
-- Returns the server's time in ms.
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', P .. KEY.owners, ms + tonumber(ARGV[3]), ARGV[2])
return ms
