-- A page of records, newest first, merged from method indexes; a state filter skips
-- what it does not want, so an unfiltered page costs the page, a filtered one what it
-- had to look at. Index entries of expired records are dropped on the way.
-- ARGV: prefix, offset, limit, wanted states ('a,b'|''), index key...
-- Returns the records, each flat.
local offset, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local wanted = nil
if ARGV[4] ~= '' then
  wanted = {}
  for s in string.gmatch(ARGV[4], '[^,]+') do wanted['"' .. s .. '"'] = true end
end
local chunk = math.max(20, math.min(500, offset + limit))
local sources = {}
for i = 5, #ARGV do sources[#sources + 1] = {key = ARGV[i], buf = {}, at = 1, pos = 0, done = false} end
local function head(src)
  if src.at > #src.buf and not src.done then
    local got = redis.call('ZREVRANGE', src.key, src.pos, src.pos + chunk - 1, 'WITHSCORES')
    src.buf, src.at, src.pos = {}, 1, src.pos + chunk
    for j = 1, #got, 2 do src.buf[#src.buf + 1] = {got[j], tonumber(got[j + 1])} end
    if #got < 2 * chunk then src.done = true end
  end
  return src.buf[src.at]
end
local page, skipped = {}, 0
while #page < limit do
  local best, from = nil, nil
  for _, src in ipairs(sources) do
    local e = head(src)
    if e and (not best or e[2] > best[2] or (e[2] == best[2] and e[1] > best[1])) then best, from = e, src end
  end
  if not best then break end
  from.at = from.at + 1
  local record = redis.call('HGETALL', rkey(best[1]))
  if #record == 0 then
    redis.call('ZREM', from.key, best[1])  -- expired: its index entry goes too
    from.pos = from.pos - 1
  else
    local state = nil
    for j = 1, #record, 2 do if record[j] == 'state' then state = record[j + 1] end end
    if not wanted or wanted[state] then
      if skipped < offset then skipped = skipped + 1 else page[#page + 1] = record end
    end
  end
end
return page
