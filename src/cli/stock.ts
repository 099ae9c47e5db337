// `stockroom stock <sku>`: one sku across its warehouses, Postgres and Redis
// side by side; then, when sales channels exist, what each can sell of it.
import type { Command } from 'commander';
import pg from 'pg';
import { loadChannels, loadChannelStock } from '../cache/loader.ts';
import { checkDatabase } from '../db/check.ts';
import { NotFoundError } from '../errors.ts';
import { openCliCache, withCliContext } from './context.ts';
import { printJson, printTable } from './output.ts';

interface Row {
  warehouse: string; on_hand: number; reserved: number; safety_stock: number; available: number; version: string; low_stock_threshold: number; last_movement_at: Date;
  unavailable: number | null;
  backorder_policy: string | null; backordered: number | null; backorder_limit: number | null; preorder_until: Date | null;
}

export function registerStock(program: Command): void {
  program
    .command('stock')
    .description('one sku across warehouses: PostgreSQL and the Redis cache side by side')
    .argument('<sku>', 'the sku')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExamples:\n  stockroom stock SKU-000042\n  stockroom stock SKU-000042 --json')
    .action(async (sku: string, options: { json?: boolean }) => {
      await withCliContext({ redis: true }, async (context) => {
        await checkDatabase(context.services.databaseUrl, { logicalWal: false });
        const client = new pg.Client({ connectionString: context.services.databaseUrl, application_name: 'stockroom stock' });
        await client.connect();
        let rows: Row[];
        // A kit: its rows are kit rows (no reserved or safety stock), its totals the kit rule's, not their sums.
        let kitTotal: { on_hand: number; available: number } | undefined;
        let byChannel = new Map<string, number>();
        try {
          const product = await client.query<{ is_kit: boolean }>('select is_kit from inventory.products where sku = $1', [sku]);
          if (!product.rowCount) throw new NotFoundError('IV004', 'NOT_FOUND', `unknown sku '${sku}': see inventory.products, or create it with inventory.upsert_product`);
          ({ rows } = await client.query<Row>(`
            select s.warehouse, s.on_hand, s.reserved, s.safety_stock, s.available, s.version::text, l.low_stock_threshold, s.last_movement_at, s.unavailable,
                   l.backorder_policy, l.backordered, l.backorder_limit, l.preorder_until
            from inventory.stock(array[$1]) s
            join inventory.products p on p.sku = s.sku
            join inventory.warehouses w on w.code = s.warehouse
            left join inventory.stock_levels l on l.product_id = p.id and l.warehouse_id = w.id and not p.is_kit
            order by s.warehouse`, [sku]));
          if (product.rows[0]!.is_kit) {
            kitTotal = (await client.query<{ on_hand: number; available: number }>(
              'select on_hand, available from inventory.kit_stock(array[$1]) where warehouse is null', [sku])).rows[0];
          }
          byChannel = (await loadChannelStock(client, [sku], await loadChannels(client))).get(sku)!;
        } finally {
          await client.end();
        }
        const cache = openCliCache(context);
        try {
          const cached = await cache.writer.reader.rows(rows.map((r) => ({ sku, warehouse: r.warehouse })));
          const [cachedChannels] = await cache.writer.reader.rawChannelsHashes([sku]);
          const [total, available, status, lowStock, preorderUntil] = await cache.redis.mget(
            cache.keys.total(sku), cache.keys.available(sku), cache.keys.status(sku), cache.keys.lowStock(sku), cache.keys.preorderUntil(sku));
          const warehouses = rows.map((r, i) => ({
            warehouse: r.warehouse,
            postgres: {
              onHand: r.on_hand, reserved: r.reserved, safetyStock: r.safety_stock, unavailable: r.unavailable, available: r.available, version: Number(r.version), lowStockThreshold: r.low_stock_threshold, lastMovementAt: r.last_movement_at,
              backorderPolicy: r.backorder_policy, backordered: r.backordered, backorderLimit: r.backorder_limit, preorderUntil: r.preorder_until,
            },
            redis: { available: cached[i]?.warehouseKey ?? null, version: cached[i] ? Number(cached[i]!.version) : null },
            inStep: cached[i]?.warehouseKey === r.available && cached[i]?.version === r.version,
          }));
          const totals = {
            postgres: kitTotal ? { onHand: kitTotal.on_hand, available: kitTotal.available }
              : { onHand: rows.reduce((n, r) => n + r.on_hand, 0), available: rows.reduce((n, r) => n + r.available, 0) },
            redis: { total: total === null ? null : Number(total), available: available === null ? null : Number(available), status, lowStock, preorderUntil },
          };
          const channels = [...byChannel].map(([channel, units]) => {
            const held = cachedChannels![channel];
            return { channel, postgres: units, redis: held === undefined ? null : Number(held), inStep: held === String(units) };
          });
          if (options.json) return printJson({ sku, warehouses, totals, channels });
          printTable(['warehouse', 'on_hand', 'reserved', 'safety', 'in states', 'available (pg)', 'available (redis)', 'beyond available', 'version pg / redis', ''],
            warehouses.map((w) => [w.warehouse, w.postgres.onHand, w.postgres.reserved, w.postgres.safetyStock, w.postgres.unavailable ?? '-', w.postgres.available,
              w.redis.available ?? '(missing)', beyondAvailable(w.postgres), `${w.postgres.version} / ${w.redis.version ?? '-'}`, w.inStep ? 'ok' : 'DIFFERS']));
          process.stdout.write(`total on_hand ${totals.postgres.onHand} (redis ${total ?? 'missing'}), available ${totals.postgres.available} (redis ${available ?? 'missing'}), status ${status ?? 'missing'}${preorderUntil ? ` (preorders until ${preorderUntil})` : ''}\n`);
          if (channels.length > 0) {
            process.stdout.write('\n');
            printTable(['channel', 'available (pg)', 'available (redis)', ''],
              channels.map((c) => [c.channel, c.postgres, c.redis ?? '(missing)', c.inStep ? 'ok' : 'DIFFERS']));
          }
        } finally {
          await cache.close();
        }
      });
    });
}

/** The backorder policy of a row as an operator reads it: "-" under DENY, else what waits of the limit (and a preorder's end). */
function beyondAvailable(row: { backorderPolicy: string | null; backordered: number | null; backorderLimit: number | null; preorderUntil: Date | null }): string {
  if (!row.backorderPolicy || row.backorderPolicy === 'DENY') return '-';
  const waiting = `${row.backordered}/${row.backorderLimit} waiting`;
  return row.backorderPolicy === 'PREORDER' ? `preorder until ${row.preorderUntil?.toISOString().slice(0, 10)}, ${waiting}` : `backorder, ${waiting}`;
}
