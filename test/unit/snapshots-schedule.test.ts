import { describe, expect, it } from 'vitest';
import { dueSlot, nextDueAt, scheduleOf, slotOf } from '../../src/snapshots/schedule.js';
import { planPrune } from '../../src/snapshots/prune.js';
import { manualSnapshotName, supervisorSnapshotName } from '../../src/snapshots/names.js';

const t0 = Date.UTC(2026, 10, 22, 12, 0, 0);
const runtime = (snapshots: boolean, frequency: string, keep: number) => ({ snapshots, snapshot: { frequency, keep } });

describe('schedule', () => {
  it('is off unless snapshots is true', () => {
    expect(scheduleOf(runtime(false, '30m', 5))).toEqual({ state: 'off' });
    expect(scheduleOf(undefined)).toEqual({ state: 'off' });
  });

  it('parses Go durations', () => {
    expect(scheduleOf(runtime(true, '30s', 3))).toEqual({ state: 'on', settings: { frequencyMs: 30_000, keep: 3 } });
    expect(scheduleOf(runtime(true, '1h30m', 1))).toEqual({ state: 'on', settings: { frequencyMs: 5_400_000, keep: 1 } });
  });

  it('reports a frequency under a second, a keep under 1 and garbage as invalid', () => {
    for (const [frequency, keep] of [['500ms', 3], ['0s', 3], ['soon', 3], ['30m', 0], ['30m', -1], ['30m', 1.5]] as const) {
      const s = scheduleOf(runtime(true, frequency, keep));
      expect(s.state, `${frequency} ${keep}`).toBe('invalid');
    }
  });

  it('cuts time into slots counted from the epoch', () => {
    expect(slotOf(t0 + 29_999, 30_000)).toBe(t0);
    expect(slotOf(t0 + 30_000, 30_000)).toBe(t0 + 30_000);
    expect(() => slotOf(t0, 0)).toThrow(RangeError);
  });

  it('is due at once when nothing was taken yet', () => {
    expect(dueSlot(t0 + 12_345, 30_000, null)).toBe(t0);
  });

  it('is due once per slot, never twice', () => {
    const f = 2000;
    let last: number | null = null;
    const taken: number[] = [];
    for (let now = t0; now < t0 + 10_000; now += 250) {
      const slot = dueSlot(now, f, last);
      if (slot !== null) {
        taken.push(slot);
        last = slot;
      }
    }
    expect(taken).toEqual([t0, t0 + 2000, t0 + 4000, t0 + 6000, t0 + 8000]);
  });

  it('takes one snapshot, not one per missed slot, after a gap (new leader)', () => {
    const f = 2000;
    const last = t0;
    expect(dueSlot(t0 + 11_000, f, last)).toBe(t0 + 10_000);
    expect(dueSlot(t0 + 11_500, f, t0 + 10_000)).toBeNull();
  });

  it('waits when the last slot is ahead of this clock (skew between supervisors)', () => {
    expect(dueSlot(t0, 2000, t0 + 4000)).toBeNull();
    expect(dueSlot(t0 + 6000, 2000, t0 + 4000)).toBe(t0 + 6000);
  });

  it('applies a new frequency from the next boundary of that frequency', () => {
    // Taken at 12:30 on a 30m schedule, then changed to 1h: the next is due at 13:00.
    const last = t0 + 30 * 60_000;
    expect(dueSlot(t0 + 45 * 60_000, 3_600_000, last)).toBeNull();
    expect(dueSlot(t0 + 60 * 60_000, 3_600_000, last)).toBe(t0 + 60 * 60_000);
    // Changed to 1m: due at once.
    expect(dueSlot(last + 61_000, 60_000, last)).toBe(last + 60_000);
  });

  it('says when the next snapshot is due', () => {
    expect(nextDueAt(t0 + 500, 2000, null)).toBe(t0 + 500);
    expect(nextDueAt(t0 + 500, 2000, t0)).toBe(t0 + 2000);
  });
});

describe('pruning plan', () => {
  const vs = (i: number) => supervisorSnapshotName(t0 + i * 2000);
  const snaps = (n: number) => Array.from({ length: n }, (_, i) => ({ name: vs(i) }));

  it('keeps the newest `keep` supervisor snapshots and removes the oldest', () => {
    const plan = planPrune(snaps(6), 3);
    expect(plan.keep).toEqual([vs(3), vs(4), vs(5)]);
    expect(plan.remove).toEqual([vs(0), vs(1), vs(2)]);
    expect(plan.retained).toEqual([]);
  });

  it('removes nothing while there are no more than `keep`', () => {
    expect(planPrune(snaps(3), 3).remove).toEqual([]);
    expect(planPrune([], 1).remove).toEqual([]);
  });

  it('never touches snapshots it did not make', () => {
    const list = [{ name: 'manual-20261122T115900Z' }, { name: 'before-upgrade' }, ...snaps(4), { name: manualSnapshotName(t0 - 1000) }];
    const plan = planPrune(list, 1);
    expect(plan.remove).toEqual([vs(0), vs(1), vs(2)]);
    expect([...plan.keep, ...plan.remove, ...plan.retained].every((n) => n.startsWith('vs-'))).toBe(true);
  });

  it('orders by the time in the name, not by the order Ceph lists them', () => {
    const list = snaps(4).reverse();
    expect(planPrune(list, 2).remove).toEqual([vs(0), vs(1)]);
  });

  it('retains old snapshots that have clones, not those only protected', () => {
    const list = [{ name: vs(0), protected: true, children: 1 }, { name: vs(1), children: 2 }, { name: vs(2), protected: true, children: 0 }, { name: vs(3) }, { name: vs(4) }];
    const plan = planPrune(list, 1);
    expect(plan.remove).toEqual([vs(2), vs(3)]);
    expect(plan.retained).toEqual([vs(0), vs(1)]);
    expect(plan.keep).toEqual([vs(4)]);
  });

  it('refuses a keep below 1', () => {
    expect(() => planPrune(snaps(2), 0)).toThrow(RangeError);
    expect(() => planPrune(snaps(2), -3)).toThrow(RangeError);
  });
});
