// A tenant's limits: what no driver option, runtime change or copy of its volumes can exceed.
//
//   "limits": { "size": "100GB",        the largest volume
//               "total-size": "1TB",    all the tenant's volumes together (creates in progress count)
//               "volumes": 50,          how many volumes (creates in progress count)
//               "snapshots": 30,        snapshots per volume (and the largest snapshot keep; not
//                                       backups.keep: backups live in the target, and all of a
//                                       volume's backups hold one snapshot of its image)
//               "pools": ["rbd"],       the pools its volumes may be in
//               "rate-limit": { "write-iops": 5000, ... } }   ceilings of every volume's rate limits
//
// Every key is optional (absent: no limit). A rate-limit ceiling also means a volume can never be
// unlimited (0): an option of 0 is refused, and a policy that sets no default for a limited rate
// gives its volumes the ceiling. The options-only limits are checked here, when options are
// resolved; the counting ones (total-size, volumes) are checked atomically in etcd by the state
// layer (src/state/usage.ts) in the same transaction that records a create.

import { PolicyError } from './errors.js';
import { poolProblem } from './names.js';
import type { PolicyLimits, RateLimit, RuntimeOptions, TenantPolicy, VolumeOptions } from './types.js';
import { formatSize, parseSize } from './units.js';
import { formatRetention, maxKept, type Retention } from './retention.js';

export interface TenantLimits {
  maxSizeBytes: number | null;
  maxTotalBytes: number | null;
  maxVolumes: number | null;
  maxSnapshots: number | null;
  pools: string[] | null;
  /** Ceilings; a key that is absent has none. */
  rateLimit: Partial<RateLimit>;
}

/** The counting limits, as the state layer enforces them in etcd. */
export interface Quota {
  volumes?: number;
  bytes?: number;
}

/** Each rate limit: its field in RateLimit, its option key, its key in the policy's rate-limit blocks. */
export const RATE_LIMIT_KEYS = [
  { field: 'writeIops', option: 'rate-limit.write.iops', policy: 'write-iops' },
  { field: 'readIops', option: 'rate-limit.read.iops', policy: 'read-iops' },
  { field: 'writeBps', option: 'rate-limit.write.bps', policy: 'write-bps' },
  { field: 'readBps', option: 'rate-limit.read.bps', policy: 'read-bps' },
] as const;

/** The limits of a policy's (schema-checked) `limits` block; sizes and pool names are checked here. */
export function parseLimits(raw: PolicyLimits | undefined): TenantLimits {
  const size = (key: 'size' | 'total-size') =>
    raw?.[key] === undefined ? null : parseSize(raw[key], { field: `limits.${key}`, code: 'INVALID_POLICY' });
  const pools = raw?.pools ?? null;
  pools?.forEach((pool, i) => {
    const problem = poolProblem(pool);
    if (problem) throw new PolicyError('INVALID_POLICY', `limits.pools.${i}: ${problem}`, `limits.pools.${i}`);
  });
  const rateLimit: Partial<RateLimit> = {};
  for (const k of RATE_LIMIT_KEYS) {
    const v = raw?.['rate-limit']?.[k.policy];
    if (v !== undefined) rateLimit[k.field] = v;
  }
  const limits: TenantLimits = {
    maxSizeBytes: size('size'),
    maxTotalBytes: size('total-size'),
    maxVolumes: raw?.volumes ?? null,
    maxSnapshots: raw?.snapshots ?? null,
    pools,
    rateLimit,
  };
  if (limits.maxSizeBytes !== null && limits.maxTotalBytes !== null && limits.maxSizeBytes > limits.maxTotalBytes) {
    throw new PolicyError(
      'INVALID_POLICY',
      `limits.size: ${raw!.size} is larger than limits.total-size (${raw!['total-size']}); no volume that large could be created`,
      'limits.size',
    );
  }
  return limits;
}

export function limitsOf(policy: TenantPolicy): TenantLimits {
  return parseLimits(policy.limits);
}

export function quotaOf(limits: TenantLimits): Quota {
  const quota: Quota = {};
  if (limits.maxVolumes !== null) quota.volumes = limits.maxVolumes;
  if (limits.maxTotalBytes !== null) quota.bytes = limits.maxTotalBytes;
  return quota;
}

/** One value beyond a limit: which setting (`size`, `pool`, `keep` or a rate-limit field) and why. */
interface Violation {
  setting: 'size' | 'pool' | 'keep' | keyof RateLimit;
  /** What is wrong and what to do, without the field. */
  message: string;
}

