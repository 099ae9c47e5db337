// Lua run atomically inside Redis, and the one way Stockroom runs it. Every
// key a script touches comes from the caller in KEYS (built by keys.ts), never
// from names made inside the script: Redis (and a Redis Cluster, which routes
// a call by its keys) then knows what the script touches. The encoding of a
// rows-hash entry and the status rule come from row.ts.
import type { Redis } from './redis.ts';
import { LUA_CHANNEL_FUNCTIONS } from './channels.ts';
import { ENTRY_FIELDS, LUA_KIT_FUNCTIONS, LUA_ROW_FUNCTIONS } from './row.ts';

export interface Script { name: string; lua: string }

/**
 * Every script that writes a sku's keys (APPLY, APPLY_SLOT, KIT_WRITE,
 * REPLACE_AHEAD, CHANNELS_WRITE) takes the sales channels as its last
 * argument (channels.ts, channelsArgument): with them it rewrites the
 * channels hash of each sku whose keys it writes, without them ('') it
 * leaves those hashes as they are.
 *
 * Runs a script by its hash, loading it when Redis does not have it yet (new,
 * restarted, flushed): ioredis's defineCommand does that (EVALSHA, then EVAL
 * on NOSCRIPT).
 */
export function runScript(redis: Redis, script: Script, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
  const commands = redis as unknown as Record<string, (...values: Array<string | number | ReadonlyArray<string | number>>) => Promise<unknown>>;
  if (typeof commands[script.name] !== 'function') redis.defineCommand(script.name, { lua: script.lua });
  // As arrays, not spread: a batch has tens of thousands of arguments, and ioredis flattens them once.
  return commands[script.name]!.call(redis, keys.length, keys, args);
}

/**
 * Lua for one sku's keys, given as a table in keys.ts's skuKeys order (rows,
 * total, available, status, low_stock, product, sums, preorder_until, unavailable,
 * channels):
 * - recomputeSku reads every entry of the sku's rows hash and writes what
 *   SPEC.md defines (total, available, status, low_stock), the preorder_until
 *   key and the sums key (row.ts, SkuSums), and deletes the product key;
 * - shiftSku does the same from the sums the keys were last written from,
 *   moved by a change (the stream's case: one row of twenty changed, so
 *   reading the other nineteen again was most of Redis's work per change,
 *   measured). It recomputes instead when the sums key is missing, is not
 *   one (written before backorders) or would go negative; a change to a
 *   preorder row is recomputed by the caller (the earliest date is not a
 *   sum). A rows hash edited by hand is caught by incremental sync, which
 *   compares the sums key with the hash and repairs through recomputeSku.
 */
const LUA_SKU_KEYS = `${LUA_ROW_FUNCTIONS}${LUA_CHANNEL_FUNCTIONS}
-- s: { on_hand, available, threshold, backorder room, preorder room, preorder date, unavailable } (row.ts, SkuSums).
local function writeSku(k, s, writeDate)
  local state = statusOf(s[2], s[3], s[4], s[5])
  redis.call('MSET', k[2], s[1], k[3], s[2], k[4], state, k[5], state == 'low_stock' and '1' or '0',
    k[7], encodeSums(s[1], s[2], s[3], s[4], s[5], s[6], s[7]), k[9], s[7])
  if writeDate then
    if s[6] > 0 then redis.call('SET', k[8], isoDate(s[6])) else redis.call('DEL', k[8]) end
  end
  redis.call('DEL', k[6])
  if CHANNELS then writeChannels(k[10], skuChannels(k[1])) end
end
local function recomputeSku(k)
  local s = { 0, 0, 0, 0, 0, 0, 0 }
  for _, entry in ipairs(redis.call('HVALS', k[1])) do
    local onHand, available, threshold, room, untilAt, unavailable = decodeRow(entry)
    if onHand then
      s[1], s[2], s[3], s[7] = s[1] + onHand, s[2] + available, s[3] + threshold, s[7] + unavailable
      if room > 0 and untilAt > 0 then
        s[5] = s[5] + room
        if s[6] == 0 or untilAt < s[6] then s[6] = untilAt end
      else
        s[4] = s[4] + room
      end
    end
  end
  writeSku(k, s, true)
end
-- d: what the changes moved: { Σ on_hand, Σ available, Σ threshold, Σ backorder room, Σ unavailable }.
local function shiftSku(k, d)
  local current = redis.call('GET', k[7])
  local s
  if current then s = { decodeSums(current) } end
  if not s or not s[1] then return recomputeSku(k) end
  s[1], s[2], s[3], s[4], s[7] = s[1] + d[1], s[2] + d[2], s[3] + d[3], s[4] + d[4], s[7] + d[5]
  if s[1] < 0 or s[2] < 0 or s[3] < 0 or s[4] < 0 or s[7] < 0 then return recomputeSku(k) end
  -- The date stays: no preorder row changed (else the caller recomputes).
  writeSku(k, s, false)
end
-- One sku's keys from KEYS: the SKU_KEYS of them from KEYS[first].
local SKU_KEYS = 10
local function skuKeysAt(first)
  local k = {}
  for n = 1, SKU_KEYS do k[n] = KEYS[first + n - 1] end
  return k
end
`;

