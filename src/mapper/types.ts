// The mapper seam: how an RBD image becomes a block device on this host. Three kinds exist —
// krbd (the kernel client, through sysfs), rbd-nbd (a userspace client behind /dev/nbdN) and
// rbd-fuse + a loop device (a userspace client per volume) — behind one interface, so that the
// plugin's mount manager and convergence loop never care which one runs.

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

export interface Mapper {
  readonly kind: MapperKind;
  /**
   * Maps the image and returns its device and client address. On failure nothing is left mapped
   * (the mapper undoes its own partial work before throwing).
   */
  map(target: MapTarget): Promise<Mapping>;
  /** Removes a mapping (also a half-made one). Mapped-nowhere counts as success. */
  unmap(mapping: Mapping): Promise<void>;
  /** The mappings that exist now and belong to this volplugin (its state dir, its mount root). */
  discover(): Promise<Mapping[]>;
  /**
   * Makes every further I/O through the mapping fail at once, on this host, without Ceph: for a
   * volume another host has taken over (its Ceph client is blocklisted too, but a fenced client
   * can leave requests hanging instead of failing). Optional: krbd and rbd-nbd rely on the
   * blocklist alone.
   */
  stopIo?(mapping: Mapping): Promise<void>;
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
