// Records for unit tests, built one way everywhere: a volume record with plain defaults that a test
// overrides where it matters.
import type { VolumeRecord } from '../../src/state/records.js';

/** A volume record of `tenant/volume` in pool rbd (image tenant.volume), 10 MiB ext4, no limits, no snapshots. */
export function volumeRecord(tenant: string, volume: string, overrides: Partial<VolumeRecord> = {}): VolumeRecord {
  const runtime = { snapshots: false, snapshot: { frequency: '30m', keep: 1 }, rateLimit: { writeIops: 0, readIops: 0, writeBps: 0, readBps: 0 } };
  return {
    tenant,
    volume,
    pool: 'rbd',
    image: `${tenant}.${volume}`,
    options: { pool: 'rbd', sizeBytes: 10 << 20, filesystem: 'ext4', ephemeral: false, ...runtime },
    runtime,
    policyRevision: 1,
    formatCommand: 'mkfs.ext4 -q %',
    createdAt: new Date(0).toISOString(),
    ...overrides,
  };
}