/**
 * Lua for a kit's keys (keys.ts kitKeys order: rows, total, available,
 * status, low_stock, product, sums, preorder_until, unavailable, channels, kit), from the kit rule of row.ts:
 * - writeKit(kitBase, codeKeys, definitionVersion, force, anySum, threshold,
 *   codes, entries, availables, total, available, versionSum, channelValues) writes a kit
 *   computed from its components (KEYS[kitBase + 1…11] are its keys, codeKeys
 *   maps a warehouse code to the kit's warehouse key). Refused (returns 0)
 *   when the kit key says it was computed with a newer definition, or, unless
 *   anySum, from newer component rows (a larger Σ versions: the guard of a
 *   recompute from reads made elsewhere, KIT_WRITE). Otherwise it replaces the
 *   kit's rows hash (entries of warehouses no longer there are deleted, with
 *   their keys), writes what changed (force: everything, which repairs keys
 *   edited by hand), deletes the product key when any public key changed, and
 *   returns 1; channelValues replace its channels hash (nil: leave it, unless there are no channels: delete it). When a warehouse it would touch has no key given, it writes
 *   nothing and returns those codes (the caller retries with them).
 * - recomputeKit(kitBase, codes, force, a) reads the components' rows hashes
 *   (KEYS after the kit's 11) and writes the kit from them, atomically: ARGV
 *   from a: definition version, threshold, component count n, n qtys; the
 *   warehouse keys of `codes` follow the components' keys. Returns writeKit's
 *   result and the next ARGV and KEYS indexes.
 */
