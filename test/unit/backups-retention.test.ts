// Tiered retention of backups (src/backups/manifest.ts planBackupPrune, chainLimit, nextBase over
// the one retention planner, src/snapshots/retention.ts): exact cases, and properties over many
// seeded random histories of backups taken and pruned one at a time as the service does: the
// newest is always kept, every kept backup's chain is whole (no needed base removed), planning
// again removes nothing, no chain is longer than its bound, and the restore points are those one
// plan over every backup ever taken would choose.

import { describe, expect, it } from 'vitest';
import { chainLimit, chainTo, emptyManifest, nextBase, planBackupPrune, TIERED_CHAIN, type Manifest, type ManifestEntry } from '../../src/backups/manifest.js';
import type { Retention } from '../../src/policy/retention.js';
import { planRetention } from '../../src/snapshots/retention.js';
import { mulberry32 } from '../chaos/rng.js';
import { manifestEntry, randomKeep } from '../helpers/fixtures.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const entry = manifestEntry;

const manifestOf = (backups: ManifestEntry[]): Manifest => ({ ...emptyManifest('t1', 'data'), backups });
const names = (entries: ManifestEntry[]) => entries.map((e) => e.name);

/** One backup as the service takes it: incremental from the last while its chain is short enough, then pruned. */
function take(m: Manifest, name: string, at: number, keep: Retention, chained = true): { manifest: Manifest; removed: ManifestEntry[] } {
  const last = m.backups.at(-1);
  const base = nextBase(m, { pool: 'rbd', image: 't1.data', snapshots: last ? [last.name] : [] }, keep, chained);
  const plan = planBackupPrune(manifestOf([...m.backups, entry(name, base, at)]), keep, chained);
  return { manifest: manifestOf(plan.keep), removed: plan.remove };
}

describe('chainLimit: how long a chain grows before a full backup starts the next', () => {
  it('is N for a number N (as before tiers) and for {"last": N}; for tiers their last, but at least min(their sum, 7)', () => {
    expect(chainLimit(1)).toBe(1);
    expect(chainLimit(30)).toBe(30);
    expect(chainLimit({ last: 30 })).toBe(30);
    expect(chainLimit({ daily: 3 })).toBe(3);
    expect(chainLimit({ daily: 7, weekly: 4, monthly: 6 })).toBe(TIERED_CHAIN);
    expect(chainLimit({ last: 3, hourly: 24, daily: 7, weekly: 4, monthly: 6 })).toBe(7);
    expect(chainLimit({ last: 10, daily: 7 })).toBe(10);
  });

  it('nextBase ends a chain at the bound of a tiered keep', () => {
    let m = manifestOf([]);
    for (let i = 0; i < 9; i++) m = take(m, `b${i}`, Date.UTC(2026, 0, 1 + i), { daily: 30 }).manifest;
    expect(m.backups.map((b) => b.parent)).toEqual([null, 'b0', 'b1', 'b2', 'b3', 'b4', 'b5', null, 'b7']);
  });
});

describe('planBackupPrune with tiers', () => {
  it('keeps the newest of each day and the last two, with the chains they need; frees a whole old chain', () => {
    // Every 6 hours for 5 days; chains of 5 (the tiers' sum, under 7).
    const keep = { last: 2, daily: 3 };
    let m = manifestOf([]);
    const removed: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = take(m, `b${String(i).padStart(2, '0')}`, Date.UTC(2026, 0, 1, 6 * i, 30), keep);
      m = r.manifest;
      removed.push(...names(r.removed));
    }
    // Days: b00-b03 (Jan 1), b04-b07, b08-b11, b12-b15, b16-b19 (Jan 5). Points: b19, b18 (last), b19, b15, b11 (daily).
    // Chains of 5: b00-b04, b05-b09, b10-b14, b15-b19. b11 needs b10; b15 and b18, b19 are the last chain.
    expect(names(m.backups)).toEqual(['b10', 'b11', 'b15', 'b16', 'b17', 'b18', 'b19']);
    expect(removed).toContain('b00');
    expect(removed).toContain('b09');
    for (const b of m.backups) expect(() => chainTo(m, b.name)).not.toThrow();
  });

  it('a Ceph target (not chained) keeps exactly the points', () => {
    const backups = [0, 1, 2, 30, 31, 60].map((d, i) => entry(`b${i}`, i === 0 ? null : `b${i - 1}`, Date.UTC(2026, 0, 1) + d * DAY));
    expect(names(planBackupPrune(manifestOf(backups), { last: 1, monthly: 3 }, false).keep)).toEqual(['b3', 'b4', 'b5']); // the newest of Jan (31st), Feb, Mar
  });

  it('refuses tiers that keep nothing', () => {
    expect(() => planBackupPrune(manifestOf([entry('a', null, 0)]), { daily: 0 })).toThrow(RangeError);
  });
});

describe('properties over random histories (seeded)', () => {
  for (let seed = 1; seed <= 60; seed++) {
    it(`seed ${seed}`, () => {
      const random = mulberry32(seed);
      const keep = randomKeep(random, 0.4, 6);
      const chained = random() < 0.85;
      const gaps = [60_000, HOUR, 6 * HOUR, DAY, 3 * DAY, 9 * DAY];
      let t = Date.UTC(2025, 0, 1) + Math.floor(random() * 365 * DAY);
      let m = manifestOf([]);
      const all: { name: string; time: number }[] = [];
      for (let i = 0; i < 120; i++) {
        t += Math.floor(gaps[Math.floor(random() * gaps.length)]! * (0.5 + random()));
        const name = `b${String(i).padStart(4, '0')}`;
        all.push({ name, time: t });
        m = take(m, name, t, keep, chained).manifest;
        const ctx = `seed ${seed}, keep ${JSON.stringify(keep)}, after ${name}`;
        expect(m.backups.at(-1)?.name, `${ctx}: the newest stays`).toBe(name);
        for (const b of m.backups) {
          // A kept backup restores: its chain is whole, and no longer than the bound.
          const chain = chained ? chainTo(m, b.name) : [b];
          expect(chain.length, ctx).toBeLessThanOrEqual(chainLimit(keep));
        }
        expect(names(planBackupPrune(m, keep, chained).remove), `${ctx}: planning again removes nothing`).toEqual([]);
        // The restore points are what one plan over every backup ever taken keeps.
        const points = new Set(planRetention(all, keep).keep.map((p) => p.name));
        for (const p of points) expect(m.backups.some((b) => b.name === p), `${ctx}: point ${p} kept`).toBe(true);
        if (!chained) expect(new Set(names(m.backups)), ctx).toEqual(points);
      }
    });
  }
});
