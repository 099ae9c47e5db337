// What Stockroom adds to the schema PostGraphile derives from `inventory`:
// - mutations for the SQL API with typed, validated inputs (reserve, confirm,
//   release, extend, editReservation, confirmLines, releaseLines, adjust,
//   setCount, transfer, shipTransfer, receiveTransfer, writeOffTransfer). Business rules stay in the
//   database: each calls its function as the request's role in one statement
//   (in PostGraphile's transaction for the actor's setting, when there is an
//   actor: a savepoint inside it would cost two more round trips for nothing),
//   and returns the row through PostGraphile's own types (so clients can select
//   relations, e.g. a reservation's lines). reserve goes through the combiner
//   (reserve-combiner.ts): concurrent reserves share one reserve_many call;
// - cachedStock(skus) from Redis, with a Postgres fallback on a miss;
// - the stockChanged(sku) subscription, fed by the consumer's NOTIFYs, each
//   confirmed against the cache (stock-changes.ts).
import { SafeError, access, context, each, first, lambda, listen, loadMany, loadOne, sideEffect, type ExecutableStep, type FieldArgs } from 'postgraphile/grafast';
import { sideEffectWithPgClient } from 'postgraphile/@dataplan/pg';
import { extendSchema, gql } from 'postgraphile/utils';
import { Histogram, type Registry } from 'prom-client';
import { z } from 'zod';
import type { ApiRole } from './auth.ts';
import type { CachedStock, CachedStockReader } from './cached-stock.ts';
import { stockChannel } from '../db/channels.ts';
import { confirmedStockChanges } from './stock-changes.ts';
import { ReserveRefusal, type ReserveCombiner } from './reserve-combiner.ts';
import { withRefusedLines } from './refused-lines.ts';

const sku = z.string().trim().min(1).max(128);
const code = z.string().trim().min(1).max(64);
const reason = z.string().trim().min(1).max(500);
const key = z.string().trim().min(1).max(200);
const positive = z.number().int().positive().max(2_147_483_647);
const ttlSeconds = z.number().int().positive().max(366 * 24 * 3600);
/** A reservation's lines, as reserve, editReservation, confirmLines and releaseLines take them. */
const lines = z.array(z.object({ sku, warehouse: code.nullish(), qty: positive, channel: code.nullish(), region: z.string().trim().min(1).max(200).nullish() }))
  .min(1).max(1000);

/** The most skus one cachedStock call reads. */
export const MAX_CACHED_SKUS = 1000;

const inputs = {
  reserve: z.object({
    orderRef: z.string().trim().min(1).max(200),
    lines,
    ttlSeconds: ttlSeconds.nullish(),
    idempotencyKey: key.nullish(),
  }),
  confirm: z.object({ reservationId: z.uuid() }),
  release: z.object({ reservationId: z.uuid(), reason: reason.nullish() }),
  extend: z.object({ reservationId: z.uuid(), ttlSeconds }),
  editReservation: z.object({ reservationId: z.uuid(), lines, idempotencyKey: key.nullish() }),
  confirmLines: z.object({ reservationId: z.uuid(), lines, idempotencyKey: key.nullish() }),
  releaseLines: z.object({ reservationId: z.uuid(), lines, reason: reason.nullish(), idempotencyKey: key.nullish() }),
  adjust: z.object({ sku, warehouse: code, delta: z.number().int().min(-2_147_483_647).max(2_147_483_647).refine((d) => d !== 0, 'must not be 0'), reason, idempotencyKey: key.nullish() }),
  setCount: z.object({ sku, warehouse: code, counted: z.number().int().min(0).max(2_147_483_647), reason, expected: z.number().int().min(0).nullish() }),
  transfer: z.object({ sku, fromWarehouse: code, toWarehouse: code, qty: positive, reason, idempotencyKey: key.nullish() }),
  shipTransfer: z.object({ sku, fromWarehouse: code, toWarehouse: code, qty: positive, reason, idempotencyKey: key.nullish() }),
  receiveTransfer: z.object({ shipmentId: z.uuid(), qty: positive, reason, idempotencyKey: key.nullish() }),
  writeOffTransfer: z.object({ shipmentId: z.uuid(), reason, qty: positive.nullish(), idempotencyKey: key.nullish() }),
};