const LUA_KIT_KEYS = `${LUA_KIT_FUNCTIONS}
-- A command over a long list of arguments (a kit in thousands of warehouses), in pieces: unpack has a limit.
-- Pieces of 4000 (even) keep HSET's and MSET's pairs together.
local function callInPieces(command, key, list)
  for from = 1, #list, 4000 do
    local piece = {}
    for i = from, math.min(from + 3999, #list) do piece[#piece + 1] = list[i] end
    if key then redis.call(command, key, unpack(piece)) else redis.call(command, unpack(piece)) end
  end
end
local function writeKit(kitBase, codeKeys, definitionVersion, force, anySum, threshold, codes, entries, availables, total, available, versionSum, channelValues)
  local function K(n) return KEYS[kitBase + n] end
  local stored = redis.call('MGET', K(11), K(7))
  local mark, sums = stored[1], stored[2]
  if mark then
    local storedDefinition, storedSum = string.match(mark, '^(%d+):(%d+)$')
    if storedDefinition then
      storedDefinition, storedSum = tonumber(storedDefinition), tonumber(storedSum)
      if definitionVersion < storedDefinition then return 0 end
      if definitionVersion == storedDefinition and not anySum and versionSum < storedSum then return 0 end
    end
  end
  local old = redis.call('HGETALL', K(1))
  local before = {}
  local unknown = {}
  for i = 1, #old, 2 do
    before[old[i]] = old[i + 1]
    if entries[old[i]] == nil and not codeKeys[old[i]] then unknown[#unknown + 1] = old[i] end
  end
  for _, code in ipairs(codes) do
    if not codeKeys[code] then unknown[#unknown + 1] = code end
  end
  if #unknown > 0 then return unknown end
  -- What changed, written with one command of each kind.
  local gone, goneKeys, hset, mset = {}, {}, {}, {}
  for code in pairs(before) do
    if entries[code] == nil then
      gone[#gone + 1], goneKeys[#goneKeys + 1] = code, codeKeys[code]
    end
  end
  for _, code in ipairs(codes) do
    local entry, was = entries[code], before[code]
    if force or entry ~= was then
      hset[#hset + 1], hset[#hset + 2] = code, entry
      local availableBefore
      if was then availableBefore = select(2, decodeRow(was)) end
      if force or availables[code] ~= availableBefore then
        mset[#mset + 1], mset[#mset + 2] = codeKeys[code], availables[code]
      end
    end
  end
  if #gone > 0 then
    callInPieces('HDEL', K(1), gone)
    callInPieces('DEL', nil, goneKeys)
  end
  if #hset > 0 then callInPieces('HSET', K(1), hset) end
  -- A kit's status is in, low or out of stock (row.ts, kitTotals): no room, no preorder date.
  local newSums = encodeSums(total, available, threshold, 0, 0, 0, 0)
  if force or #gone > 0 or #mset > 0 or sums ~= newSums then
    local state = statusOf(available, threshold, 0, 0)
    mset[#mset + 1], mset[#mset + 2] = K(2), total
    mset[#mset + 1], mset[#mset + 2] = K(3), available
    mset[#mset + 1], mset[#mset + 2] = K(4), state
    mset[#mset + 1], mset[#mset + 2] = K(5), state == 'low_stock' and '1' or '0'
    mset[#mset + 1], mset[#mset + 2] = K(7), newSums
    mset[#mset + 1], mset[#mset + 2] = K(9), 0
    redis.call('DEL', K(6), K(8))
  end
  mset[#mset + 1], mset[#mset + 2] = K(11), string.format('%.0f:%.0f', definitionVersion, versionSum)
  callInPieces('MSET', nil, mset)
  if channelValues then writeChannels(K(10), channelValues) elseif NO_CHANNELS then redis.call('DEL', K(10)) end
  return 1
end
local function recomputeKit(kitBase, codes, force, a)
  local definitionVersion, threshold, n = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local qtys, components = {}, {}
  for c = 1, n do
    qtys[c] = tonumber(ARGV[a + 2 + c])
    components[c] = componentOf(KEYS[kitBase + 11 + c])
  end
  local codeKeys = {}
  for i, code in ipairs(codes) do codeKeys[code] = KEYS[kitBase + 11 + n + i] end
  local kitCodes, entries, availables, total, available, versionSum = kitOf(components, qtys)
  local channelValues = CHANNELS and kitChannels(components, qtys)
  -- Read here, atomically, at their newest: no Σ guard (after a repair lowered a version, it would refuse every recompute).
  local result = writeKit(kitBase, codeKeys, definitionVersion, force, true, threshold, kitCodes, entries, availables, total, available, versionSum, channelValues)
  return result, a + 3 + n, kitBase + 11 + n + #codes
end
`;

