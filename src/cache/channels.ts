// Availability per sales channel, as the cache keeps it (README, "Sales
// channels"): the hash `catalog:stock:<sku>:channels`, one field per channel
// (its code), each the units a line through that channel can take.
// - a stocked sku: Σ available of its rows in the channel's warehouses;
// - a kit: the kit rule over the channel's warehouses only, min over
//   components of floor(Σ available there / qty), as a kit line through the
//   channel allocates its components among them.
// Both are what inventory.channel_stock gives in its total row; the stream
// test holds them to one answer. The rule lives here in TypeScript (verify,
// incremental sync, cachedStock's database path, cluster kits) and in Lua
// (LUA_CHANNEL_FUNCTIONS, inside the scripts that write a sku's keys).
//
// The scripts learn the channels from their last argument (channelsArgument):
// the channels and their warehouse codes as JSON, or '' to leave the channels
// hashes as they are (a writer that has not loaded the channels). With no
// channel at all ('[]') they write no hash either, so a catalog without
// channels pays nothing; hashes left from channels since deleted are removed
// by the consumer's rewrite (CHANNELS_WRITE), which a change of the channels
// always triggers. A channel
// is never named in a key the scripts build: the hash is one of a sku's keys
// (keys.ts), so a channel added or removed changes fields, not keys.
import type { CachedRowValue } from './row.ts';

/** A sales channel as the cache needs it: its code and the codes of the warehouses it sells from. */
export interface SalesChannel { code: string; warehouses: readonly string[] }

/** Every channel, ordered by code (loader.ts, loadChannels; the consumer keeps its own from the stream). */
export type ChannelList = readonly SalesChannel[];

/** The scripts' last argument: the channels as JSON, or '' (undefined: channels unknown, leave the hashes alone). */
export function channelsArgument(channels: ChannelList | undefined): string {
  return channels === undefined ? '' : JSON.stringify(channels.map((c) => [c.code, c.warehouses]));
}

/** A stocked sku's availability per channel (code → units), from its rows (warehouse code → row). */
export function channelAvailability(rows: ReadonlyMap<string, CachedRowValue> | undefined, channels: ChannelList): Map<string, number> {
  return new Map(channels.map((channel) => [channel.code,
    channel.warehouses.reduce((sum, code) => sum + (rows?.get(code)?.available ?? 0), 0)]));
}

/** A kit's availability per channel, from its components' rows in definition order (the kit rule over each channel's warehouses). */
export function kitChannelAvailability(components: ReadonlyArray<{ qty: number; rows: ReadonlyMap<string, CachedRowValue> | undefined }>,
  channels: ChannelList): Map<string, number> {
  return new Map(channels.map((channel) => {
    const units = components.map((c) => Math.floor(channel.warehouses.reduce((sum, code) => sum + (c.rows?.get(code)?.available ?? 0), 0) / c.qty));
    return [channel.code, units.length === 0 ? 0 : Math.min(...units)];
  }));
}

/** A channels hash as text to compare and report: "code=units" by code, one space apart ('' for none). */
export function channelsText(values: ReadonlyMap<string, number | string> | Readonly<Record<string, string>>): string {
  const entries = values instanceof Map ? [...values] : Object.entries(values);
  return entries.map(([code, units]) => `${code}=${units}`).sort().join(' ');
}

/**
 * Lua, for the scripts that write a sku's keys (scripts.ts), after
 * LUA_ROW_FUNCTIONS:
 * - CHANNELS: the channels from the last ARGV ({ code, { warehouse codes } }
 *   per channel), or nil when the caller left them out or there are none
 *   (NO_CHANNELS: none);
 * - skuChannels(rowsKey): a stocked sku's units per channel, in CHANNELS
 *   order, from its rows hash;
 * - kitChannels(components, qtys): a kit's, from componentOf's decoded rows;
 * - writeChannels(key, values): replaces the channels hash with them.
 */
export const LUA_CHANNEL_FUNCTIONS = `
local CHANNELS = nil
local NO_CHANNELS = #ARGV > 0 and ARGV[#ARGV] == '[]'
if #ARGV > 0 and ARGV[#ARGV] ~= '' and not NO_CHANNELS then CHANNELS = cjson.decode(ARGV[#ARGV]) end
-- A list in pieces of at most 4000, so unpack stays within Lua's limit (even: HSET's pairs stay together).
local function inPieces(list, each)
  for from = 1, #list, 4000 do
    local piece = {}
    for i = from, math.min(from + 3999, #list) do piece[#piece + 1] = list[i] end
    each(piece)
  end
end
local function skuChannels(rowsKey)
  local values = {}
  for i, channel in ipairs(CHANNELS) do
    local sum = 0
    inPieces(channel[2], function(codes)
      for _, entry in ipairs(redis.call('HMGET', rowsKey, unpack(codes))) do
        if entry then
          local _, available = decodeRow(entry)
          if available then sum = sum + available end
        end
      end
    end)
    values[i] = sum
  end
  return values
end
local function kitChannels(components, qtys)
  local values = {}
  for i, channel in ipairs(CHANNELS) do
    local least
    for c = 1, #qtys do
      local sum = 0
      for _, code in ipairs(channel[2]) do
        local row = components[c].rows[code]
        if row then sum = sum + row[3] end
      end
      local units = math.floor(sum / qtys[c])
      if not least or units < least then least = units end
    end
    values[i] = least or 0
  end
  return values
end
local function writeChannels(key, values)
  redis.call('DEL', key)
  local fields = {}
  for i, channel in ipairs(CHANNELS) do
    fields[#fields + 1], fields[#fields + 2] = channel[1], values[i]
  end
  inPieces(fields, function(piece) redis.call('HSET', key, unpack(piece)) end)
end
`;
