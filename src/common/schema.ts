// One way to check a value against a TypeBox schema, for every path that takes data from outside:
// request bodies (the master's validator compiler), tenant policies and driver options
// (src/policy), and records read back from etcd (src/state). TypeBox's compiled checker never
// coerces: `true` is not a number and `5` is not a string. The first problem is turned into a
// field (a dotted path such as `default-options.rate-limit.write-iops`) and a message that says
// what the field must be; each caller wraps it in its own error type.
//
// Two optional keywords of a schema shape the messages (TypeBox keeps unknown options):
//   'x-expected': what a value must be, when "must be a string" would not say it ("true or false, or
//                 one of Go's ParseBool spellings");
//   'x-hint':     appended when a required field is missing ("name the Ceph pool, e.g. ...");
//   'x-key-noun': what an object's keys are called in "unknown option" (default "key");
//   'x-aliases':  for an unknown key, the key a user most likely meant ("snapshot.keep" ->
//                 "snapshots.keep"); otherwise the nearest allowed key by edit distance is offered.

import { FormatRegistry, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';

// TypeBox knows no string formats until they are registered; the records' timestamps use this one.
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (v) => ISO_DATE_TIME.test(v) && !Number.isNaN(Date.parse(v)));

export interface SchemaProblem {
  /** Keys from the root to the field (empty for the root itself). */
  path: string[];
  /** `path` joined with dots; '' for the root. */
  field: string;
  /** What is wrong, without the field: "must be a whole number, got true". */
  message: string;
  /** Set for an unknown key: the keys allowed beside it. */
  allowed?: string[];
  /** Set for an unknown key: the allowed key it most likely meant. */
  suggestion?: string;
}

export interface Checker<S extends TSchema> {
  readonly schema: S;
  check(value: unknown): value is Static<S>;
  /** The first problem, or null when the value matches. */
  problem(value: unknown): SchemaProblem | null;
}

/** Describes a JSON value's type the way users think of it, for "got ..." in messages. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'string':
      return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
    case 'number':
      return `the number ${value}`;
    case 'boolean':
      return `${value}`;
    case 'object':
      return 'an object';
    default:
      return typeof value;
  }
}

/** JSON pointer (`/a/b~1c`) to keys (`['a', 'b/c']`). */
function pointerKeys(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function expected(schema: TSchema): string {
  const custom = (schema as { 'x-expected'?: unknown })['x-expected'];
  if (typeof custom === 'string') return custom;
  if ('const' in schema) return JSON.stringify(schema.const);
  if (Array.isArray(schema.anyOf)) return (schema.anyOf as TSchema[]).map(expected).join(' or ');
  switch (schema.type) {
    case 'integer':
      return 'a whole number';
    case 'number':
      return 'a number';
    case 'string':
      return 'a string';
    case 'boolean':
      return 'true or false';
    case 'object':
      return 'an object';
    case 'array':
      return 'an array';
    case 'null':
      return 'null';
    default:
      return 'something else';
  }
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** The allowed key `key` most likely meant: an alias, or one close enough to be a typo. */
export function suggestKey(key: string, allowed: readonly string[], aliases: Readonly<Record<string, string>> = {}): string | undefined {
  const alias = aliases[key];
  if (alias && allowed.includes(alias)) return alias;
  let best: string | undefined;
  // Close enough to be a typo: at most 2 edits, or a third of the key's length for long keys.
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const candidate of allowed) {
    const d = editDistance(key.toLowerCase(), candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function unknownKey(schema: TSchema, key: string): Omit<SchemaProblem, 'path' | 'field'> {
  const allowed = Object.keys((schema.properties as Record<string, unknown> | undefined) ?? {});
  const noun = typeof schema['x-key-noun'] === 'string' ? schema['x-key-noun'] : 'key';
  const suggestion = suggestKey(key, allowed, (schema['x-aliases'] as Record<string, string> | undefined) ?? {});
  const hint = suggestion ? `did you mean "${suggestion}"? ` : '';
  const message =
    allowed.length > 0 ? `unknown ${noun} ${JSON.stringify(key)}; ${hint}allowed: ${allowed.join(', ')}` : `unknown ${noun} ${JSON.stringify(key)}; none is allowed here`;
  return suggestion ? { message, allowed, suggestion } : { message, allowed };
}

/** The JSON type of a value as schemas name it ('integer' for whole numbers). */
function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

/**
 * For a value no member of a union accepts: the error of the one member of the value's own type
 * (a number below an integer member's minimum says so, instead of listing every alternative), or
 * null when no single member has that type.
 */
function unionMemberError(error: ValueError): ValueError | null {
  const members = (error.schema.anyOf as TSchema[] | undefined) ?? [];
  const type = jsonType(error.value);
  const same = members.flatMap((m, i) => (m.type === type || (type === 'integer' && m.type === 'number') ? [i] : []));
  if (same.length !== 1) return null;
  return error.errors[same[0]!]?.First() ?? null;
}

function describe(error: ValueError, key: string): Omit<SchemaProblem, 'path' | 'field'> {
  const { schema, value } = error;
  const got = describeValue(value);
  switch (error.type) {
    case ValueErrorType.ObjectAdditionalProperties:
      return unknownKey(schema, key);
    case ValueErrorType.ObjectRequiredProperty: {
      const hint = (schema as { 'x-hint'?: unknown })['x-hint'];
      return { message: typeof hint === 'string' ? `is required: ${hint}` : 'is required' };
    }
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.NumberMinimum:
      return { message: `must be at least ${schema.minimum as number}, got ${value as number}` };
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.NumberMaximum:
      return { message: `must be at most ${schema.maximum as number}, got ${value as number}` };
    case ValueErrorType.StringMinLength:
      return { message: schema.minLength === 1 ? 'is empty' : `must have at least ${schema.minLength as number} characters` };
    case ValueErrorType.StringMaxLength:
      return { message: `must have at most ${schema.maxLength as number} characters, got ${(value as string).length}` };
    case ValueErrorType.StringPattern:
      return { message: `must be ${expected(schema)}, got ${got}` };
    case ValueErrorType.StringFormat:
      return { message: `must be ${schema.format === 'date-time' ? 'a date and time such as "2026-11-22T12:00:00.000Z"' : `a ${String(schema.format)}`}, got ${got}` };
    case ValueErrorType.ArrayMinItems:
      return { message: `must have at least ${schema.minItems as number} item(s)` };
    case ValueErrorType.ArrayMaxItems:
      return { message: `must have at most ${schema.maxItems as number} items` };
    case ValueErrorType.ObjectMinProperties:
      return { message: `must have at least ${schema.minProperties as number} key(s)` };
    default:
      return { message: `must be ${expected(schema)}, got ${got}` };
  }
}

/** Compiles `schema` once; call at module load. */
export function compileSchema<S extends TSchema>(schema: S): Checker<S> {
  const compiled: TypeCheck<S> = TypeCompiler.Compile(schema);
  return {
    schema,
    check: (value: unknown): value is Static<S> => compiled.Check(value),
    problem(value: unknown): SchemaProblem | null {
      if (compiled.Check(value)) return null;
      let first = compiled.Errors(value).First();
      if (!first) return { path: [], field: '', message: `must be ${expected(schema)}, got ${describeValue(value)}` };
      while (first.type === ValueErrorType.Union) {
        const member = unionMemberError(first);
        if (!member) break;
        first = member;
      }
      const path = pointerKeys(first.path);
      return { path, field: path.join('.'), ...describe(first, path.at(-1) ?? '') };
    },
  };
}
