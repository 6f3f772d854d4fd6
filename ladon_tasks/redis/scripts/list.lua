-- A page of records, newest first, merged from method indexes; a filter (state, task id
-- prefix, tag, principal) skips what it does not want, so an unfiltered page costs the page, a
-- filtered one what it had to look at. Index entries of expired records are dropped on
-- the way.
-- ARGV: prefix, offset, limit, wanted states ('a,b'|''), id prefix|'', tag|'',
--       principal ('=' .. principal: only that caller's tasks, '=' those without one | ''), index key...
-- Returns the records, each flat.
local offset, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local wanted = nil
if ARGV[4] ~= '' then
  wanted = {}
  for s in string.gmatch(ARGV[4], '[^,]+') do wanted['"' .. s .. '"'] = true end
end
local id_prefix, tag = ARGV[5], ARGV[6]
local whose = ARGV[7] ~= '' and string.sub(ARGV[7], 2) or nil
local chunk = math.max(20, math.min(500, offset + limit))
local sources = {}
for i = 8, #ARGV do sources[#sources + 1] = {key = ARGV[i], buf = {}, at = 1, pos = 0, done = false} end
local function head(src)
  if src.at > #src.buf and not src.done then
    local got = redis.call('ZREVRANGE', src.key, src.pos, src.pos + chunk - 1, 'WITHSCORES')
    src.buf, src.at, src.pos = {}, 1, src.pos + chunk
    for j = 1, #got, 2 do src.buf[#src.buf + 1] = {got[j], tonumber(got[j + 1])} end
    if #got < 2 * chunk then src.done = true end
  end
  return src.buf[src.at]
end
-- whether a record's tags (JSON text, or false when it has none) hold the wanted tag
local function tagged(raw)
  if not raw then return false end
  local ok, tags = pcall(cjson.decode, raw)
  if not ok or type(tags) ~= 'table' then return false end
  for _, value in ipairs(tags) do if value == tag then return true end end
  return false
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
  local key = rkey(best[1])
  local wants = id_prefix == '' or string.sub(best[1], 1, #id_prefix) == id_prefix
  local exists, record = true, nil
  if wants and (wanted or tag ~= '' or whose) then  -- the fields a filter reads first, the record if it passes
    local raw = redis.call('HMGET', key, 'state', 'tags', 'principal')
    exists = raw[1] ~= false
    wants = exists and (not wanted or wanted[raw[1]]) and (tag == '' or tagged(raw[2]))
      and (not whose or (raw[3] and cjson.decode(raw[3]) or '') == whose)
  end
  if wants then
    record = redis.call('HGETALL', key)
    exists = #record > 0
  end
  if not exists then
    redis.call('ZREM', from.key, best[1])  -- expired: its index entry goes too
    from.pos = from.pos - 1
  elseif wants then
    if skipped < offset then skipped = skipped + 1 else page[#page + 1] = record end
  end
end
return page
