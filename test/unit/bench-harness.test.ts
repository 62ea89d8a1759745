// bench/lib/harness.ts: phases run their workers side by side, warm-up rounds are dropped.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { measure, runPhase } from '../../bench/lib/harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('runPhase', () => {
  it('runs the workers concurrently and each worker sequentially', async () => {
    const calls: string[] = [];
    let running = 0;
    let most = 0;
    const phase = await runPhase('op', 4, 3, async (w, i) => {
      running++;
      most = Math.max(most, running);
      calls.push(`${w}:${i}`);
      await sleep(5);
      running--;
    });
    expect(phase.op).toBe('op');
    expect(phase.latMs).toHaveLength(12);
    expect(most).toBe(4);
    for (let w = 0; w < 4; w++) expect(calls.filter((c) => c.startsWith(`${w}:`))).toEqual([`${w}:0`, `${w}:1`, `${w}:2`]);
    // The phase's wall time spans every operation, and each operation took its 5 ms.
    expect(phase.wallMs).toBeGreaterThanOrEqual(Math.max(...phase.latMs));
    expect(Math.min(...phase.latMs)).toBeGreaterThanOrEqual(4);
  });

  it('fails when an operation fails', async () => {
    await expect(runPhase('op', 2, 2, async (w, i) => {
      if (w === 1 && i === 1) throw new Error('boom');
    })).rejects.toThrow('boom');
  });
});

describe('measure', () => {
  afterEach(() => vi.restoreAllMocks());

  it('drops warm-up rounds, keeps one Measurement per op and writes a line per round to stderr', async () => {
    const lines: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    const seen: number[] = [];
    const out = await measure({ bench: 'b', backend: 'native', concurrency: 1, cluster: 'tuned', warmup: 2, rounds: 3 }, async (r) => {
      seen.push(r);
      return [
        { op: 'a', latMs: [r], wallMs: 1 },
        { op: 'b', latMs: [r * 10], wallMs: 1 },
      ];
    });
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    expect(out.map((m) => m.op)).toEqual(['a', 'b']);
    expect(out[0]!.rounds.map((r) => r.latMs[0])).toEqual([2, 3, 4]);
    expect(out[1]).toMatchObject({ bench: 'b', backend: 'native', concurrency: 1, cluster: 'tuned' });
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatch(/b native c=1 warm-up 1\/2: a /);
    expect(lines[4]).toMatch(/round 3\/3/);
  });
});
