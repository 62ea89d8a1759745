// Driver options (`docker volume create --opt k=v`, `volcli volume create --opt k=v`) and runtime
// options, merged over a tenant's default-options into the VolumeOptions a volume is made of, within
// the tenant's limits (limits.ts). Keys and JSON types are checked by the schemas (schema.ts) first.

import { compileSchema } from '../common/schema.js';
import type { RateLimit, RuntimeOptions, TenantPolicy, VolumeOptions } from './types.js';
import { DEFAULT_BACKUP } from './backup.js';
import { PolicyError, describeType, schemaError } from './errors.js';
import { checkRuntimeLimits, checkVolumeLimits, limitsOf, type TenantLimits } from './limits.js';
import { poolProblem } from './names.js';
import { formatRetention, parseRetentionText, checkRetention, sameRetention, type Retention } from './retention.js';
import { CONSISTENCY_MODES, DriverOptionValuesSchema, RuntimeOptionValuesSchema, type ConsistencyMode } from './schema.js';
import { parseBoolOption, parseFrequency, parseGoDuration, parseIntegerOption, parseSize } from './units.js';
import { policyDefaults } from './validate.js';

/** Every driver option key, as users know them (the schema's keys). */
export const DRIVER_OPTION_KEYS = Object.keys(DriverOptionValuesSchema.properties) as DriverOptionKey[];
export type DriverOptionKey = keyof typeof DriverOptionValuesSchema.properties;

/** The subset that may change while a volume is in use. */
export const RUNTIME_OPTION_KEYS = Object.keys(RuntimeOptionValuesSchema.properties) as RuntimeOptionKey[];
export type RuntimeOptionKey = keyof typeof RuntimeOptionValuesSchema.properties;

/** Option values as they arrive: strings from Docker and volcli, scalars from JSON clients. */
export type OptionValues = Record<string, string | number | boolean>;

const rateLimitField: Record<string, keyof RateLimit> = {
  'rate-limit.write.iops': 'writeIops',
  'rate-limit.read.iops': 'readIops',
  'rate-limit.read.bps': 'readBps',
  'rate-limit.write.bps': 'writeBps',
};

const driverShape = compileSchema(DriverOptionValuesSchema);
const runtimeShape = compileSchema(RuntimeOptionValuesSchema);

/** A value the schema accepted (a string, a boolean or a whole number) as the text Docker would send. */
function textOf(value: unknown): string {
  return typeof value === 'string' ? value : String(value);
}

/** Driver options after checking keys and value types; absent keys were not given. */
export interface ParsedOptions {
  pool?: string;
  sizeBytes?: number;
  snapshots?: boolean;
  frequency?: string;
  keep?: Retention;
  consistency?: ConsistencyMode;
  filesystem?: string;
  ephemeral?: boolean;
  rateLimit: Partial<RateLimit>;
  backups?: boolean;
  backupFrequency?: string;
  backupKeep?: Retention;
}

function parseOptions(values: Record<string, unknown> | null | undefined, shape: typeof driverShape | typeof runtimeShape): ParsedOptions {
  const out: ParsedOptions = { rateLimit: {} };
  const problem = shape.problem(values ?? {});
  if (problem) {
    if (problem.field === '') throw new PolicyError('INVALID_OPTION', `options must be an object of KEY: VALUE, got ${describeType(values)}`);
    throw schemaError('INVALID_OPTION', problem, 'options');
  }
  for (const [key, raw] of Object.entries(values ?? {})) {
    const text = textOf(raw);
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
        out.keep = parseKeepOption(raw, text, key);
        break;
      case 'snapshots.consistency':
        out.consistency = parseConsistency(text, key);
        break;
      case 'filesystem':
        if (text === '') throw new PolicyError('INVALID_OPTION', 'filesystem: is empty; name one of the tenant\'s filesystems', key);
        out.filesystem = text;
        break;
      case 'ephemeral':
        out.ephemeral = parseBoolOption(text, key);
        break;
      case 'backups':
        out.backups = parseBoolOption(text, key);
        break;
      case 'backups.frequency':
        parseFrequency(text, { field: key });
        out.backupFrequency = text.trim();
        break;
      case 'backups.keep':
        out.backupKeep = parseKeepOption(raw, text, key);
        break;
      default:
        out.rateLimit[rateLimitField[key]!] = parseIntegerOption(text, key, 0);
    }
  }
  return out;
}

