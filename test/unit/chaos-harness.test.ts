// The fault-injection suite's own parts that need no services: the seeded randomness, the record
// journal (written and read by journal-io.mjs on a plain directory, then damaged), the invariant
// checkers on made-up observations, and the report.

import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkDurability, lostRecords } from '../chaos/invariants/durability.js';
import { checkNotStuck } from '../chaos/invariants/not-stuck.js';
import { journalIo, JournalWriter, readJournal } from '../chaos/journal.js';
import { Rng } from '../chaos/rng.js';
import type { ScenarioResult } from '../chaos/runner.js';
import { SCENARIOS, SHORT_RUN, selectScenarios } from '../chaos/scenarios/index.js';
import { describeViolation, report, resultTable } from '../chaos/table.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'chaos-unit-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('seeded randomness', () => {
  it('gives the same choices for the same seed and label, other ones for another round', () => {
    const a = new Rng(42, 'mount-race').derive(3);
    const b = new Rng(42, 'mount-race').derive(3);
    const c = new Rng(42, 'mount-race').derive(4);
    const seq = (r: Rng) => Array.from({ length: 8 }, () => r.int(0, 1_000_000));
    expect(seq(a)).toEqual(seq(b));
    expect(seq(new Rng(42, 'mount-race').derive(3))).not.toEqual(seq(c));
  });

  it('makes Docker-like mount IDs: 64 hex digits, all different', () => {
    const rng = new Rng(1);
    const ids = Array.from({ length: 100 }, () => rng.mountId());
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set(ids).size).toBe(100);
  });
});

describe('the record journal', () => {
  it('reads back every record a writer acknowledged', async () => {
    const writer = new JournalWriter('s1', 'hostA', dir, { intervalMs: 1, max: 20, anyDir: true });
    expect(await writer.exited).toBe(0);
    expect(writer.acked).toBe(20);
    const read = await readJournal(dir, 5_000, true);
    expect(read).toEqual({ ok: true, sessions: { s1: { max: 20, count: 20, missing: [], corrupt: 0, tornBytes: 0 } } });
    expect(checkDurability('t/v', 'hostB', [{ session: 's1', host: 'hostA', acked: 20 }], read)).toEqual([]);
  });

  it('finds a damaged record, a torn tail and records that never arrived', async () => {
    const file = path.join(dir, 'journal', 's1.log');
    const text = await readFile(file, 'latin1');
    // Record 3 damaged (one byte of its payload), the last record torn in half.
    const damaged = `${text.slice(0, 2 * 128 + 60)}X${text.slice(2 * 128 + 61)}`;
    await writeFile(file, damaged, 'latin1');
    await truncate(file, 19 * 128 + 64);
    const read = await readJournal(dir, 5_000, true);
    expect(read.ok && read.sessions.s1).toEqual({ max: 19, count: 18, missing: [3], corrupt: 1, tornBytes: 64 });
    const found = checkDurability('t/v', 'hostB', [{ session: 's1', host: 'hostA', acked: 21 }], read);
    expect(found).toHaveLength(1);
    expect(found[0]!.message).toBe("hostB misses 3 of the 21 records hostA had fsync'd to t/v (session s1)");
    expect(found[0]!.evidence.missingSeqs).toEqual([3, 20, 21]);
  });

  it('counts every acknowledged record of a session the reader never found as lost', () => {
    expect(lostRecords({ session: 'gone', host: 'a', acked: 3 }, { ok: true, sessions: {} })).toEqual({ lost: 3, first: [1, 2, 3] });
  });

  it('never writes to a directory that is not a mount point (a volume that is not mounted), nor reads one', async () => {
    const writer = new JournalWriter('s2', 'hostA', dir, { max: 3 });
    expect(await writer.exited).toBe(2);
    expect(writer.acked).toBe(0);
    expect(writer.error).toMatch(/is not a mount point/);
    expect(await readJournal(dir)).toEqual({ ok: false, error: expect.stringMatching(/is not a mount point/) as unknown });
  });

  it('writes and reads a marker file', async () => {
    const file = path.join(dir, 'generation');
    expect((await journalIo(['mark', file, 'gen2', 'any-dir'], 10_000)).code).toBe(0);
    expect((await journalIo(['cat', file, 'any-dir'], 10_000)).stdout).toBe('gen2');
    expect((await journalIo(['cat', path.join(dir, 'nothing'), 'any-dir'], 10_000)).stdout).toBe('<missing>');
    expect((await journalIo(['cat', file], 10_000)).code).toBe(2);
  });
});

describe('the not-stuck check', () => {
  const base = { name: 't/v', goneAt: 1_000, boundMs: 5_000, by: 'hostB', lastError: 'mounted on hostA' };
  it('passes a takeover within the bound', () => {
    expect(checkNotStuck({ ...base, mountedAt: 5_500 })).toEqual([]);
  });
  it('reports a late takeover and one that never happened, with the last refusal', () => {
    expect(checkNotStuck({ ...base, mountedAt: 7_000 })[0]!.message).toBe('hostB mounted t/v only 6000 ms after its holder was gone (bound 5000 ms)');
    expect(checkNotStuck({ ...base, mountedAt: null })[0]!.message).toBe('hostB could not mount t/v within 5000 ms after its holder was gone: mounted on hostA');
  });
});

describe('the scenario table and the report', () => {
  it('names unique scenarios, each with a fault, a count, invariants and a round; the short run picks known ones', () => {
    expect(new Set(SCENARIOS.map((s) => s.name)).size).toBe(SCENARIOS.length);
    for (const s of SCENARIOS) {
      expect(s.fault.length).toBeGreaterThan(0);
      expect(s.count).toBeGreaterThan(0);
      expect(s.invariants.length).toBeGreaterThan(0);
    }
    expect(selectScenarios(SHORT_RUN.join(',')).map((s) => s.name)).toEqual(SHORT_RUN);
    expect(() => selectScenarios('mount-race,nope')).toThrow(/unknown scenario\(s\) nope; known: mount-race, /);
  });

  it('prints a row per scenario and every violation with its seed, round and evidence', () => {
    const results: ScenarioResult[] = [
      { name: 'mount-race', fault: 'two hosts Mount one volume at once', rounds: 1000, faults: 0, violations: [], errors: [], seconds: 540.2, notes: [] },
      {
        name: 'reboot',
        fault: 'simulated reboot',
        rounds: 5,
        faults: 5,
        violations: [{ seed: 42, scenario: 'reboot', round: 3, invariant: 'single-writer', message: 'host1 mounts /dev/loop1 at t/v0', evidence: { device: '/dev/loop1' } }],
        errors: [],
        seconds: 80,
        notes: [],
      },
    ];
    const table = resultTable(results);
    expect(table.split('\n')[0]).toMatch(/^\| scenario +\| fault +\| rounds \| faults \| violations \| errors \| +time \|$/);
    expect(table).toMatch(/\| mount-race +\| two hosts Mount one volume at once \| +1000 \| +0 \| +0 \| +0 \| +540 s \|/);
    expect(table).toMatch(/\| total +\| +\| +1005 \| +5 \| +1 \| +0 \| +620 s \|/);
    expect(describeViolation(results[1]!.violations[0]!)).toBe(
      '[seed 42, scenario reboot, round 3] single-writer: host1 mounts /dev/loop1 at t/v0\n  evidence: {\n    "device": "/dev/loop1"\n  }\n  again: make chaos SEED=42 ONLY=reboot',
    );
    expect(report(results, { seed: 42, scale: 1 })).toContain('failing scenarios:\n  reboot: single-writer ×1');
  });
});
