// The C floor: bench/rbd_loop.c, compiled once per run into bench/results/ and run once per round
// (its rados connection is set up before the timed phases, like the Node backends' is).

import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
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
  /** Sleep before each phase while the workers wait at the start line (untimed). */
  pauseMs?: number;
}

export async function runCLoop(cluster: Cluster, a: CLoopArgs): Promise<CLoopOutput> {
  const args = ['--conf', cluster.confPath, '--pool', cluster.pool, '--mode', a.mode, '--prefix', a.prefix];
  args.push('--workers', String(a.workers), '--count', String(a.count));
  if (a.size !== undefined) args.push('--size', String(a.size));
  if (a.features !== undefined) args.push('--features', String(a.features));
  if (a.remove) args.push('--remove', a.remove);
  if (a.keepOpen) args.push('--keep-open');
  if (a.pauseMs) args.push('--pause-ms', String(Math.round(a.pauseMs)));
  return JSON.parse(await sh(binary, args, { timeoutMs: 600_000 })) as CLoopOutput;
}

/** The C program's phases in the harness's shape. */
export function cPhases(out: CLoopOutput, rename: Record<string, string> = {}): PhaseResult[] {
  return out.phases.map((p) => ({ op: rename[p.op] ?? p.op, latMs: p.lat_ms, wallMs: p.wall_ms }));
}

/**
 * The C program in serve mode: one operation per call, answered when done, so that a benchmark
 * can alternate the C program's operations with the addon's one by one (both then see the same
 * machine load, which on a shared machine moves far more than the difference being measured).
 */
export class CServer {
  private readonly lines: AsyncIterator<string>;
  private readonly child;
  private stderr = '';

  private constructor(cluster: Cluster, options: { size?: number; features?: number }) {
    const args = ['--conf', cluster.confPath, '--pool', cluster.pool, '--mode', 'serve'];
    if (options.size !== undefined) args.push('--size', String(options.size));
    if (options.features !== undefined) args.push('--features', String(options.features));
    this.child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.lines = readline.createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  static async start(cluster: Cluster, options: { size?: number; features?: number } = {}): Promise<CServer> {
    const server = new CServer(cluster, options);
    const first = await server.lines.next();
    if (first.done || first.value !== 'ready') throw new Error(`rbd_loop --mode serve did not start: ${server.stderr.trim()}`);
    return server;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Runs one operation ("image_create NAME", ...); resolves with its wall time in ms. */
  async run(...words: string[]): Promise<number> {
    this.child.stdin.write(`${words.join(' ')}\n`);
    const { value, done } = await this.lines.next();
    if (done) throw new Error(`rbd_loop --mode serve ended: ${this.stderr.trim()}`);
    const [status, a, b] = value.split(' ');
    if (status !== 'ok') throw new Error(`rbd_loop --mode serve: ${words.join(' ')}: ${a} failed with errno ${b}`);
    return Number(a);
  }

  async close(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin.end();
    await exited;
  }
}

export async function librbdVersion(): Promise<string> {
  return (JSON.parse(await sh(binary, ['--version'])) as { librbd: string }).librbd;
}
