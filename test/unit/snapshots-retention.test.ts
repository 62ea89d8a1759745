// The retention planner (src/snapshots/retention.ts) and the syntax of `keep`
// (src/policy/retention.ts): exact sets across UTC hour, day, ISO week, month and year boundaries,
// and properties over many random histories (seeded, so that a failure repeats): the newest is
// always kept, planning again over what was kept removes nothing, pruning after every snapshot
// keeps what one plan over all of them keeps, and a reference model written another way agrees.

import { describe, expect, it } from 'vitest';
import { isPolicyError } from '../../src/policy/errors.js';
import { checkRetention, formatRetention, maxKept, parseRetentionText, sameRetention, type Retention } from '../../src/policy/retention.js';
import { periodOf, planRetention, type Dated } from '../../src/snapshots/retention.js';
import { planPrune } from '../../src/snapshots/prune.js';
import { supervisorSnapshotName } from '../../src/snapshots/names.js';
import { mulberry32 } from '../chaos/rng.js';
import { randomKeep } from '../helpers/fixtures.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const at = (iso: string): Dated => ({ name: iso, time: Date.parse(iso) });
const names = (items: Dated[]) => items.map((i) => i.name);
const kept = (items: Dated[], keep: Retention) => names(planRetention(items, keep).keep);

/** A seeded generator (the chaos suite's), so that every random history can be replayed. */
const rng = mulberry32;

/** A history: snapshots at random gaps (seconds to weeks) from a random start, sometimes bursts. */
function history(random: () => number, count: number): Dated[] {
  let t = Date.UTC(2019, 0, 1) + Math.floor(random() * 3 * 365 * DAY);
  const out: Dated[] = [];
  const gaps = [1_000, 60_000, 30 * 60_000, HOUR, 6 * HOUR, DAY, 3 * DAY, 9 * DAY, 40 * DAY];
  for (let i = 0; i < count; i++) {
    t += gaps[Math.floor(random() * gaps.length)]! * (0.5 + random());
    t = Math.floor(t / 1000) * 1000;
    out.push({ name: `s${String(i).padStart(4, '0')}`, time: t });
  }
  return out;
}

/**
 * The reference model: the same rules written from calendar fields (ISO strings, the ISO week
 * from its Thursday), not from arithmetic on milliseconds.
 */
function referenceKeep(items: Dated[], keep: Retention): Set<string> {
  const tiers = typeof keep === 'number' ? { last: keep } : keep;
  const newest = [...items].sort((a, b) => b.time - a.time || (a.name < b.name ? 1 : -1));
  // ISO 8601: a week belongs to the year of its Thursday and is numbered from that year's first Thursday.
  const isoWeek = (time: number) => {
    const d = new Date(time);
    const monday0 = (d.getUTCDay() + 6) % 7;
    const thursday = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() - monday0 + 3);
    const year = new Date(thursday).getUTCFullYear();
    const dayOfYear = Math.round((thursday - Date.UTC(year, 0, 1)) / DAY);
    return `${year}-W${1 + Math.floor(dayOfYear / 7)}`;
  };
  const key: Record<string, (t: number) => string> = {
    hourly: (t) => new Date(t).toISOString().slice(0, 13),
    daily: (t) => new Date(t).toISOString().slice(0, 10),
    weekly: isoWeek,
    monthly: (t) => new Date(t).toISOString().slice(0, 7),
  };
  const out = new Set<string>();
  newest.slice(0, tiers.last ?? 0).forEach((i) => out.add(i.name));
  for (const tier of ['hourly', 'daily', 'weekly', 'monthly'] as const) {
    const seen = new Set<string>();
    for (const item of newest) {
      if (seen.size >= (tiers[tier] ?? 0)) break;
      const k = key[tier]!(item.time);
      if (seen.has(k)) continue;
      seen.add(k);
      out.add(item.name);
    }
  }
  return out;
}