/**
 * Lua: the version-guarded write of row states, shared by APPLY (one Redis)
 * and APPLY_SLOT (one slot of a cluster):
 * - a row state is written only when its version is >= the one stored (a
 *   replay or a stale write never moves a key backwards; an equal version
 *   rewrites the same values, which repairs a key edited by hand);
 * - each touched sku's total, available, status, low_stock and sums are
 *   written, and its product key deleted: moved by the batch's changes
 *   (shiftSku) when the caller asks for it (the stream), else recomputed from
 *   the rows hash (rebuild and every repair).
 * applyRows(base, skuCount, rowCount, a, shift): the sku keys start after
 * KEYS[base] (skuKeys order, per sku in the order of ARGV's sku indexes),
 * each row's warehouse key follows them; ARGV from a: per row sku index
 * (1-based), warehouse code, version, encoded entry (row.ts). Returns
 * applied, stale, the rows written (1-based) and the next ARGV index.
 */
const LUA_APPLY_ROWS = `${LUA_SKU_KEYS}${LUA_KIT_KEYS}
local function applyRows(base, skuCount, rowCount, a, shift)
  local function skuKey(sku, n) return KEYS[base + SKU_KEYS * (sku - 1) + n] end
  local applied, stale = 0, 0
  local appliedRows = {}
  local touched = {}
  -- Per sku, what the batch changed: Σ on_hand, Σ available, Σ threshold (or false: recompute).
  local deltas = {}
  for r = 1, rowCount do
    local sku, code, version, entry = tonumber(ARGV[a]), ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
    a = a + 4
    local current = redis.call('HGET', skuKey(sku, 1), code)
    local currentVersion = current and tonumber(string.match(current, '^(%d+):')) or -1
    if version >= currentVersion then
      redis.call('HSET', skuKey(sku, 1), code, entry)
      local onHand, available, threshold, room, preorderUntil, unavailable = decodeRow(entry)
      redis.call('SET', KEYS[base + SKU_KEYS * skuCount + r], available)
      touched[sku] = true
      if shift and deltas[sku] ~= false then
        local oldOnHand, oldAvailable, oldThreshold, oldRoom, oldPreorderUntil, oldUnavailable = 0, 0, 0, 0, 0, 0
        if current then oldOnHand, oldAvailable, oldThreshold, oldRoom, oldPreorderUntil, oldUnavailable = decodeRow(current) end
        if oldOnHand and preorderUntil == 0 and oldPreorderUntil == 0 then
          local d = deltas[sku] or { 0, 0, 0, 0, 0 }
          d[1], d[2], d[3], d[4] = d[1] + onHand - oldOnHand, d[2] + available - oldAvailable, d[3] + threshold - oldThreshold, d[4] + room - oldRoom
          d[5] = d[5] + unavailable - oldUnavailable
          deltas[sku] = d
        else
          -- The entry it replaces is not one the sums counted, or a preorder row changed (its date is not a sum).
          deltas[sku] = false
        end
      end
      applied = applied + 1
      appliedRows[#appliedRows + 1] = r
    else
      stale = stale + 1
    end
  end
  for sku = 1, skuCount do
    if touched[sku] then
      local d = deltas[sku]
      local k = skuKeysAt(base + SKU_KEYS * (sku - 1) + 1)
      if d then shiftSku(k, d) else recomputeSku(k) end
    end
  end
  return applied, stale, appliedRows, a
end
`;

/**
 * Lua: appends events to the stream, shared by APPLY and APPLY_STREAM. Each
 * is appended with an explicit id derived from its transaction's commit
 * LSN; an id at or below the stream's top is a replay and is skipped.
 * appendEvents(stream, maxlen, a): ARGV from a: event count; per event:
 * stream id, type, CloudEvents id, subject, body. Returns appended and
 * duplicates (or raises the error of a failed XADD).
 */
const LUA_APPEND_EVENTS = `
local function appendEvents(stream, maxlen, a)
  local eventCount = tonumber(ARGV[a])
  a = a + 1
  local appended, duplicates = 0, 0
  for _ = 1, eventCount do
    local id, eventType, eventId, subject, body = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
    a = a + 5
    local ok = redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen, id,
      'type', eventType, 'id', eventId, 'subject', subject, 'event', body)
    if type(ok) == 'table' and ok.err then
      if string.find(ok.err, 'equal or smaller', 1, true) then
        duplicates = duplicates + 1
      else
        error(ok.err)
      end
    else
      appended = appended + 1
    end
  end
  return appended, duplicates
end
`;

