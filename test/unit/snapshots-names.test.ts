import { describe, expect, it } from 'vitest';
import {
  compareSnapshotNames,
  manualSnapshotName,
  parseSnapshotName,
  snapshotNameProblem,
  snapshotOrigin,
  supervisorSnapshotName,
} from '../../src/snapshots/names.js';

const at = Date.UTC(2026, 10, 22, 12, 30, 0, 456);

describe('snapshot names', () => {
  it('name supervisor snapshots after their slot, in UTC, to the second', () => {
    expect(supervisorSnapshotName(at)).toBe('vs-20261122T123000Z');
    expect(supervisorSnapshotName(new Date(at))).toBe('vs-20261122T123000Z');
  });

  it('name on-demand snapshots manual-<time>, with a sequence after the first of a second', () => {
    expect(manualSnapshotName(at)).toBe('manual-20261122T123000Z');
    expect(manualSnapshotName(at, 2)).toBe('manual-20261122T123000Z-2');
    expect(() => manualSnapshotName(at, 0)).toThrow(RangeError);
  });

  it('parse back who made a snapshot and when', () => {
    expect(parseSnapshotName('vs-20261122T123000Z')).toEqual({ origin: 'supervisor', time: new Date(Date.UTC(2026, 10, 22, 12, 30)), seq: 1 });
    expect(parseSnapshotName('manual-20261122T123000Z-3')?.seq).toBe(3);
    expect(snapshotOrigin('vs-20261122T123000Z')).toBe('supervisor');
    expect(snapshotOrigin('manual-20261122T123000Z')).toBe('manual');
  });

  it('treat any other name as made by someone else', () => {
    for (const name of ['backup', 'vs-2026', 'vs-20261122T123000', 'vs-20261332T123000Z', 'vs-20261122T123000Z-0', 'xvs-20261122T123000Z']) {
      expect(snapshotOrigin(name), name).toBe('other');
    }
  });

  it('sort by time, then sequence, with foreign names last', () => {
    const names = ['zeta', 'manual-20261122T123000Z-10', 'vs-20261122T123001Z', 'manual-20261122T123000Z-2', 'vs-20261122T122959Z', 'alpha'];
    expect([...names].sort(compareSnapshotNames)).toEqual([
      'vs-20261122T122959Z',
      'manual-20261122T123000Z-2',
      'manual-20261122T123000Z-10',
      'vs-20261122T123001Z',
      'alpha',
      'zeta',
    ]);
  });

  it('sort in plain string order too for names of one origin', () => {
    const names = [0, 5, 1, 3600, 59].map((s) => supervisorSnapshotName(at + s * 1000));
    expect([...names].sort()).toEqual([...names].sort(compareSnapshotNames));
  });

  it('refuse request names that are unsafe', () => {
    expect(snapshotNameProblem('vs-20261122T123000Z')).toBeNull();
    expect(snapshotNameProblem('')).toMatch(/empty/);
    expect(snapshotNameProblem('a/b')).toMatch(/may contain only/);
    expect(snapshotNameProblem('-x')).toMatch(/start with/);
    expect(snapshotNameProblem('x'.repeat(129))).toMatch(/limit/);
  });
});
