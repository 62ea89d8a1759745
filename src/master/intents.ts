// Create intents: how a master that dies between "image created" and "record written" leaves no
// orphan behind.
//
// Under the volume's operation lock, before creating an image, a master writes an intent (a
// persistent etcd key naming pool and image). The volume record is then written and the intent
// deleted in one etcd transaction. So whenever an intent exists and nobody holds the volume's
// operation lock, its create died half-way: the image, if any, was made by that create (it did not
// exist when the intent was written) and no record points to it. The next create of that volume, or
// the janitor (janitor.ts), removes such an image and the intent.
//
// The keys are keys().intent(tenant, volume) in src/state/keys.ts.

import type { StateStore } from '../state/store.js';
import type { VolumeRecord } from '../state/records.js';

export interface CreateIntent {
  tenant: string;
  volume: string;
  pool: string;
  image: string;
  /** The master that wrote it (`host:pid`). */
  owner: string;
  since: string;
}

export class CreateIntents {
  private readonly root: string;

  constructor(private readonly store: StateStore) {
    this.root = store.keys.intents;
  }

  key(tenant: string, volume: string): string {
    return this.store.keys.intent(tenant, volume);
  }

  async get(tenant: string, volume: string): Promise<CreateIntent | null> {
    const entry = await this.store.kv.get(this.key(tenant, volume));
    if (!entry) return null;
    try {
      return JSON.parse(entry.value) as CreateIntent;
    } catch {
      // An unreadable intent still says "a create died here"; what it names is recomputed by the caller.
      return null;
    }
  }

  async list(): Promise<CreateIntent[]> {
    const out: CreateIntent[] = [];
    for (const entry of await this.store.kv.list(this.root)) {
      try {
        out.push(JSON.parse(entry.value) as CreateIntent);
      } catch {
        const [tenant = '', volume = ''] = entry.key.slice(this.root.length).split('/');
        out.push({ tenant, volume, pool: '', image: '', owner: 'unknown', since: '' });
      }
    }
    return out;
  }

  put(intent: CreateIntent): Promise<void> {
    return this.store.kv.put(this.key(intent.tenant, intent.volume), JSON.stringify(intent));
  }

  async delete(tenant: string, volume: string): Promise<void> {
    await this.store.kv.delete(this.key(tenant, volume));
  }

  /**
   * Writes the volume record (only if none exists) and deletes the intent, atomically. False when
   * a record already existed (nothing was written).
   */
  commit(record: VolumeRecord): Promise<boolean> {
    return this.store.kv.transaction({
      absent: [this.store.keys.volume(record.tenant, record.volume)],
      put: [{ key: this.store.keys.volume(record.tenant, record.volume), value: JSON.stringify(record) }],
      delete: [this.key(record.tenant, record.volume)],
    });
  }
}
