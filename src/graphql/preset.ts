// The PostGraphile preset: the `inventory` schema as GraphQL, shaped by smart
// tags (no migration needed), introspected as stockroom_admin so that what no
// API role may execute (internal helpers, direct INSERT/UPDATE/DELETE) never
// appears, plus Stockroom's extensions, auth, error codes and limits.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { SafeError } from 'postgraphile/grafast';
import type { makePgService } from 'postgraphile/adaptors/pg';
import { getOperationAST } from 'postgraphile/graphql';
import { PostGraphileAmberPreset } from 'postgraphile/presets/amber';
import { jsonPgSmartTags } from 'postgraphile/utils';
import { PersistedPlugin } from '@grafserv/persisted';
import { AuthError, authenticate, type AuthPolicy, type Claims } from './auth.ts';
import { maskError } from './errors.ts';
import { makeLimitsPlugin, type Limits } from './limits.ts';
import { ReadFromHeaderPlugin, queryTargetOf, type QueryReads } from './read-routing.ts';

declare global {
  namespace Grafast {
    interface RequestContext { stockroomClaims?: Claims }
    interface Context { stockroomClaims: Claims }
  }
}

export interface PresetOptions {
  /** The database, as role-pools.ts serves it (a pool of sessions per API role). */
  pgService: ReturnType<typeof makePgService>;
  /** With a read replica (DATABASE_READ_URL): the withPgClients of query operations (read-routing.ts). */
  queryReads?: QueryReads;
  auth: AuthPolicy;
  production: boolean;
  limits: Omit<Limits, 'production'>;
  /** Only these operations are accepted (documentId → query text), when given. */
  persistedOperationsDirectory: string | undefined;
  extensions: GraphileConfig.Plugin;
  /** Outside production: headers GraphiQL starts with (a development token), made for each page. */
  graphiqlHeaders?: () => Promise<Record<string, string>>;
}

/** What GraphiQL opens on: a read of the catalog and a reservation, ready to run. */
export const GRAPHIQL_EXAMPLE = `# Stockroom: run an operation with the play button.
# The catalog needs no token; reserving needs a writer's,
# which the Headers below carry (npx stockroom token
# --role writer prints another). Docs list every field.

query Stock {
  cachedStock(skus: ["SKU-000001", "SKU-000002"]) {
    sku
    available
    status
    source
    warehouses { warehouse available }
  }
  productBySku(sku: "SKU-000001") {
    sku
    name
    stockLevels { nodes { onHand reserved available warehouse { code } } }
  }
}

mutation Reserve {
  reserve(
    orderRef: "order-1"
    lines: [{ sku: "SKU-000001", qty: 1 }]
    ttlSeconds: 900
    idempotencyKey: "order-1"
  ) {
    rowId
    status
    expiresAt
    lines { nodes { qty stockLevel { product { sku } warehouse { code } } } }
  }
}
`;

/** GraphiQL opens on the Stockroom example, with the headers of options.graphiqlHeaders. */
function makeGraphiqlPlugin(headers: PresetOptions['graphiqlHeaders']): GraphileConfig.Plugin {
  return {
    name: 'StockroomGraphiqlPlugin',
    version: '1.0.0',
    grafserv: {
      middleware: {
        async ruruHTML(next, event) {
          const defaultHeaders = headers ? JSON.stringify(await headers(), null, 2) : undefined;
          // (Ruru's own types list every client setting as required: hence the cast.)
          event.config.clientConfig = {
            ...event.config.clientConfig, defaultQuery: GRAPHIQL_EXAMPLE, defaultHeaders: defaultHeaders ?? event.config.clientConfig?.defaultHeaders,
          } as typeof event.config.clientConfig;
          // The page's parts were made from the config before this ran: made again from ours.
          const { makeHTMLParts } = await import('postgraphile/grafserv/ruru/server');
          event.htmlParts = makeHTMLParts(event.config);
          return next();
        },
      },
    },
  };
}

