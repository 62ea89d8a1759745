// Convergence planning, pure: from what volplugin observed on the host and in etcd, the actions
// that make the host match what Docker asked for. The loop (converge.ts) observes, reports,
// plans with this function and acts; tests feed it observations directly.
//
// Desired state is the local table (volumes with Docker references). Actual state is the mounts
// under the mount root, the mappings the mapper finds, and the mount locks in etcd.

import type { Mapping } from '../../mapper/types.js';
import type { MountInfo } from '../../mapper/mountinfo.js';
import type { RateLimit } from '../../policy/types.js';
import type { MountRecord } from '../../state/records.js';
import { graceOver, isIdle } from '../mounts/idle.js';
import type { LocalVolume } from '../mounts/local-state.js';
import { volumeKey } from '../mounts/local-state.js';
import { sameLimits } from '../../ratelimit/index.js';

export interface Observation {
  hostId: string;
  /** The live host lease, or null when there is none (etcd unreachable). */
  leaseId: string | null;
  /** False when etcd could not be read this round: lock actions wait. */
  locksKnown: boolean;
  entries: LocalVolume[];
  /** Mounts at MOUNT-ROOT/<tenant>/<volume> (other mounts are not volplugin's). */
  mounts: MountInfo[];
  mappings: Mapping[];
  /** Mount records of every volume in `entries` and every record naming this host. */
  locks: MountRecord[];
  /** Each volume's current rate limits (runtime options), when known. */
  limits: Map<string, RateLimit>;
  /** Volumes of the table whose device no longer maps their image (Mapper.isMapped), e.g. rbd-fuse died. */
  broken?: ReadonlySet<string>;
  /** Volumes with a Mount/Unmount/Remove in progress: the loop leaves them alone this round. */
  busy: ReadonlySet<string>;
  mountRoot: string;
  /** When the observation was made (ms since the epoch): the end of idle volumes' grace is compared with it. */
  now: number;
}

export type Action =
  /**
   * Our volume has no lock (lease expired meanwhile, or the key was removed): take it back if nobody
   * acquired it since this host did, else the volume is lost here.
   */
  | { kind: 'take-lock'; volume: string }
  /** Our volume's lock is held by this host under an older lease (restart): rebind it to the live lease. */
  | { kind: 'adopt-lock'; volume: string }
  /** Another host holds our volume's lock: the volume is lost here (stop I/O, fence ourselves) until Docker unmounts it. */
  | { kind: 'lost-lock'; volume: string; holder: MountRecord }
  /** No references left (an Unmount that failed half-way): finish the teardown. */
  | { kind: 'teardown'; volume: string }
  /**
   * An idle volume (kept after its last Unmount) whose grace is over, or whose lock is no longer
   * held under the live lease: let go of it; `fence` first when the lock vanished or another host
   * holds it (this host's client must not write to it again).
   */
  | { kind: 'drop-idle'; volume: string; why: string; fence: boolean }
  /** The volume's rate limits differ from what was applied, or containers may need them. */
  | { kind: 'apply-limits'; volume: string; limits: RateLimit; changed: boolean }
  /** A lock of this host for a volume it no longer has, or has lost. */
  | { kind: 'release-lock'; volume: string; lease: string }
  /** Something is mounted under the mount root that no entry explains (left by a crash). */
  | { kind: 'cleanup-mount'; volume: string; mountpoint: string }
  /** A mapping no entry explains (left by a crash). */
  | { kind: 'cleanup-mapping'; volume: string; mapping: Mapping };

export interface Plan {
  actions: Action[];
  /** What the loop saw and cannot fix by itself (reported to etcd). */
  problems: string[];
}

/** tenant/volume of a mountpoint directly at MOUNT-ROOT/<tenant>/<volume>, else null. */
export function volumeOfMountpoint(mountRoot: string, mountPoint: string): string | null {
  const root = mountRoot.replace(/\/+$/, '');
  if (!mountPoint.startsWith(`${root}/`)) return null;
  const rest = mountPoint.slice(root.length + 1).split('/');
  if (rest.length !== 2 || !rest[0] || !rest[1]) return null;
  return `${rest[0]}/${rest[1]}`;
}

/** Why an idle volume must go now (see the 'drop-idle' action), or null while it may stay. */
function idleDrop(entry: LocalVolume, o: Observation, lock: MountRecord | undefined): { why: string; fence: boolean } | null {
  if (o.locksKnown) {
    if (!lock) return { why: 'its mount lock vanished while it was idle', fence: true };
    if (lock.hostId !== o.hostId) return { why: `host ${lock.host} (host id ${lock.hostId}) holds its mount lock`, fence: true };
    if (o.leaseId && lock.lease !== o.leaseId) return { why: 'its mount lock is held under an earlier lease of this host (a restart)', fence: false };
  }
  if (graceOver(entry, o.now)) return { why: 'its grace is over', fence: false };
  return null;
}

