// How many scheduled snapshots (and, with the backups, how many backups) a volume keeps: its
// `keep`, as users write it. Either a whole number (the newest N) or tiers:
//
//   "keep": 20
//   "keep": {"last": 3, "hourly": 24, "daily": 7, "weekly": 4, "monthly": 6}
//
// A number N means {"last": N}. What the tiers keep is decided by the planner
// (src/snapshots/retention.ts); this file owns the syntax: the schema (policy files, JSON option
// values and records), the text form of a driver option (`--opt snapshots.keep=last:3,daily:7`,
// or the same JSON), the semantic check a schema cannot say (at least one tier keeps something),
// the largest number of snapshots it can keep (what limits.snapshots bounds) and how it is shown.

import { Type, type Static } from '@sinclair/typebox';
import { compileSchema } from '../common/schema.js';
import { PolicyError, type PolicyErrorCode } from './errors.js';

/** The tiers, finest first. */
export const RETENTION_TIERS = ['last', 'hourly', 'daily', 'weekly', 'monthly'] as const;
export type RetentionTier = (typeof RETENTION_TIERS)[number];

const tier = (description: string) => Type.Optional(Type.Integer({ minimum: 0, description }));

export const RetentionTiersSchema = Type.Object(
  {
    last: tier('The newest N, whatever their time'),
    hourly: tier('The newest of each of the N most recent hours (UTC) that have one'),
    daily: tier('The newest of each of the N most recent days (UTC) that have one'),
    weekly: tier('The newest of each of the N most recent ISO weeks (Monday to Sunday, UTC) that have one'),
    monthly: tier('The newest of each of the N most recent months (UTC) that have one'),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const RETENTION_EXPECTED =
  'a whole number of at least 1, or tiers such as {"last": 3, "hourly": 24, "daily": 7, "weekly": 4, "monthly": 6} (each a whole number, 0 or more)';

/** `keep` in policies and records. */
export const RetentionSchema = Type.Union([Type.Integer({ minimum: 1 }), RetentionTiersSchema], {
  'x-expected': RETENTION_EXPECTED,
  description: 'The newest N (snapshots, or backups as restore points), or tiers: {"last": 3, "hourly": 24, "daily": 7, "weekly": 4, "monthly": 6}',
});

export type RetentionTiers = Static<typeof RetentionTiersSchema>;
export type Retention = Static<typeof RetentionSchema>;

const retentionShape = compileSchema(RetentionSchema);

/** The tiers of a keep (a number N is {last: N}). */
export function tiersOf(keep: Retention): RetentionTiers {
  return typeof keep === 'number' ? { last: keep } : keep;
}

/** Why `keep` (already of the schema's shape) cannot be used, or null: tiers that keep nothing. */
export function retentionProblem(keep: Retention): string | null {
  if (typeof keep === 'number') return null;
  if (RETENTION_TIERS.every((t) => (keep[t] ?? 0) === 0)) {
    return 'keeps nothing: give at least one tier of 1 or more, e.g. {"last": 3} (the newest snapshot must always stay)';
  }
  return null;
}

/** Why `value` is not a usable keep (shape and semantics), or null. For records read back from etcd. */
export function retentionValueProblem(value: unknown): string | null {
  const shape = retentionShape.problem(value);
  if (shape) return `${shape.field ? `${shape.field}: ` : ''}${shape.message}`;
  return retentionProblem(value as Retention);
}

/** The most snapshots `keep` can leave: N, or the sum of the tiers (a snapshot may count for several). */
export function maxKept(keep: Retention): number {
  if (typeof keep === 'number') return keep;
  return RETENTION_TIERS.reduce((sum, t) => sum + (keep[t] ?? 0), 0);
}

/** The text form of a driver option: "20" or "last:3,hourly:24" (tiers of 0 left out). */
export function formatRetention(keep: Retention): string {
  if (typeof keep === 'number') return String(keep);
  return RETENTION_TIERS.filter((t) => (keep[t] ?? 0) > 0)
    .map((t) => `${t}:${keep[t]}`)
    .join(',');
}

/** For logs and status: "keep 20" or "keep last 3, hourly 24". */
export function describeRetention(keep: Retention): string {
  if (typeof keep === 'number') return `keep ${keep}`;
  return `keep ${RETENTION_TIERS.filter((t) => (keep[t] ?? 0) > 0)
    .map((t) => `${t} ${keep[t]}`)
    .join(', ')}`;
}

/** Whether two keeps keep the same snapshots (20 and {"last": 20} do; tiers of 0 count as absent). */
export function sameRetention(a: Retention, b: Retention): boolean {
  const ta = tiersOf(a);
  const tb = tiersOf(b);
  return RETENTION_TIERS.every((t) => (ta[t] ?? 0) === (tb[t] ?? 0));
}

/** `keep` checked as a value of the policy or of a JSON option: a PolicyError naming `field`. */
export function checkRetention(value: unknown, field: string, code: PolicyErrorCode): Retention {
  const shape = retentionShape.problem(value);
  if (shape) {
    const where = shape.field ? `${field}.${shape.field}` : field;
    // A union's first error is the union itself; for an object, say which tier is wrong.
    const message = shape.field ? shape.message : `must be ${RETENTION_EXPECTED}, got ${describe(value)}`;
    throw new PolicyError(code, `${where}: ${message}`, where);
  }
  const problem = retentionProblem(value as Retention);
  if (problem) throw new PolicyError(code, `${field}: ${problem}`, field);
  return value as Retention;
}

function describe(value: unknown): string {
  if (typeof value === 'number') return `the number ${value}`;
  return JSON.stringify(value) ?? String(value);
}

/**
 * Parses the text of a `snapshots.keep` or `backups.keep` option: "20", "last:3,hourly:24,daily:7" or the JSON object
 * ('{"last": 3, "daily": 7}'). Throws INVALID_OPTION naming `field`.
 */
export function parseRetentionText(text: string, field: string): Retention {
  const trimmed = text.trim();
  const example = 'write e.g. 20, or last:3,hourly:24,daily:7,weekly:4,monthly:6';
  if (/^\d+$/.test(trimmed)) {
    const n = Number(trimmed);
    if (!Number.isSafeInteger(n) || n < 1) throw new PolicyError('INVALID_OPTION', `${field}: must be at least 1, got ${trimmed}`, field);
    return n;
  }
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      throw new PolicyError('INVALID_OPTION', `${field}: ${JSON.stringify(text)} is not valid JSON; ${example}`, field);
    }
    return checkRetention(parsed, field, 'INVALID_OPTION');
  }
  const tiers: Record<string, number> = {};
  for (const part of trimmed.split(',')) {
    const m = /^\s*([a-z]+)\s*[:=]\s*(\d+)\s*$/.exec(part);
    if (!m) {
      const sign = /-\s*\d/.test(part) ? ' (negative numbers are not allowed)' : '';
      throw new PolicyError('INVALID_OPTION', `${field}: ${JSON.stringify(text)} is not a number or TIER:N,...${sign}; ${example}`, field);
    }
    const [, name = '', count = ''] = m;
    if (!(RETENTION_TIERS as readonly string[]).includes(name)) {
      throw new PolicyError('INVALID_OPTION', `${field}: unknown tier ${JSON.stringify(name)}; the tiers are ${RETENTION_TIERS.join(', ')}`, field);
    }
    if (name in tiers) throw new PolicyError('INVALID_OPTION', `${field}: tier ${name} is given twice`, field);
    tiers[name] = Number(count);
  }
  return checkRetention(tiers, field, 'INVALID_OPTION');
}
