// The records volplugin keeps in etcd, one JSON document per key (see keys.ts for where). Every
// component reads and writes them through src/state/, never by hand.

import type { RuntimeOptions, TenantPolicy, VolumeOptions } from '../policy/types.js';

export interface TenantRecord {
  name: string;
  policy: TenantPolicy;
  /** 1 for the first upload, +1 for each later one; every revision is kept under tenant-history. */
  revision: number;
  uploadedAt: string;
}

export interface VolumeRecord {
  tenant: string;
  volume: string;
  /** Where the data lives; the image name is unique per tenant/volume pair (see src/policy/names.ts). */
  pool: string;
  image: string;
  options: VolumeOptions;
  /** Snapshot and rate-limit settings; changed at run time without remount. */
  runtime: RuntimeOptions;
  /** The tenant policy revision the volume was created from. */
  policyRevision: number;
  /**
   * The tenant's command for this volume's filesystem at creation time (`%` is the device). volplugin
   * runs it at most once in the volume's life: on the first mount, before `formatted` is set.
   */
  formatCommand: string;
  /**
   * When the volume got its filesystem (ISO time): set by the state layer only (markFormatted),
   * after mkfs succeeded, by the host holding the mount lock; or at copy time for a copy of a
   * snapshot that was taken after its source was formatted. Once set, volplugin never formats the
   * volume again. Absent on records from before it existed: the first mount then decides from the
   * device (a filesystem: set it; zeros: format; anything else: refuse).
   */
  formatted?: string;
  /**
   * When the first format began (ISO time), set by the lock holder before mkfs runs, on a device
   * that read as zeros. With `formatted` unset it means that format did not finish: the device
   * holds nothing but what that mkfs wrote (the volume was never mounted), so it is formatted again.
   */
  formatStarted?: string;
  /** Set for a volume cloned from a snapshot. */
  source?: { tenant: string; volume: string; snapshot: string };
  createdAt: string;
}

/**
 * The cross-host mount lock of one volume. It exists only while a host has it mounted and is bound
 * to that host's etcd lease: a host that dies loses it after the lease TTL.
 */
export interface MountRecord {
  tenant: string;
  volume: string;
  /** --host-label of the holder (human name). */
  host: string;
  /** The holder's persistent UUID. */
  hostId: string;
  /** etcd lease id (hex) holding the key. */
  lease: string;
  device: string;
  mountpoint: string;
  mapper: 'krbd' | 'nbd' | 'fuse';
  /** The Ceph client address that has the image open: what fencing blocklists. */
  clientAddress: string | null;
  since: string;
  /** Which acquisition of the lock this is (see AcquisitionRecord); absent on records from before it existed. */
  generation?: number;
}

/**
 * The last acquisition of a volume's mount lock, kept after the lock is gone (not lease-bound) and
 * rewritten in the same transaction as every acquisition. A host whose lock vanished (its lease
 * expired) may take it back only while this record still names its own acquisition: then provably
 * no other host held the lock in between.
 */
export interface AcquisitionRecord {
  hostId: string;
  host: string;
  lease: string;
  /** 1 for the first acquisition of the volume, +1 for each later one. */
  generation: number;
  at: string;
}

/** A remove or rollback in progress on a volume: while it exists no host may take the mount lock. */
export interface ExclusionRecord {
  /** "remove", "snapshot rollback". */
  reason: string;
  /** Who: `<role>@<host>:<pid>`. */
  owner: string;
  since: string;
  lease: string;
}

/** The one live volplugin process of a host id, bound to its host lease. */
export interface HostAliveRecord {
  hostId: string;
  /** --host-label */
  host: string;
  /** The kernel's boot id (a reboot changes it). */
  bootId: string;
  pid: number;
  /** os.hostname() of the machine it runs on. */
  hostname: string;
  since: string;
}

/** What a volplugin reports about itself, refreshed by its convergence loop; bound to its lease. */
export interface HostReport {
  hostId: string;
  host: string;
  pid: number;
  version: string;
  reportedAt: string;
  mounts: Array<{
    tenant: string;
    volume: string;
    device: string;
    mountpoint: string;
    mapper: 'krbd' | 'nbd' | 'fuse';
    /** Docker Mount IDs holding a reference. */
    references: number;
  }>;
  /** Problems the loop saw and could not fix (e.g. a mount whose lock belongs to another host). */
  problems: string[];
}
