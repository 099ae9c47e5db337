// A stock row as the cache holds it, in one place: its fields, its encoding
// in the rows hash (`stock:<sku>:rows`, one entry per warehouse), the rule
// that turns on_hand/reserved/safety_stock into available, and the per-sku
// totals and status. Everything that writes, reads or checks the cache uses
// these; the Lua of scripts.ts is generated from the same definitions.
// (SQL has its own statement of the available rule, in inventory.stock() and
// inventory.stock_levels_available(); the model test holds both to one answer.)

/** A stock row as PostgreSQL has it, named by sku and warehouse code. */
export interface StockRow {
  sku: string;
  warehouse: string;
  /** Decimal text: int8 from PostgreSQL. */
  version: string;
  onHand: number;
  reserved: number;
  safetyStock: number;
  lowStockThreshold: number;
  /** On-hand units in quantity states (inventory.stock_levels.unavailable): not sellable. */
  unavailable: number;
  /** What the row may sell beyond what it has (inventory.stock_levels' backorder columns; sellBeyond states the rule). */
  backorderPolicy: BackorderPolicy;
  backorderLimit: number;
  backordered: number;
  /** PREORDER's end (inventory.stock_levels.preorder_until); null under other policies. */
  preorderUntil: Date | null;
}

export type BackorderPolicy = 'DENY' | 'BACKORDER' | 'PREORDER';

/** The backorder columns of a row that sells nothing beyond what it has (the default policy), with no units in quantity states. */
export const DENY_BACKORDERS = { backorderPolicy: 'DENY', backorderLimit: 0, backordered: 0, preorderUntil: null, unavailable: 0 } as const satisfies Partial<StockRow>;

/** A stock row as the cache keeps it. */
export interface RowState {
  sku: string;
  warehouse: string;
  /** Decimal text: int8 from PostgreSQL; the version guard compares it. */
  version: string;
  onHand: number;
  reserved: number;
  available: number;
  lowStockThreshold: number;
  /** Units the row may still sell beyond available: backorder_limit - backordered under BACKORDER or PREORDER, else 0. */
  room: number;
  /** Under PREORDER, preorder_until in whole seconds since the epoch (the entry holds digits only); else 0. */
  preorderUntil: number;
  /** On-hand units in quantity states (already out of available). */
  unavailable: number;
}

/** What one rows-hash entry holds (the sku and warehouse are its key and field). */
export type CachedRowValue = Omit<RowState, 'sku' | 'warehouse'>;

/**
 * The status key's values. `backorder` and `preorder` came with backorders
 * (README, "Catalog status"): a reader that knows only the first three reads
 * either as "not in stock".
 */
export type StockStatus = 'in_stock' | 'low_stock' | 'out_of_stock' | 'backorder' | 'preorder';

export const STOCK_STATUSES: ReadonlySet<string> = new Set<StockStatus>(['in_stock', 'low_stock', 'out_of_stock', 'backorder', 'preorder']);

/** available = greatest(on_hand - reserved - safety_stock - unavailable, 0). */
export function availableOf(onHand: number, reserved: number, safetyStock: number, unavailable: number): number {
  return Math.max(onHand - reserved - safetyStock - unavailable, 0);
}

/**
 * What a row may sell beyond available, as the cache shows it: its room
 * (backorder_limit - backordered) under BACKORDER or PREORDER, and PREORDER's
 * date. Unlike inventory._backorderable it does not look at the clock: a
 * cached value must follow from the row alone (verify compares them), so a
 * preorder whose date has passed shows until the end_preorders job (every
 * minute) sets the row to DENY.
 */
export function sellBeyond(row: Pick<StockRow, 'backorderPolicy' | 'backorderLimit' | 'backordered' | 'preorderUntil'>): { room: number; preorderUntil: number } {
  if (row.backorderPolicy === 'DENY') return { room: 0, preorderUntil: 0 };
  const room = Math.max(row.backorderLimit - row.backordered, 0);
  if (row.backorderPolicy === 'BACKORDER' || row.preorderUntil === null) return { room, preorderUntil: 0 };
  // At least 1: the entry holds digits only, and 0 means "no preorder" (a date before 1970, set by hand, is long past anyway).
  return { room, preorderUntil: Math.max(Math.floor(row.preorderUntil.getTime() / 1000), 1) };
}

