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
}

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
}

/** What one rows-hash entry holds (the sku and warehouse are its key and field). */
export type CachedRowValue = Omit<RowState, 'sku' | 'warehouse'>;

export type StockStatus = 'in_stock' | 'low_stock' | 'out_of_stock';

/** available = greatest(on_hand - reserved - safety_stock, 0). */
export function availableOf(onHand: number, reserved: number, safetyStock: number): number {
  return Math.max(onHand - reserved - safetyStock, 0);
}

export function rowState(row: StockRow): RowState {
  return {
    sku: row.sku, warehouse: row.warehouse, version: row.version, onHand: row.onHand, reserved: row.reserved,
    available: availableOf(row.onHand, row.reserved, row.safetyStock), lowStockThreshold: row.lowStockThreshold,
  };
}

/** The fields of a rows-hash entry, in their order: "version:on_hand:reserved:available:low_stock_threshold". */
const FIELDS = ['version', 'onHand', 'reserved', 'available', 'lowStockThreshold'] as const;

export function encodeRow(row: CachedRowValue): string {
  return FIELDS.map((field) => row[field]).join(':');
}

/** A rows-hash entry read back; undefined for anything not in the encoding (a hand-edited value). */
export function decodeRow(text: string | null | undefined): CachedRowValue | undefined {
  if (typeof text !== 'string' || !/^\d+(:\d+){4}$/.test(text)) return undefined;
  const [version, onHand, reserved, available, lowStockThreshold] = text.split(':');
  return { version: version!, onHand: Number(onHand), reserved: Number(reserved), available: Number(available), lowStockThreshold: Number(lowStockThreshold) };
}

export function sameRow(a: CachedRowValue | undefined, b: CachedRowValue): boolean {
  return a !== undefined && FIELDS.every((field) => a[field] === b[field]);
}

/** Out of stock at Σ available 0, low stock at or below Σ low_stock_threshold, else in stock. */
export function stockStatus(available: number, threshold: number): StockStatus {
  if (available <= 0) return 'out_of_stock';
  return available <= threshold ? 'low_stock' : 'in_stock';
}

/**
 * A sku's keys as the cache derives them from its rows. `sums` is the value
 * of its bookkeeping key `stock:<sku>:sums` ("Σ on_hand:Σ available:Σ
 * low_stock_threshold"): the stream moves these sums by each change instead
 * of reading every row of the sku again (scripts.ts, shiftSku).
 */
export interface SkuTotals { total: number; available: number; status: StockStatus; lowStock: '0' | '1'; sums: string }

export function skuTotals(rows: Iterable<CachedRowValue>): SkuTotals {
  let total = 0;
  let available = 0;
  let threshold = 0;
  for (const row of rows) {
    total += row.onHand;
    available += row.available;
    threshold += row.lowStockThreshold;
  }
  const status = stockStatus(available, threshold);
  return { total, available, status, lowStock: status === 'low_stock' ? '1' : '0', sums: `${total}:${available}:${threshold}` };
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
    rows.set(code, {
      version: version.toString(), reserved: 0, lowStockThreshold: 0,
      onHand: least(components.map((c) => Math.floor((c.rows?.get(code)?.onHand ?? 0) / c.qty))),
      available: least(components.map((c) => Math.floor((c.rows?.get(code)?.available ?? 0) / c.qty))),
    });
  }
  const sum = (c: { rows: ReadonlyMap<string, CachedRowValue> | undefined }, field: 'onHand' | 'available') =>
    [...(c.rows?.values() ?? [])].reduce((n, r) => n + r[field], 0);
  const total = least(components.map((c) => Math.floor(sum(c, 'onHand') / c.qty)));
  const available = least(components.map((c) => Math.floor(sum(c, 'available') / c.qty)));
  return { rows, totals: kitTotals(total, available, definition.lowStockThreshold), mark: kitMark(definition.version, versionSum.toString()) };
}

/** A kit's per-sku keys from its total on_hand and available (the sums key carries the kit's threshold). */
export function kitTotals(total: number, available: number, threshold: number): SkuTotals {
  const status = stockStatus(available, threshold);
  return { total, available, status, lowStock: status === 'low_stock' ? '1' : '0', sums: `${total}:${available}:${threshold}` };
}

/** A kit's per-warehouse entry as the cache keeps it (reserved and threshold 0: a kit has neither per warehouse). */
export function kitRow(version: string, onHand: number, available: number): CachedRowValue {
  return { version, onHand, reserved: 0, available, lowStockThreshold: 0 };
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
 * Redis: `decodeRow(value)` returns on_hand, available and threshold of an
 * entry (nil when it is not one), `statusOf(available, threshold)` the
 * status, `encodeSums`/`decodeSums` the sums key's value. Generated from FIELDS, and tested against stockStatus.
 */
export const LUA_ROW_FUNCTIONS = `
local function decodeRow(value)
  local ${FIELDS.join(', ')} = string.match(value, '^${FIELDS.map(() => '(%d+)').join(':')}$')
  if not version then return nil end
  return tonumber(onHand), tonumber(available), tonumber(lowStockThreshold)
end
local function decodeSums(value)
  local onHand, available, threshold = string.match(value, '^(%d+):(%d+):(%d+)$')
  if not onHand then return nil end
  return tonumber(onHand), tonumber(available), tonumber(threshold)
end
local function encodeSums(onHand, available, threshold)
  return string.format('%d:%d:%d', onHand, available, threshold)
end
local function statusOf(available, threshold)
  if available <= 0 then return 'out_of_stock' end
  if available <= threshold then return 'low_stock' end
  return 'in_stock'
end
local function decodeEntry(value)
  local ${FIELDS.join(', ')} = string.match(value, '^${FIELDS.map(() => '(%d+)').join(':')}$')
  if not version then return nil end
  return tonumber(version), tonumber(onHand), tonumber(available)
end
local function encodeRow(${FIELDS.join(', ')})
  return string.format('${FIELDS.map((f) => (f === 'version' ? '%.0f' : '%d')).join(':')}', ${FIELDS.join(', ')})
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
