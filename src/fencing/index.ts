// Fencing: before a host maps a volume that another client may still be writing to — a holder
// that was paused or cut off while its lock expired — it blocklists that client in Ceph, so the
// old holder's writes fail instead of interleaving with the new holder's.
//
// Which client to fence is recorded with the image itself, in its metadata (`volplugin.holder`),
// right after mapping: the mount lock in etcd is bound to the holder's lease and vanishes with it,
// the image does not. A clean unmount clears the note, so the next mount fences no one.

import type { Storage } from '../storage/types.js';
import type { MapperKind } from '../mapper/types.js';

export const HOLDER_KEY = 'volplugin.holder';

export interface HolderNote {
  hostId: string;
  host: string;
  mapper: MapperKind;
  clientAddress: string | null;
  since: string;
}

export type FenceStorage = Pick<Storage, 'getMetadata' | 'setMetadata' | 'removeMetadata' | 'blocklistAdd'>;

export async function readHolder(storage: FenceStorage, pool: string, image: string): Promise<HolderNote | null> {
  const meta = await storage.getMetadata(pool, image);
  const text = meta[HOLDER_KEY];
  if (text === undefined) return null;
  try {
    const note = JSON.parse(text) as HolderNote;
    return typeof note.hostId === 'string' ? note : null;
  } catch {
    return null;
  }
}

export async function writeHolder(storage: FenceStorage, pool: string, image: string, note: HolderNote): Promise<void> {
  await storage.setMetadata(pool, image, HOLDER_KEY, JSON.stringify(note));
}

/** Removes the note if it names `clientAddress` (another holder's note stays). */
export async function clearHolder(storage: FenceStorage, pool: string, image: string, clientAddress: string | null): Promise<void> {
  const note = await readHolder(storage, pool, image);
  if (!note) return;
  if (note.clientAddress !== clientAddress) return;
  await storage.removeMetadata(pool, image, HOLDER_KEY);
}

export interface FenceDecision {
  fence: boolean;
  address: string | null;
  reason: string;
}

/**
 * Whether the recorded holder must be fenced before this host maps the image. Addresses in `live`
 * are this host's own working mappings (never fenced).
 */
export function decideFence(note: HolderNote | null, live: ReadonlySet<string>): FenceDecision {
  if (!note) return { fence: false, address: null, reason: 'no holder recorded (last unmount was clean)' };
  if (!note.clientAddress) return { fence: false, address: null, reason: `holder ${note.host} recorded no client address` };
  if (live.has(note.clientAddress)) return { fence: false, address: note.clientAddress, reason: 'the recorded client is this host\'s live mapping' };
  return { fence: true, address: note.clientAddress, reason: `holder ${note.host} (host id ${note.hostId}) did not unmount cleanly` };
}

/** Blocklists the previous holder's client when needed; returns what it did. */
export async function fencePreviousHolder(
  storage: FenceStorage,
  pool: string,
  image: string,
  live: ReadonlySet<string>,
  fenceSeconds: number,
): Promise<{ note: HolderNote | null; decision: FenceDecision }> {
  const note = await readHolder(storage, pool, image);
  const decision = decideFence(note, live);
  if (decision.fence && decision.address) await storage.blocklistAdd(decision.address, fenceSeconds);
  return { note, decision };
}