export function rowState(row: StockRow): RowState {
  return {
    sku: row.sku, warehouse: row.warehouse, version: row.version, onHand: row.onHand, reserved: row.reserved,
    available: availableOf(row.onHand, row.reserved, row.safetyStock, row.unavailable), lowStockThreshold: row.lowStockThreshold,
    ...sellBeyond(row), unavailable: row.unavailable,
  };
}

/**
 * The fields of a rows-hash entry, in their order:
 * "version:on_hand:reserved:available:low_stock_threshold:room:preorder_until:unavailable".
 * An entry of the first five only (written before backorders and quantity
 * states) reads as room 0 and nothing unavailable.
 */
const FIELDS = ['version', 'onHand', 'reserved', 'available', 'lowStockThreshold', 'room', 'preorderUntil', 'unavailable'] as const;
const EARLIER_FIELDS = 5;
export const ENTRY_FIELDS = FIELDS.length;

export function encodeRow(row: CachedRowValue): string {
  return FIELDS.map((field) => row[field]).join(':');
}

/** A rows-hash entry read back; undefined for anything not in the encoding (a hand-edited value). */
export function decodeRow(text: string | null | undefined): CachedRowValue | undefined {
  if (typeof text !== 'string' || !/^\d+(:\d+){4}(:\d+:\d+:\d+)?$/.test(text)) return undefined;
  const [version, onHand, reserved, available, lowStockThreshold, room, preorderUntil, unavailable] = text.split(':');
  return {
    version: version!, onHand: Number(onHand), reserved: Number(reserved), available: Number(available), lowStockThreshold: Number(lowStockThreshold),
    room: Number(room ?? 0), preorderUntil: Number(preorderUntil ?? 0), unavailable: Number(unavailable ?? 0),
  };
}

export function sameRow(a: CachedRowValue | undefined, b: CachedRowValue): boolean {
  return a !== undefined && FIELDS.every((field) => a[field] === b[field]);
}

/**
 * The catalog status, from a sku's sums: in stock while anything is available
 * (low stock at or below Σ low_stock_threshold); then, while rows may sell
 * beyond it, backorder (a BACKORDER row has room) or preorder (only PREORDER
 * rows have room); else out of stock. Backorder wins over preorder: it ships
 * as soon as stock arrives.
 */
export function stockStatus(available: number, threshold: number, backorderRoom = 0, preorderRoom = 0): StockStatus {
  if (available > 0) return available <= threshold ? 'low_stock' : 'in_stock';
  if (backorderRoom > 0) return 'backorder';
  return preorderRoom > 0 ? 'preorder' : 'out_of_stock';
}

/**
 * What a sku's keys are computed from, kept in its bookkeeping key
 * `stock:<sku>:sums` as "Σ on_hand:Σ available:Σ low_stock_threshold:Σ
 * backorder room:Σ preorder room:earliest preorder date:Σ unavailable" (the
 * date of the rows with preorder room, seconds since the epoch, 0 for none).
 * The stream moves all but the date by each change (scripts.ts, shiftSku); a change to a
 * preorder row recomputes, the earliest date not being a sum. (A sums value
 * of three fields, written before backorders, is recomputed when met.)
 */
export interface SkuSums {
  onHand: number; available: number; threshold: number; backorderRoom: number; preorderRoom: number; preorderUntil: number; unavailable: number;
}

export function encodeSums(s: SkuSums): string {
  return `${s.onHand}:${s.available}:${s.threshold}:${s.backorderRoom}:${s.preorderRoom}:${s.preorderUntil}:${s.unavailable}`;
}

/** The value of `stock:<sku>:preorder_until`: an ISO 8601 time to the second (null: no key). */
export function preorderDate(seconds: number): string | null {
  if (seconds <= 0) return null;
  const d = new Date(seconds * 1000);
  const two = (n: number) => String(n).padStart(2, '0');
  // By hand, not toISOString: the Lua of isoDate writes the same text for any year (toISOString writes +YYYYYY past 9999).
  return `${String(d.getUTCFullYear()).padStart(4, '0')}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}T${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}Z`;
}

