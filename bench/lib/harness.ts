// How every benchmark runs: a round is one or more timed phases (e.g. "create 10 snapshots on each
// image", then "remove them"); a phase runs `concurrency` workers side by side, each doing `count`
// operations one after another, and records each operation's latency and the phase's wall time.
// Warm-up rounds run first and are thrown away. A line per round goes to stderr.

import { performance } from 'node:perf_hooks';
import type { CpuSample } from './cpu.js';
import { cpuAdd, cpuDelta, cpuOfPid, cpuSample, cpuScale, zeroCpu } from './cpu.js';
import type { PhaseSample } from './stats.js';
import { median } from './stats.js';

export type Backend = 'native' | 'cli' | 'c';

export interface PhaseResult extends PhaseSample {
  op: string;
  /**
   * How many operations this phase adds to the round's count for CPU per operation (default: its
   * samples). The mount path counts its whole cycle as the one operation, its steps as none.
   */
  cpuOps?: number;
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
  /**
   * CPU time per operation of the measured rounds, by party (see cpu.ts): all phases of a round
   * together (e.g. snapshot create and remove), divided by the round's operations.
   */
  cpuMsPerOp?: CpuSample;
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

/** One configuration and how to run one round of it (index counts warm-ups too, for unique names). */
export interface Contender {
  spec: Omit<RoundSpec, 'warmup' | 'rounds'>;
  round: (index: number) => Promise<PhaseResult[]>;
}

/**
 * Runs warm-up and measured rounds of several configurations (typically native, CLI and C for one
 * benchmark) interleaved: round 1 of each, then round 2 of each, ... so that a machine whose load
 * changes during the run (other builds, Ceph's own background work) affects all of them alike.
 * Returns one Measurement per configuration and op.
 */
export async function measureInterleaved(contenders: readonly Contender[], warmup: number, rounds: number): Promise<Measurement[]> {
  const byKey = new Map<string, Measurement>();
  const cpu = contenders.map(() => ({ total: zeroCpu(), ops: 0, keys: new Set<string>() }));
  for (let i = 0; i < warmup + rounds; i++) {
    const warm = i < warmup;
    for (const [n, { spec, round }] of contenders.entries()) {
      const label = `${spec.bench} ${spec.backend} c=${spec.concurrency}${spec.cluster === 'tuned' ? '' : ` [${spec.cluster}]`}`;
      const before = cpuSample();
      const phases = await round(i);
      const used = cpuDelta(before, cpuSample());
      progress(`${label} ${warm ? `warm-up ${i + 1}/${warmup}` : `round ${i - warmup + 1}/${rounds}`}: ${describe(phases)}`);
      if (warm) continue;
      cpu[n]!.total = cpuAdd(cpu[n]!.total, used);
      cpu[n]!.ops += phases.reduce((sum, p) => sum + (p.cpuOps ?? p.latMs.length), 0);
      for (const p of phases) {
        const key = `${spec.bench}\u0000${spec.backend}\u0000${spec.concurrency}\u0000${spec.cluster}\u0000${p.op}`;
        let m = byKey.get(key);
        if (!m) {
          m = { bench: spec.bench, op: p.op, backend: spec.backend, concurrency: spec.concurrency, cluster: spec.cluster, rounds: [], ...(spec.notes ? { notes: spec.notes } : {}) };
          byKey.set(key, m);
        }
        cpu[n]!.keys.add(key);
        m.rounds.push({ latMs: p.latMs, wallMs: p.wallMs });
      }
    }
  }
  for (const c of cpu) {
    if (c.ops === 0) continue;
    const perOp = cpuScale(c.total, 1 / c.ops);
    for (const key of c.keys) byKey.get(key)!.cpuMsPerOp = perOp;
  }
  return [...byKey.values()];
}

/** Warm-up and measured rounds of one configuration (measureInterleaved with one contender). */
export function measure(spec: RoundSpec, round: (index: number) => Promise<PhaseResult[]>): Promise<Measurement[]> {
  const { warmup, rounds, ...rest } = spec;
  return measureInterleaved([{ spec: rest, round }], warmup, rounds);
}

/** One side of a paired measurement: runs one operation, resolving with its latency in ms. */
export interface PairedSide {
  spec: Omit<RoundSpec, 'warmup' | 'rounds'>;
  /** Resolves with the latency it measured itself, or nothing (then the harness times the call). */
  run: (op: string, round: number, i: number) => Promise<number | void>;
  /** A process of its own that does this side's work (its CPU is this side's "child processes"). */
  pid?: () => number;
}

/**
 * Two configurations (the addon and the C program in serve mode) measured operation by operation
 * in turns, the first of each pair alternating, so that both see the same machine load at the same
 * moment: on a shared machine the load moves more between rounds than the difference being
 * measured. A round runs each of `ops` in turn (e.g. create then remove), `count` times each. The
 * phase's wall time is the sum of its own operations' latencies (one at a time: ops/s = 1000 /
 * mean latency). CPU per operation: the bench process for a side without a process of its own, the
 * side's process otherwise; ceph-mon and ceph-osd as they moved during that side's operations.
 */
export async function measurePaired(
  sides: readonly [PairedSide, PairedSide],
  ops: readonly string[],
  warmup: number,
  rounds: number,
  count: number,
): Promise<Measurement[]> {
  const out = sides.map(() => new Map<string, Measurement>());
  const cpu = sides.map(() => zeroCpu());
  const opsDone = sides.map(() => 0);
  for (let r = 0; r < warmup + rounds; r++) {
    const warm = r < warmup;
    const lat = sides.map(() => new Map<string, number[]>(ops.map((op) => [op, []])));
    for (const op of ops) {
      for (let i = 0; i < count; i++) {
        const order = (r * count + i) % 2 === 0 ? [0, 1] : [1, 0];
        for (const n of order) {
          const side = sides[n]!;
          const before = cpuSample();
          const ownBefore = side.pid ? cpuOfPid(side.pid()) : 0;
          const t = performance.now();
          const measured = await side.run(op, r, i);
          const ms = typeof measured === 'number' ? measured : performance.now() - t;
          const used = cpuDelta(before, cpuSample());
          if (side.pid) {
            used.children = cpuOfPid(side.pid()) - ownBefore;
            used.self = 0; // the bench only drove it through a pipe
          } else {
            used.children = 0;
          }
          lat[n]!.get(op)!.push(ms);
          if (!warm) {
            cpu[n] = cpuAdd(cpu[n]!, used);
            opsDone[n]!++;
          }
        }
      }
    }
    const label = (n: number) => `${sides[n]!.spec.bench} ${sides[n]!.spec.backend} c=${sides[n]!.spec.concurrency} (paired)`;
    for (const [n, side] of sides.entries()) {
      const phases = ops.map((op) => ({ op, latMs: lat[n]!.get(op)!, wallMs: lat[n]!.get(op)!.reduce((a, b) => a + b, 0) }));
      progress(`${label(n)} ${warm ? `warm-up ${r + 1}/${warmup}` : `round ${r - warmup + 1}/${rounds}`}: ${describe(phases)}`);
      if (warm) continue;
      for (const p of phases) {
        let m = out[n]!.get(p.op);
        if (!m) {
          const { spec } = side;
          m = { bench: spec.bench, op: p.op, backend: spec.backend, concurrency: spec.concurrency, cluster: spec.cluster, rounds: [], notes: { paired: true, ...spec.notes } };
          out[n]!.set(p.op, m);
        }
        m.rounds.push({ latMs: p.latMs, wallMs: p.wallMs });
      }
    }
  }
  return out.flatMap((byOp, n) => [...byOp.values()].map((m) => ({ ...m, ...(opsDone[n]! > 0 ? { cpuMsPerOp: cpuScale(cpu[n]!, 1 / opsDone[n]!) } : {}) })));
}
