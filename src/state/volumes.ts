// Volume records: the only code that writes them. A new record is written only where none exists
// (optionally deleting the create intent in the same transaction); changes are compare-and-swap;
// a delete takes the volume's snapshot schedule, lock acquisition record and format marks along.
// Creates and deletes change the tenant's usage in the same transaction (usage.ts). The format
// marks (formatStarted, formatted) live in a key of their own, written only by the host holding the
// mount lock (markFormat): volplugin's etcd user may write them, never the volume record. A resize
// changes the record's size together with the usage and a resize intent (growVolume).

import type { Quota } from '../policy/limits.js';
import type { CreateIntent } from './intents.js';
import type { Lease } from './kv.js';
import { releaseOps, type HeldLock } from './operations.js';
import { CONFLICT, type RecordKV } from './record-kv.js';
import type { MountRecord, ResizeIntent, VolumeFormat, VolumeRecord } from './records.js';
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

/**
 * Ends a create under its operation lock: the record replaces the intent this create wrote
 * (`intent`, exactly as written) and the lock is given back, in one transaction, only while the
 * record is absent and intent and lock are unchanged. The intent's share of the tenant's usage
 * becomes the record's: when both are the same size the usage key is not touched (the count of
 * records plus intents does not change), so parallel creates of a tenant do not contend for it
 * here. False when the transaction did not apply (nothing changed).
 */
export async function commitCreate(db: RecordKV, record: VolumeRecord, intent: CreateIntent, lock: HeldLock): Promise<boolean> {
  if ((intent.sizeBytes ?? 0) !== record.options.sizeBytes) {
    // Not what the create path writes; counted through the usage key like any other change.
    return createVolume(db, record, intent);
  }
  const key = db.keys.volume(record.tenant, record.volume);
  const intentKey = db.keys.intent(intent.tenant, intent.volume);
  const release = releaseOps(lock);
  const ok = await db.kv.transaction({
    absent: [key],
    equal: [{ key: intentKey, value: JSON.stringify(intent) }, ...release.equal],
    put: [{ key, value: JSON.stringify(record) }],
    delete: [intentKey, ...release.delete],
  });
  if (ok) lock.released = true;
  return ok;
}

