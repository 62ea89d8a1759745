// Volume records: the only code that writes them. A new record is written only where none exists
// (optionally deleting the create intent in the same transaction); changes are compare-and-swap;
// a delete takes the volume's snapshot schedule along. Creates and deletes change the tenant's
// usage in the same transaction (usage.ts).

import type { Quota } from '../policy/limits.js';
import type { CreateIntent } from './intents.js';
import { CONFLICT, type RecordKV } from './record-kv.js';
import type { VolumeRecord } from './records.js';
import { changeUsage } from './usage.js';

/**
 * Writes a new volume record only if none exists under its name; false when one did (nothing is
 * written then). With `intent`, that create intent is deleted in the same transaction, and the
 * share of the tenant's usage it reserved becomes the record's. Without one (a volume adopted from
 * an existing image) the record is counted anew, within `quota` (QuotaExceededError beyond it).
 */
export function createVolume(db: RecordKV, record: VolumeRecord, intent?: Pick<CreateIntent, 'tenant' | 'volume'>, quota?: Quota): Promise<boolean> {
  const key = db.keys.volume(record.tenant, record.volume);
  return changeUsage<boolean>(db, record.tenant, `create of volume ${record.tenant}/${record.volume}`, async () => {
    if (await db.kv.get(key)) return { skip: false };
    const intentKey = intent ? db.keys.intent(intent.tenant, intent.volume) : null;
    const reserved = intentKey ? await db.kv.get(intentKey) : null;
    const share = reserved ? (db.parseOrNull<CreateIntent>(reserved)?.sizeBytes ?? 0) : 0;
    return {
      ops: {
        absent: [key],
        unchanged: reserved ? [{ key: reserved.key, modRevision: reserved.modRevision }] : [],
        put: [{ key, value: JSON.stringify(record) }],
        delete: reserved ? [reserved.key] : [],
      },
      delta: { volumes: reserved ? 0 : 1, bytes: record.options.sizeBytes - share },
      quota,
      result: true,
    };
  });
}

/** Removes the record and its snapshot schedule, and its share of the tenant's usage; false if there was no such volume. */
export function deleteVolume(db: RecordKV, tenant: string, volume: string): Promise<boolean> {
  const key = db.keys.volume(tenant, volume);
  return changeUsage<boolean>(db, tenant, `removal of volume ${tenant}/${volume}`, async () => {
    const current = await db.kv.get(key);
    if (!current) return { skip: false };
    // Deleting an absent key in a transaction is allowed: the schedule goes too if there is one.
    return {
      ops: { unchanged: [{ key, modRevision: current.modRevision }], delete: [key, db.keys.snapshotSchedule(tenant, volume)] },
      delta: { volumes: -1, bytes: -(db.parseOrNull<VolumeRecord>(current)?.options.sizeBytes ?? 0) },
      result: true,
    };
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
