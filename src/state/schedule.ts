// The supervisor's schedule: when it last took a scheduled snapshot of each volume, so that a new
// leader neither repeats nor skips one. Removed with the volume record (volumes.ts).

import { StateCorruptError } from './errors.js';
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

export function setLastSnapshot(db: RecordKV, tenant: string, volume: string, at: Date): Promise<void> {
  return db.kv.put(db.keys.snapshotSchedule(tenant, volume), JSON.stringify({ at: at.toISOString() }));
}
