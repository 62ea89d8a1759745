// Driver options (`docker volume create --opt k=v`, `volcli volume create --opt k=v`) and runtime
// options, merged over a tenant's default-options into the VolumeOptions a volume is made of.

import type { RateLimit, RuntimeOptions, TenantPolicy, VolumeOptions } from './types.js';
import { PolicyError, describeType } from './errors.js';
import { poolProblem } from './names.js';
import { parseBoolOption, parseFrequency, parseGoDuration, parseIntegerOption, parseSize } from './units.js';
import { policyDefaults } from './validate.js';

/** Every driver option key, as users know them. */
export const DRIVER_OPTION_KEYS = [
  'pool',
  'size',
  'snapshots',
  'snapshots.frequency',
  'snapshots.keep',
  'filesystem',
  'ephemeral',
  'rate-limit.write.iops',
  'rate-limit.read.iops',
  'rate-limit.read.bps',
  'rate-limit.write.bps',
] as const;
export type DriverOptionKey = (typeof DRIVER_OPTION_KEYS)[number];

/** The subset that may change while a volume is in use. */
export const RUNTIME_OPTION_KEYS = [
  'snapshots',
  'snapshots.frequency',
  'snapshots.keep',
  'rate-limit.write.iops',
  'rate-limit.read.iops',
  'rate-limit.read.bps',
  'rate-limit.write.bps',
] as const satisfies readonly DriverOptionKey[];
export type RuntimeOptionKey = (typeof RUNTIME_OPTION_KEYS)[number];

/** Option values as they arrive: strings from Docker and volcli, scalars from JSON clients. */
export type OptionValues = Record<string, string | number | boolean>;

const rateLimitField: Record<string, keyof RateLimit> = {
  'rate-limit.write.iops': 'writeIops',
  'rate-limit.read.iops': 'readIops',
  'rate-limit.read.bps': 'readBps',
  'rate-limit.write.bps': 'writeBps',
};

/** Spellings users borrow from the policy file, mapped to the option key they meant. */
const aliases: Record<string, string> = {
  'snapshot.frequency': 'snapshots.frequency',
  'snapshot.keep': 'snapshots.keep',
  'rate-limit.write-iops': 'rate-limit.write.iops',
  'rate-limit.read-iops': 'rate-limit.read.iops',
  'rate-limit.write-bps': 'rate-limit.write.bps',
  'rate-limit.read-bps': 'rate-limit.read.bps',
  snapshot: 'snapshots',
};

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