/**
 * A sku's keys as the cache derives them from its rows. `sums` is the value
 * of its bookkeeping key (SkuSums); `preorderUntil` the value of
 * `stock:<sku>:preorder_until`, set while any row takes preorders (null: the
 * key is deleted), whatever the status, so a page can say "3 left, then
 * preorder".
 */
export interface SkuTotals {
  total: number; available: number; status: StockStatus; lowStock: '0' | '1'; sums: string; preorderUntil: string | null;
  /** Σ on-hand units in quantity states: the `stock:<sku>:unavailable` key. */
  unavailable: number;
}

export function totalsOf(s: SkuSums): SkuTotals {
  const status = stockStatus(s.available, s.threshold, s.backorderRoom, s.preorderRoom);
  return {
    total: s.onHand, available: s.available, status, lowStock: status === 'low_stock' ? '1' : '0', sums: encodeSums(s),
    preorderUntil: preorderDate(s.preorderUntil), unavailable: s.unavailable,
  };
}

export function skuTotals(rows: Iterable<CachedRowValue>): SkuTotals {
  const s: SkuSums = { onHand: 0, available: 0, threshold: 0, backorderRoom: 0, preorderRoom: 0, preorderUntil: 0, unavailable: 0 };
  for (const row of rows) {
    s.onHand += row.onHand;
    s.unavailable += row.unavailable;
    s.available += row.available;
    s.threshold += row.lowStockThreshold;
    if (row.room > 0 && row.preorderUntil > 0) {
      s.preorderRoom += row.room;
      s.preorderUntil = s.preorderUntil === 0 ? row.preorderUntil : Math.min(s.preorderUntil, row.preorderUntil);
    } else {
      s.backorderRoom += row.room;
    }
  }
  return totalsOf(s);
}

/**
 * A kit (inventory.kits, inventory.kit_components) as the cache computes it:
 * a product with no stock rows of its own, sold as qty units of each
 * component. `version` is inventory.kits.version (decimal text), which every
 * set_kit bumps: the cache refuses to recompute a kit with a definition older
 * than the one it last used (a lagging partition, a rebuild's snapshot).
 */
export interface KitDefinition {
  sku: string;
  version: string;
  lowStockThreshold: number;
  components: ReadonlyArray<{ sku: string; qty: number }>;
}

/**
 * A kit's keys as the cache derives them from its components' rows (the kit
 * rule, stated in SQL by inventory._kit_rows; the model test holds the two,
 * and the Lua below, to one answer):
 * - per warehouse where any component has a row: on_hand = min over
 *   components of floor(on_hand / qty), available = min over components of
 *   floor(available / qty), a component without a row there counting 0; kept
 *   as a rows-hash entry (reserved 0, low_stock_threshold 0) whose version is
 *   the sum of the component rows' versions there;
 * - in total, the same minimum over each component's sums over warehouses;
 *   status by stockStatus against the kit's low_stock_threshold, and the sums
 *   key "total:available:threshold";
 * - `mark` ("definition version:Σ versions of every component row", the
 *   kit's bookkeeping key `stock:<kit>:kit`) orders recomputes: for one
 *   definition the sum only grows, so a recompute from older reads never
 *   overwrites one from newer reads (a Redis Cluster's non-atomic recompute).
 * (A later cached-row field, e.g. backorders, extends the entry and this rule together.)
 */
export interface KitState { rows: Map<string, CachedRowValue>; totals: SkuTotals; mark: string }

