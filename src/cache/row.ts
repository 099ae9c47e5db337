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
`;
