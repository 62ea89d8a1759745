// Snapshot create + remove on existing images, at concurrency 1 and 16 (worker w snapshots image
// w, so 16 workers spread over 16 images), for the native addon, the `rbd` CLI (16 processes at
// once at concurrency 16) and the C program.

import { stat } from 'node:fs/promises';
import path from 'node:path';
import { cPhases, runCLoop } from '../lib/c-loop.js';
import type { Cluster } from '../lib/cluster.js';
import { rbd, repoRoot, sh } from '../lib/cluster.js';
import type { BenchContext, Sizes } from '../lib/context.js';
import type { Measurement, PhaseResult } from '../lib/harness.js';
import { type Contender, measureInterleaved, runPhase } from '../lib/harness.js';

export const SNAP_IMAGES = 16;
const IMAGE_SIZE = 1 << 30;

export const snapImagePrefix = (ctx: Pick<BenchContext, 'prefix'>) => `${ctx.prefix}snap`;
export const snapImage = (ctx: Pick<BenchContext, 'prefix'>, w: number) => `${snapImagePrefix(ctx)}-${w}`;

/** The images the snapshot and read benchmarks work on (made with the rbd CLI, not timed). */
export async function createSnapImages(ctx: Pick<BenchContext, 'prefix'>, cluster: Cluster): Promise<void> {
  for (let w = 0; w < SNAP_IMAGES; w++) {
    await rbd(cluster, ['create', '--size', `${IMAGE_SIZE >> 20}M`, '--image-feature', 'layering,exclusive-lock', `${cluster.pool}/${snapImage(ctx, w)}`]);
  }
}

/** One snapshot round of the native backend in a child process with UV_THREADPOOL_SIZE=`uvThreads`. */
export async function nativeChildRound(
  ctx: BenchContext,
  concurrency: number,
  count: number,
  prefix: string,
  uvThreads: number,
): Promise<{ phases: PhaseResult[]; threads: number; maxPending: number }> {
  const args = {
    confPath: ctx.cluster.confPath,
    pool: ctx.cluster.pool,
    images: Array.from({ length: concurrency }, (_, w) => snapImage(ctx, w)),
    count,
    prefix,
  };
  const out = await sh(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'bench', 'snapshot-child.ts'), JSON.stringify(args)], {
    env: { ...process.env, UV_THREADPOOL_SIZE: String(uvThreads) },
    timeoutMs: 600_000,
  });
  return JSON.parse(out) as { phases: PhaseResult[]; threads: number; maxPending: number };
}

export interface SnapshotPlan {
  concurrency: number;
  sizes: Sizes;
}

export async function snapshotBench(ctx: BenchContext, plans: readonly SnapshotPlan[]): Promise<Measurement[]> {
  const { cluster } = ctx;
  const out: Measurement[] = [];
  for (const { concurrency, sizes } of plans) {
    const base = { bench: 'snapshot', concurrency, cluster: cluster.name };
    const contenders: Contender[] = ctx.backends.map((backend) => {
      const storage = ctx.storage[backend]!;
      return {
        spec: { ...base, backend, ...(backend === 'native' ? { notes: { uv_threadpool_size: Number(process.env.UV_THREADPOOL_SIZE ?? 4) } } : {}) },
        round: async (r) => {
          const snap = (w: number, i: number) => `${ctx.prefix}s${backend[0]}${r}-${w}-${i}`;
          const create = await runPhase('snap_create', concurrency, sizes.count, (w, i) =>
            storage.createSnapshot(cluster.pool, snapImage(ctx, w), snap(w, i)),
          );
          const remove = await runPhase('snap_remove', concurrency, sizes.count, (w, i) =>
            storage.removeSnapshot(cluster.pool, snapImage(ctx, w), snap(w, i)),
          );
          return [create, remove];
        },
      };
    });
    if (concurrency > 1 && ctx.backends.includes('native')) {
      // The same native backend with a libuv pool as large as the concurrency (see the docs: the
      // default pool of 4 threads caps how many librbd calls run at once).
      contenders.push({
        spec: { ...base, backend: 'native', notes: { uv_threadpool_size: concurrency } },
        round: async (r) => {
          const out = await nativeChildRound(ctx, concurrency, sizes.count, `${ctx.prefix}su${r}-`, concurrency);
          return out.phases.map((p) => ({ ...p, op: `${p.op}_uv${concurrency}` }));
        },
      });
    }
    contenders.push({
      spec: { ...base, backend: 'c', notes: { open_per_op: true } },
      round: async () => cPhases(await runCLoop(cluster, { mode: 'snap', prefix: snapImagePrefix(ctx), workers: concurrency, count: sizes.count })),
    });
    if (concurrency === 1 && cluster.name === 'tuned') {
      // The addon's own per-call path without Ceph: a call queued to the libuv pool and its
      // completion back on the JS thread (fs.stat of a cached file is microseconds of work). Under
      // CPU contention these two thread hand-offs are where an addon call loses time to the C loop.
      contenders.push({
        spec: { ...base, backend: 'native', notes: { probe: 'fs.promises.stat' } },
        round: async () => [
          await runPhase('uv_round_trip', 1, 100, async () => {
            await stat(cluster.confPath);
          }),
        ],
      });
      // What an open image handle kept across calls would save: rbd_open registers a watch and
      // reads the header, rbd_close releases the exclusive lock snap_create took and unwatches.
      contenders.push({
        spec: { ...base, backend: 'c', notes: { open_per_op: false } },
        round: async () =>
          cPhases(await runCLoop(cluster, { mode: 'snap', prefix: snapImagePrefix(ctx), workers: concurrency, count: sizes.count, keepOpen: true }), {
            snap_create: 'snap_create_kept_open',
            snap_remove: 'snap_remove_kept_open',
          }),
      });
    }
    out.push(...(await measureInterleaved(contenders, sizes.warmup, sizes.rounds)));
  }
  return out;
}