/** Validates a mutation's arguments before any SQL: INVALID_ARGUMENT naming the first bad one. */
function validated<K extends keyof typeof inputs>(name: K, raw: unknown): z.infer<(typeof inputs)[K]> {
  const parsed = inputs[name].safeParse(raw);
  if (parsed.success) return parsed.data as z.infer<(typeof inputs)[K]>;
  const issue = parsed.error.issues[0]!;
  const argument = issue.path.join('.');
  // A line's index from 1, as the SQL API numbers lines, for a UI to point at it.
  const line = issue.path[0] === 'lines' && typeof issue.path[1] === 'number' ? { line: issue.path[1] + 1 } : {};
  throw new SafeError(`invalid argument ${argument}: ${issue.message}`, { code: 'INVALID_ARGUMENT', detail: { argument, ...line } });
}

export function createApiMetrics(registry: Registry) {
  const registers = [registry];
  return {
    reserveLatency: new Histogram({
      name: 'inventory_reserve_latency_seconds', help: 'Reserve mutations, from the combiner taking the request to the commit of its call',
      labelNames: ['outcome'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers,
    }),
  };
}

export interface ExtensionDeps {
  cache: CachedStockReader;
  metrics: ReturnType<typeof createApiMetrics>;
  combiner: ReserveCombiner;
  /** Roles that may reserve (the database's grants); others are refused as the database would. */
  reserveRoles: ReadonlySet<ApiRole>;
}

export function makeSchemaExtensions(deps: ExtensionDeps): GraphileConfig.Plugin {
  const { metrics } = deps;
  return extendSchema((build) => {
    const resources = build.input.pgRegistry.pgResources;
    const reservations = resources.reservations!;
    const stockLevels = resources.stock_levels!;
    const transitShipments = resources.transit_shipments!;
    const executor = reservations.executor;
    /**
     * A mutation's one SQL API call: its arguments validated before any SQL,
     * then the function run as the request's role (one statement: all or
     * nothing by itself). The step yields the rows the statement returns.
     */
    const callSql = <K extends keyof typeof inputs>(
      fieldArgs: FieldArgs, name: K, text: string, values: (input: z.infer<(typeof inputs)[K]>) => unknown[],
    ) => sideEffectWithPgClient(executor, fieldArgs.getRaw(), async (client, raw) => {
      const input = validated(name, raw);
      try {
        const { rows } = await client.query<Record<string, unknown>>({ text, values: values(input) });
        return rows;
      } catch (error) {
        // A mutation taking lines (editReservation) says which of them a refusal is about, as reserve does.
        const lines = (input as { lines?: ReadonlyArray<{ sku: string; warehouse?: string | null }> }).lines;
        const { code, message, detail, hint } = error as { code?: unknown; message: string; detail?: string; hint?: string };
        if (lines && (code === 'IV001' || code === 'IV004')) throw withRefusedLines(new ReserveRefusal(code, message, detail, hint), lines);
        throw error;
      }
    });
    type Rows = ReturnType<typeof callSql>;
    const reservationOf = ($rows: Rows) => reservations.get({ id: access($rows, [0, 'id']) });
    const shipmentOf = ($rows: Rows) => transitShipments.get({ id: access($rows, [0, 'id']) });
    const stockLevelOf = ($row: ExecutableStep) => stockLevels.get({ product_id: access($row, 'product_id'), warehouse_id: access($row, 'warehouse_id') });

    return {
      typeDefs: gql`
        input ReserveLineInput {
          "The product (1 to 128 characters)."
          sku: String!
          "The warehouse code; leave out to allocate across warehouses (lower priority number first, then most available, split when one is not enough)."
          warehouse: String
          "Units to hold: a positive whole number."
          qty: Int!
          "The sales channel selling it (1 to 64 characters): a line without a warehouse allocates only among the channel's warehouses, by its strategy (PRIORITY, MOST_STOCK, NEAREST); a warehouse outside the channel is INVALID_ARGUMENT, an unknown channel NOT_FOUND."
          channel: String
          "The customer's region, for a NEAREST channel: warehouses in it first (default: the channel's region). Only with a channel."
          region: String
        }
        type WarehouseAvailability { warehouse: String! available: Int! version: String! }
        "Units a line through a sales channel can take: the sum over the channel's warehouses (a kit: the kit rule over them), as inventory.channelStock's total."
        type ChannelAvailability { channel: String! available: Int! }
        type CachedStock {
          sku: String!
          total: Int!
          available: Int!
          "in_stock, low_stock, out_of_stock; backorder or preorder when nothing is available but rows sell beyond it (a reader that knows only the first three can read these as out of stock)"
          status: String!
          lowStock: Boolean!
          "While the sku takes preorders: when the earliest preorder with room ends (ISO 8601, to the second); else null"
          preorderUntil: String
          "On-hand units in quantity states (damaged, quality control…): counted in total, not in available"
          unavailable: Int!
          warehouses: [WarehouseAvailability!]!
          "Availability per sales channel, by channel code (empty while no channel exists)"
          channels: [ChannelAvailability!]!
          "cache, or database when the cache did not have it or Redis was unreachable"
          source: String!
        }
        type StockChanged { sku: String! warehouse: String! onHand: Int! reserved: Int! available: Int! version: String! }
        extend type Query {
          "Stock from the Redis catalog cache (answered from PostgreSQL on a miss, or while Redis is unreachable: see source); null for an unknown sku. At most 1000 skus."
          cachedStock(skus: [String!]!): [CachedStock]!
        }
        extend type Mutation {
          "Hold stock for an order: all lines or none. INSUFFICIENT_STOCK lists every short line (detail.lines: sku, warehouse, requested, available, and inputLines: the positions of the lines it sums, from 1); NOT_FOUND lists unknown skus and warehouses and the lines naming them (detail.lines); INVALID_ARGUMENT names the argument, and for a line its position (detail.line, from 1)."
          reserve(
            "The order this hold is for (1 to 200 characters): shown in the ledger and in events."
            orderRef: String!
            "What to hold: 1 to 1000 lines of sku, qty and optionally warehouse. Lines for the same sku and warehouse add up."
            lines: [ReserveLineInput!]!
            "Seconds until the hold expires unless confirmed (default 900, at most a year)."
            ttlSeconds: Int
            "Makes a retry safe: the same key with the same request returns the first reservation; with another request, IDEMPOTENCY_CONFLICT (1 to 200 characters)."
            idempotencyKey: String
          ): Reservation!
          "Final deduction of a HELD reservation; idempotent."
          confirm(
            "The reservation's rowId."
            reservationId: UUID!
          ): Reservation!
          "Give the stock of a HELD reservation back; idempotent."
          release(
            "The reservation's rowId."
            reservationId: UUID!
            "Why: CANCELLED (the default), CUSTOMER_CANCELLED, PAYMENT_FAILED, FRAUD, ORDER_CHANGED, ADMIN or TTL_EXPIRED (records an expiry)."
            reason: String
          ): Reservation!
          "Keep a HELD reservation alive: it expires ttlSeconds from now."
          extend(
            "The reservation's rowId."
            reservationId: UUID!
            "Seconds from now until it expires (at most a year)."
            ttlSeconds: Int!
          ): Reservation!
          "Change a HELD reservation's lines to the lines given, all or nothing: units added must be available (INSUFFICIENT_STOCK: detail.lines with requested and available counting what the reservation holds), units no longer asked for are given back. A line without a warehouse keeps the reservation's holds of that sku where they are and allocates only the rest."
          editReservation(
            "The reservation's rowId."
            reservationId: UUID!
            "What it holds from now on: 1 to 1000 lines, as reserve takes them (kits too)."
            lines: [ReserveLineInput!]!
            "Makes a retry safe: the same key with the same edit applies it once; with another, IDEMPOTENCY_CONFLICT (1 to 200 characters)."
            idempotencyKey: String
          ): Reservation!
          "Final deduction of part of a HELD reservation (a partial shipment); it ends CONFIRMED when nothing is left held."
          confirmLines(
            "The reservation's rowId."
            reservationId: UUID!
            "Units it holds: a line may leave out the warehouse when the reservation holds that sku in one warehouse only; a kit means its components. More than held is INVALID_ARGUMENT."
            lines: [ReserveLineInput!]!
            "Makes a retry safe: the same key with the same lines confirms once (1 to 200 characters)."
            idempotencyKey: String
          ): Reservation!
          "Give part of a HELD reservation back; when nothing is left held it ends (CONFIRMED if some of it was confirmed, else RELEASED)."
          releaseLines(
            "The reservation's rowId."
            reservationId: UUID!
            "Units it holds, as for confirmLines."
            lines: [ReserveLineInput!]!
            "Why: ORDER_CHANGED (the default), CANCELLED, CUSTOMER_CANCELLED, PAYMENT_FAILED, FRAUD or ADMIN."
            reason: String
            "Makes a retry safe: the same key with the same lines and reason releases once (1 to 200 characters)."
            idempotencyKey: String
          ): Reservation!
          "Receipt (delta > 0) or correction (delta < 0) of on_hand."
          adjust(
            "The product (1 to 128 characters)."
            sku: String!
            "The warehouse code (1 to 64 characters)."
            warehouse: String!
            "Units to add (receipt) or remove (correction; never below what is reserved); not 0."
            delta: Int!
            "Why, for the ledger: a PO number, damaged, … (1 to 500 characters)."
            reason: String!
            "Makes a retry safe: the same key with the same change applies it once (1 to 200 characters)."
            idempotencyKey: String
          ): StockLevel!
          "Cycle count; with expected, refused (STALE_COUNT) when on_hand moved since the count began."
          setCount(
            "The product (1 to 128 characters)."
            sku: String!
            "The warehouse code (1 to 64 characters)."
            warehouse: String!
            "Units counted on the shelf: the new on_hand (never below what is reserved)."
            counted: Int!
            "Why, for the ledger (1 to 500 characters)."
            reason: String!
            "The on_hand the count began with; a different one now means stock moved meanwhile (STALE_COUNT)."
            expected: Int
          ): StockLevel!
          "Move on_hand between warehouses; returns the source row, then the destination row."
          transfer(
            "The product (1 to 128 characters)."
            sku: String!
            "The warehouse the units leave (never below what is reserved there)."
            fromWarehouse: String!
            "The warehouse they arrive at (its stock row is made if needed)."
            toWarehouse: String!
            "Units to move: a positive whole number."
            qty: Int!
            "Why, for the ledger (1 to 500 characters)."
            reason: String!
            "Makes a retry safe: the same key with the same transfer moves once (1 to 200 characters)."
            idempotencyKey: String
          ): [StockLevel!]!
          "Ship units to another warehouse: they leave the source now and are in transit (inTransit) until received (receiveTransfer) or written off (writeOffTransfer). Returns the shipment."
          shipTransfer(
            "The product (1 to 128 characters)."
            sku: String!
            "The warehouse the units leave now (never below what is reserved there: NEGATIVE_STOCK)."
            fromWarehouse: String!
            "The warehouse they are on their way to."
            toWarehouse: String!
            "Units to ship: a positive whole number."
            qty: Int!
            "Why, for the ledger (1 to 500 characters)."
            reason: String!
            "Makes a retry safe: the same key with the same shipment ships once and returns that shipment (1 to 200 characters)."
            idempotencyKey: String
          ): TransitShipment!
          "Units of a shipment arrive at its destination, all or part of what is in transit. More than is in transit is INVALID_ARGUMENT; a shipment with nothing in transit (RECEIVED, CLOSED) is INVALID_STATE."
          receiveTransfer(
            "The shipment's rowId (shipTransfer returns it)."
            shipmentId: UUID!
            "Units that arrived: a positive whole number, at most what is in transit."
            qty: Int!
            "Why, for the ledger: a delivery note, … (1 to 500 characters)."
            reason: String!
            "Makes a retry safe: the same key with the same receipt receives once (1 to 200 characters)."
            idempotencyKey: String
          ): TransitShipment!
          "Write off units of a shipment that will never arrive (recorded on the source's ledger; on_hand does not change, it left when shipped)."
          writeOffTransfer(
            "The shipment's rowId."
            shipmentId: UUID!
            "Why, for the ledger: lost, damaged, … (1 to 500 characters)."
            reason: String!
            "Units to write off; leave out for all that is still in transit."
            qty: Int
            "Makes a retry safe: the same key with the same write-off applies once (1 to 200 characters)."
            idempotencyKey: String
          ): TransitShipment!
        }
        extend type Subscription {
          "Each change of the sku's stock rows, once it is in the cache, with the figures the cache holds."
          stockChanged(sku: String!): StockChanged
        }
      `,
      objects: {
        Query: {
          plans: {
            cachedStock(_$root, { $skus }) {
              // The cost rule cannot see how many skus a variable holds: the work is bounded here.
              const $checked = lambda($skus, (skus: readonly string[]) => {
                if (skus.length > MAX_CACHED_SKUS) {
                  throw new SafeError(`invalid argument skus: at most ${MAX_CACHED_SKUS} skus per call, got ${skus.length}`, { code: 'INVALID_ARGUMENT', detail: { argument: 'skus' } });
                }
                return skus;
              });
              return loadMany($checked, {
                name: 'cachedStock',
                load: (lookups: ReadonlyArray<readonly string[]>) => Promise.all(lookups.map((skus) => deps.cache.getMany(skus))),
              });
            },
          },
        },
        CachedStock: {
          plans: {
            // Only read when a query selects it: all skus of the request in one call.
            warehouses($stock) {
              return loadOne($stock as never, {
                name: 'cachedStockWarehouses',
                load: (stocks: ReadonlyArray<CachedStock>) => deps.cache.warehousesOf(stocks),
              });
            },
            channels($stock) {
              return loadOne($stock as never, {
                name: 'cachedStockChannels',
                load: (stocks: ReadonlyArray<CachedStock>) => deps.cache.channelsOf(stocks),
              });
            },
          },
        },
        Mutation: {
          plans: {
            reserve(_$root, fieldArgs) {
              // Not PostGraphile's transaction: the combiner runs the call (with
              // others) on its own sessions, and passes the actor along with it.
              const $id = sideEffect([fieldArgs.getRaw(), context().get('stockroomClaims')], async ([raw, claims]) => {
                const input = validated('reserve', raw);
                if (!deps.reserveRoles.has(claims.role)) throw new ReserveRefusal('42501', 'permission denied for function reserve');
                const started = performance.now();
                let outcome = 'refused';
                try {
                  const id = await deps.combiner.reserve({ ...input, actor: claims.sub ?? claims.role });
                  outcome = 'reserved';
                  return id;
                } catch (error) {
                  throw error instanceof ReserveRefusal ? withRefusedLines(error, input.lines) : error;
                } finally {
                  metrics.reserveLatency.observe({ outcome }, (performance.now() - started) / 1000);
                }
              });
              return reservations.get({ id: $id });
            },
            confirm(_$root, fieldArgs) {
              return reservationOf(callSql(fieldArgs, 'confirm', 'select id from inventory.confirm($1)', (input) => [input.reservationId]));
            },
            release(_$root, fieldArgs) {
              return reservationOf(callSql(fieldArgs, 'release', `select id from inventory.release($1, coalesce($2, 'CANCELLED'))`,
                (input) => [input.reservationId, input.reason ?? null]));
            },
            extend(_$root, fieldArgs) {
              return reservationOf(callSql(fieldArgs, 'extend', 'select id from inventory.extend($1, make_interval(secs => $2))',
                (input) => [input.reservationId, input.ttlSeconds]));
            },
            editReservation(_$root, fieldArgs) {
              return reservationOf(callSql(fieldArgs, 'editReservation', 'select id from inventory.edit_reservation($1, $2::jsonb, $3)',
                (input) => [input.reservationId, JSON.stringify(input.lines), input.idempotencyKey ?? null]));
            },
            confirmLines(_$root, fieldArgs) {
              return reservationOf(callSql(fieldArgs, 'confirmLines', 'select id from inventory.confirm_lines($1, $2::jsonb, $3)',
                (input) => [input.reservationId, JSON.stringify(input.lines), input.idempotencyKey ?? null]));
            },
            releaseLines(_$root, fieldArgs) {
              return reservationOf(callSql(fieldArgs, 'releaseLines', `select id from inventory.release_lines($1, $2::jsonb, coalesce($3, 'ORDER_CHANGED'), $4)`,
                (input) => [input.reservationId, JSON.stringify(input.lines), input.reason ?? null, input.idempotencyKey ?? null]));
            },
            adjust(_$root, fieldArgs) {
              return stockLevelOf(first(callSql(fieldArgs, 'adjust', 'select product_id, warehouse_id from inventory.adjust($1, $2, $3, $4, $5)',
                (input) => [input.sku, input.warehouse, input.delta, input.reason, input.idempotencyKey ?? null])));
            },
            setCount(_$root, fieldArgs) {
              return stockLevelOf(first(callSql(fieldArgs, 'setCount', 'select product_id, warehouse_id from inventory.set_count($1, $2, $3, $4, $5)',
                (input) => [input.sku, input.warehouse, input.counted, input.reason, input.expected ?? null])));
            },
            transfer(_$root, fieldArgs) {
              // The source row, then the destination row.
              return each(callSql(fieldArgs, 'transfer', 'select product_id, warehouse_id from inventory.transfer($1, $2, $3, $4, $5, $6)',
                (input) => [input.sku, input.fromWarehouse, input.toWarehouse, input.qty, input.reason, input.idempotencyKey ?? null]), stockLevelOf);
            },
            shipTransfer(_$root, fieldArgs) {
              return shipmentOf(callSql(fieldArgs, 'shipTransfer', 'select id from inventory.ship_transfer($1, $2, $3, $4, $5, $6)',
                (input) => [input.sku, input.fromWarehouse, input.toWarehouse, input.qty, input.reason, input.idempotencyKey ?? null]));
            },
            receiveTransfer(_$root, fieldArgs) {
              return shipmentOf(callSql(fieldArgs, 'receiveTransfer', 'select id from inventory.receive_transfer($1, $2, $3, $4)',
                (input) => [input.shipmentId, input.qty, input.reason, input.idempotencyKey ?? null]));
            },
            writeOffTransfer(_$root, fieldArgs) {
              return shipmentOf(callSql(fieldArgs, 'writeOffTransfer', 'select id from inventory.write_off_transfer($1, $2, $3, $4)',
                (input) => [input.shipmentId, input.reason, input.qty ?? null, input.idempotencyKey ?? null]));
            },
          },
        },
        Subscription: {
          plans: {
            stockChanged: {
              subscribePlan(_$root, { $sku }) {
                const $topic = lambda($sku, (s: string) => stockChannel(s));
                const $subscriber = lambda(context().get('pgSubscriber'),
                  (subscriber) => subscriber && confirmedStockChanges(subscriber, (sku, warehouse) => deps.cache.rowOf(sku, warehouse)));
                return listen($subscriber, $topic);
              },
              plan($event) {
                return $event;
              },
            },
          },
        },
      },
    };
  });
}