/** The kit rule: components in definition order, each with its qty and its rows (warehouse code → cached row; undefined: none). */
export function kitState(definition: Pick<KitDefinition, 'version' | 'lowStockThreshold'>,
  components: ReadonlyArray<{ qty: number; rows: ReadonlyMap<string, CachedRowValue> | undefined }>): KitState {
  const codes = [...new Set(components.flatMap((c) => [...(c.rows?.keys() ?? [])]))].sort();
  const least = (values: number[]) => (values.length === 0 ? 0 : Math.min(...values));
  const rows = new Map<string, CachedRowValue>();
  let versionSum = 0n;
  for (const code of codes) {
    let version = 0n;
    for (const c of components) version += BigInt(c.rows?.get(code)?.version ?? 0);
    versionSum += version;
    rows.set(code, kitRow(version.toString(),
      least(components.map((c) => Math.floor((c.rows?.get(code)?.onHand ?? 0) / c.qty))),
      least(components.map((c) => Math.floor((c.rows?.get(code)?.available ?? 0) / c.qty)))));
  }
  const sum = (c: { rows: ReadonlyMap<string, CachedRowValue> | undefined }, field: 'onHand' | 'available') =>
    [...(c.rows?.values() ?? [])].reduce((n, r) => n + r[field], 0);
  const total = least(components.map((c) => Math.floor(sum(c, 'onHand') / c.qty)));
  const available = least(components.map((c) => Math.floor(sum(c, 'available') / c.qty)));
  return { rows, totals: kitTotals(total, available, definition.lowStockThreshold), mark: kitMark(definition.version, versionSum.toString()) };
}

/**
 * A kit's per-sku keys from its total on_hand and available (the sums key
 * carries the kit's threshold). A kit's status is in, low or out of stock:
 * its components' backorders are not summed into a kit's (README, "Catalog status").
 */
export function kitTotals(total: number, available: number, threshold: number): SkuTotals {
  return totalsOf({ onHand: total, available, threshold, backorderRoom: 0, preorderRoom: 0, preorderUntil: 0, unavailable: 0 });
}

/** A kit's per-warehouse entry as the cache keeps it (reserved, threshold and room 0: a kit has none of its own). */
export function kitRow(version: string, onHand: number, available: number): CachedRowValue {
  return { version, onHand, reserved: 0, available, lowStockThreshold: 0, room: 0, preorderUntil: 0, unavailable: 0 };
}

/** The kit's bookkeeping value: "definition version:Σ component row versions". */
export function kitMark(definitionVersion: string, versionSum: string): string {
  return `${definitionVersion}:${versionSum}`;
}

/** The Σ of component row versions a kit key records (undefined for anything else). */
export function kitMarkSum(mark: string | null | undefined): string | undefined {
  return typeof mark === 'string' ? /^\d+:(\d+)$/.exec(mark)?.[1] : undefined;
}

/**
 * The same definitions in Lua, for scripts that recompute a sku's keys inside
 * Redis: `decodeRow(value)` returns on_hand, available, threshold, room and
 * preorder date of an entry (nil when it is not one), `statusOf(available,
 * threshold, backorder room, preorder room)` the status,
 * `encodeSums`/`decodeSums` the sums key's value (SkuSums), `isoDate` the
 * preorder_until key's. Generated from FIELDS, and tested against
 * stockStatus, skuTotals and preorderDate.
 */