function suggest(key: string, allowed: readonly string[]): string | null {
  const alias = aliases[key];
  if (alias && allowed.includes(alias)) return alias;
  let best: string | null = null;
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

function unknownOption(key: string, allowed: readonly string[], what: string): PolicyError {
  const guess = suggest(key, allowed);
  const hint = guess ? `did you mean "${guess}"? ` : '';
  return new PolicyError('INVALID_OPTION', `unknown ${what} ${JSON.stringify(key)}; ${hint}known: ${allowed.join(', ')}`, key);
}

function textOf(key: string, value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return String(value);
  throw new PolicyError('INVALID_OPTION', `${key}: must be a string, number or boolean, got ${describeType(value)}`, key);
}

/** Driver options after checking keys and value types; absent keys were not given. */
export interface ParsedOptions {
  pool?: string;
  sizeBytes?: number;
  snapshots?: boolean;
  frequency?: string;
  keep?: number;
  filesystem?: string;
  ephemeral?: boolean;
  rateLimit: Partial<RateLimit>;
}

function parseOptions(values: Record<string, unknown> | null | undefined, allowed: readonly string[], what: string): ParsedOptions {
  const out: ParsedOptions = { rateLimit: {} };
  for (const [key, raw] of Object.entries(values ?? {})) {
    if (!allowed.includes(key)) throw unknownOption(key, allowed, what);
    const text = textOf(key, raw);
    switch (key as DriverOptionKey) {
      case 'pool': {
        const problem = poolProblem(text);
        if (problem) throw new PolicyError('INVALID_OPTION', `pool: ${problem}`, key);
        out.pool = text;
        break;
      }
      case 'size':
        out.sizeBytes = parseSize(text, { field: 'size', defaultUnit: 'MB' });
        break;
      case 'snapshots':
        out.snapshots = parseBoolOption(text, key);
        break;
      case 'snapshots.frequency':
        parseFrequency(text, { field: key });
        out.frequency = text.trim();
        break;
      case 'snapshots.keep':
        out.keep = parseIntegerOption(text, key, 1);
        break;
      case 'filesystem':
        if (text === '') throw new PolicyError('INVALID_OPTION', 'filesystem: is empty; name one of the tenant\'s filesystems', key);
        out.filesystem = text;
        break;
      case 'ephemeral':
        out.ephemeral = parseBoolOption(text, key);
        break;
      default:
        out.rateLimit[rateLimitField[key]!] = parseIntegerOption(text, key, 0);
    }
  }
  return out;
}

/** Checks driver option keys and values (no policy needed). Throws INVALID_OPTION. */
export function parseDriverOptions(values: Record<string, unknown> | null | undefined): ParsedOptions {
  return parseOptions(values, DRIVER_OPTION_KEYS, 'option');
}

/** Checks runtime option keys and values. Throws INVALID_OPTION (e.g. for `size`). */
export function parseRuntimeOptions(values: Record<string, unknown> | null | undefined): ParsedOptions {
  return parseOptions(values, RUNTIME_OPTION_KEYS, 'runtime option');
}

/**
 * The options of a new volume: the tenant's default-options, overridden by the driver options.
 * Throws a PolicyError (INVALID_OPTION) naming the key for an unknown key, a value of the wrong
 * type, a filesystem the tenant does not define, or a size set nowhere.
 */
export function resolveVolumeOptions(policy: TenantPolicy, values: Record<string, unknown> | null | undefined): VolumeOptions {
  const defaults = policyDefaults(policy);
  const given = parseDriverOptions(values);
  const filesystem = given.filesystem ?? defaults.filesystem;
  if (policy.filesystems[filesystem] === undefined) {
    throw new PolicyError(
      'INVALID_OPTION',
      `filesystem: ${JSON.stringify(filesystem)} is not one of the tenant's filesystems (${Object.keys(policy.filesystems).join(', ')})`,
      'filesystem',
    );
  }
  const sizeBytes = given.sizeBytes ?? defaults.sizeBytes;
  if (sizeBytes === null) {
    throw new PolicyError('INVALID_OPTION', 'size: the tenant policy sets no size; pass one, e.g. --opt size=10GB (a bare number is MB)', 'size');
  }
  return {
    pool: given.pool ?? defaults.pool,
    sizeBytes,
    snapshots: given.snapshots ?? defaults.snapshots,
    snapshot: {
      frequency: given.frequency ?? defaults.snapshot.frequency,
      keep: given.keep ?? defaults.snapshot.keep,
    },
    filesystem,
    ephemeral: given.ephemeral ?? defaults.ephemeral,
    rateLimit: { ...defaults.rateLimit, ...given.rateLimit },
  };
}

function sameDuration(a: string, b: string): boolean {
  return a === b || parseGoDuration(a) === parseGoDuration(b);
}

/**
 * The option keys given in `values` whose value differs from the existing volume's. Keys not
 * given do not count: creating an existing volume without options returns it as it is.
 */
export function conflictingOptions(existing: VolumeOptions, values: Record<string, unknown> | null | undefined): string[] {
  const given = parseDriverOptions(values);
  const out: string[] = [];
  if (given.pool !== undefined && given.pool !== existing.pool) out.push('pool');
  if (given.sizeBytes !== undefined && given.sizeBytes !== existing.sizeBytes) out.push('size');
  if (given.snapshots !== undefined && given.snapshots !== existing.snapshots) out.push('snapshots');
  if (given.frequency !== undefined && !sameDuration(given.frequency, existing.snapshot.frequency)) out.push('snapshots.frequency');
  if (given.keep !== undefined && given.keep !== existing.snapshot.keep) out.push('snapshots.keep');
  if (given.filesystem !== undefined && given.filesystem !== existing.filesystem) out.push('filesystem');
  if (given.ephemeral !== undefined && given.ephemeral !== existing.ephemeral) out.push('ephemeral');
  for (const [key, field] of Object.entries(rateLimitField)) {
    const v = given.rateLimit[field];
    if (v !== undefined && v !== existing.rateLimit[field]) out.push(key);
  }
  return out;
}

/** The runtime part of a volume's options (what it starts with). */
export function runtimeOf(options: VolumeOptions): RuntimeOptions {
  return {
    snapshots: options.snapshots,
    snapshot: { ...options.snapshot },
    rateLimit: { ...options.rateLimit },
  };
}

/** Applies runtime option changes (`snapshots.keep=5`, ...) to a volume's current runtime options. */
export function applyRuntimeOptions(current: RuntimeOptions, values: Record<string, unknown> | null | undefined): RuntimeOptions {
  const given = parseRuntimeOptions(values);
  return {
    snapshots: given.snapshots ?? current.snapshots,
    snapshot: {
      frequency: given.frequency ?? current.snapshot.frequency,
      keep: given.keep ?? current.snapshot.keep,
    },
    rateLimit: { ...current.rateLimit, ...given.rateLimit },
  };
}

/** RuntimeOptions spelled as runtime option keys (what `volcli volume runtime get` prints). */
export function runtimeAsOptions(runtime: RuntimeOptions): Record<RuntimeOptionKey, string> {
  return {
    snapshots: String(runtime.snapshots),
    'snapshots.frequency': runtime.snapshot.frequency,
    'snapshots.keep': String(runtime.snapshot.keep),
    'rate-limit.write.iops': String(runtime.rateLimit.writeIops),
    'rate-limit.read.iops': String(runtime.rateLimit.readIops),
    'rate-limit.read.bps': String(runtime.rateLimit.readBps),
    'rate-limit.write.bps': String(runtime.rateLimit.writeBps),
  };
}

/** Parses `k=v` strings (volcli's repeatable --opt) into an object; throws INVALID_OPTION. */
export function parseOptionPairs(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) {
      throw new PolicyError('INVALID_OPTION', `--opt ${JSON.stringify(pair)} is not KEY=VALUE; write e.g. --opt size=10GB`, pair);
    }
    const key = pair.slice(0, eq).trim();
    if (Object.prototype.hasOwnProperty.call(out, key)) {
      throw new PolicyError('INVALID_OPTION', `--opt ${key} is given twice; give each option once`, key);
    }
    out[key] = pair.slice(eq + 1);
  }
  return out;
}
