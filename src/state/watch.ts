// Typed watches of the per-volume records (`<root><tenant>/<volume>` keys): what changed, whose,
// and the parsed record, instead of raw keys.

import { StateCorruptError } from './errors.js';
import type { Watch, WatchOptions } from './kv.js';
import type { RecordKV } from './record-kv.js';
import type { MountRecord, VolumeRecord } from './records.js';

/** A change to one volume's record (`record` is null on delete). */
export interface VolumeEvent {
  type: 'put' | 'delete';
  tenant: string;
  volume: string;
  record: VolumeRecord | null;
}

/** A change to one volume's mount lock (`record` is null on delete: released or lease gone). */
export interface MountEvent {
  type: 'put' | 'delete';
  tenant: string;
  volume: string;
  record: MountRecord | null;
}

/** Calls `listener` for every change under `root` until the watch is closed; a corrupt record goes to `onError`. */
export function watchRecords<T>(
  db: RecordKV,
  root: string,
  listener: (event: { type: 'put' | 'delete'; tenant: string; volume: string; record: T | null }) => void,
  onError?: (err: StateCorruptError) => void,
  options?: WatchOptions,
): Promise<Watch> {
  return db.kv.watch(root, (event) => {
    const rest = event.key.slice(root.length);
    const slash = rest.indexOf('/');
    if (slash <= 0) return; // not a <tenant>/<volume> key
    const tenant = rest.slice(0, slash);
    const volume = rest.slice(slash + 1);
    if (event.type === 'delete' || event.value === null) {
      listener({ type: 'delete', tenant, volume, record: null });
      return;
    }
    let record: T;
    try {
      record = db.parse<T>({ key: event.key, value: event.value, modRevision: '0' });
    } catch (err) {
      if (err instanceof StateCorruptError) onError?.(err);
      return;
    }
    listener({ type: 'put', tenant, volume, record });
  }, options);
}
