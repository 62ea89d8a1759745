// The shapes of the snapshot service's options, hooks and results (service.ts), shared with its
// callers: the master's routes, volsupervisor's scheduler and the tests.

import type { Logger } from 'pino';
import type { VolumeRecord } from '../state/records.js';
import type { Clock } from './clock.js';
import type { SnapshotOrigin } from './names.js';
import type { PrunePlan } from './prune.js';
import type { FreezeSettings } from './freeze.js';

/** A snapshot as the API and volcli show it. */
export interface SnapshotView {
  name: string;
  /** Ceph's snapshot id. */
  id: number;
  origin: SnapshotOrigin;
  /** ISO time Ceph recorded, or null when it has none. */
  createdAt: string | null;
  /** Size of the image when the snapshot was taken. */
  sizeBytes: number;
  protected: boolean;
  /** Volumes' images cloned from it ("pool/image"), which keep it from being removed. */
  clones: string[];
}

/**
 * The snapshots of a volume that something else still needs, which pruning must retain whatever
 * `keep` says: the backups' chain bases (src/backups). The default names none.
 */
export type ProtectedSnapshots = (volume: VolumeRecord, signal?: AbortSignal) => Promise<Iterable<string>>;

export interface SnapshotServiceOptions {
  /** How volumes with snapshots.consistency=fsfreeze are frozen (freeze.ts). */
  freeze?: FreezeSettings;
  /** What pruning must retain besides snapshots with clones (default: nothing). */
  protectedSnapshots?: ProtectedSnapshots;
  /** Test-only: runs in a group rollback once mounts are excluded, before librbd rolls back (the master's failpoint before-group-rollback). */
  beforeGroupRollback?: () => Promise<void>;
  clock?: Clock;
  logger?: Logger;
  /** Bound of an ordinary Ceph call (default 30 s). */
  callTimeoutMs?: number;
  /** Bound of rollback and flatten, which copy the whole image (default 1 h). */
  longTimeoutMs?: number;
  /** How long an on-demand operation waits for a busy volume (default 10 s). */
  lockWaitMs?: number;
  /**
   * TTL of the operation locks it takes (default 10 s): how long a holder that dies blocks the
   * volume. volsupervisor uses its election TTL, so that a new leader is not kept waiting longer
   * by the old one's lock than by its leadership.
   */
  lockTtlSeconds?: number;
}

/** What the caller of `copy` supplies: the new volume's record under the target tenant's policy. */
export interface CopyTarget {
  tenant: string;
  volume: string;
}

/**
 * Builds the record of a copy (pool, options, runtime, policy revision) from the target tenant's
 * policy: the master's create logic. `sizeBytes` and `source` are the snapshot's; the filesystem is
 * the source volume's (the copy already holds it).
 */
export type BuildCopyRecord = (input: {
  target: CopyTarget;
  sizeBytes: number;
  sourceRecord: VolumeRecord;
  snapshot: string;
}) => Promise<VolumeRecord>;

/**
 * How a copy creates its volume: the master's create path. `build` makes the record; `prepare`
 * runs (under the target's operation lock) before the clone is made, e.g. to write the master's
 * create intent; `afterClone` finishes the image; `commit` stores the record only if none exists
 * (default StateStore.createVolume) and `abandon` undoes `prepare` after a failure (the clone is
 * already removed then).
 */
export interface CopyHooks {
  build: BuildCopyRecord;
  prepare?: (record: VolumeRecord) => Promise<void>;
  /**
   * Runs after the clone is made, before the record is stored: mark the image as the new volume's
   * and set its QoS (a clone starts with its parent's image metadata, QoS keys included).
   */
  afterClone?: (record: VolumeRecord) => Promise<void>;
  commit?: (record: VolumeRecord) => Promise<boolean>;
  abandon?: (record: VolumeRecord) => Promise<void>;
}

export type ScheduledResult =
  | { outcome: 'taken'; name: string }
  /** The slot's snapshot existed already (an earlier leader took it): recorded, not taken again. */
  | { outcome: 'existed'; name: string }
  | { outcome: 'busy' | 'gone' | 'aborted' };

export interface PruneResult extends PrunePlan {
  /** Removed in this run. */
  removed: string[];
  /** Failed to remove (logged); tried again next time. */
  failed: string[];
}

export type FinishCloneResult = 'flattened' | 'not-a-clone' | 'gone' | 'aborted';
