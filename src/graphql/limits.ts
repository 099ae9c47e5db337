// What one GraphQL operation may ask for, checked before it runs:
// - depth: nesting of fields;
// - page sizes: `first`/`last`/`max` within 0..maxPageSize and `offset` within
//   0..10×maxPageSize, written in the query or passed in a variable
//   (INVALID_PAGE_SIZE): a negative page must not cancel the cost of a sibling;
// - aliases: at most maxAliases aliased fields (TOO_MANY_ALIASES), as aliases
//   repeat a field's work for no new kind of answer;
// - cost (QUERY_TOO_COMPLEX), priced for what a field really makes the server
//   do: every field costs 1; a field of the root type (Query, Mutation,
//   Subscription) costs IO_COST, one SQL statement or Redis round trip of its
//   own; a list or connection multiplies the cost of what is selected under
//   it by its page size (DEFAULT_PAGE without one), a connection's nodes and
//   edges not again; a field taking `skus` multiplies by how many it is given
//   (each one a key to read or a row to find); a few lists known to be short
//   (a sku's warehouses) by their bound.
// Rules that need only the document run as graphql-js validation rules
// (grafserv caches their verdict per document, for HTTP and websockets
// alike). What depends on variables (page sizes and sku lists passed in
// variables) is priced again with the request's values before execution.
// Introspection fields (__schema, __type, __typename) cost nothing; in
// production introspection is refused and validation messages make no
// "Did you mean …?" suggestions (they would reveal the schema).
import {
  GraphQLError, Kind, NoSchemaIntrospectionCustomRule, TypeInfo, getNamedType, getNullableType, getOperationAST, isListType, visit,
  visitWithTypeInfo, type ASTNode, type DocumentNode, type FieldNode, type FragmentDefinitionNode, type GraphQLSchema,
  type OperationDefinitionNode, type ValidationContext, type ValidationRule, type ValueNode,
} from 'postgraphile/graphql';

/** Page size assumed for a list or connection without `first`/`last`/`max`. */
export const DEFAULT_PAGE = 100;
/** What a field of the root type costs: it runs a statement or a Redis round trip of its own. */
export const IO_COST = 10;
const PAGE_ARGUMENTS = ['first', 'last', 'max'];
const OFFSET_ARGUMENT = 'offset';
/** Arguments holding keys to look up: a field multiplies by how many it is given. */
const KEY_LIST_ARGUMENTS = ['skus'];
/** Lists without page arguments whose length is bounded by something small: a sku's warehouses, the sales channels. */
const LIST_SIZES: Readonly<Record<string, number>> = { 'CachedStock.warehouses': 10, 'CachedStock.channels': 10 };

export interface Limits { maxDepth: number; maxCost: number; maxPageSize: number; maxAliases: number; production: boolean }

type Variables = Readonly<Record<string, unknown>>;

/** A problem with an operation, as the GraphQL error the client receives. */
function refusal(message: string, code: string, nodes: ASTNode | readonly ASTNode[], extra: Record<string, unknown> = {}): GraphQLError {
  return new GraphQLError(message, { nodes, extensions: { code, ...extra } });
}

export function depthLimit(maxDepth: number): ValidationRule {
  return (context) => {
    const fragments = fragmentsOf(context.getDocument());
    const depthOf = (node: ASTNode, depth: number, seen: Set<string>): number => {
      if (!('selectionSet' in node) || !node.selectionSet) return depth;
      let max = depth;
      for (const selection of node.selectionSet.selections) {
        if (selection.kind === Kind.FIELD) {
          if (!selection.name.value.startsWith('__')) max = Math.max(max, depthOf(selection, depth + 1, seen));
        } else if (selection.kind === Kind.INLINE_FRAGMENT) {
          max = Math.max(max, depthOf(selection, depth, seen));
        } else if (!seen.has(selection.name.value)) {
          const fragment = fragments.get(selection.name.value);
          if (fragment) max = Math.max(max, depthOf(fragment, depth, new Set(seen).add(selection.name.value)));
        }
      }
      return max;
    };
    return {
      OperationDefinition(operation) {
        const depth = depthOf(operation, 0, new Set());
        if (depth > maxDepth) {
          context.reportError(refusal(`query depth ${depth} exceeds the limit of ${maxDepth}; ask for less nesting`, 'QUERY_TOO_DEEP', operation));
        }
      },
    };
  };
}

function fragmentsOf(document: DocumentNode): Map<string, FragmentDefinitionNode> {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  return fragments;
}

