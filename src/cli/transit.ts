// `stockroom transit`: the shipments of transfers in transit that are still
// open (something of them on its way), oldest first; --sku, --from and --to
// narrow it. Read from inventory.transit_shipments (README "Transfers in transit").
import type { Command } from 'commander';
import pg from 'pg';
import { checkDatabase } from '../db/check.ts';
import { withCliContext } from './context.ts';
import { printJson, printTable } from './output.ts';

interface OpenShipment {
  id: string; sku: string; from: string; to: string; status: string;
  shipped: number; received: number; lost: number; inTransit: number; shippedAt: Date; reason: string;
}

export function registerTransit(program: Command): void {
  program
    .command('transit')
    .description('open shipments of transfers in transit: shipped, received, written off, still on the way')
    .option('--sku <sku>', 'only this sku')
    .option('--from <warehouse>', 'only shipments leaving this warehouse')
    .option('--to <warehouse>', 'only shipments going to this warehouse')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExamples:\n  stockroom transit\n  stockroom transit --to WH2 --json')
    .action(async (options: { sku?: string; from?: string; to?: string; json?: boolean }) => {
      await withCliContext({ redis: false }, async (context) => {
        await checkDatabase(context.services.databaseUrl, { logicalWal: false });
        const client = new pg.Client({ connectionString: context.services.databaseUrl, application_name: 'stockroom transit' });
        await client.connect();
        let rows: OpenShipment[];
        try {
          ({ rows } = await client.query<OpenShipment>(`
            select s.id, p.sku, f.code as "from", t.code as "to", s.status, s.qty_shipped as shipped, s.qty_received as received,
                   s.qty_lost as lost, s.qty_in_transit as "inTransit", s.shipped_at as "shippedAt", s.reason
            from inventory.transit_shipments s
            join inventory.products p on p.id = s.product_id
            join inventory.warehouses f on f.id = s.from_warehouse_id
            join inventory.warehouses t on t.id = s.to_warehouse_id
            where s.closed_at is null and ($1::text is null or p.sku = $1) and ($2::text is null or f.code = $2) and ($3::text is null or t.code = $3)
            order by s.shipped_at, s.id`, [options.sku ?? null, options.from ?? null, options.to ?? null]));
        } finally {
          await client.end();
        }
        if (options.json) return printJson({ shipments: rows });
        if (rows.length === 0) {
          process.stdout.write('no shipments in transit\n');
          return;
        }
        printTable(['shipment', 'sku', 'from', 'to', 'status', 'shipped', 'received', 'lost', 'in transit', 'shipped at'],
          rows.map((r) => [r.id, r.sku, r.from, r.to, r.status, r.shipped, r.received, r.lost, r.inTransit, r.shippedAt.toISOString()]));
        process.stdout.write(`${rows.length} open shipment(s), ${rows.reduce((n, r) => n + r.inTransit, 0)} units in transit\n`);
      });
    });
}