export function planConvergence(o: Observation): Plan {
  const actions: Action[] = [];
  const problems: string[] = [];
  const entries = new Map(o.entries.map((e) => [volumeKey(e.tenant, e.volume), e]));
  const locks = new Map(o.locks.map((l) => [volumeKey(l.tenant, l.volume), l]));

  for (const [key, entry] of entries) {
    if (o.busy.has(key)) continue;
    const mounted = o.mounts.some((m) => m.mountPoint === entry.mountpoint);

    if (entry.refs.length === 0) {
      if (isIdle(entry)) {
        const drop = idleDrop(entry, o, locks.get(key));
        if (drop) actions.push({ kind: 'drop-idle', volume: key, ...drop });
        continue;
      }
      actions.push({ kind: 'teardown', volume: key });
      continue;
    }
    if (entry.lost) {
      problems.push(`${key}: lost to this host (${entry.lost}); I/O stopped here, waiting for its containers to stop`);
      // A lost volume never keeps its lock here: one still under this host id goes, so that another host can take it.
      const lock = locks.get(key);
      if (o.locksKnown && lock && lock.hostId === o.hostId) actions.push({ kind: 'release-lock', volume: key, lease: lock.lease });
      continue;
    }
    if (o.locksKnown) {
      const lock = locks.get(key);
      if (!lock) {
        if (o.leaseId) actions.push({ kind: 'take-lock', volume: key });
        else problems.push(`${key}: mount lock missing and no etcd lease to take it back with`);
      } else if (lock.hostId !== o.hostId) {
        actions.push({ kind: 'lost-lock', volume: key, holder: lock });
        continue;
      } else if (o.leaseId && lock.lease !== o.leaseId) {
        actions.push({ kind: 'adopt-lock', volume: key });
      }
    }
    if (!mounted) {
      problems.push(`${key}: no longer mounted at ${entry.mountpoint} although ${entry.refs.length} container mount(s) hold it`);
    }
    const mapping = o.mappings.find((m) => volumeKey(m.tenant, m.volume) === key);
    if (!mapping || mapping.device !== entry.mapping.device || o.broken?.has(key)) {
      problems.push(
        `${key}: its device ${entry.mapping.device ?? '?'} is no longer mapped (${entry.mapping.kind}; its client died?): ` +
          'the containers using it get I/O errors; stop them so that volplugin can clean up',
      );
    }
    const limits = o.limits.get(key);
    if (limits && mounted) {
      actions.push({ kind: 'apply-limits', volume: key, limits, changed: !sameLimits(entry.appliedLimits, limits) });
    }
  }

  if (o.locksKnown) {
    for (const [key, lock] of locks) {
      if (lock.hostId !== o.hostId || entries.has(key) || o.busy.has(key)) continue;
      actions.push({ kind: 'release-lock', volume: key, lease: lock.lease });
    }
  }

  const cleaned = new Set<string>();
  for (const m of o.mounts) {
    const key = volumeOfMountpoint(o.mountRoot, m.mountPoint);
    if (!key || entries.has(key) || o.busy.has(key)) continue;
    if (cleaned.has(m.mountPoint)) continue;
    cleaned.add(m.mountPoint);
    actions.push({ kind: 'cleanup-mount', volume: key, mountpoint: m.mountPoint });
  }
  for (const mapping of o.mappings) {
    const key = volumeKey(mapping.tenant, mapping.volume);
    if (o.busy.has(key)) continue;
    const entry = entries.get(key);
    if (entry) {
      // The entry's own mapping (for fuse: the same rbd-fuse directory, even if half-broken: that
      // is reported above, never unmapped under live containers).
      const same = mapping.device === entry.mapping.device || (mapping.fuseDir !== undefined && mapping.fuseDir === entry.mapping.fuseDir);
      if (!same) actions.push({ kind: 'cleanup-mapping', volume: key, mapping });
      continue;
    }
    actions.push({ kind: 'cleanup-mapping', volume: key, mapping });
  }

  // Order: locks first (lost ones fence before anything else), then teardown, then leftovers (mounts
  // before the mappings beneath them), then limits.
  const order: Record<Action['kind'], number> = {
    'lost-lock': 0,
    'adopt-lock': 1,
    'take-lock': 1,
    teardown: 2,
    'drop-idle': 2,
    'release-lock': 3,
    'cleanup-mount': 4,
    'cleanup-mapping': 5,
    'apply-limits': 6,
  };
  actions.sort((a, b) => order[a.kind] - order[b.kind]);
  return { actions, problems };
}
