// How the master validates requests: every route's TypeBox schema (params, query, body), compiled by
// TypeBox (src/common/schema.ts) instead of Fastify's default ajv, so that nothing is ever coerced
// (`"write-iops": true` is not 1, `"pool": 5` is not "5", `?force=1` is not true) and the first
// problem becomes an ApiError naming the field. A schema marked `x-code` (a tenant policy:
// INVALID_POLICY; driver options: INVALID_OPTION) gives the problems inside it that code, and its
// fields are named from there (`default-options.pool`, `size`), as src/policy names them.

import type { TSchema } from '@sinclair/typebox';
import type { FastifySchemaCompiler } from 'fastify';
import { ApiError, type ErrorCode } from '../api/errors.js';
import { compileSchema, describeValue, type SchemaProblem } from '../common/schema.js';

const PART_NAMES: Record<string, string> = { body: 'the body', querystring: 'the query string', params: 'the path', headers: 'the headers' };

/** The deepest schema on `path` that carries an `x-code`, and how many keys deep it is. */
function codeAt(schema: TSchema, path: string[]): { code: ErrorCode; depth: number } | null {
  let found: { code: ErrorCode; depth: number } | null = null;
  let node: TSchema | undefined = schema;
  for (let depth = 0; node; depth++) {
    const code = (node as { 'x-code'?: ErrorCode })['x-code'];
    if (code) found = { code, depth };
    const key = path[depth];
    if (key === undefined) break;
    const properties = node.properties as Record<string, TSchema> | undefined;
    const patterns = node.patternProperties as Record<string, TSchema> | undefined;
    node = properties?.[key] ?? (patterns ? Object.values(patterns)[0] : undefined);
  }
  return found;
}

export function requestError(schema: TSchema, part: string, problem: SchemaProblem, value: unknown): ApiError {
  const where = PART_NAMES[part] ?? part;
  // Fastify hands an absent body over as null.
  if (part === 'body' && (value === undefined || value === null)) {
    return new ApiError('INVALID_JSON', 'the body is empty (or null); send a JSON object with Content-Type: application/json');
  }
  if (problem.field === '') return new ApiError('INVALID_REQUEST', `${where} must be an object, got ${describeValue(value)}`);
  // The code of the schema around the field: only for a problem inside it (not with it as a whole).
  const found = codeAt(schema, problem.path);
  const coded = found && problem.path.length > found.depth ? found : null;
  const code = coded?.code ?? 'INVALID_REQUEST';
  const field = problem.path.slice(coded?.depth ?? 0).join('.');
  const prefix = part === 'querystring' ? `query ${field}` : field;
  return new ApiError(code, `${prefix}: ${problem.message}`, { field });
}

/** Fastify's validator compiler for every route: TypeBox, no coercion, errors naming the field. */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const checker = compileSchema(schema);
  return (value: unknown) => {
    const problem = checker.problem(value);
    if (!problem) return { value };
    return { error: requestError(schema, httpPart ?? 'body', problem, value) };
  };
};
