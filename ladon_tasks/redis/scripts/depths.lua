-- How deep each queue is, from the job streams themselves (no counter to keep): per
-- registered stream (the queues set), jobs not yet read by any worker ('waiting': the
-- group's lag, or a count of the entries after its last delivered one when Redis cannot
-- tell the lag - a cancelled job taken off the stream leaves a gap) and jobs read and not
-- acknowledged yet ('running': the group's pending entries); per queue, retries waiting in
-- its delayed set.
-- ARGV: prefix
-- Returns {{'<queue>:<NNN>', waiting, running}...}, {{queue, delayed}...}
local function after(stream, last)
  local n, from = 0, '(' .. last
  while true do
    local got = redis.call('XRANGE', stream, from, '+', 'COUNT', 1000)
    n = n + #got
    if #got < 1000 then return n end
    from = '(' .. got[#got][1]
  end
end
local streams, delayed, seen = {}, {}, {}
for _, member in ipairs(redis.call('SMEMBERS', P .. KEY.queues)) do
  local stream = P .. KEY.queue .. member
  local waiting, running = 0, 0
  if redis.call('EXISTS', stream) == 1 then
    local group = nil
    for _, info in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
      local fields = to_table(info)
      if fields.name == GROUP then group = fields end
    end
    if group then
      running = tonumber(group.pending)
      waiting = tonumber(group.lag) or after(stream, group['last-delivered-id'])
    else
      waiting = redis.call('XLEN', stream)
    end
  end
  streams[#streams + 1] = {member, waiting, running}
  local name = string.match(member, '^(.*):%d+$')
  if name and not seen[name] then
    seen[name] = true
    delayed[#delayed + 1] = {name, redis.call('ZCARD', P .. KEY.queue .. name .. ':delayed')}
  end
end
return {streams, delayed}
