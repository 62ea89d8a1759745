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
   * runs it on first mount, which it recognises by blkid finding no filesystem on the device.
   */
  formatCommand: string;
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
