-- A rate limit (GCRA): one key per method holds the theoretical arrival time (tat) of its
-- next begin. A begin is allowed when now >= tat - tolerance, and moves tat on by one
-- interval from max(tat, now); otherwise the answer is how long until it would be. The
-- clock is Redis's own (TIME), so every process and host judges by the same one.
-- ARGV: prefix, rate key, interval, tolerance, ttl beyond the next begin (seconds)
-- Returns '0' when the begin may go ahead, else the seconds to wait (text: a Lua number
-- would come back as a whole one).
local key = P .. KEY.rates .. ARGV[2]
local interval, tolerance, extra = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local tat = math.max(tonumber(redis.call('GET', key) or '0'), now)
if now < tat - tolerance then return string.format('%.6f', tat - tolerance - now) end
redis.call('SET', key, string.format('%.6f', tat + interval), 'PX', math.ceil((tat + interval - now + extra) * 1000))
return '0'
