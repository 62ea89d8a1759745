// Which snapshots pruning removes, as a pure function (the I/O is in service.ts).
//
// Only snapshots volsupervisor made (names starting with "vs-", see names.ts) are candidates; `keep`
// (a number or tiers) decides which of them stay, by the time in their names (the slot they were
// taken for), through the retention planner (retention.ts). Of the others, a snapshot that has
// clones stays too (a clone's data depends on it until volsupervisor has flattened it), and so does
// one the backups still need (the base of a chain, named by the service's protectedSnapshots
// provider): they are reported as retained and do not count towards `keep`. A protected snapshot
// without clones (left by a copy whose volume was removed before it was flattened) is unprotected
// and removed like the others. On-demand snapshots and snapshots volplugin did not name are never
// touched.

import { compareSnapshotNames, parseSnapshotName, snapshotOrigin } from './names.js';
import { planRetention, type Retention } from './retention.js';

export interface PruneCandidate {
  name: string;
  protected?: boolean;
  /** Number of clones of the snapshot; undefined when not known (yet). */
  children?: number;
  /** True when something else (a backup chain) still needs it. */
  needed?: boolean;
}

export interface PrunePlan {
  /** Supervisor snapshots that `keep` keeps, oldest first. */
  keep: string[];
  /** Supervisor snapshots to remove, oldest first. */
  remove: string[];
  /** Supervisor snapshots `keep` lets go that stay because they have clones or are needed. */
  retained: string[];
}

/** Splits `snapshots` into those to keep, remove and retain. Throws a RangeError for a keep that keeps nothing. */
export function planPrune(snapshots: readonly PruneCandidate[], keep: Retention): PrunePlan {
  const ours = snapshots
    .filter((s) => snapshotOrigin(s.name) === 'supervisor')
    .sort((a, b) => compareSnapshotNames(a.name, b.name))
    .map((s) => ({ ...s, time: parseSnapshotName(s.name)!.time.getTime() }));
  const plan = planRetention(ours, keep);
  const stays = (s: PruneCandidate) => (s.children !== undefined && s.children > 0) || s.needed === true;
  return {
    keep: plan.keep.map((s) => s.name),
    remove: plan.remove.filter((s) => !stays(s)).map((s) => s.name),
    retained: plan.remove.filter(stays).map((s) => s.name),
  };
}
