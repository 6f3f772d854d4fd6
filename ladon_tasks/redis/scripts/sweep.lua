-- Drops index entries of records that expired, a window of one index at a time.
-- ARGV: prefix, index key, start, count
-- Returns where the next sweep of this index starts (0: the end was reached).
local index, start, count = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local ids = redis.call('ZRANGE', index, start, start + count - 1)
local gone = 0
for _, id in ipairs(ids) do
  if redis.call('EXISTS', rkey(id)) == 0 then
    redis.call('ZREM', index, id)
    gone = gone + 1
  end
end
if #ids < count then return 0 end
return start + count - gone
