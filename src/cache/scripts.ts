// Lua run atomically inside Redis. One script applies a batch of stock row
// states and stream events in one round trip:
// - a row state is written only when its version is >= the one stored (a
//   replay or a stale write never moves a key backwards; an equal version
//   rewrites the same values, which repairs a key edited by hand);
// - each touched sku's total, available, status and low_stock are recomputed
//   from its rows hash, and its product key deleted;
// - each event is appended with an explicit id derived from its transaction's
//   commit LSN; an id at or below the stream's top is a replay and is skipped;
// - the position is recorded last.
// It returns counts, whether the cache had lost its data, and which rows (by
// 1-based index) it wrote, so only real changes are announced.
// Status and low_stock follow SPEC.md (see stockStatus in keys.ts).

/** Key names are built inside the script from the prefix, so it runs on one Redis (not a cluster). */
export const APPLY_SCRIPT = `
local prefix = ARGV[1]
local stream = ARGV[2]
local maxlen = ARGV[3]
local position = ARGV[4]
local rowCount = tonumber(ARGV[5])
local sourceKey = prefix .. 'meta:source'
local lost = (redis.call('EXISTS', sourceKey) == 0) and 1 or 0

local applied, stale = 0, 0
local appliedRows = {}
local touched, touchedList = {}, {}
local i = 6
for r = 1, rowCount do
  local sku, code, version = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local value = ARGV[i + 2] .. ':' .. ARGV[i + 3] .. ':' .. ARGV[i + 4] .. ':' .. ARGV[i + 5] .. ':' .. ARGV[i + 6]
  i = i + 7
  local rowsKey = prefix .. 'stock:' .. sku .. ':rows'
  local current = redis.call('HGET', rowsKey, code)
  local currentVersion = current and tonumber(string.match(current, '^(%d+):')) or -1
  if version >= currentVersion then
    redis.call('HSET', rowsKey, code, value)
    redis.call('SET', prefix .. 'stock:' .. sku .. ':warehouse:' .. code, ARGV[i - 2])
    if not touched[sku] then
      touched[sku] = true
      touchedList[#touchedList + 1] = sku
    end
    applied = applied + 1
    appliedRows[#appliedRows + 1] = r
  else
    stale = stale + 1
  end
end

for _, sku in ipairs(touchedList) do
  local base = prefix .. 'stock:' .. sku
  local total, available, threshold = 0, 0, 0
  for _, row in ipairs(redis.call('HVALS', base .. ':rows')) do
    local _, onHand, _, avail, low = string.match(row, '^(%d+):(%d+):(%d+):(%d+):(%d+)$')
    total = total + tonumber(onHand)
    available = available + tonumber(avail)
    threshold = threshold + tonumber(low)
  end
  local status = 'in_stock'
  if available <= 0 then status = 'out_of_stock' elseif available <= threshold then status = 'low_stock' end
  redis.call('SET', base .. ':total', total)
  redis.call('SET', base .. ':available', available)
  redis.call('SET', base .. ':status', status)
  redis.call('SET', base .. ':low_stock', status == 'low_stock' and '1' or '0')
  redis.call('DEL', prefix .. 'product:' .. sku)
end

local eventCount = tonumber(ARGV[i])
i = i + 1
local appended, duplicates = 0, 0
for _ = 1, eventCount do
  local id, eventType, eventId, subject, body = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  i = i + 5
  local ok = redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen, id,
    'type', eventType, 'id', eventId, 'subject', subject, 'event', body)
  if type(ok) == 'table' and ok.err then
    if string.find(ok.err, 'equal or smaller', 1, true) then
      duplicates = duplicates + 1
    else
      return redis.error_reply(ok.err)
    end
  else
    appended = appended + 1
  end
end

if position ~= '' then
  redis.call('SET', prefix .. 'meta:position', position)
end
return { applied, stale, appended, duplicates, lost, appliedRows }
`;

/** KEYS: rebuilding token, source, position; ARGV: token, source, position. 1 when marked complete. */
export const COMPLETE_REBUILD_SCRIPT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[3])
return 1
`;