/**
 * Applies a batch of stock row states and stream events in one round trip
 * (one Redis; a cluster splits it, see APPLY_SLOT and APPLY_STREAM): the
 * rows as LUA_APPLY_ROWS says, then the events as LUA_APPEND_EVENTS says,
 * then the position.
 * Returns counts, whether the cache had lost its data (no source marker), and
 * which rows (1-based) it wrote, so only real changes are announced.
 *
 * Batches may be sent before the one ahead of them has answered (the
 * consumer pipelines them): each names the batch it follows, and applies only
 * if that one was applied whole (the chain key holds its token). A batch that
 * failed half-way thus stops every batch sent behind it, which would
 * otherwise push the stream's top above events it never wrote (and a replay
 * would take those for duplicates).
 *
 * After the rows, and in the same atomic step, the kits asked for are
 * recomputed from their components' rows hashes as they now stand
 * (LUA_KIT_KEYS): a batch's kits are exact whatever else (another partition)
 * writes beside it.
 *
 * KEYS: source, stream, position, chain; then per sku (in the order of
 * ARGV's sku indexes) its keys in skuKeys order; then per row its warehouse
 * key; then per kit its kitKeys, its components' rows hashes and its
 * warehouse key for each code of ARGV's code list.
 * ARGV: maxlen, position ('' for none), sku count, row count, token of the
 * batch this one follows ('' to apply unconditionally), this batch's token
 * ('' to record none), '1' to shift sums ('' to recompute); per row: sku index (1-based), warehouse code,
 * version, encoded entry (row.ts); kit count, '1' to force kits ('' not), code count,
 * the codes; per kit: definition version, threshold, component count, the
 * qtys; event count; per event: stream id, type, CloudEvents id, subject, body;
 * the channels.
 * Returns, beside counts, per kit writeKit's result (1, 0 refused, or the codes it lacked).
 */
export const APPLY: Script = {
  name: 'stockroomApply',
  lua: `${LUA_APPLY_ROWS}${LUA_APPEND_EVENTS}
local maxlen, position = ARGV[1], ARGV[2]
local skuCount, rowCount = tonumber(ARGV[3]), tonumber(ARGV[4])
local after, token, shift = ARGV[5], ARGV[6], ARGV[7] == '1'
local lost = (redis.call('EXISTS', KEYS[1]) == 0) and 1 or 0
if after ~= '' and redis.call('GET', KEYS[4]) ~= after then
  return { 0, 0, 0, 0, lost, {}, 1, {} }
end
local applied, stale, appliedRows, a = applyRows(4, skuCount, rowCount, 8, shift)
local kitCount, forceKits, codeCount = tonumber(ARGV[a]), ARGV[a + 1] == '1', tonumber(ARGV[a + 2])
local codes = {}
for i = 1, codeCount do codes[i] = ARGV[a + 2 + i] end
a = a + 3 + codeCount
local kitBase = 4 + SKU_KEYS * skuCount + rowCount
local kits = {}
for k = 1, kitCount do
  kits[k], a, kitBase = recomputeKit(kitBase, codes, forceKits, a)
end
local appended, duplicates = appendEvents(KEYS[2], maxlen, a)
if position ~= '' then
  redis.call('SET', KEYS[3], position)
end
if token ~= '' then
  redis.call('SET', KEYS[4], token)
end
return { applied, stale, appended, duplicates, lost, appliedRows, 0, kits }
`,
};

/**
 * Cluster: the rows of one batch that fall in one hash slot (all keys of a
 * sku share its slot, keys.ts), written as APPLY writes rows. Also reports
 * whether the slot lost its data: its state hash (keys.ts slotState) has no
 * "whole" field, which a rebuild sets and a master restarted without its
 * data has lost with everything else of the slot.
 * KEYS: the slot's state hash; per sku its skuKeys; per row its warehouse key.
 * ARGV: sku count, row count, '1' to shift sums ('' to recompute, as APPLY);
 * per row: sku index, warehouse code, version, entry; the channels.
 * Returns { applied, stale, lost, rows written }.
 */
