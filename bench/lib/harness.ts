// How every benchmark runs: a round is one or more timed phases (e.g. "create 10 snapshots on each
// image", then "remove them"); a phase runs `concurrency` workers side by side, each doing `count`
// operations one after another, and records each operation's latency and the phase's wall time.
// Warm-up rounds run first and are thrown away. A line per round goes to stderr.

import { performance } from 'node:perf_hooks';
import type { PhaseSample } from './stats.js';
import { median } from './stats.js';

export type Backend = 'native' | 'cli' | 'c';

export interface PhaseResult extends PhaseSample {
  op: string;
}

/** One operation kind of one benchmark configuration, over all measured rounds. */
export interface Measurement {
  bench: string;
  op: string;
  backend: Backend;
  concurrency: number;
  /** The cluster it ran on ("tuned" or "default-paxos"). */
  cluster: string;
  rounds: PhaseSample[];
  /** Extra facts about how it ran (e.g. the C program's keep-open mode). */
  notes?: Record<string, string | number | boolean>;
}

export interface RoundSpec {
  bench: string;
  backend: Backend;
  concurrency: number;
  cluster: string;
  warmup: number;
  rounds: number;
  notes?: Record<string, string | number | boolean>;
}

/**
 * Runs `concurrency` workers, each calling `op(worker, i)` for i = 0..count-1 in sequence, and
 * returns every call's latency and the wall time from the first start to the last end.
 */
export async function runPhase(
  op: string,
  concurrency: number,
  count: number,
  fn: (worker: number, i: number) => Promise<void>,
): Promise<PhaseResult> {
  const latMs: number[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      for (let i = 0; i < count; i++) {
        const t = performance.now();
        await fn(w, i);
        latMs.push(performance.now() - t);
      }
    }),
  );
  return { op, latMs, wallMs: performance.now() - started };
}

const runStarted = performance.now();

/** A progress line on stderr, prefixed with the time since the run began. */
export function progress(line: string): void {
  const s = ((performance.now() - runStarted) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[${s}s] ${line}\n`);
}

function describe(phases: readonly PhaseResult[]): string {
  return phases
    .map((p) => `${p.op} ${(median(p.latMs) || 0).toFixed(1)} ms median, ${((p.latMs.length * 1000) / p.wallMs).toFixed(1)}/s`)
    .join(' | ');
}

/**
 * Runs warm-up and measured rounds of one configuration; `round(index)` performs one round (index
 * counts warm-ups too, so names can be unique) and returns its phases. One Measurement per op.
 */
export async function measure(spec: RoundSpec, round: (index: number) => Promise<PhaseResult[]>): Promise<Measurement[]> {
  const byOp = new Map<string, PhaseSample[]>();
  const label = `${spec.bench} ${spec.backend} c=${spec.concurrency}${spec.cluster === 'tuned' ? '' : ` [${spec.cluster}]`}`;
  const total = spec.warmup + spec.rounds;
  for (let i = 0; i < total; i++) {
    const warm = i < spec.warmup;
    const phases = await round(i);
    progress(`${label} ${warm ? `warm-up ${i + 1}/${spec.warmup}` : `round ${i - spec.warmup + 1}/${spec.rounds}`}: ${describe(phases)}`);
    if (warm) continue;
    for (const p of phases) {
      const list = byOp.get(p.op) ?? [];
      list.push({ latMs: p.latMs, wallMs: p.wallMs });
      byOp.set(p.op, list);
    }
  }
  return [...byOp].map(([op, rounds]) => ({
    bench: spec.bench,
    op,
    backend: spec.backend,
    concurrency: spec.concurrency,
    cluster: spec.cluster,
    rounds,
    ...(spec.notes ? { notes: spec.notes } : {}),
  }));
}
