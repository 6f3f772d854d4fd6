-- The schedule book's two writes that must not lose to a writer in another order
-- (redis/schedules.py).
-- ARGV: prefix, op, the schedule's hash, then
--   'mark':  tick, task id (of the newest run, for a skipped tick): kept only if newer than last_tick;
--   'clear': request id: run_request deleted only if it is still that request.
-- Returns 1 when it wrote, else 0.
local op, key = ARGV[2], ARGV[3]
if op == 'mark' then
  local last = tonumber(redis.call('HGET', key, 'last_tick') or '0')
  if tonumber(ARGV[4]) <= last then return 0 end
  redis.call('HSET', key, 'last_tick', ARGV[4], 'last_task', ARGV[5])
  return 1
end
if redis.call('HGET', key, 'run_request') == ARGV[4] then
  redis.call('HDEL', key, 'run_request')
  return 1
end
return 0