export const APPLY_SLOT: Script = {
  name: 'stockroomApplySlot',
  lua: `${LUA_APPLY_ROWS}
local lost = (redis.call('HEXISTS', KEYS[1], 'whole') == 0) and 1 or 0
local applied, stale, appliedRows = applyRows(1, tonumber(ARGV[1]), tonumber(ARGV[2]), 4, ARGV[3] == '1')
return { applied, stale, lost, appliedRows }
`,
};

/**
 * Cluster: a batch's events, position and chain token, in the slot of the
 * stream and the meta keys (keys.ts), sent only once every APPLY_SLOT of the
 * batch succeeded, with APPLY's chain (applies only if the batch it follows
 * was applied whole).
 * KEYS: source, stream, position, chain. ARGV: maxlen, position ('' for
 * none), token followed ('' for none), this batch's token ('' for none);
 * event count; per event: stream id, type, CloudEvents id, subject, body.
 * Returns { appended, duplicates, lost, skipped }.
 */
export const APPLY_STREAM: Script = {
  name: 'stockroomApplyStream',
  lua: `${LUA_APPEND_EVENTS}
local maxlen, position, after, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local lost = (redis.call('EXISTS', KEYS[1]) == 0) and 1 or 0
if after ~= '' and redis.call('GET', KEYS[4]) ~= after then
  return { 0, 0, lost, 1 }
end
local appended, duplicates = appendEvents(KEYS[2], maxlen, 5)
if position ~= '' then
  redis.call('SET', KEYS[3], position)
end
if token ~= '' then
  redis.call('SET', KEYS[4], token)
end
return { appended, duplicates, lost, 0 }
`,
};

/**
 * Cluster: one kit's keys, computed by the caller from its components' rows
 * (they live in other slots: kitState of row.ts, after reading them), written
 * as writeKit writes them (LUA_KIT_KEYS), with its guard: a recompute from
 * older component rows (a smaller Σ versions) never overwrites a newer one.
 * KEYS: the kit's kitKeys, then its warehouse key per code of ARGV's list.
 * ARGV: definition version, '1' to force, threshold, total, available, Σ
 * versions, code count, the codes, entry count, per entry: code, encoded
 * entry; then its units per channel in the order of the channels argument
 * (kitChannelAvailability), and the channels.
 * Returns writeKit's result.
 */
export const KIT_WRITE: Script = {
  name: 'stockroomKitWrite',
  lua: `${LUA_SKU_KEYS}${LUA_KIT_KEYS}
local definitionVersion, force, threshold = tonumber(ARGV[1]), ARGV[2] == '1', tonumber(ARGV[3])
local total, available, versionSum = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local codeCount = tonumber(ARGV[7])
local codeKeys = {}
for i = 1, codeCount do codeKeys[ARGV[7 + i]] = KEYS[11 + i] end
local a = 8 + codeCount
local codes, entries, availables = {}, {}, {}
local entryCount = tonumber(ARGV[a])
for i = 1, entryCount do
  local code, entry = ARGV[a + 2 * i - 1], ARGV[a + 2 * i]
  codes[i] = code
  entries[code] = entry
  local _, entryAvailable = decodeRow(entry)
  availables[code] = entryAvailable
end
local channelValues
if CHANNELS then
  channelValues = {}
  for i = 1, #CHANNELS do channelValues[i] = tonumber(ARGV[a + 2 * entryCount + i]) end
end
return writeKit(0, codeKeys, definitionVersion, force, force, threshold, codes, entries, availables, total, available, versionSum, channelValues)
`,
};

/**
 * Cluster: a rebuild's token in one slot's state hash. begin: records it.
 * end: removes it and, when it was still there (the slot kept what the
 * rebuild wrote), marks the slot whole; returns 1 then, else 0.
 * KEYS: the slot's state hash. ARGV: 'begin' | 'end', token, time.
 */