/** A keep option: JSON clients may send the tiers as an object; Docker and volcli send text. */
function parseKeepOption(raw: unknown, text: string, key: string): Retention {
  return typeof raw === 'object' && raw !== null ? checkRetention(raw, key, 'INVALID_OPTION') : parseRetentionText(text, key);
}

function parseConsistency(text: string, field: string): ConsistencyMode {
  const mode = text.trim();
  if (!(CONSISTENCY_MODES as readonly string[]).includes(mode)) {
    throw new PolicyError('INVALID_OPTION', `${field}: ${JSON.stringify(text)} is not a consistency mode; write crash or fsfreeze`, field);
  }
  return mode as ConsistencyMode;
}

/**
 * The snapshot settings a volume is made of: `consistency` is recorded only when it is not the
 * default (crash), so that the records of volumes that do not use it stay as they were.
 */
function snapshotSettings(frequency: string, keep: Retention, consistency: ConsistencyMode | undefined): VolumeOptions['snapshot'] {
  return consistency === 'fsfreeze' ? { frequency, keep, consistency } : { frequency, keep };
}

/** Checks driver option keys and values (no policy needed). Throws INVALID_OPTION. */
export function parseDriverOptions(values: Record<string, unknown> | null | undefined): ParsedOptions {
  return parseOptions(values, driverShape);
}

/** Checks runtime option keys and values. Throws INVALID_OPTION (e.g. for `size`). */
export function parseRuntimeOptions(values: Record<string, unknown> | null | undefined): ParsedOptions {
  return parseOptions(values, runtimeShape);
}

/**
 * The options of a new volume: the tenant's default-options, overridden by the driver options.
 * Throws a PolicyError (INVALID_OPTION) naming the key for an unknown key, a value of the wrong
 * type, a filesystem the tenant does not define, or a size set nowhere; LIMIT_EXCEEDED naming the
 * key when the result is beyond the tenant's limits (its size, pool, snapshot keep or rate limits).
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
  const options: VolumeOptions = {
    pool: given.pool ?? defaults.pool,
    sizeBytes,
    snapshots: given.snapshots ?? defaults.snapshots,
    snapshot: snapshotSettings(
      given.frequency ?? defaults.snapshot.frequency,
      given.keep ?? defaults.snapshot.keep,
      given.consistency ?? defaults.snapshot.consistency,
    ),
    filesystem,
    ephemeral: given.ephemeral ?? defaults.ephemeral,
    rateLimit: { ...defaults.rateLimit, ...given.rateLimit },
  };
  // Backup settings only for a tenant whose policy speaks of backups, or a volume that asks.
  const asked = given.backups !== undefined || given.backupFrequency !== undefined || given.backupKeep !== undefined;
  if (defaults.backup || asked) {
    const d = defaults.backup ?? { backups: false, ...DEFAULT_BACKUP, target: false };
    options.backups = given.backups ?? d.backups;
    options.backup = { frequency: given.backupFrequency ?? d.frequency, keep: given.backupKeep ?? d.keep };
    if (options.backups && !d.target) {
      throw new PolicyError('INVALID_OPTION', 'backups: the tenant policy names no backup target (default-options.backup.target); an admin sets one with volcli tenant upload', 'backups');
    }
  }
  checkVolumeLimits(options, limitsOf(policy));
  return options;
}

function sameDuration(a: string, b: string): boolean {
  return a === b || parseGoDuration(a) === parseGoDuration(b);
}

/**
 * The option keys given in `values` whose value differs from the existing volume's. Keys not
 * given do not count: creating an existing volume without options returns it as it is. A volume
 * at least as large as the size asked for matches it (it may have been grown since: volcli volume
 * resize), so that a create repeated with the size it was made with still finds it.
 */
