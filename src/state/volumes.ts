// Volume records: the only code that writes them. A new record is written only where none exists
// (optionally deleting the create intent in the same transaction); changes are compare-and-swap;
// `formatted` is set only by the host holding the mount lock; a delete takes the volume's snapshot
// schedule and lock acquisition record along.

import type { CreateIntent } from './intents.js';
import type { Lease } from './kv.js';
import { CONFLICT, type RecordKV } from './record-kv.js';
import type { MountRecord, VolumeRecord } from './records.js';

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
      delete: [key, db.keys.snapshotSchedule(tenant, volume), db.keys.acquired(tenant, volume)],
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

/** What markFormat did: the record as stored, or why it did not. */
export type MarkFormattedResult = { ok: true; record: VolumeRecord } | { ok: false; reason: 'not-holder' | 'no-volume' };

/**
 * Records a step of the volume's one format at `at`: 'started' (formatStarted, before mkfs runs)
 * or 'done' (formatted, after mkfs succeeded). One transaction, conditioned on the caller
 * (`holder`: host id, under `lease`) still holding the volume's mount lock and the record being
 * unchanged since read. A volume already formatted keeps its record as it is.
 */
export function markFormat(
  db: RecordKV,
  tenant: string,
  volume: string,
  holder: { hostId: string; lease: Lease },
  stage: 'started' | 'done',
  at: string,
): Promise<MarkFormattedResult> {
  const key = db.keys.volume(tenant, volume);
  const mountKey = db.keys.mount(tenant, volume);
  return db.cas(`format mark of ${tenant}/${volume}`, async () => {
    const current = await db.kv.get(key);
    if (!current) return { ok: false as const, reason: 'no-volume' as const };
    const mount = await db.kv.get(mountKey);
    const lock = mount && db.parseOrNull<MountRecord>(mount);
    if (!mount || !lock || lock.hostId !== holder.hostId || lock.lease !== holder.lease.id || holder.lease.lost) {
      return { ok: false as const, reason: 'not-holder' as const };
    }
    const record = db.parse<VolumeRecord>(current);
    if (record.formatted) return { ok: true as const, record };
    const next: VolumeRecord = stage === 'done' ? { ...record, formatted: at } : { ...record, formatStarted: at };
    const ok = await db.kv.transaction({
      unchanged: [
        { key, modRevision: current.modRevision },
        { key: mountKey, modRevision: mount.modRevision },
      ],
      put: [{ key, value: JSON.stringify(next) }],
    });
    return ok ? { ok: true as const, record: next } : CONFLICT;
  });
}