function rateViolations(rateLimit: RateLimit, limits: TenantLimits): Violation[] {
  const out: Violation[] = [];
  for (const k of RATE_LIMIT_KEYS) {
    const ceiling = limits.rateLimit[k.field];
    if (ceiling === undefined) continue;
    const value = rateLimit[k.field];
    const where = `the tenant's ceiling of ${ceiling} (limits.rate-limit.${k.policy})`;
    if (value === 0) out.push({ setting: k.field, message: `0 means unlimited, which is above ${where}; give a value from 1 to ${ceiling}` });
    else if (value > ceiling) out.push({ setting: k.field, message: `${value} is above ${where}; give at most ${ceiling}` });
  }
  return out;
}

/** A keep that may leave more snapshots than limits.snapshots allows. */
function keepViolation(keep: Retention, limits: TenantLimits): Violation | null {
  const most = maxKept(keep);
  if (limits.maxSnapshots === null || most <= limits.maxSnapshots) return null;
  const what = typeof keep === 'number' ? `${keep}` : `${formatRetention(keep)} keeps up to ${most} snapshots (the sum of its tiers), which`;
  return {
    setting: 'keep',
    message: `${what} is above the tenant's limit of ${limits.maxSnapshots} snapshots per volume (limits.snapshots); keep at most ${limits.maxSnapshots}`,
  };
}

function violations(options: { pool: string; sizeBytes: number; snapshot: { keep: Retention }; rateLimit: RateLimit }, limits: TenantLimits): Violation[] {
  const out: Violation[] = [];
  if (limits.maxSizeBytes !== null && options.sizeBytes > limits.maxSizeBytes) {
    const max = formatSize(limits.maxSizeBytes);
    out.push({ setting: 'size', message: `${formatSize(options.sizeBytes)} is larger than the tenant's largest volume, ${max} (limits.size); ask for at most ${max}` });
  }
  if (limits.pools !== null && !limits.pools.includes(options.pool)) {
    out.push({ setting: 'pool', message: `${JSON.stringify(options.pool)} is not one of the tenant's pools (limits.pools: ${limits.pools.join(', ')})` });
  }
  const keep = keepViolation(options.snapshot.keep, limits);
  if (keep) out.push(keep);
  return [...out, ...rateViolations(options.rateLimit, limits)];
}

const OPTION_OF: Record<Violation['setting'], string> = {
  size: 'size',
  pool: 'pool',
  keep: 'snapshots.keep',
  ...Object.fromEntries(RATE_LIMIT_KEYS.map((k) => [k.field, k.option])),
} as Record<Violation['setting'], string>;

const POLICY_FIELD_OF: Record<Violation['setting'], string> = {
  size: 'default-options.size',
  pool: 'default-options.pool',
  keep: 'default-options.snapshot.keep',
  ...Object.fromEntries(RATE_LIMIT_KEYS.map((k) => [k.field, `default-options.rate-limit.${k.policy}`])),
} as Record<Violation['setting'], string>;

function refuse(found: Violation[], fieldOf: Record<Violation['setting'], string>, code: 'LIMIT_EXCEEDED' | 'INVALID_POLICY'): void {
  const first = found[0];
  if (!first) return;
  const field = fieldOf[first.setting];
  throw new PolicyError(code, `${field}: ${first.message}`, field);
}

/** LIMIT_EXCEEDED naming the option (e.g. `size`) when a new volume's options exceed the limits. */
export function checkVolumeLimits(options: VolumeOptions, limits: TenantLimits): void {
  refuse(violations(options, limits), OPTION_OF, 'LIMIT_EXCEEDED');
}

/** LIMIT_EXCEEDED naming the runtime option when a change would exceed the tenant's limits. */
export function checkRuntimeLimits(runtime: RuntimeOptions, limits: TenantLimits): void {
  const found = rateViolations(runtime.rateLimit, limits);
  const keep = keepViolation(runtime.snapshot.keep, limits);
  if (keep) found.unshift(keep);
  refuse(found, OPTION_OF, 'LIMIT_EXCEEDED');
}

/**
 * INVALID_POLICY naming the default (e.g. `default-options.size`) that a policy's own limits
 * forbid: a policy whose defaults could not make a volume is refused at upload.
 */
export function checkDefaultsWithinLimits(
  defaults: { pool: string; sizeBytes: number | null; snapshot: { keep: Retention }; rateLimit: RateLimit },
  limits: TenantLimits,
): void {
  const options = { ...defaults, sizeBytes: defaults.sizeBytes ?? 0 };
  refuse(violations(options, limits), POLICY_FIELD_OF, 'INVALID_POLICY');
}
