// The mapper seam: how an RBD image becomes a block device on this host. Three kinds exist —
// krbd (the kernel client, through sysfs), rbd-nbd (a userspace client behind /dev/nbdN) and
// rbd-fuse + a loop device (a userspace client per volume) — behind one interface, so that the
// plugin's mount manager and convergence loop never care which one runs.

import type { StepRecorder } from '../common/steps.js';
import type { Watcher } from '../storage/types.js';

export type MapperKind = 'krbd' | 'nbd' | 'fuse';
export const MAPPER_KINDS: readonly MapperKind[] = ['krbd', 'nbd', 'fuse'];

/** What to map: an image, and the tenant/volume it belongs to (names local paths). */
export interface MapTarget {
  tenant: string;
  volume: string;
  pool: string;
  image: string;
}

/** A mapped image, as found on the host or as `map` made it. */
export interface Mapping extends MapTarget {
  kind: MapperKind;
  /** The block device (/dev/rbdN, /dev/nbdN, /dev/loopN); null for a half-made mapping found after a crash. */
  device: string | null;
  /** The Ceph client that has the image open, as the OSDs see it: what fencing blocklists. */
  clientAddress: string | null;
  /** fuse: the directory rbd-fuse is mounted on. */
  fuseDir?: string;
  /** krbd: the id under /sys/bus/rbd/devices. */
  krbdId?: string;
}

/** Where the Ceph client settings come from (the same for every mapper). */
export interface CephClientSettings {
  confPath?: string;
  keyring?: string;
  /** cephx id without "client." */
  clientId?: string;
}

/** The command-line flags that point a Ceph tool (rbd-fuse, rbd-nbd) at these settings. */
export function cephToolArgs(ceph: CephClientSettings): string[] {
  const args: string[] = [];
  if (ceph.confPath) args.push('-c', ceph.confPath);
  if (ceph.clientId) args.push('--id', ceph.clientId);
  if (ceph.keyring) args.push('--keyring', ceph.keyring);
  return args;
}

/** The part of Storage the mappers need: who has an image open. */
export interface WatcherSource {
  listWatchers(pool: string, image: string): Promise<Watcher[]>;
}

/** How a map or unmap is done: `steps` records the time of its sub-steps ("map.rbd-fuse", ...). */
export interface MapOptions {
  steps?: StepRecorder;
}

export interface Mapper {
  readonly kind: MapperKind;
  /**
   * Maps the image and returns its device and client address. On failure nothing is left mapped
   * (the mapper undoes its own partial work before throwing).
   */
  map(target: MapTarget, options?: MapOptions): Promise<Mapping>;
  /** Removes a mapping (also a half-made one). Mapped-nowhere counts as success. */
  unmap(mapping: Mapping, options?: MapOptions): Promise<void>;
  /** The mappings that exist now and belong to this volplugin (its state dir, its mount root). */
  discover(): Promise<Mapping[]>;
  /**
   * True when the mapping's device still maps its image (a device number is given to another image
   * once its mapping is gone): check before using a stored device again.
   */
  isMapped(mapping: Mapping): Promise<boolean>;
  /**
   * Makes every further I/O through the mapping fail at once, on this host, without Ceph: for a
   * volume this host lost (another host took it over, or the host lease was not renewed in time).
   * Its Ceph client is blocklisted too, but that needs the cluster, and a fenced client can leave
   * requests hanging instead of failing. Irreversible: the mapping only waits to be unmapped.
   */
  stopIo(mapping: Mapping): Promise<void>;
  /**
   * Asks the device to show its image's size again after the image grew (a resize), without
   * interrupting I/O; the device may take a moment to follow (read its size to know).
   */
  refreshSize(mapping: Mapping): Promise<void>;
}

/** A mapper kind cannot work on this host; the message says why and what to do. */
export class MapperUnavailableError extends Error {
  readonly code = 'MAPPER_UNAVAILABLE';
  constructor(
    readonly kind: MapperKind,
    message: string,
  ) {
    super(message);
    this.name = 'MapperUnavailableError';
  }
}

/**
 * The watchers that appeared between two listings: the client a mapper just started. Transient
 * watchers (a snapshot in progress elsewhere) are removed by intersecting with a later listing.
 */
export function newWatchers(before: readonly Watcher[], after: readonly Watcher[]): Watcher[] {
  const seen = new Set(before.map((w) => w.address));
  return after.filter((w) => !seen.has(w.address));
}

export interface ClientSearch {
  /** The new client's address; null when it cannot be told. */
  address: string | null;
  /** The new watchers seen last (for the error when there is no single one). */
  candidates: string[];
}

/**
 * The address of the Ceph client a mapper just started: the watcher of the image that was not
 * there `before`. Someone else opening the image at the same moment (a snapshot) adds a second,
 * short-lived watcher: keep listing, `everyMs` apart and up to `attempts` times, until exactly one
 * new watcher remains. Every mapper needs it: without the address no other host could fence the
 * mapping, so a mapping whose client cannot be told is undone.
 */
export async function findNewClient(
  source: WatcherSource,
  target: Pick<MapTarget, 'pool' | 'image'>,
  before: readonly Watcher[],
  options: { attempts?: number; everyMs?: number } = {},
): Promise<ClientSearch> {
  const attempts = options.attempts ?? 30;
  let candidates: Watcher[] = [];
  for (let attempt = 0; attempt < attempts; attempt++) {
    const now = newWatchers(before, await source.listWatchers(target.pool, target.image));
    const still = candidates.filter((c) => now.some((w) => w.address === c.address));
    candidates = still.length > 0 ? still : now;
    if (candidates.length === 1) return { address: candidates[0]!.address, candidates: [candidates[0]!.address] };
    await new Promise((resolve) => setTimeout(resolve, options.everyMs ?? 100));
  }
  return { address: null, candidates: candidates.map((c) => c.address) };
}

/** The error of a mapping whose Ceph client could not be told (see findNewClient). */
export function noClientError(kind: MapperKind, target: Pick<MapTarget, 'pool' | 'image'>, candidates: readonly string[]): Error {
  const seen = candidates.length === 0 ? 'no new watcher appeared' : `new watchers: ${candidates.join(', ')}`;
  return new Error(
    `${kind}: cannot tell which Ceph client opened ${target.pool}/${target.image} (${seen}); without its address no other host ` +
      'could fence this mapping, so it was undone: try again, and check rbd status if it keeps failing',
  );
}