/**
 * An argument's value: a literal as written, a variable from the request (or
 * its default in the operation). `undefined` when unknown: a variable while
 * only the document is checked.
 */
function valueOf(node: ValueNode, variables: Variables | undefined, defaults: ReadonlyMap<string, ValueNode>): unknown {
  switch (node.kind) {
    case Kind.INT: return Number(node.value);
    case Kind.LIST: return node.values.map((v) => valueOf(v, variables, defaults));
    case Kind.NULL: return null;
    case Kind.VARIABLE: {
      if (!variables) return undefined;
      const name = node.name.value;
      if (Object.hasOwn(variables, name)) return variables[name];
      const fallback = defaults.get(name);
      return fallback ? valueOf(fallback, variables, defaults) : null;
    }
    default: return 'value' in node ? node.value : undefined;
  }
}

interface Priced { cost: number; problems: GraphQLError[]; variableDependent: boolean }

/**
 * Prices an operation and finds what it may not ask for. Without `variables`,
 * values held in variables are unknown: page sizes count as DEFAULT_PAGE and
 * key lists as one key, and `variableDependent` says the operation must be
 * priced again with the request's values.
 */
export function priceOperation(schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode, limits: Limits, variables?: Variables): Priced {
  const fragments = fragmentsOf(document);
  const defaults = new Map<string, ValueNode>();
  for (const d of operation.variableDefinitions ?? []) if (d.defaultValue) defaults.set(d.variable.name.value, d.defaultValue);
  const problems: GraphQLError[] = [];
  let variableDependent = false;
  let aliases = 0;
  const maxOffset = limits.maxPageSize * 10;

  /** The multiplier a field applies to what is selected under it. */
  const multiplierOf = (field: FieldNode, isList: boolean, coordinate: string): number => {
    let multiplier = isList ? LIST_SIZES[coordinate] ?? DEFAULT_PAGE : 1;
    for (const argument of field.arguments ?? []) {
      const name = argument.name.value;
      const isPage = PAGE_ARGUMENTS.includes(name);
      if (!isPage && name !== OFFSET_ARGUMENT && !KEY_LIST_ARGUMENTS.includes(name)) continue;
      if (argument.value.kind === Kind.VARIABLE || (argument.value.kind === Kind.LIST && argument.value.values.some((v) => v.kind === Kind.VARIABLE))) variableDependent = true;
      const value = valueOf(argument.value, variables, defaults);
      if (KEY_LIST_ARGUMENTS.includes(name)) {
        multiplier = Math.max(1, Array.isArray(value) ? value.length : 1);
        continue;
      }
      if (value === undefined || value === null) continue; // unknown yet, or not given: the default page
      const max = isPage ? limits.maxPageSize : maxOffset;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
        const shown = typeof value === 'number' ? String(value) : JSON.stringify(value).slice(0, 32);
        const source = argument.value.kind === Kind.VARIABLE ? ` ($${argument.value.name.value})` : '';
        problems.push(refusal(
          `${field.name.value}(${name}: ${shown}${source}): ${name} must be an integer from 0 to ${max}${isPage ? '; page through larger results' : ''}`,
          'INVALID_PAGE_SIZE', argument, { argument: name, min: 0, max }));
        continue;
      }
      if (isPage) multiplier = value;
    }
    return multiplier;
  };

  /** Cost of a node's fields, each multiplied by the page sizes of its list ancestors (base included). */
  const costOf = (node: ASTNode, base: number, seen: ReadonlySet<string>, typeInfo: TypeInfo): number => {
    const stack = [base];
    let cost = 0;
    visit(node, visitWithTypeInfo(typeInfo, {
      Field: {
        enter(field) {
          // Introspection is allowed or refused as a whole (NoSchemaIntrospectionCustomRule), not priced.
          if (field.name.value.startsWith('__')) return false;
          if (field.alias) aliases++;
          const type = typeInfo.getType();
          const parent = typeInfo.getParentType();
          const nullable = type ? getNullableType(type) : undefined;
          const named = type ? getNamedType(type) : undefined;
          // A connection multiplies once; its nodes and edges lists are that same page.
          const insideConnection = parent?.name.endsWith('Connection') ?? false;
          const isList = !insideConnection && !!nullable && (isListType(nullable) || (named?.name.endsWith('Connection') ?? false));
          const isRoot = parent !== null && (parent === schema.getQueryType() || parent === schema.getMutationType() || parent === schema.getSubscriptionType());
          cost += stack.at(-1)! * (isRoot ? IO_COST : 1);
          stack.push(stack.at(-1)! * (insideConnection ? 1 : multiplierOf(field, isList, `${parent?.name}.${field.name.value}`)));
        },
        leave() {
          stack.pop();
        },
      },
      FragmentSpread(spread) {
        const fragment = fragments.get(spread.name.value);
        if (fragment && !seen.has(spread.name.value)) {
          // Visited from its definition, a fragment's fields are typed from its own type condition.
          cost += costOf(fragment, stack.at(-1)!, new Set(seen).add(spread.name.value), new TypeInfo(schema));
        }
      },
    }));
    return cost;
  };

  const cost = costOf(operation, 1, new Set(), new TypeInfo(schema));
  if (aliases > limits.maxAliases) {
    problems.push(refusal(`the operation has ${aliases} aliased fields, more than ${limits.maxAliases}; ask for lists (e.g. one cachedStock with many skus) instead of repeating a field`, 'TOO_MANY_ALIASES', operation, { aliases, max: limits.maxAliases }));
  }
  if (cost > limits.maxCost) {
    problems.push(refusal(`query cost ${cost} exceeds the limit of ${limits.maxCost}; ask for fewer fields, fewer skus or smaller pages (first/last)`, 'QUERY_TOO_COMPLEX', operation, { cost }));
  }
  return { cost, problems, variableDependent };
}