/** Removes the record and its snapshot schedule, and its share of the tenant's usage; false if there was no such volume. */
export function deleteVolume(db: RecordKV, tenant: string, volume: string): Promise<boolean> {
  const key = db.keys.volume(tenant, volume);
  return changeUsage<boolean>(db, tenant, `removal of volume ${tenant}/${volume}`, async () => {
    const current = await db.kv.get(key);
    if (!current) return { skip: false };
    // Deleting an absent key in a transaction is allowed: the schedule goes too if there is one.
    return {
      ops: {
        unchanged: [{ key, modRevision: current.modRevision }],
        delete: [key, db.keys.snapshotSchedule(tenant, volume), db.keys.acquired(tenant, volume), db.keys.format(tenant, volume), db.keys.resize(tenant, volume)],
      },
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

/** What markFormat did: the marks as stored, or why it did not. */
export type MarkFormattedResult = { ok: true; format: VolumeFormat } | { ok: false; reason: 'not-holder' | 'no-volume' };

/** The volume's format marks ({} when it has none: never formatted by volplugin, or from before marks). */
export async function getFormat(db: RecordKV, tenant: string, volume: string): Promise<VolumeFormat> {
  return (await db.read<VolumeFormat>(db.keys.format(tenant, volume))) ?? {};
}

/**
 * Records a step of the volume's one format at `at`: 'started' (formatStarted, before mkfs runs)
 * or 'done' (formatted, after mkfs succeeded), in the volume's format key. One transaction,
 * conditioned on the volume existing, on the caller (`holder`: host id, under `lease`) still
 * holding its mount lock, and on the marks being unchanged since read. Marks of a volume already
 * formatted stay as they are.
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
  const formatKey = db.keys.format(tenant, volume);
  const mountKey = db.keys.mount(tenant, volume);
  return db.cas(`format mark of ${tenant}/${volume}`, async () => {
    if (!(await db.kv.get(key))) return { ok: false as const, reason: 'no-volume' as const };
    const mount = await db.kv.get(mountKey);
    const lock = mount && db.parseOrNull<MountRecord>(mount);
    if (!mount || !lock || lock.hostId !== holder.hostId || lock.lease !== holder.lease.id || holder.lease.lost) {
      return { ok: false as const, reason: 'not-holder' as const };
    }
    const marks = await db.kv.get(formatKey);
    const format = marks ? db.parse<VolumeFormat>(marks) : {};
    if (format.formatted) return { ok: true as const, format };
    const next: VolumeFormat = { ...format, [stage === 'done' ? 'formatted' : 'formatStarted']: at, by: holder.hostId };
    const ok = await db.kv.transaction({
      present: [key],
      absent: marks ? [] : [formatKey],
      unchanged: [{ key: mountKey, modRevision: mount.modRevision }, ...(marks ? [{ key: formatKey, modRevision: marks.modRevision }] : [])],
      put: [{ key: formatKey, value: JSON.stringify(next) }],
    });
    return ok ? { ok: true as const, format: next } : CONFLICT;
  });
}

/**
 * A new copy of a snapshot holds its source's filesystem: records it as formatted at `formatted`
 * (the source's time), only while the volume exists and has no marks yet. False when it did not.
 */
export function markCopyFormatted(db: RecordKV, tenant: string, volume: string, formatted: string): Promise<boolean> {
  const formatKey = db.keys.format(tenant, volume);
  return db.kv.transaction({
    present: [db.keys.volume(tenant, volume)],
    absent: [formatKey],
    put: [{ key: formatKey, value: JSON.stringify({ formatted, by: 'copy' } satisfies VolumeFormat) }],
  });
}

/** What growVolume found and did. */
export type GrowResult =
  | { ok: true; before: VolumeRecord; after: VolumeRecord }
  | { ok: false; reason: 'no-volume' }
  | { ok: false; reason: 'shrink'; current: VolumeRecord };

/**
 * Sets a volume's size to `intent.toBytes` and records the resize intent, in one transaction that
 * also adds the growth to the tenant's usage within `quota` (QuotaExceededError beyond it): the
 * record is the truth from then on, and the intent says that the image may still be smaller (the
 * master grows it, then deletes the intent; the janitor finishes one whose master died). Never
 * shrinks: a smaller size changes nothing. The same size only writes the intent (a resize run again
 * to finish an earlier one).
 */
export function growVolume(db: RecordKV, intent: ResizeIntent, quota?: Quota): Promise<GrowResult> {
  const { tenant, volume } = intent;
  const key = db.keys.volume(tenant, volume);
  return changeUsage<GrowResult>(db, tenant, `resize of volume ${tenant}/${volume}`, async () => {
    const entry = await db.kv.get(key);
    if (!entry) return { skip: { ok: false, reason: 'no-volume' } };
    const before = db.parse<VolumeRecord>(entry);
    if (intent.toBytes < before.options.sizeBytes) return { skip: { ok: false, reason: 'shrink', current: before } };
    const after: VolumeRecord = { ...before, options: { ...before.options, sizeBytes: intent.toBytes } };
    const stored: ResizeIntent = { ...intent, fromBytes: before.options.sizeBytes };
    return {
      ops: {
        unchanged: [{ key, modRevision: entry.modRevision }],
        put: [
          ...(after.options.sizeBytes !== before.options.sizeBytes ? [{ key, value: JSON.stringify(after) }] : []),
          { key: db.keys.resize(tenant, volume), value: JSON.stringify(stored) },
        ],
      },
      delta: { volumes: 0, bytes: after.options.sizeBytes - before.options.sizeBytes },
      quota,
      result: { ok: true, before, after },
    };
  });
}

/**
 * Undoes growVolume after the image could not be grown: the record goes back to `intent.fromBytes`
 * (and the tenant's usage with it) and the intent goes, only while the record still has
 * `intent.toBytes`. False when it did not (changed meanwhile: the intent stays for the janitor).
 */
export function revertGrow(db: RecordKV, intent: ResizeIntent): Promise<boolean> {
  const { tenant, volume } = intent;
  const key = db.keys.volume(tenant, volume);
  return changeUsage<boolean>(db, tenant, `undoing the resize of ${tenant}/${volume}`, async () => {
    const entry = await db.kv.get(key);
    const current = entry && db.parseOrNull<VolumeRecord>(entry);
    if (!entry || !current || current.options.sizeBytes !== intent.toBytes) return { skip: false };
    const back: VolumeRecord = { ...current, options: { ...current.options, sizeBytes: intent.fromBytes } };
    return {
      ops: { unchanged: [{ key, modRevision: entry.modRevision }], put: [{ key, value: JSON.stringify(back) }], delete: [db.keys.resize(tenant, volume)] },
      delta: { volumes: 0, bytes: intent.fromBytes - intent.toBytes },
      result: true,
    };
  });
}

/** Every resize intent (resizes whose image may still be smaller than the record), by tenant and volume. */
export function listResizes(db: RecordKV): Promise<ResizeIntent[]> {
  return db.readAll<ResizeIntent>(db.keys.resizes, () => undefined);
}

/** Deletes the resize intent of a volume whose image has its record's size now. */
export async function finishResize(db: RecordKV, tenant: string, volume: string): Promise<void> {
  await db.kv.delete(db.keys.resize(tenant, volume));
}
