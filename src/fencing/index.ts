// Fencing: making sure a client that may still write to a volume's image cannot, before or after
// another host takes the volume over. Every rule of it lives here:
//
// - The holder note. Which client to fence is recorded with the image itself, in its metadata
//   (`volplugin.holder`), right after mapping: the mount lock in etcd is bound to the holder's
//   lease and vanishes with it, the image does not. A clean unmount clears the note, so the next
//   mount fences no one.
// - Fencing the previous holder. Before a host maps a volume that another client may still be
//   writing to (a holder that was paused or cut off while its lock expired), it blocklists that
//   client in Ceph, so the old holder's writes fail instead of interleaving with the new holder's.
// - Fencing oneself. A host that lost a volume (another host holds its lock, or its lease was not
//   renewed in time) cuts the local I/O path (the mapper's stopIo) and blocklists its own client,
//   so that its writes fail at once; it cuts the path again before it tears such a volume down, so
//   the teardown cannot hang.
// - Fencing a leftover. A mapping this host finds without an entry (its volplugin or the whole
//   host died: a crash, a reboot) may have lost its Ceph client without a goodbye. Such a client's
//   watch stays on the OSD for osd_client_watch_timeout (30 s) and its exclusive lock with it, and
//   until then every metadata change of the image (the holder note's removal) and every other
//   client's write waits. So the leftover's client is blocklisted (harmless for a dead client: its
//   watch and lock go at once), and its holder note is cleared only once that worked.

import type { Mapper, MapperKind, Mapping } from '../mapper/types.js';
import type { Storage } from '../storage/types.js';
import { messageOf } from '../common/errors.js';
import { fencing, lockTakeovers } from '../metrics/families.js';

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

/**
 * Removes the note whatever it names: for an image nobody can hold yet, such as a clone, which
 * librbd gives its parent's metadata (the source's holder note included, which would make the
 * copy's first mount fence the source's live holder).
 */
export async function forgetHolder(storage: FenceStorage, pool: string, image: string): Promise<void> {
  if (await readHolder(storage, pool, image)) await storage.removeMetadata(pool, image, HOLDER_KEY);
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
  if (decision.fence && decision.address) {
    await blocklist(storage, decision.address, fenceSeconds, 'previous_holder');
    lockTakeovers.inc();
  }
  return { note, decision };
}

/** `ceph osd blocklist add`, counted by target and result (src/metrics). */
async function blocklist(storage: FenceStorage, address: string, seconds: number, target: 'previous_holder' | 'self'): Promise<void> {
  try {
    await storage.blocklistAdd(address, seconds);
  } catch (err) {
    fencing.inc({ target, result: 'error' });
    throw err;
  }
  fencing.inc({ target, result: 'ok' });
}

export interface FencingLog {
  error(obj: object, msg: string): void;
}

/** Fencing as one host does it: its Ceph client (storage), its mapper, and how long a fenced client stays blocklisted. */
export class Fencing {
  constructor(
    private readonly storage: FenceStorage,
    private readonly mapper: Pick<Mapper, 'stopIo'>,
    /** Seconds a fenced client stays blocklisted (--fence-seconds). */
    readonly seconds: number,
    private readonly log?: FencingLog,
  ) {}

  /** Records `note` as the image's holder (right after mapping it). */
  noteHolder(pool: string, image: string, note: HolderNote): Promise<void> {
    return writeHolder(this.storage, pool, image, note);
  }

  /** Removes the image's holder note if it names `clientAddress`. */
  clearHolder(pool: string, image: string, clientAddress: string | null): Promise<void> {
    return clearHolder(this.storage, pool, image, clientAddress);
  }

  /** Blocklists the image's previous holder unless its last unmount was clean or it is one of `live` (this host's own clients). */
  fencePreviousHolder(pool: string, image: string, live: ReadonlySet<string>): Promise<{ note: HolderNote | null; decision: FenceDecision }> {
    return fencePreviousHolder(this.storage, pool, image, live, this.seconds);
  }

  /**
   * Cuts the local I/O path of a mapping (the mapper's stopIo): every further request fails at
   * once, without the cluster. Failures are logged, never thrown.
   */
  async stopIo(mapping: Mapping, volume: string): Promise<void> {
    await this.mapper.stopIo(mapping).catch((err: unknown) =>
      this.log?.error({ volume, err: messageOf(err) }, 'could not cut the local I/O path of a volume this host lost'),
    );
  }

  /**
   * Blocklists this host's own client of a mapping it lost (the new holder did so too if it took
   * the volume over properly). Failures are logged, never thrown.
   */
  async blocklistOwn(mapping: Mapping, volume: string): Promise<void> {
    const address = mapping.clientAddress;
    if (!address) return;
    try {
      await blocklist(this.storage, address, this.seconds, 'self');
    } catch (err) {
      this.log?.error({ volume, address, err: messageOf(err) }, 'could not fence this host\'s own client of a volume it lost');
    }
  }

  /**
   * This host lost a volume it still has mapped (another host holds its lock, or may): it may be
   * writing there now. Cuts the local I/O path first (immediate, needs no cluster), then
   * blocklists this host's own client. Failures are logged, never thrown: the caller marks the
   * volume lost either way.
   */
  async fenceSelf(mapping: Mapping, volume: string): Promise<void> {
    await this.stopIo(mapping, volume);
    await this.blocklistOwn(mapping, volume);
  }

  /**
   * A leftover mapping of this host was removed (no mount table entry had it): fences its client,
   * then clears the image's holder note if it names that client. Fail closed: when the blocklist
   * fails, the note stays, and the next holder fences the client itself. Failures are logged,
   * never thrown (the mapping is gone either way).
   */
  async releaseLeftover(mapping: Mapping, volume: string): Promise<void> {
    const { pool, image, clientAddress } = mapping;
    if (!pool || !image) return;
    if (clientAddress) {
      try {
        await blocklist(this.storage, clientAddress, this.seconds, 'self');
      } catch (err) {
        this.log?.error({ volume, address: clientAddress, err: messageOf(err) }, 'could not fence the client of a leftover mapping: its holder note stays for the next holder to fence');
        return;
      }
    }
    await clearHolder(this.storage, pool, image, clientAddress).catch((err: unknown) =>
      this.log?.error({ volume, err: messageOf(err) }, 'could not clear the holder note of a leftover mapping'),
    );
  }

  /** Cuts the local I/O path of a lost volume again before tearing it down, so that the teardown cannot hang (errors ignored). */
  async cutLocalIo(mapping: Mapping): Promise<void> {
    await this.mapper.stopIo(mapping).catch(() => undefined);
  }
}
