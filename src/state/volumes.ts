// Volume records: the only code that writes them. A new record is written only where none exists
// (optionally deleting the create intent in the same transaction); changes are compare-and-swap;
// a delete takes the volume's snapshot schedule along.

import type { CreateIntent } from './intents.js';
import { CONFLICT, type RecordKV } from './record-kv.js';
import type { VolumeRecord } from './records.js';

/**
 * Writes a new volume record only if none exists under its name; false when one did (nothing is
 * written then). With `intent`, that create intent is deleted in the same transaction.
 */
export function createVolume(db: RecordKV, record: VolumeRecord, intent?: Pick<CreateIntent, 'tenant' | 'volume'>): Promise<boolean> {
  const key = db.keys.volume(record.tenant, record.volume);
  return db.kv.transaction({
    absent: [key],
    put: [{ key, value: JSON.stringify(record) }],
    delete: intent ? [db.keys.intent(intent.tenant, intent.volume)] : [],
  });
}

/** Removes the record and its snapshot schedule; false if there was no such volume. */
export function deleteVolume(db: RecordKV, tenant: string, volume: string): Promise<boolean> {
  const key = db.keys.volume(tenant, volume);
  return db.cas(`removal of volume ${tenant}/${volume}`, async () => {
    const current = await db.kv.get(key);
    if (!current) return false;
    // Deleting an absent key in a transaction is allowed: the schedule goes too if there is one.
    const ok = await db.kv.transaction({
      unchanged: [{ key, modRevision: current.modRevision }],
      delete: [key, db.keys.snapshotSchedule(tenant, volume)],
    });
    return ok ? true : CONFLICT;
  });
}

/** Compare-and-swap of one record with `change`; null when the volume does not exist. */
export function updateVolume(
  db: RecordKV,
  tenant: string,
  volume: string,
  change: (current: VolumeRecord) => VolumeRecord,
): Promise<VolumeRecord | null> {
  const key = db.keys.volume(tenant, volume);
  return db.cas(`update of volume ${tenant}/${volume}`, async () => {
    const current = await db.kv.get(key);
    if (!current) return null;
    const next = change(db.parse<VolumeRecord>(current));
    if (next.tenant !== tenant || next.volume !== volume) {
      throw new Error(`updateVolume may not rename ${tenant}/${volume} to ${next.tenant}/${next.volume}`);
    }
    return (await db.kv.replace(key, JSON.stringify(next), current.modRevision)) ? next : CONFLICT;
  });
}
