// Validation of tenant policies as users write them (see docs/api.md for the format):
//
//   { "default-options": { "pool": "rbd", "size": "10MB", "snapshots": true,
//                          "snapshot": { "frequency": "30m", "keep": 20, "consistency": "crash" },
//                          "filesystem": "btrfs",
//                          "ephemeral": false,
//                          "rate-limit": { "write-iops": 1000, "read-iops": 1000,
//                                          "write-bps": 100000000, "read-bps": 100000000 } },
//     "filesystems": { "btrfs": "mkfs.btrfs %", "ext4": "mkfs.ext4 -m0 %" } }
//
// Every error names the field by its dotted path (`default-options.snapshot.keep`). The shape
// (types, required and unknown keys) is checked by the TypeBox schema (schema.ts), without any
// coercion; what follows here are the rules a schema cannot say well (units, durations, a
// filesystem that exists, defaults within the tenant's limits: limits.ts). Unknown keys are errors,
// so a typo never silently falls back to a default.

import { compileSchema } from '../common/schema.js';
import type { RateLimit, SnapshotSchedule, TenantPolicy } from './types.js';
import { PolicyError, describeType, schemaError } from './errors.js';
import { checkBackupDefaults } from './backup.js';
import { DEFAULT_FILESYSTEMS, formatCommandProblem } from './filesystem.js';
import { parseJson } from './json.js';
import { checkDefaultsWithinLimits, parseLimits, type TenantLimits } from './limits.js';
import { poolProblem } from './names.js';
import { retentionProblem, type Retention } from './retention.js';
import { TenantPolicySchema } from './schema.js';
import { parseFrequency, parseSize } from './units.js';

const policyShape = compileSchema(TenantPolicySchema);

/** Used when `default-options.filesystem` is absent. */
export const DEFAULT_FILESYSTEM = 'ext4';
/** Used when `default-options.snapshot` (or one of its keys) is absent. */
export const DEFAULT_SNAPSHOT: Readonly<SnapshotSchedule & { keep: number }> = Object.freeze({ frequency: '30m', keep: 20 });

/** A policy's default-options, typed and checked (size may be absent: then --opt size is required). */
export interface PolicyDefaults {
  pool: string;
  sizeBytes: number | null;
  snapshots: boolean;
  snapshot: SnapshotSchedule;
  filesystem: string;
  ephemeral: boolean;
  rateLimit: RateLimit;
  /** Set when the policy says anything about backups (volumes of other tenants have no backup settings). */
  backup?: PolicyBackupDefaults;
}

export interface PolicyBackupDefaults {
  backups: boolean;
  frequency: string;
  /** Backups kept as restore points: a number or tiers (src/backups/manifest.ts planBackupPrune). */
  keep: Retention;
  /** Whether the policy names a target (driver options may turn backups on only then). */
  target: boolean;
}

const fail = (field: string, message: string): never => {
  throw new PolicyError('INVALID_POLICY', `${field}: ${message}`, field);
};

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function objectAt(value: unknown, field: string): Record<string, unknown> {
  if (!isObject(value)) fail(field, `must be an object, got ${describeType(value)}`);
  return value as Record<string, unknown>;
}

function stringAt(value: unknown, field: string): string {
  if (typeof value !== 'string') fail(field, `must be a string, got ${describeType(value)}`);
  return value as string;
}

function checkFilesystems(value: unknown): Record<string, string> {
  if (value === undefined) return { ...DEFAULT_FILESYSTEMS };
  const fs = objectAt(value, 'filesystems');
  const names = Object.keys(fs);
  if (names.length === 0) fail('filesystems', 'names no filesystem; omit the block to use ext4, or add e.g. "ext4": "mkfs.ext4 -m0 %"');
  const out: Record<string, string> = {};
  for (const name of names) {
    const field = `filesystems.${name}`;
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name)) {
      fail(field, 'a filesystem name may contain only letters, digits, "_", "-" and "." (at most 64)');
    }
    const command = stringAt(fs[name], field);
    const problem = formatCommandProblem(command);
    if (problem) fail(field, problem);
    out[name] = command;
  }
  return out;
}

/**
 * The typed defaults of `raw` (already of the schema's shape): the semantic checks of each value.
 * What the policy leaves out comes from the tenant's limits where it has some: rate limits are the
 * ceilings (limits.rate-limit), else unlimited; snapshot keep at most limits.snapshots.
 */
