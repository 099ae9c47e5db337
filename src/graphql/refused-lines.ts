// Which of a reserve mutation's lines a refusal is about, for a UI to mark them.
// The SQL API reports short stock per stock row (lines of one sku and
// warehouse summed; warehouse null for lines left to allocation) and unknown
// skus and warehouses by name; a cart shows lines. So each short row gets
// `inputLines` (the positions, from 1, of the lines it sums, as INVALID_ARGUMENT's
// detail.line counts them, a kit's line counting for its components), and IV004 gets `lines`, those naming an unknown sku
// or warehouse or channel.
import { ReserveRefusal } from './reserve-combiner.ts';

interface Line { sku: string; warehouse?: string | null; channel?: string | null }

/** A name as error details show it: the SQL API clips long ones to 64 characters and "…". */
function sameName(reported: unknown, given: string): boolean {
  if (typeof reported !== 'string') return false;
  return reported === given || (reported.endsWith('…') && given.startsWith(reported.slice(0, -1)));
}

function positions(lines: readonly Line[], matches: (line: Line) => boolean): number[] {
  return lines.flatMap((line, i) => (matches(line) ? [i + 1] : []));
}

export function withRefusedLines(refusal: ReserveRefusal, lines: readonly Line[]): ReserveRefusal {
  let detail: Record<string, unknown>;
  try {
    detail = JSON.parse(refusal.detail ?? '') as Record<string, unknown>;
  } catch {
    return refusal;
  }
  if (refusal.code === 'IV001' && Array.isArray(detail.lines)) {
    detail.lines = (detail.lines as Array<Record<string, unknown>>).map((short) => ({
      ...short,
      // A component's shortage is also its kits' (detail "kits": the kits of the request that need it).
      inputLines: positions(lines, (line) => (sameName(short.sku, line.sku) || (Array.isArray(short.kits) && short.kits.some((kit) => sameName(kit, line.sku))))
        && (short.warehouse == null ? line.warehouse == null : line.warehouse != null && sameName(short.warehouse, line.warehouse))),
    }));
  } else if (refusal.code === 'IV004' && Array.isArray(detail.unknown_skus) && Array.isArray(detail.unknown_warehouses)) {
    const skus = detail.unknown_skus as unknown[];
    const codes = detail.unknown_warehouses as unknown[];
    const channels = Array.isArray(detail.unknown_channels) ? detail.unknown_channels as unknown[] : [];
    detail.lines = positions(lines, (line) => skus.some((s) => sameName(s, line.sku))
      || (line.warehouse != null && codes.some((c) => sameName(c, line.warehouse!)))
      || (line.channel != null && channels.some((c) => sameName(c, line.channel!))));
  } else {
    return refusal;
  }
  return new ReserveRefusal(refusal.code, refusal.message, JSON.stringify(detail), refusal.hint);
}