export const SLOT_REBUILD: Script = {
  name: 'stockroomSlotRebuild',
  lua: `
local field = 'rebuild:' .. ARGV[2]
if ARGV[1] == 'begin' then
  redis.call('HSET', KEYS[1], field, ARGV[3])
  return 1
end
if redis.call('HDEL', KEYS[1], field) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'whole', ARGV[3])
return 1
`,
};

/**
 * Rewrites rows-hash entries that are ahead of PostgreSQL (a version the
 * database never committed: edited by hand, or left from another source),
 * each only if it still holds exactly what the caller saw, so a change the
 * stream applied meanwhile is never undone; then recomputes the sku's keys as
 * APPLY does. KEYS: one sku's keys in skuKeys order, then per row its
 * warehouse key. ARGV: per row: code, entry seen,
 * entry to write; the channels. Returns how many were rewritten.
 */
export const REPLACE_AHEAD: Script = {
  name: 'stockroomReplaceAhead',
  lua: `${LUA_SKU_KEYS}
-- The same entry, field by field: one written before backorders (five fields) equals its seven-field reading.
local function sameEntry(a, b)
  if not a then return false end
  local x, y = { matchEntry(a) }, { matchEntry(b) }
  if not x[1] or not y[1] then return false end
  for i = 1, ${ENTRY_FIELDS} do
    if x[i] ~= y[i] then return false end
  end
  return true
end
local replaced = 0
for r = 1, ((#ARGV - 1) / 3) do
  local code, seen, entry = ARGV[3 * r - 2], ARGV[3 * r - 1], ARGV[3 * r]
  if sameEntry(redis.call('HGET', KEYS[1], code), seen) then
    redis.call('HSET', KEYS[1], code, entry)
    local _, available = decodeRow(entry)
    redis.call('SET', KEYS[SKU_KEYS + r], available)
    replaced = replaced + 1
  end
end
if replaced > 0 then
  recomputeSku(skuKeysAt(1))
end
return replaced
`,
};

/**
 * Rewrites the channels hash of stocked skus from their rows hashes, with
 * the channels given (the consumer, after a channel's warehouses changed; a
 * kit's comes from its components, through its recompute). A sku with no
 * rows hash has no channels hash either, and with no channels at all none
 * has. KEYS: per sku its rows hash and its channels hash. ARGV: the
 * channels. Returns how many hashes it wrote.
 */
export const CHANNELS_WRITE: Script = {
  name: 'stockroomChannelsWrite',
  lua: `${LUA_ROW_FUNCTIONS}${LUA_CHANNEL_FUNCTIONS}
if NO_CHANNELS then
  for i = 2, #KEYS, 2 do redis.call('DEL', KEYS[i]) end
  return 0
end
if not CHANNELS then return 0 end
local written = 0
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    writeChannels(KEYS[i + 1], skuChannels(KEYS[i]))
    written = written + 1
  else
    redis.call('DEL', KEYS[i + 1])
  end
end
return written
`,
};

/** KEYS: rows hashes. Returns each hash as "field\0value\0field\0value…" ('' when missing): cheaper to parse than HGETALL replies. */
export const READ_ROWS: Script = {
  name: 'stockroomReadRows',
  lua: `
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = table.concat(redis.call('HGETALL', key), '\\0')
end
return out
`,
};

/** KEYS: rebuilds hash, source, position; ARGV: token, source, position. 1 when the token survived and the cache is marked complete. */
export const COMPLETE_REBUILD: Script = {
  name: 'stockroomCompleteRebuild',
  lua: `
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[3])
return 1
`,
};

/** KEYS: lease; ARGV: token, ms. 1 when the token still held it and its expiry was pushed back. */
export const RENEW_LEASE: Script = {
  name: 'stockroomRenewLease',
  lua: `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`,
};

/** KEYS: lease; ARGV: token. Deletes the lease only when the token holds it. */
export const RELEASE_LEASE: Script = {
  name: 'stockroomReleaseLease',
  lua: `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`,
};