describe('retention planner: exact sets', () => {
  it('a number N keeps the newest N, like {"last": N}', () => {
    const items = [at('2026-01-01T00:00:00Z'), at('2026-01-01T01:00:00Z'), at('2026-01-01T02:00:00Z'), at('2026-01-01T03:00:00Z')];
    expect(kept(items, 2)).toEqual(['2026-01-01T02:00:00Z', '2026-01-01T03:00:00Z']);
    expect(kept(items, { last: 2 })).toEqual(kept(items, 2));
    expect(kept(items, 10)).toEqual(names(items));
    expect(planRetention([], 3)).toMatchObject({ keep: [], remove: [] });
  });

  it('hourly keeps the newest of each hour, counting hours that have one, across a day boundary', () => {
    const items = ['2026-03-01T22:10:00Z', '2026-03-01T22:50:00Z', '2026-03-01T23:05:00Z', '2026-03-01T23:59:59Z', '2026-03-02T00:00:00Z', '2026-03-02T00:30:00Z'].map(at);
    expect(kept(items, { hourly: 2 })).toEqual(['2026-03-01T23:59:59Z', '2026-03-02T00:30:00Z']);
    expect(kept(items, { hourly: 3 })).toEqual(['2026-03-01T22:50:00Z', '2026-03-01T23:59:59Z', '2026-03-02T00:30:00Z']);
  });

  it('daily counts UTC days (no 23- or 25-hour days: the European DST change of 2026-03-29 is an ordinary day)', () => {
    const items = ['2026-03-28T23:30:00Z', '2026-03-29T00:30:00Z', '2026-03-29T22:59:00Z', '2026-03-29T23:30:00Z', '2026-03-30T00:00:00Z'].map(at);
    expect(kept(items, { daily: 3 })).toEqual(['2026-03-28T23:30:00Z', '2026-03-29T23:30:00Z', '2026-03-30T00:00:00Z']);
  });

  it('weekly counts ISO weeks, Monday to Sunday, also across a year boundary', () => {
    // 2026-12-31 is a Thursday: Mon 2026-12-28 .. Sun 2027-01-03 is one week (2026-W53).
    const items = ['2026-12-27T12:00:00Z', '2026-12-28T00:00:00Z', '2026-12-31T23:00:00Z', '2027-01-03T23:59:59Z', '2027-01-04T00:00:00Z'].map(at);
    expect(kept(items, { weekly: 3 })).toEqual(['2026-12-27T12:00:00Z', '2027-01-03T23:59:59Z', '2027-01-04T00:00:00Z']);
    expect(periodOf('weekly', Date.parse('2026-12-28T00:00:00Z'))).toBe(periodOf('weekly', Date.parse('2027-01-03T23:59:59Z')));
    expect(periodOf('weekly', Date.parse('2027-01-03T23:59:59Z'))).not.toBe(periodOf('weekly', Date.parse('2027-01-04T00:00:00Z')));
  });

  it('monthly counts calendar months of any length (February of a leap year included)', () => {
    const items = ['2028-01-31T23:59:59Z', '2028-02-01T00:00:00Z', '2028-02-29T12:00:00Z', '2028-03-01T00:00:00Z', '2028-03-15T00:00:00Z'].map(at);
    expect(kept(items, { monthly: 2 })).toEqual(['2028-02-29T12:00:00Z', '2028-03-15T00:00:00Z']);
    expect(kept(items, { monthly: 5 })).toEqual(['2028-01-31T23:59:59Z', '2028-02-29T12:00:00Z', '2028-03-15T00:00:00Z']);
  });

  it('tiers count independently; their union is kept; reasons say which tiers keep each', () => {
    // Every 6 hours for 10 days.
    const start = Date.UTC(2026, 5, 1);
    const items = Array.from({ length: 40 }, (_, i) => ({ name: `s${String(i).padStart(2, '0')}`, time: start + i * 6 * HOUR }));
    const plan = planRetention(items, { last: 2, daily: 3, weekly: 2 });
    // last: s38 s39; daily: newest of Jun 10, 9, 8 = s39, s35, s31; weekly: newest of the week of Jun 8 (Mon) = s39 and of Jun 1..7 = s27.
    expect(names(plan.keep)).toEqual(['s27', 's31', 's35', 's38', 's39']);
    expect(plan.reasons.get('s39')).toEqual(['last', 'daily', 'weekly']);
    expect(plan.reasons.get('s27')).toEqual(['weekly']);
    expect(plan.remove).toHaveLength(35);
  });

  it('after a gap, the periods that have snapshots count: the old dailies do not all expire at once', () => {
    const items = ['2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z', '2026-01-03T00:00:00Z', '2026-02-20T00:00:00Z'].map(at);
    expect(kept(items, { daily: 3 })).toEqual(['2026-01-02T00:00:00Z', '2026-01-03T00:00:00Z', '2026-02-20T00:00:00Z']);
  });

  it('refuses a keep that keeps nothing or an item without a time', () => {
    expect(() => planRetention([at('2026-01-01T00:00:00Z')], { hourly: 0, daily: 0 })).toThrow(RangeError);
    expect(() => planRetention([at('2026-01-01T00:00:00Z')], 0)).toThrow(RangeError);
    expect(() => planRetention([{ name: 'x', time: Number.NaN }], 1)).toThrow(/no usable time/);
  });
});

