// Query depth and cost limits, as graphql-js validation rules (grafserv runs
// them for HTTP and websockets alike, before any planning or SQL).
// Cost: every field costs 1; a list or connection field multiplies the cost
// of what is selected under it by its page size (`first`/`last`/`max` when
// given as a literal, else DEFAULT_PAGE); a connection's nodes/edges do not
// multiply again. Validation rules cannot see variables, so a page size given
// in a variable is priced at DEFAULT_PAGE and a request whose variable asks for
// more is refused before validation (checkVariablePageSizes). Introspection fields (__schema, __type, __typename) cost nothing.
import { SafeError } from 'postgraphile/grafast';
import {
  GraphQLError, Kind, parse, NoSchemaIntrospectionCustomRule, TypeInfo, getNamedType, getNullableType, isListType, visit,
  visitWithTypeInfo, type ASTNode, type FieldNode, type FragmentDefinitionNode, type ValidationRule,
} from 'postgraphile/graphql';

/** Page size assumed for a list without a literal `first`/`last`/`max`, and the most a variable may ask for. */
export const DEFAULT_PAGE = 100;
const PAGE_ARGUMENTS = ['first', 'last', 'max'];

export interface Limits { maxDepth: number; maxCost: number; introspection: boolean }

export function depthLimit(maxDepth: number): ValidationRule {
  return (context) => {
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const d of context.getDocument().definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
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
          context.reportError(new GraphQLError(`query depth ${depth} exceeds the limit of ${maxDepth}; ask for less nesting`, { nodes: [operation], extensions: { code: 'QUERY_TOO_DEEP' } }));
        }
      },
    };
  };
}

function pageSize(field: FieldNode): number {
  for (const name of PAGE_ARGUMENTS) {
    const argument = field.arguments?.find((a) => a.name.value === name);
    if (argument?.value.kind === Kind.INT) return Number(argument.value.value);
    if (argument) return DEFAULT_PAGE;
  }
  return DEFAULT_PAGE;
}

export function costLimit(maxCost: number): ValidationRule {
  return (context) => {
    const schema = context.getSchema();
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const d of context.getDocument().definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
    /** Cost of a node's fields, each multiplied by the page sizes of its list ancestors (base included). */
    const costOf = (node: ASTNode, base: number, seen: ReadonlySet<string>): number => {
      const typeInfo = new TypeInfo(schema);
      const stack = [base];
      let cost = 0;
      visit(node, visitWithTypeInfo(typeInfo, {
        Field: {
          enter(field) {
            // Introspection is allowed or refused as a whole (NoSchemaIntrospectionCustomRule), not priced.
            if (field.name.value.startsWith('__')) return false;
            const type = typeInfo.getType();
            const nullable = type ? getNullableType(type) : undefined;
            const named = type ? getNamedType(type) : undefined;
            // A connection multiplies once; its nodes and edges lists are that same page.
            const insideConnection = typeInfo.getParentType()?.name.endsWith('Connection') ?? false;
            const multiplier = !insideConnection && nullable && (isListType(nullable) || named?.name.endsWith('Connection')) ? pageSize(field) : 1;
            cost += stack.at(-1)!;
            stack.push(stack.at(-1)! * multiplier);
          },
          leave() {
            stack.pop();
          },
        },
        FragmentSpread(spread) {
          const fragment = fragments.get(spread.name.value);
          if (fragment && !seen.has(spread.name.value)) cost += costOf(fragment, stack.at(-1)!, new Set(seen).add(spread.name.value));
        },
      }));
      return cost;
    };
    return {
      OperationDefinition(operation) {
        const cost = costOf(operation, 1, new Set());
        if (cost > maxCost) {
          context.reportError(new GraphQLError(`query cost ${cost} exceeds the limit of ${maxCost}; ask for fewer fields or smaller pages (first/last)`, { nodes: [operation], extensions: { code: 'QUERY_TOO_COMPLEX', cost } }));
        }
      },
    };
  };
}

/** Refuses a page size above DEFAULT_PAGE given in a variable (the cost rule priced it at DEFAULT_PAGE). */
export function checkVariablePageSizes(query: string, variables: Record<string, unknown>): void {
  let document;
  try {
    document = parse(query);
  } catch {
    return; // grafserv reports the syntax error itself
  }
  visit(document, {
    Argument(argument) {
      if (!PAGE_ARGUMENTS.includes(argument.name.value) || argument.value.kind !== Kind.VARIABLE) return;
      const variable = argument.value.name.value;
      const value = variables[variable];
      if (typeof value === 'number' && value > DEFAULT_PAGE) {
        throw new SafeError(
          `${argument.name.value}: $${variable} = ${value} exceeds ${DEFAULT_PAGE}, the most a variable may ask for; page through the results, or write the page size in the query, where its cost is checked`,
          { code: 'QUERY_TOO_COMPLEX', statusCode: 400 });
      }
    },
  });
}

export function makeLimitsPlugin(limits: Limits): GraphileConfig.Plugin {
  return {
    name: 'StockroomLimitsPlugin',
    version: '1.0.0',
    grafserv: {
      middleware: {
        setPreset(next, event) {
          event.validationRules.push(depthLimit(limits.maxDepth), costLimit(limits.maxCost));
          if (!limits.introspection) event.validationRules.push(NoSchemaIntrospectionCustomRule);
          return next();
        },
        processGraphQLRequestBody(next, event) {
          const { query, variableValues } = event.body;
          if (typeof query === 'string' && variableValues && typeof variableValues === 'object') {
            checkVariablePageSizes(query, variableValues as Record<string, unknown>);
          }
          return next();
        },
      },
    },
  };
}