export function conflictingOptions(existing: VolumeOptions, values: Record<string, unknown> | null | undefined): string[] {
  const given = parseDriverOptions(values);
  const out: string[] = [];
  if (given.pool !== undefined && given.pool !== existing.pool) out.push('pool');
  if (given.sizeBytes !== undefined && given.sizeBytes > existing.sizeBytes) out.push('size');
  if (given.snapshots !== undefined && given.snapshots !== existing.snapshots) out.push('snapshots');
  if (given.frequency !== undefined && !sameDuration(given.frequency, existing.snapshot.frequency)) out.push('snapshots.frequency');
  if (given.keep !== undefined && !sameRetention(given.keep, existing.snapshot.keep)) out.push('snapshots.keep');
  if (given.consistency !== undefined && given.consistency !== (existing.snapshot.consistency ?? 'crash')) out.push('snapshots.consistency');
  if (given.filesystem !== undefined && given.filesystem !== existing.filesystem) out.push('filesystem');
  if (given.ephemeral !== undefined && given.ephemeral !== existing.ephemeral) out.push('ephemeral');
  if (given.backups !== undefined && given.backups !== (existing.backups ?? false)) out.push('backups');
  if (given.backupFrequency !== undefined && !sameDuration(given.backupFrequency, existing.backup?.frequency ?? '')) out.push('backups.frequency');
  if (given.backupKeep !== undefined && (existing.backup === undefined || !sameRetention(given.backupKeep, existing.backup.keep))) out.push('backups.keep');
  for (const [key, field] of Object.entries(rateLimitField)) {
    const v = given.rateLimit[field];
    if (v !== undefined && v !== existing.rateLimit[field]) out.push(key);
  }
  return out;
}

/** The runtime part of a volume's options (what it starts with). */
export function runtimeOf(options: VolumeOptions): RuntimeOptions {
  const runtime: RuntimeOptions = {
    snapshots: options.snapshots,
    snapshot: structuredClone(options.snapshot),
    rateLimit: { ...options.rateLimit },
  };
  if (options.backups !== undefined) runtime.backups = options.backups;
  if (options.backup !== undefined) runtime.backup = structuredClone(options.backup);
  return runtime;
}

/**
 * Applies runtime option changes (`snapshots.keep=5`, ...) to a volume's current runtime options;
 * with `limits`, LIMIT_EXCEEDED when the result is beyond them.
 */
export function applyRuntimeOptions(current: RuntimeOptions, values: Record<string, unknown> | null | undefined, limits?: TenantLimits): RuntimeOptions {
  const given = parseRuntimeOptions(values);
  const next: RuntimeOptions = {
    snapshots: given.snapshots ?? current.snapshots,
    snapshot: snapshotSettings(
      given.frequency ?? current.snapshot.frequency,
      given.keep ?? current.snapshot.keep,
      given.consistency ?? current.snapshot.consistency,
    ),
    rateLimit: { ...current.rateLimit, ...given.rateLimit },
  };
  const backups = given.backups ?? current.backups;
  if (backups !== undefined) next.backups = backups;
  if (current.backup || given.backupFrequency !== undefined || given.backupKeep !== undefined) {
    next.backup = { frequency: given.backupFrequency ?? current.backup?.frequency ?? DEFAULT_BACKUP.frequency, keep: given.backupKeep ?? current.backup?.keep ?? DEFAULT_BACKUP.keep };
  }
  if (limits) checkRuntimeLimits(next, limits);
  return next;
}

type BackupKey = 'backups' | 'backups.frequency' | 'backups.keep';

/** RuntimeOptions spelled as runtime option keys (what `volcli volume runtime get` prints; backup keys when the volume has backup settings). */
export function runtimeAsOptions(runtime: RuntimeOptions): Record<Exclude<RuntimeOptionKey, BackupKey>, string> & Partial<Record<BackupKey, string>> {
  const base = {
    snapshots: String(runtime.snapshots),
    'snapshots.frequency': runtime.snapshot.frequency,
    'snapshots.keep': formatRetention(runtime.snapshot.keep),
    'snapshots.consistency': runtime.snapshot.consistency ?? 'crash',
    'rate-limit.write.iops': String(runtime.rateLimit.writeIops),
    'rate-limit.read.iops': String(runtime.rateLimit.readIops),
    'rate-limit.read.bps': String(runtime.rateLimit.readBps),
    'rate-limit.write.bps': String(runtime.rateLimit.writeBps),
  };
  if (runtime.backups === undefined && runtime.backup === undefined) return base;
  return {
    ...base,
    backups: String(runtime.backups ?? false),
    'backups.frequency': runtime.backup?.frequency ?? DEFAULT_BACKUP.frequency,
    'backups.keep': formatRetention(runtime.backup?.keep ?? DEFAULT_BACKUP.keep),
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