/** The document-only checks: page sizes and key lists written in the query, aliases, cost. */
export function operationLimits(limits: Limits): ValidationRule {
  return (context: ValidationContext) => ({
    OperationDefinition(operation) {
      const priced = priceOperation(context.getSchema(), context.getDocument(), operation, limits);
      // A price that depends on variables is judged once they are known (checkWithVariables).
      for (const problem of priced.problems) {
        if (!priced.variableDependent || problem.extensions.code !== 'QUERY_TOO_COMPLEX') context.reportError(problem);
      }
      if (priced.variableDependent) variableDependent.add(context.getDocument());
    },
  });
}

/** Documents whose price depends on their variables, marked when validated (grafserv reuses the parsed document). */
const variableDependent = new WeakSet<DocumentNode>();

/** The request's problems once its variables are known, or undefined when it may run. */
export function checkWithVariables(schema: GraphQLSchema, document: DocumentNode, operationName: string | null | undefined, variables: Variables | null | undefined, limits: Limits): readonly GraphQLError[] | undefined {
  if (!variableDependent.has(document)) return undefined;
  const operation = getOperationAST(document, operationName);
  if (!operation) return undefined; // graphql-js reports it
  const { problems } = priceOperation(schema, document, operation, limits, variables ?? {});
  return problems.length > 0 ? problems : undefined;
}

const SUGGESTION = /\s*Did you mean .*\?\s*$/s;

/** A rule whose errors say what is wrong without suggesting names from the schema. */
function withoutSuggestions(rule: ValidationRule): ValidationRule {
  return (context) => {
    const quiet = Object.create(context) as ValidationContext;
    quiet.reportError = (error) => context.reportError(SUGGESTION.test(error.message)
      ? new GraphQLError(error.message.replace(SUGGESTION, ''), { nodes: error.nodes, extensions: error.extensions })
      : error);
    return rule(quiet);
  };
}

export function makeLimitsPlugin(limits: Limits): GraphileConfig.Plugin {
  const refuseWithVariables = (args: Pick<Grafast.ExecutionArgs, 'schema' | 'document' | 'operationName' | 'variableValues'>) =>
    checkWithVariables(args.schema, args.document, args.operationName, args.variableValues as Variables | null | undefined, limits);
  return {
    name: 'StockroomLimitsPlugin',
    version: '1.0.0',
    grafserv: {
      middleware: {
        setPreset(next, event) {
          event.validationRules.push(depthLimit(limits.maxDepth), operationLimits(limits));
          if (limits.production) {
            event.validationRules.push(NoSchemaIntrospectionCustomRule);
            event.validationRules.splice(0, event.validationRules.length, ...event.validationRules.map(withoutSuggestions));
          }
          return next();
        },
      },
    },
    grafast: {
      middleware: {
        // HTTP and websockets alike; an answer of errors, as validation gives.
        execute(next, event) {
          const errors = refuseWithVariables(event.args);
          return errors ? { errors } : next();
        },
        subscribe(next, event) {
          const errors = refuseWithVariables(event.args);
          return errors ? { errors } : next();
        },
      },
    },
  };
}