/** Relations the tables declare only in comments (see migration 000001), named for people. */
const TagsPlugin = jsonPgSmartTags({
  version: 1,
  config: {
    class: {
      'inventory.reservation_lines': { tags: { foreignKey: [
        '(reservation_id) references inventory.reservations (id)|@fieldName reservation|@foreignFieldName lines',
        '(product_id, warehouse_id) references inventory.stock_levels (product_id, warehouse_id)|@fieldName stockLevel|@foreignFieldName reservationLines',
      ] } },
      'inventory.movements': { tags: { foreignKey: [
        '(reservation_id) references inventory.reservations (id)|@fieldName reservation|@foreignFieldName movements',
        '(product_id, warehouse_id) references inventory.stock_levels (product_id, warehouse_id)|@fieldName stockLevel|@foreignFieldName movements',
      ] } },
      'inventory.reservation_kits': { tags: { foreignKey: [
        '(reservation_id) references inventory.reservations (id)|@fieldName reservation|@foreignFieldName kitLines',
        '(kit_id) references inventory.products (id)|@fieldName kit|@foreignFieldName reservationKitLines',
      ] } },
      'inventory.operation_keys': { tags: { behavior: '-*' } },
      // The table is SalesChannel in GraphQL: the list of channels is the query channels (inventory.channels()).
      'inventory.channels': { tags: { name: 'sales_channels' } },
    },
    constraint: {
      // Lookups by uuid pairs nobody has at hand: stock levels are read by sku (productBySku,
      // stock, cachedStock), reservation lines through their reservation.
      'inventory.stock_levels.stock_levels_pkey': { tags: { behavior: '-single' } },
      'inventory.reservation_lines.reservation_lines_pkey': { tags: { behavior: '-single' } },
      'inventory.stock_levels.stock_levels_product_id_fkey': { tags: { fieldName: 'product', foreignFieldName: 'stockLevels' } },
      'inventory.stock_levels.stock_levels_warehouse_id_fkey': { tags: { fieldName: 'warehouse', foreignFieldName: 'stockLevels' } },
      'inventory.transit_shipments.transit_shipments_product_id_fkey': { tags: { fieldName: 'product', foreignFieldName: 'transitShipments' } },
      'inventory.transit_shipments.transit_shipments_from_warehouse_id_fkey': { tags: { fieldName: 'fromWarehouse', foreignFieldName: 'shipmentsOut' } },
      'inventory.transit_shipments.transit_shipments_to_warehouse_id_fkey': { tags: { fieldName: 'toWarehouse', foreignFieldName: 'shipmentsIn' } },
      // Inbound lines are read through their shipment (lines), a product or a warehouse (inboundLines), or inventory.inbound.
      'inventory.inbound_lines.inbound_lines_pkey': { tags: { behavior: '-single' } },
      'inventory.inbound_lines.inbound_lines_shipment_id_fkey': { tags: { fieldName: 'shipment', foreignFieldName: 'lines' } },
      'inventory.inbound_lines.inbound_lines_product_id_fkey': { tags: { fieldName: 'product', foreignFieldName: 'inboundLines' } },
      'inventory.inbound_lines.inbound_lines_warehouse_id_fkey': { tags: { fieldName: 'warehouse', foreignFieldName: 'inboundLines' } },
      'inventory.channel_warehouses.channel_warehouses_channel_id_fkey': { tags: { fieldName: 'channel', foreignFieldName: 'warehouses' } },
      'inventory.channel_warehouses.channel_warehouses_warehouse_id_fkey': { tags: { fieldName: 'warehouse', foreignFieldName: 'channels' } },
    },
    procedure: {
      'inventory.stock': { tags: { behavior: '-connection +list' } },
      'inventory.recently_updated': { tags: { behavior: '-connection +list' } },
      'inventory.kit_stock': { tags: { behavior: '-connection +list' } },
      'inventory.backorder_position': { tags: { behavior: '-connection +list' } },
      'inventory.in_transit': { tags: { behavior: '-connection +list' } },
      'inventory.available_to_promise': { tags: { behavior: '-connection +list' } },
      'inventory.inbound': { tags: { behavior: '-connection +list' } },
      'inventory.stock_states': { tags: { behavior: '-connection +list' } },
      'inventory.channels': { tags: { behavior: '-connection +list' } },
      'inventory.channel_stock': { tags: { behavior: '-connection +list' } },
      // These have typed, validated mutations in schema-extensions.ts instead.
      // reserve_many is how the API combines reserve mutations, not a mutation of its own.
      ...Object.fromEntries(['reserve', 'reserve_many', 'confirm', 'release', 'extend', 'edit_reservation', 'confirm_lines', 'release_lines',
        'adjust', 'set_count', 'transfer', 'ship_transfer', 'receive_transfer', 'write_off_transfer']
        .map((name) => [`inventory.${name}`, { tags: { behavior: '-*' } }])),
    },
  },
});

/** List fields keep the function's name (stock, recentlyUpdated), not stockList. */
const ListNamesPlugin: GraphileConfig.Plugin = {
  name: 'StockroomListNamesPlugin',
  version: '1.0.0',
  inflection: {
    replace: {
      customQueryListField(_previous, _options, details) {
        return this.customQueryField(details);
      },
    },
  },
};

/**
 * Refuses a bad token over HTTP before the body is read (401/403 with a JSON
 * body), and keeps the claims for grafast.context. No token is stockroom_public.
 */
function makeAuthPlugin(policy: AuthPolicy): GraphileConfig.Plugin {
  return {
    name: 'StockroomAuthPlugin',
    version: '1.0.0',
    grafserv: {
      middleware: {
        async processRequest(next, { requestDigest, instance }) {
          if (requestDigest.path !== instance.dynamicOptions.graphqlPath) return next();
          try {
            requestDigest.requestContext.stockroomClaims = await authenticate(requestDigest.headers.authorization, policy);
          } catch (error) {
            if (!(error instanceof AuthError)) throw error;
            return {
              type: 'buffer', statusCode: error.statusCode,
              headers: { 'content-type': 'application/json; charset=utf-8', ...(error.statusCode === 401 ? { 'www-authenticate': 'Bearer' } : {}) },
              buffer: Buffer.from(JSON.stringify({ errors: [{ message: error.message, extensions: { code: error.code } }] })),
            };
          }
          return next();
        },
      },
    },
  };
}

