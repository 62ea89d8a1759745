// Which snapshots pruning removes, as a pure function (the I/O is in service.ts).
//
// Only snapshots volsupervisor made (names starting with "vs-", see names.ts) are candidates; the
// newest `keep` of them stay. Of the older ones, a snapshot that has clones stays too (a clone's data
// depends on it until volsupervisor has flattened it): it is reported as retained and does not count
// towards `keep`. A protected snapshot without clones (left by a copy whose volume was removed
// before it was flattened) is unprotected and removed like the others. On-demand snapshots and
// snapshots volplugin did not name are never touched.

import { compareSnapshotNames, snapshotOrigin } from './names.js';

export interface PruneCandidate {
  name: string;
  protected?: boolean;
  /** Number of clones of the snapshot; undefined when not known (yet). */
  children?: number;
}

export interface PrunePlan {
  /** Supervisor snapshots that stay as the newest `keep`, oldest first. */
  keep: string[];
  /** Supervisor snapshots to remove, oldest first. */
  remove: string[];
  /** Older supervisor snapshots that stay because they have clones. */
  retained: string[];
}

/** Splits `snapshots` into those to keep, remove and retain. `keep` must be >= 1. */
export function planPrune(snapshots: readonly PruneCandidate[], keep: number): PrunePlan {
  if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`keep must be a whole number of at least 1, got ${keep}`);
  const ours = snapshots
    .filter((s) => snapshotOrigin(s.name) === 'supervisor')
    .sort((a, b) => compareSnapshotNames(a.name, b.name));
  const cut = Math.max(0, ours.length - keep);
  const older = ours.slice(0, cut);
  return {
    keep: ours.slice(cut).map((s) => s.name),
    remove: older.filter((s) => !(s.children && s.children > 0)).map((s) => s.name),
    retained: older.filter((s) => s.children !== undefined && s.children > 0).map((s) => s.name),
  };
}
