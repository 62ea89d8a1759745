// The C floor: bench/rbd_loop.c, compiled once per run into bench/results/ and run once per round
// (its rados connection is set up before the timed phases, like the Node backends' is).

import { statSync } from 'node:fs';
import path from 'node:path';
import type { Cluster } from './cluster.js';
import { repoRoot, sh } from './cluster.js';
import type { PhaseResult } from './harness.js';

const source = path.join(repoRoot, 'bench', 'rbd_loop.c');
export const binary = path.join(repoRoot, 'bench', 'results', 'rbd_loop');

/** Compiles rbd_loop when the binary is missing or older than its source. */
export async function buildCLoop(): Promise<void> {
  const stale = (() => {
    try {
      return statSync(binary).mtimeMs < statSync(source).mtimeMs;
    } catch {
      return true;
    }
  })();
  if (!stale) return;
  await sh('cc', ['-O2', '-Wall', '-o', binary, source, '-lrbd', '-lrados', '-lpthread']);
}

/** RBD_FEATURE_* bits from rbd/features.h. */
export const RBD_FEATURE = { layering: 1, exclusiveLock: 4, objectMap: 8, fastDiff: 16 } as const;

export interface CLoopOutput {
  librbd: string;
  connect_ms: number;
  phases: Array<{ op: string; workers: number; ops: number; wall_ms: number; lat_ms: number[] }>;
}

export interface CLoopArgs {
  mode: 'snap' | 'image' | 'read';
  prefix: string;
  workers: number;
  count: number;
  size?: number;
  /** librbd feature bits (RBD_FEATURE_*); the C program's default is layering | exclusive-lock. */
  features?: number;
  remove?: 'rbd_remove' | 'trash';
  keepOpen?: boolean;
}

export async function runCLoop(cluster: Cluster, a: CLoopArgs): Promise<CLoopOutput> {
  const args = ['--conf', cluster.confPath, '--pool', cluster.pool, '--mode', a.mode, '--prefix', a.prefix];
  args.push('--workers', String(a.workers), '--count', String(a.count));
  if (a.size !== undefined) args.push('--size', String(a.size));
  if (a.features !== undefined) args.push('--features', String(a.features));
  if (a.remove) args.push('--remove', a.remove);
  if (a.keepOpen) args.push('--keep-open');
  return JSON.parse(await sh(binary, args, { timeoutMs: 600_000 })) as CLoopOutput;
}

/** The C program's phases in the harness's shape. */
export function cPhases(out: CLoopOutput, rename: Record<string, string> = {}): PhaseResult[] {
  return out.phases.map((p) => ({ op: rename[p.op] ?? p.op, latMs: p.lat_ms, wallMs: p.wall_ms }));
}

export async function librbdVersion(): Promise<string> {
  return (JSON.parse(await sh(binary, ['--version'])) as { librbd: string }).librbd;
}
