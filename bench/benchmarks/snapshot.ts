// Snapshot create + remove on existing images, at concurrency 1 and 16 (worker w snapshots image
// w, so 16 workers spread over 16 images), for the native addon, the `rbd` CLI (16 processes at
// once at concurrency 16) and the C program.

import { cPhases, runCLoop } from '../lib/c-loop.js';
import type { Cluster } from '../lib/cluster.js';
import { rbd } from '../lib/cluster.js';
import type { BenchContext, Sizes } from '../lib/context.js';
import type { Measurement } from '../lib/harness.js';
import { measure, runPhase } from '../lib/harness.js';

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

export interface SnapshotPlan {
  concurrency: number;
  sizes: Sizes;
}

export async function snapshotBench(ctx: BenchContext, plans: readonly SnapshotPlan[]): Promise<Measurement[]> {
  const { cluster } = ctx;
  const out: Measurement[] = [];
  for (const { concurrency, sizes } of plans) {
    const base = { bench: 'snapshot', concurrency, cluster: cluster.name, ...sizes };
    for (const backend of ctx.backends) {
      const storage = ctx.storage[backend]!;
      out.push(
        ...(await measure({ ...base, backend }, async (r) => {
          const snap = (w: number, i: number) => `${ctx.prefix}s${r}-${w}-${i}`;
          const create = await runPhase('snap_create', concurrency, sizes.count, (w, i) =>
            storage.createSnapshot(cluster.pool, snapImage(ctx, w), snap(w, i)),
          );
          const remove = await runPhase('snap_remove', concurrency, sizes.count, (w, i) =>
            storage.removeSnapshot(cluster.pool, snapImage(ctx, w), snap(w, i)),
          );
          return [create, remove];
        })),
      );
    }
    out.push(
      ...(await measure({ ...base, backend: 'c', notes: { open_per_op: true } }, async () =>
        cPhases(await runCLoop(cluster, { mode: 'snap', prefix: snapImagePrefix(ctx), workers: concurrency, count: sizes.count })),
      )),
    );
  }
  return out;
}
