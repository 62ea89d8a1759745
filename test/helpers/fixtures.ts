// Records and policies the unit tests build, in one place: a test states only what it cares about
// (as overrides) and gets the rest from here.

import type { ManifestEntry } from '../../src/backups/manifest.js';
import type { Retention } from '../../src/policy/retention.js';
import type { RuntimeOptions, TenantPolicy, VolumeOptions } from '../../src/policy/types.js';
import type { MountRecord, TenantRecord, VolumeRecord } from '../../src/state/records.js';

const MiB = 1024 * 1024;

/** The tenant policy the issues and the seed documents show, as users already write it. */
export const issuePolicy = {
  'default-options': {
    pool: 'rbd',
    size: '10MB',
    snapshots: true,
    snapshot: { frequency: '30m', keep: 20 },
    filesystem: 'btrfs',
    ephemeral: false,
    'rate-limit': { 'write-iops': 1000, 'read-iops': 1000, 'write-bps': 100000000, 'read-bps': 100000000 },
  },
  filesystems: { btrfs: 'mkfs.btrfs %', ext4: 'mkfs.ext4 -m0 %' },
};

export function tenantRecord(name: string, overrides: Partial<TenantRecord> = {}): TenantRecord {
  return { name, policy: issuePolicy as TenantPolicy, revision: 1, uploadedAt: '2026-11-22T10:00:00.000Z', ...overrides };
}

export type VolumeRecordOverrides = Partial<Omit<VolumeRecord, 'options' | 'runtime'>> & {
  /** Runtime options: the record's `runtime` and the same fields of its `options` (as at creation). */
  runtime?: Partial<RuntimeOptions>;
  /** The other volume options (sizeBytes, filesystem, ephemeral...). */
  options?: Partial<VolumeOptions>;
};

/**
 * A volume record as the master writes it: image `<tenant>.<volume>` in pool rbd (or `pool`), 10 MiB
 * of ext4, no snapshots, no rate limits.
 */
export function volumeRecord(tenant: string, volume: string, overrides: VolumeRecordOverrides = {}): VolumeRecord {
  const { runtime: runtimeOverrides, options: optionOverrides, ...rest } = overrides;
  const runtime: RuntimeOptions = {
    snapshots: false,
    snapshot: { frequency: '30m', keep: 5 },
    rateLimit: { writeIops: 0, readIops: 0, writeBps: 0, readBps: 0 },
    ...runtimeOverrides,
  };
  const pool = rest.pool ?? 'rbd';
  return {
    tenant,
    volume,
    pool,
    image: `${tenant}.${volume}`,
    options: { pool, sizeBytes: 10 * MiB, filesystem: 'ext4', ephemeral: false, ...runtime, ...optionOverrides },
    runtime,
    policyRevision: 1,
    formatCommand: 'mkfs.ext4 -m0 %',
    createdAt: '2026-11-22T11:00:00.000Z',
    ...rest,
  };
}

/** The mount lock of a volume held by host-a (give `lease`: the lease id it is bound to). */
export function mountRecord(tenant: string, volume: string, overrides: Partial<MountRecord> = {}): MountRecord {
  const host = overrides.host ?? 'host-a';
  return {
    tenant,
    volume,
    host,
    hostId: `${host}-id`,
    lease: '0',
    device: '/dev/rbd0',
    mountpoint: `/mnt/ceph/${tenant}/${volume}`,
    mapper: 'krbd',
    clientAddress: null,
    since: '2026-11-22T12:00:00.000Z',
    ...overrides,
  };
}

/** A backup manifest entry of t1/data (rbd/t1.data) complete at `at` (ms), its file named after it. */
export function manifestEntry(name: string, parent: string | null, at = Date.UTC(2026, 10, 22, 12)): ManifestEntry {
  return {
    name,
    parent,
    file: `${name}.diff`,
    bytes: 1,
    dataBytes: 1,
    sizeBytes: 1,
    sha256: '0'.repeat(64),
    source: { pool: 'rbd', image: 't1.data' },
    startedAt: new Date(at).toISOString(),
    at: new Date(at).toISOString(),
    ms: 0,
  };
}

/** A random keep from a seeded `random`: a fifth plain numbers, the rest tiers (each 0 with probability `zero`), never keeping nothing. */
export function randomKeep(random: () => number, zero = 0.3, most = 8): Retention {
  if (random() < 0.2) return 1 + Math.floor(random() * 10);
  const n = () => (random() < zero ? 0 : Math.floor(random() * most));
  const tiers = { last: n(), hourly: n(), daily: n(), weekly: n(), monthly: n() };
  if (Object.values(tiers).every((v) => v === 0)) tiers.daily = 1;
  return tiers;
}