describe('retention planner: properties over random histories', () => {
  const CASES = 400;

  it('agrees with a reference model written from calendar fields', () => {
    const random = rng(1);
    for (let c = 0; c < CASES; c++) {
      const items = history(random, 1 + Math.floor(random() * 60));
      const keep = randomKeep(random);
      expect(new Set(kept(items, keep)), `case ${c}: ${JSON.stringify(keep)}`).toEqual(referenceKeep(items, keep));
    }
  });

  it('never removes the newest; keeps at most the sum of the tiers; keep and remove partition the input', () => {
    const random = rng(2);
    for (let c = 0; c < CASES; c++) {
      const items = history(random, 1 + Math.floor(random() * 60));
      const keep = randomKeep(random);
      const plan = planRetention(items, keep);
      const newest = items.reduce((a, b) => (b.time >= a.time ? b : a));
      expect(names(plan.keep)).toContain(newest.name);
      expect(plan.keep.length).toBeLessThanOrEqual(maxKept(keep));
      expect([...names(plan.keep), ...names(plan.remove)].sort()).toEqual(names(items).sort());
    }
  });

  it('is idempotent: planning again over what was kept removes nothing', () => {
    const random = rng(3);
    for (let c = 0; c < CASES; c++) {
      const keep = randomKeep(random);
      const once = planRetention(history(random, 1 + Math.floor(random() * 60)), keep).keep;
      expect(planRetention(once, keep).remove).toEqual([]);
    }
  });

  it('does not depend on the order it is given the items in', () => {
    const random = rng(4);
    for (let c = 0; c < 100; c++) {
      const items = history(random, 1 + Math.floor(random() * 40));
      const keep = randomKeep(random);
      const shuffled = [...items].sort(() => random() - 0.5);
      expect(kept(shuffled, keep)).toEqual(kept(items, keep));
    }
  });

  it('pruning after every new snapshot keeps exactly what one plan over the whole history keeps', () => {
    const random = rng(5);
    for (let c = 0; c < 100; c++) {
      const all = history(random, 1 + Math.floor(random() * 80));
      const keep = randomKeep(random);
      let present: Dated[] = [];
      for (const item of all) present = planRetention([...present, item], keep).keep;
      expect(names(present), `case ${c}: ${JSON.stringify(keep)}`).toEqual(kept(all, keep));
    }
  });
});

describe('pruning plan with tiers (prune.ts)', () => {
  const slot = (iso: string) => supervisorSnapshotName(Date.parse(iso));

  it('reads each snapshot time from its name and retains what has clones or is needed', () => {
    const list = [
      { name: slot('2026-05-01T10:00:00Z') },
      { name: slot('2026-05-01T11:00:00Z'), children: 1 },
      { name: slot('2026-05-02T09:00:00Z'), needed: true },
      { name: slot('2026-05-02T10:00:00Z') },
      { name: slot('2026-05-03T10:00:00Z') },
      { name: 'manual-20260501T000000Z' },
      { name: 'by-hand' },
    ];
    const plan = planPrune(list, { last: 1, daily: 2 });
    expect(plan.keep).toEqual([slot('2026-05-02T10:00:00Z'), slot('2026-05-03T10:00:00Z')]);
    expect(plan.remove).toEqual([slot('2026-05-01T10:00:00Z')]);
    expect(plan.retained).toEqual([slot('2026-05-01T11:00:00Z'), slot('2026-05-02T09:00:00Z')]);
  });
});

describe('the syntax of keep (policy/retention.ts)', () => {
  const optionError = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      if (isPolicyError(err)) return err;
      throw err;
    }
    throw new Error('expected a PolicyError');
  };

  it('reads a number, TIER:N pairs and JSON', () => {
    expect(parseRetentionText('20', 'snapshots.keep')).toBe(20);
    expect(parseRetentionText(' last:3, hourly:24,daily:7 ', 'snapshots.keep')).toEqual({ last: 3, hourly: 24, daily: 7 });
    expect(parseRetentionText('{"weekly": 4, "monthly": 6}', 'snapshots.keep')).toEqual({ weekly: 4, monthly: 6 });
    expect(formatRetention({ last: 3, hourly: 0, daily: 7 })).toBe('last:3,daily:7');
    expect(parseRetentionText(formatRetention({ last: 3, monthly: 6 }), 'k')).toEqual({ last: 3, monthly: 6 });
    expect(maxKept({ last: 3, hourly: 24, daily: 7, weekly: 4, monthly: 6 })).toBe(44);
    expect(sameRetention(5, { last: 5, daily: 0 })).toBe(true);
    expect(sameRetention(5, { last: 5, daily: 1 })).toBe(false);
  });

  it.each([
    ['0', /at least 1/],
    ['-3', /negative/],
    ['yearly:2', /unknown tier "yearly"; the tiers are last, hourly, daily, weekly, monthly/],
    ['daily:2,daily:3', /given twice/],
    ['daily:0,hourly:0', /keeps nothing/],
    ['{"daily": -1}', /snapshots.keep.daily: must be at least 0/],
    ['{"daily": 1', /not valid JSON/],
    ['{}', /must be a whole number of at least 1, or tiers/],
    ['daily', /not a number or TIER:N/],
  ])('refuses %j with a message naming the field', (text, reason) => {
    const err = optionError(() => parseRetentionText(text, 'snapshots.keep'));
    expect(err.code).toBe('INVALID_OPTION');
    expect(err.message).toMatch(/^snapshots\.keep/);
    expect(err.message).toMatch(reason);
  });

  it('checks JSON values by the schema, naming the tier', () => {
    expect(optionError(() => checkRetention({ hourly: 'x' }, 'default-options.snapshot.keep', 'INVALID_POLICY')).field).toBe('default-options.snapshot.keep.hourly');
    expect(optionError(() => checkRetention({ hourly: 2, yearly: 1 }, 'k', 'INVALID_POLICY')).message).toMatch(/unknown key "yearly"/);
  });
});
