// Validation of tenant policies as users write them (see docs/api.md for the format):
//
//   { "default-options": { "pool": "rbd", "size": "10MB", "snapshots": true,
//                          "snapshot": { "frequency": "30m", "keep": 20 }, "filesystem": "btrfs",
//                          "ephemeral": false,
//                          "rate-limit": { "write-iops": 1000, "read-iops": 1000,
//                                          "write-bps": 100000000, "read-bps": 100000000 } },
//     "filesystems": { "btrfs": "mkfs.btrfs %", "ext4": "mkfs.ext4 -m0 %" } }
//
// Every error names the field by its dotted path (`default-options.snapshot.keep`). Unknown keys
// are errors, so a typo never silently falls back to a default.

import type { RateLimit, SnapshotSchedule, TenantPolicy } from './types.js';
import { PolicyError, describeType } from './errors.js';
import { DEFAULT_FILESYSTEMS, formatCommandProblem } from './filesystem.js';
import { parseJson } from './json.js';
import { poolProblem } from './names.js';
import { parseFrequency, parseSize } from './units.js';

/** Used when `default-options.filesystem` is absent. */
export const DEFAULT_FILESYSTEM = 'ext4';
/** Used when `default-options.snapshot` (or one of its keys) is absent. */
export const DEFAULT_SNAPSHOT: Readonly<SnapshotSchedule> = Object.freeze({ frequency: '30m', keep: 20 });

/** A policy's default-options, typed and checked (size may be absent: then --opt size is required). */
export interface PolicyDefaults {
  pool: string;
  sizeBytes: number | null;
  snapshots: boolean;
  snapshot: SnapshotSchedule;
  filesystem: string;
  ephemeral: boolean;
  rateLimit: RateLimit;
}

const topKeys = ['default-options', 'filesystems'];
const optionKeys = ['pool', 'size', 'snapshots', 'snapshot', 'filesystem', 'ephemeral', 'rate-limit'];
const snapshotKeys = ['frequency', 'keep'];
const rateLimitKeys = ['write-iops', 'read-iops', 'write-bps', 'read-bps'];

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

function checkKeys(obj: Record<string, unknown>, allowed: string[], path: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      const field = path ? `${path}.${key}` : key;
      fail(field, `unknown key; allowed here: ${allowed.join(', ')}`);
    }
  }
}

function boolAt(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') fail(field, `must be true or false, got ${describeType(value)}`);
  return value as boolean;
}

function countAt(value: unknown, field: string, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    fail(field, `must be a whole number, got ${describeType(value)}`);
  }
  if ((value as number) < min) fail(field, `must be at least ${min}, got ${value as number}`);
  return value as number;
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

function checkDefaults(raw: Record<string, unknown>, filesystems: Record<string, string>): PolicyDefaults {
  const p = 'default-options';
  checkKeys(raw, optionKeys, p);

  if (raw.pool === undefined) fail(`${p}.pool`, 'is required: name the Ceph pool for this tenant\'s volumes, e.g. "pool": "rbd"');
  const pool = stringAt(raw.pool, `${p}.pool`);
  const poolError = poolProblem(pool);
  if (poolError) fail(`${p}.pool`, poolError);

  let sizeBytes: number | null = null;
  if (raw.size !== undefined) {
    if (typeof raw.size === 'number') {
      fail(`${p}.size`, `${raw.size} has no unit; write a string with one of KB, MB, GB, TB, e.g. "${raw.size}MB"`);
    }
    sizeBytes = parseSize(stringAt(raw.size, `${p}.size`), { field: `${p}.size`, code: 'INVALID_POLICY' });
  }

  const snapshots = raw.snapshots === undefined ? false : boolAt(raw.snapshots, `${p}.snapshots`);
  const snapshot: SnapshotSchedule = { ...DEFAULT_SNAPSHOT };
  if (raw.snapshot !== undefined) {
    const s = objectAt(raw.snapshot, `${p}.snapshot`);
    checkKeys(s, snapshotKeys, `${p}.snapshot`);
    if (s.frequency !== undefined) {
      const field = `${p}.snapshot.frequency`;
      const frequency = stringAt(s.frequency, field);
      parseFrequency(frequency, { field, code: 'INVALID_POLICY' });
      snapshot.frequency = frequency.trim();
    }
    if (s.keep !== undefined) snapshot.keep = countAt(s.keep, `${p}.snapshot.keep`, 1);
  }

  let filesystem = DEFAULT_FILESYSTEM;
  if (raw.filesystem !== undefined) filesystem = stringAt(raw.filesystem, `${p}.filesystem`);
  if (filesystems[filesystem] === undefined) {
    const known = Object.keys(filesystems).join(', ');
    if (raw.filesystem === undefined) {
      fail(`${p}.filesystem`, `is not set and the default "${DEFAULT_FILESYSTEM}" is not in filesystems (${known}); set it to one of them`);
    }
    fail(`${p}.filesystem`, `${JSON.stringify(filesystem)} is not in filesystems; use one of: ${known}`);
  }

  const ephemeral = raw.ephemeral === undefined ? false : boolAt(raw.ephemeral, `${p}.ephemeral`);

  const rateLimit: RateLimit = { writeIops: 0, readIops: 0, writeBps: 0, readBps: 0 };
  if (raw['rate-limit'] !== undefined) {
    const r = objectAt(raw['rate-limit'], `${p}.rate-limit`);
    checkKeys(r, rateLimitKeys, `${p}.rate-limit`);
    const field = (k: string) => `${p}.rate-limit.${k}`;
    if (r['write-iops'] !== undefined) rateLimit.writeIops = countAt(r['write-iops'], field('write-iops'), 0);
    if (r['read-iops'] !== undefined) rateLimit.readIops = countAt(r['read-iops'], field('read-iops'), 0);
    if (r['write-bps'] !== undefined) rateLimit.writeBps = countAt(r['write-bps'], field('write-bps'), 0);
    if (r['read-bps'] !== undefined) rateLimit.readBps = countAt(r['read-bps'], field('read-bps'), 0);
  }

  return { pool, sizeBytes, snapshots, snapshot, filesystem, ephemeral, rateLimit };
}

/**
 * Checks a parsed policy and returns it normalised: `filesystems` is filled with the default
 * (`ext4: mkfs.ext4 -m0 %`) when omitted; everything else is kept as written.
 */
export function validatePolicy(value: unknown): TenantPolicy {
  if (!isObject(value)) {
    throw new PolicyError('INVALID_POLICY', `a tenant policy must be a JSON object, got ${describeType(value)}`);
  }
  checkKeys(value, topKeys, '');
  if (value['default-options'] === undefined) {
    fail('default-options', 'is required and must contain at least "pool", e.g. {"default-options": {"pool": "rbd"}}');
  }
  const filesystems = checkFilesystems(value.filesystems);
  const defaults = objectAt(value['default-options'], 'default-options');
  checkDefaults(defaults, filesystems);
  return { 'default-options': structuredClone(defaults), filesystems };
}

/** The typed default-options of a (validated) policy. */
export function policyDefaults(policy: TenantPolicy): PolicyDefaults {
  const filesystems = checkFilesystems(policy.filesystems);
  return checkDefaults(objectAt(policy['default-options'], 'default-options'), filesystems);
}

/** Parses and validates policy text (JSON); `what` names the source in JSON errors. */
export function parsePolicy(text: string, what = 'the policy'): TenantPolicy {
  return validatePolicy(parseJson(text, what));
}
