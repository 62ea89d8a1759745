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

import type { Entry } from './kv.js';
import type { RecordKV } from './record-kv.js';

export interface CreateIntent {
  tenant: string;
  volume: string;
  pool: string;
  image: string;
  /** The master that wrote it (`host:pid`). */
  owner: string;
  since: string;
}

/**
 * An intent as stored. An unreadable one still says "a create died here": it comes back naming
 * only its tenant and volume (from its key), with empty pool and image and owner `unknown`.
 */
function intentOf(db: RecordKV, entry: Entry): CreateIntent {
  const intent = db.parseOrNull<CreateIntent>(entry);
  if (intent) return intent;
  const [tenant = '', volume = ''] = entry.key.slice(db.keys.intents.length).split('/');
  return { tenant, volume, pool: '', image: '', owner: 'unknown', since: '' };
}

export function putCreateIntent(db: RecordKV, intent: CreateIntent): Promise<void> {
  return db.kv.put(db.keys.intent(intent.tenant, intent.volume), JSON.stringify(intent));
}

export async function getCreateIntent(db: RecordKV, tenant: string, volume: string): Promise<CreateIntent | null> {
  const entry = await db.kv.get(db.keys.intent(tenant, volume));
  return entry ? intentOf(db, entry) : null;
}

export async function listCreateIntents(db: RecordKV): Promise<CreateIntent[]> {
  return (await db.kv.list(db.keys.intents)).map((entry) => intentOf(db, entry));
}

export async function deleteCreateIntent(db: RecordKV, tenant: string, volume: string): Promise<void> {
  await db.kv.delete(db.keys.intent(tenant, volume));
}