function checkDefaults(raw: TenantPolicy['default-options'], filesystems: Record<string, string>, limits: TenantLimits): PolicyDefaults {
  const ceilings = limits.rateLimit;
  const p = 'default-options';
  const poolError = poolProblem(raw.pool);
  if (poolError) fail(`${p}.pool`, poolError);

  const sizeBytes = raw.size === undefined ? null : parseSize(raw.size, { field: `${p}.size`, code: 'INVALID_POLICY' });

  const snapshot: SnapshotSchedule = { ...DEFAULT_SNAPSHOT, keep: Math.min(DEFAULT_SNAPSHOT.keep, limits.maxSnapshots ?? Infinity) };
  if (raw.snapshot?.frequency !== undefined) {
    const field = `${p}.snapshot.frequency`;
    parseFrequency(raw.snapshot.frequency, { field, code: 'INVALID_POLICY' });
    snapshot.frequency = raw.snapshot.frequency.trim();
  }
  if (raw.snapshot?.keep !== undefined) {
    const problem = retentionProblem(raw.snapshot.keep);
    if (problem) fail(`${p}.snapshot.keep`, problem);
    snapshot.keep = structuredClone(raw.snapshot.keep);
  }
  if (raw.snapshot?.consistency === 'fsfreeze') snapshot.consistency = 'fsfreeze';

  const filesystem = raw.filesystem ?? DEFAULT_FILESYSTEM;
  if (filesystems[filesystem] === undefined) {
    const known = Object.keys(filesystems).join(', ');
    if (raw.filesystem === undefined) {
      fail(`${p}.filesystem`, `is not set and the default "${DEFAULT_FILESYSTEM}" is not in filesystems (${known}); set it to one of them`);
    }
    fail(`${p}.filesystem`, `${JSON.stringify(filesystem)} is not in filesystems; use one of: ${known}`);
  }

  const r = raw['rate-limit'] ?? {};
  const rateLimit: RateLimit = {
    writeIops: r['write-iops'] ?? ceilings.writeIops ?? 0,
    readIops: r['read-iops'] ?? ceilings.readIops ?? 0,
    writeBps: r['write-bps'] ?? ceilings.writeBps ?? 0,
    readBps: r['read-bps'] ?? ceilings.readBps ?? 0,
  };

  const defaults: PolicyDefaults = { pool: raw.pool, sizeBytes, snapshots: raw.snapshots ?? false, snapshot, filesystem, ephemeral: raw.ephemeral ?? false, rateLimit };
  if (raw.backups !== undefined || raw.backup !== undefined) {
    const { backups, backup } = checkBackupDefaults(raw, p, fail);
    defaults.backup = { backups, ...backup, target: raw.backup?.target !== undefined };
  }
  return defaults;
}

/** The schema check alone: the PolicyError of the first problem of shape, or nothing. */
function checkShape(value: unknown): asserts value is TenantPolicy {
  const problem = policyShape.problem(value);
  if (!problem) return;
  if (problem.field === '') throw new PolicyError('INVALID_POLICY', `a tenant policy must be a JSON object, got ${describeType(value)}`);
  throw schemaError('INVALID_POLICY', problem, 'the policy');
}

/**
 * Checks a parsed policy and returns it normalised: `filesystems` is filled with the default
 * (`ext4: mkfs.ext4 -m0 -E lazy_journal_init=1 %`) when omitted; everything else is kept as written.
 */
export function validatePolicy(value: unknown): TenantPolicy {
  checkShape(value);
  const filesystems = checkFilesystems(value.filesystems);
  const limits = parseLimits(value.limits);
  const defaults = checkDefaults(value['default-options'], filesystems, limits);
  checkDefaultsWithinLimits(defaults, limits);
  const policy: TenantPolicy = { 'default-options': structuredClone(value['default-options']), filesystems };
  if (value.limits !== undefined) policy.limits = structuredClone(value.limits);
  return policy;
}

/** The typed default-options of a (validated) policy. */
export function policyDefaults(policy: TenantPolicy): PolicyDefaults {
  checkShape(policy);
  const filesystems = checkFilesystems(policy.filesystems);
  return checkDefaults(policy['default-options'], filesystems, parseLimits(policy.limits));
}

/** Parses and validates policy text (JSON); `what` names the source in JSON errors. */
export function parsePolicy(text: string, what = 'the policy'): TenantPolicy {
  return validatePolicy(parseJson(text, what));
}