/**
 * With persisted operations only: refuses a request without a known document id
 * with a clear error, before @grafserv/persisted (which would print a stack
 * trace to stderr for each one).
 */
function makePersistedGuard(directory: string): GraphileConfig.Plugin {
  return {
    name: 'StockroomPersistedGuardPlugin',
    version: '1.0.0',
    grafserv: {
      middleware: {
        processGraphQLRequestBody(next, event) {
          const body = event.body as { documentId?: unknown; id?: unknown; extensions?: { persistedQuery?: { sha256Hash?: unknown } } };
          const id = body.documentId ?? body.id ?? body.extensions?.persistedQuery?.sha256Hash;
          if (typeof id !== 'string') {
            throw new SafeError('this server runs persisted operations only: send {"documentId": "<id>", "variables": {...}}', { code: 'PERSISTED_OPERATION_REQUIRED', statusCode: 400 });
          }
          if (!/^[A-Za-z0-9_-]+$/.test(id) || !existsSync(path.join(directory, `${id}.graphql`))) {
            throw new SafeError(`no persisted operation ${JSON.stringify(id)}`, { code: 'PERSISTED_OPERATION_NOT_FOUND', statusCode: 400 });
          }
          return next();
        },
      },
    },
  };
}

/** Mutation fields that hand the actor to the database themselves. */
const ACTOR_PASSED_EXPLICITLY = new Set(['reserve']);

/** Whether an operation writes through a field that takes the ledger's actor from the session. */
function needsActorSetting(args: Grafast.ExecutionArgs): boolean {
  const operation = getOperationAST(args.document, args.operationName);
  if (operation?.operation !== 'mutation') return false;
  return operation.selectionSet.selections.some((s) => s.kind !== 'Field' || !ACTOR_PASSED_EXPLICITLY.has(s.name.value));
}

export function makePreset(options: PresetOptions): GraphileConfig.Preset {
  const policy = options.auth;
  return {
    extends: [PostGraphileAmberPreset],
    plugins: [
      TagsPlugin, ListNamesPlugin, options.extensions,
      makeLimitsPlugin({ ...options.limits, production: options.production }),
      makeAuthPlugin(policy),
      ...(options.queryReads ? [ReadFromHeaderPlugin] : []),
      ...(options.production ? [] : [makeGraphiqlPlugin(options.graphiqlHeaders)]),
      ...(options.persistedOperationsDirectory ? [makePersistedGuard(options.persistedOperationsDirectory), PersistedPlugin] : []),
    ],
    pgServices: [options.pgService],
    gather: { pgStrictFunctions: true },
    schema: { dontSwallowErrors: true, defaultBehavior: '-insert -update -delete' },
    grafserv: {
      graphqlPath: '/graphql',
      graphiql: !options.production,
      graphiqlOnGraphQLGET: !options.production,
      graphiqlPath: '/graphiql',
      websockets: true,
      maskError,
      ...(options.persistedOperationsDirectory
        ? { persistedOperationsDirectory: options.persistedOperationsDirectory, allowUnpersistedOperation: false }
        : {}),
    },
    grafast: {
      async context(requestContext, args) {
        // HTTP: checked by StockroomAuthPlugin. Websockets: each operation, from connectionParams.
        let claims = requestContext.stockroomClaims;
        if (!claims) {
          try {
            const header = requestContext.ws?.normalizedConnectionParams?.authorization as string | undefined;
            claims = await authenticate(requestContext.ws ? header : undefined, policy);
          } catch (error) {
            if (error instanceof AuthError) throw new SafeError(error.message, { code: error.code, statusCode: error.statusCode });
            throw error;
          }
        }
        // The role picks the pool of sessions already acting as it (role-pools.ts): a
        // query needs no transaction of its own. A mutation's writes record who made
        // them (the ledger's actor), which PostGraphile sets in its transaction;
        // reserve passes its actor to the combined call itself (the requests of one
        // call have many actors), so a reserve alone needs no setting.
        const pgSettings: Record<string, string> = { role: claims.role };
        if (claims.sub && needsActorSetting(args)) pgSettings['stockroom.actor'] = claims.sub;
        // A query reads from the replica, or the primary when asked (read-routing.ts): this replaces
        // the withPgClient PostGraphile put on the context for the request; mutations and subscriptions keep it.
        const target = options.queryReads && queryTargetOf(args, requestContext);
        return { pgSettings, stockroomClaims: claims, ...(target ? { withPgClient: options.queryReads![target] } : {}) };
      },
    },
  };
}
