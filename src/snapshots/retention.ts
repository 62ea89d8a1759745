// The retention planner: which of a volume's dated items (scheduled snapshots here; backups use it
// too) a `keep` keeps, as a pure function. The syntax of `keep` is src/policy/retention.ts's; this
// is the one place that decides what it means:
//
//   last N      the newest N items
//   hourly N    the newest item of each of the N most recent hours that have an item
//   daily N     ... of each of the N most recent days
//   weekly N    ... of each of the N most recent ISO weeks (Monday 00:00 to Sunday 24:00)
//   monthly N   ... of each of the N most recent calendar months
//
// A number N is {last: N}. Every period is in UTC, so no day has 23 or 25 hours. Tiers count
// independently and an item kept by several tiers is kept once; what is kept is the union. The
// periods counted are those that HAVE an item, not the last N periods of the calendar: after a gap
// (no leader for a week) the older dailies stay instead of all expiring at once.
//
// Properties the unit tests check (test/unit/snapshots-retention.test.ts): the newest item is
// always kept (every usable keep has a tier of at least 1); planning again over what was kept
// removes nothing (idempotent); and adding an item newer than all others never brings back one
// that was removed, so pruning after every snapshot keeps exactly what one plan over all of them
// would have kept.

import { RETENTION_TIERS, retentionProblem, tiersOf, type Retention, type RetentionTier } from '../policy/retention.js';

export { describeRetention, formatRetention, maxKept, sameRetention, RETENTION_TIERS } from '../policy/retention.js';
export type { Retention, RetentionTier, RetentionTiers } from '../policy/retention.js';

/** Anything with a name and a time (ms since the epoch, UTC). */
export interface Dated {
  name: string;
  time: number;
}

export interface RetentionPlan<T extends Dated> {
  /** Kept, oldest first. */
  keep: T[];
  /** Not kept by any tier, oldest first. */
  remove: T[];
  /** For each kept item's name, the tiers that keep it. */
  reasons: Map<string, RetentionTier[]>;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** The key of the period of `tier` that `time` falls in (equal keys: the same period). */
export function periodOf(tier: Exclude<RetentionTier, 'last'>, time: number): number {
  switch (tier) {
    case 'hourly':
      return Math.floor(time / HOUR);
    case 'daily':
      return Math.floor(time / DAY);
    case 'weekly':
      // Day 0 (1970-01-01) was a Thursday: its week began on day -3, a Monday.
      return Math.floor((Math.floor(time / DAY) + 3) / 7);
    case 'monthly': {
      const d = new Date(time);
      return d.getUTCFullYear() * 12 + d.getUTCMonth();
    }
  }
}

/** Newest first; equal times by name, the greater name first (a later sequence number). */
function newestFirst(a: Dated, b: Dated): number {
  if (a.time !== b.time) return b.time - a.time;
  return a.name < b.name ? 1 : a.name > b.name ? -1 : 0;
}

/**
 * Splits `items` into those `keep` keeps and those it does not. Throws a RangeError for a keep
 * that keeps nothing or an item without a finite time (a caller's bug: policy checks come first).
 */
export function planRetention<T extends Dated>(items: readonly T[], keep: Retention): RetentionPlan<T> {
  const problem = retentionProblem(keep);
  if (problem) throw new RangeError(`keep ${JSON.stringify(keep)} ${problem}`);
  if (typeof keep === 'number' && (!Number.isInteger(keep) || keep < 1)) throw new RangeError(`keep must be a whole number of at least 1, got ${keep}`);
  for (const item of items) {
    if (!Number.isFinite(item.time)) throw new RangeError(`${item.name} has no usable time (${item.time})`);
  }
  const tiers = tiersOf(keep);
  const sorted = [...items].sort(newestFirst);
  const reasons = new Map<string, RetentionTier[]>();
  const mark = (item: T, tier: RetentionTier) => {
    const list = reasons.get(item.name);
    if (list) list.push(tier);
    else reasons.set(item.name, [tier]);
  };
  for (const tier of RETENTION_TIERS) {
    const count = tiers[tier] ?? 0;
    if (count <= 0) continue;
    if (tier === 'last') {
      for (const item of sorted.slice(0, count)) mark(item, tier);
      continue;
    }
    let periods = 0;
    let previous: number | null = null;
    for (const item of sorted) {
      const period = periodOf(tier, item.time);
      if (period === previous) continue; // an older item of a period already counted
      previous = period;
      mark(item, tier);
      if (++periods >= count) break;
    }
  }
  const oldestFirst = sorted.reverse();
  return {
    keep: oldestFirst.filter((i) => reasons.has(i.name)),
    remove: oldestFirst.filter((i) => !reasons.has(i.name)),
    reasons,
  };
}
