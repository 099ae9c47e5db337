// `stockroom inbound`: stock on its way (purchase orders, returns), soonest
// first, as inventory.inbound() lists it: what each shipment expects where
// and when, what came, what is still outstanding, and what is overdue.
import type { Command } from 'commander';
import pg from 'pg';
import { checkDatabase } from '../db/check.ts';
import { withCliContext } from './context.ts';
import { printJson, printTable } from './output.ts';

interface Row {
  inbound_id: string; reference: string; kind: string; sku: string; warehouse: string; qty_expected: number; qty_received: number;
  qty_outstanding: number; expected_at: Date; status: string; overdue: boolean; shipment_status: string;
}

interface Options { sku?: string; warehouse?: string; all?: boolean; json?: boolean }

export function registerInbound(program: Command): void {
  program
    .command('inbound')
    .description('inbound stock on its way (purchase orders, returns), soonest first')
    .option('--sku <sku>', 'only this sku')
    .option('--warehouse <code>', 'only this warehouse')
    .option('--all', 'also lines received, closed short or cancelled')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExamples:\n  stockroom inbound\n  stockroom inbound --sku SKU-000042 --json\n  stockroom inbound --warehouse WH1 --all')
    .action(async (options: Options) => {
      await withCliContext({ redis: false }, async (context) => {
        await checkDatabase(context.services.databaseUrl, { logicalWal: false });
        const client = new pg.Client({ connectionString: context.services.databaseUrl, application_name: 'stockroom inbound' });
        await client.connect();
        let rows: Row[];
        try {
          // Unknown sku or warehouse: the function's IV004, printed as one line by main.ts.
          ({ rows } = await client.query<Row>('select * from inventory.inbound($1, $2, $3)',
            [options.sku ?? null, options.warehouse ?? null, options.all ?? false]));
        } finally {
          await client.end();
        }
        const lines = rows.map((r) => ({
          inboundId: r.inbound_id, reference: r.reference, kind: r.kind, sku: r.sku, warehouse: r.warehouse, expected: r.qty_expected,
          received: r.qty_received, outstanding: r.qty_outstanding, expectedAt: r.expected_at, status: r.status, overdue: r.overdue,
          shipmentStatus: r.shipment_status,
        }));
        if (options.json) return printJson({ lines });
        printTable(['expected at', 'reference', 'kind', 'sku', 'warehouse', 'expected', 'received', 'outstanding', 'status', ''],
          lines.map((l) => [l.expectedAt.toISOString(), l.reference, l.kind, l.sku, l.warehouse, l.expected, l.received, l.outstanding, l.status,
            l.overdue ? 'OVERDUE' : '']));
        const outstanding = lines.reduce((n, l) => n + l.outstanding, 0);
        const overdue = lines.filter((l) => l.overdue).length;
        process.stdout.write(`${lines.length} line(s), ${outstanding} unit(s) outstanding${overdue ? `, ${overdue} overdue` : ''}\n`);
      });
    });
}