export const LUA_ROW_FUNCTIONS = `
-- An entry's fields as text (nil when it is not one); an entry of the earlier five reads as room 0.
local function matchEntry(value)
  local ${FIELDS.join(', ')} = string.match(value, '^${FIELDS.map(() => '(%d+)').join(':')}$')
  if not version then
    ${FIELDS.slice(0, EARLIER_FIELDS).join(', ')} = string.match(value, '^${FIELDS.slice(0, EARLIER_FIELDS).map(() => '(%d+)').join(':')}$')
    room, preorderUntil, unavailable = '0', '0', '0'
  end
  return ${FIELDS.join(', ')}
end
local function decodeRow(value)
  local ${FIELDS.join(', ')} = matchEntry(value)
  if not version then return nil end
  return tonumber(onHand), tonumber(available), tonumber(lowStockThreshold), tonumber(room), tonumber(preorderUntil), tonumber(unavailable)
end
local function decodeSums(value)
  local onHand, available, threshold, backorderRoom, preorderRoom, preorderUntil, unavailable = string.match(value, '^(%d+):(%d+):(%d+):(%d+):(%d+):(%d+):(%d+)$')
  if not onHand then return nil end
  return tonumber(onHand), tonumber(available), tonumber(threshold), tonumber(backorderRoom), tonumber(preorderRoom), tonumber(preorderUntil), tonumber(unavailable)
end
local function encodeSums(onHand, available, threshold, backorderRoom, preorderRoom, preorderUntil, unavailable)
  return string.format('%d:%d:%d:%d:%d:%.0f:%d', onHand, available, threshold, backorderRoom, preorderRoom, preorderUntil, unavailable)
end
local function statusOf(available, threshold, backorderRoom, preorderRoom)
  if available > 0 then
    if available <= threshold then return 'low_stock' end
    return 'in_stock'
  end
  if backorderRoom > 0 then return 'backorder' end
  if preorderRoom > 0 then return 'preorder' end
  return 'out_of_stock'
end
-- Seconds since the epoch as preorderDate writes them (UTC, to the second): the civil date from the day number.
local function isoDate(seconds)
  local days = math.floor(seconds / 86400)
  local rest = seconds - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local day = doy - math.floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02dZ', year, month, day, math.floor(rest / 3600), math.floor(rest % 3600 / 60), rest % 60)
end
local function decodeEntry(value)
  local ${FIELDS.join(', ')} = matchEntry(value)
  if not version then return nil end
  return tonumber(version), tonumber(onHand), tonumber(available)
end
local function encodeRow(${FIELDS.join(', ')})
  return string.format('${FIELDS.map((f) => (f === 'version' || f === 'preorderUntil' ? '%.0f' : '%d')).join(':')}', ${FIELDS.join(', ')})
end
`;

/**
 * The kit rule of kitState in Lua. componentOf(key) reads a component's rows
 * hash once per script call (a component of several kits is decoded once):
 * its rows (code → { version, on_hand, available }; entries that do not
 * decode count as missing, as reader.ts drops them) and its sums.
 * kitOf(components, qtys) takes them in definition order and returns the
 * kit's warehouse codes, their encoded entries and available figures (code →
 * entry, code → available), total, available and Σ versions. Tested against
 * kitState and inventory._kit_rows.
 */
export const LUA_KIT_FUNCTIONS = `
local decodedComponents = {}
local function componentOf(key)
  local component = decodedComponents[key]
  if component then return component end
  local flat = redis.call('HGETALL', key)
  component = { rows = {}, codes = {}, onHand = 0, available = 0, version = 0 }
  for i = 1, #flat, 2 do
    local version, onHand, available = decodeEntry(flat[i + 1])
    if version then
      component.rows[flat[i]] = { version, onHand, available }
      component.codes[#component.codes + 1] = flat[i]
      component.onHand, component.available = component.onHand + onHand, component.available + available
      component.version = component.version + version
    end
  end
  decodedComponents[key] = component
  return component
end
local function kitOf(components, qtys)
  local codes, seen = {}, {}
  local versionSum = 0
  for c = 1, #qtys do
    versionSum = versionSum + components[c].version
    for _, code in ipairs(components[c].codes) do
      if not seen[code] then
        seen[code] = true
        codes[#codes + 1] = code
      end
    end
  end
  local entries, availables = {}, {}
  for _, code in ipairs(codes) do
    local version, onHand, available = 0, nil, nil
    for c = 1, #qtys do
      local row = components[c].rows[code]
      local o, a = 0, 0
      if row then
        version = version + row[1]
        o, a = math.floor(row[2] / qtys[c]), math.floor(row[3] / qtys[c])
      end
      if not onHand or o < onHand then onHand = o end
      if not available or a < available then available = a end
    end
    entries[code] = encodeRow(${FIELDS.map((f) => (f === 'version' || f === 'onHand' || f === 'available' ? f : '0')).join(', ')})
    availables[code] = available
  end
  local total, available
  for c = 1, #qtys do
    local o, a = math.floor(components[c].onHand / qtys[c]), math.floor(components[c].available / qtys[c])
    if not total or o < total then total = o end
    if not available or a < available then available = a end
  end
  return codes, entries, availables, total or 0, available or 0, versionSum
end
`;
