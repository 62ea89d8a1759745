// The supervisor's schedule: when it last took a scheduled snapshot of each volume, so that a new
// leader neither repeats nor skips one. Removed with the volume record (volumes.ts).

import { StateCorruptError } from './errors.js';
import { releaseOps, type HeldLock } from './operations.js';
import type { RecordKV } from './record-kv.js';

export async function getLastSnapshot(db: RecordKV, tenant: string, volume: string): Promise<Date | null> {
  const key = db.keys.snapshotSchedule(tenant, volume);
  const record = await db.read<{ at: string }>(key);
  if (!record) return null;
  const at = new Date(record.at);
  if (typeof record.at !== 'string' || Number.isNaN(at.getTime())) {
    throw new StateCorruptError(key, `"at" is not a date: ${JSON.stringify(record.at)}`);
  }
  return at;
}

/**
 * Records `at` as the volume's last scheduled snapshot. With `lock` (the volume's operation lock,
 * held), the record is written in the transaction that gives the lock back, only while the lock is
 * still this holder's: one round trip for both, and nothing written by a holder that lost it.
 */
export async function setLastSnapshot(db: RecordKV, tenant: string, volume: string, at: Date, lock?: HeldLock): Promise<void> {
  const put = { key: db.keys.snapshotSchedule(tenant, volume), value: JSON.stringify({ at: at.toISOString() }) };
  if (!lock) return db.kv.put(put.key, put.value);
  const release = releaseOps(lock);
  if (await db.kv.transaction({ equal: release.equal, put: [put], delete: release.delete })) lock.released = true;
}
