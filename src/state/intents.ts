// Create intents: how a master that dies between "image created" and "record written" leaves no
// orphan behind.
//
// Under the volume's operation lock, before creating an image, a master writes an intent (a
// persistent key naming pool and image). The volume record is then written and the intent deleted
// in one transaction (StateStore.commitCreate, through volumes.ts: the record has one writer). So
// whenever an intent exists and nobody holds the volume's operation lock, its create died half-way:
// the image, if any, was made by that create (it did not exist when the intent was written) and no
// record points to it. The next create of that volume, or the master's janitor
// (VolumeService.reconcile in src/master/volumes.ts), removes such an image and the intent.
//
// An intent also reserves the create's share of the tenant's usage (usage.ts): it is written, and
// deleted, in one transaction with the tenant's usage, so parallel creates cannot overshoot the
// tenant's limits; the record that replaces it keeps the share.

import type { Quota } from '../policy/limits.js';
import type { Entry } from './kv.js';
import type { RecordKV } from './record-kv.js';
import type { CreateIntent } from './records.js';
import { changeUsage } from './usage.js';

export type { CreateIntent } from './records.js';

/**
 * An intent as stored. An unreadable one still says "a create died here": it comes back naming
 * only its tenant and volume (from its key), with empty pool and image and owner `unknown`.
 */
export function intentOf(db: RecordKV, entry: Entry): CreateIntent {
  const intent = db.parseOrNull<CreateIntent>(entry);
  if (intent) return intent;
  const [tenant = '', volume = ''] = entry.key.slice(db.keys.intents.length).split('/');
  return { tenant, volume, pool: '', image: '', owner: 'unknown', since: '' };
}

/** Writes the intent and reserves its share (one volume, `sizeBytes`) within `quota`; QuotaExceededError beyond it. */
export function putCreateIntent(db: RecordKV, intent: CreateIntent, quota?: Quota): Promise<void> {
  const key = db.keys.intent(intent.tenant, intent.volume);
  return changeUsage<void>(db, intent.tenant, `intent of volume ${intent.tenant}/${intent.volume}`, async () => {
    const existing = await db.kv.get(key);
    // An intent left for this volume (cleared under the lock before a create, so rare) is replaced: its share with it.
    const previous = existing ? (db.parseOrNull<CreateIntent>(existing)?.sizeBytes ?? 0) : 0;
    return {
      ops: {
        absent: existing ? [] : [key],
        unchanged: existing ? [{ key, modRevision: existing.modRevision }] : [],
        put: [{ key, value: JSON.stringify(intent) }],
      },
      delta: { volumes: existing ? 0 : 1, bytes: (intent.sizeBytes ?? 0) - previous },
      quota,
      result: undefined,
    };
  });
}

export async function getCreateIntent(db: RecordKV, tenant: string, volume: string): Promise<CreateIntent | null> {
  const entry = await db.kv.get(db.keys.intent(tenant, volume));
  return entry ? intentOf(db, entry) : null;
}

export async function listCreateIntents(db: RecordKV): Promise<CreateIntent[]> {
  return (await db.kv.list(db.keys.intents)).map((entry) => intentOf(db, entry));
}

/** Deletes the intent and gives its share of the tenant's usage back. */
export function deleteCreateIntent(db: RecordKV, tenant: string, volume: string): Promise<void> {
  const key = db.keys.intent(tenant, volume);
  return changeUsage<void>(db, tenant, `removal of the intent of ${tenant}/${volume}`, async () => {
    const existing = await db.kv.get(key);
    if (!existing) return { skip: undefined };
    return {
      ops: { unchanged: [{ key, modRevision: existing.modRevision }], delete: [key] },
      delta: { volumes: -1, bytes: -(db.parseOrNull<CreateIntent>(existing)?.sizeBytes ?? 0) },
      result: undefined,
    };
  });
}
