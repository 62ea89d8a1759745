// The read path: image info (what `volcli volume get` and the plugin's checks need) and the pool
// listing, for the native addon, the `rbd` CLI and the C program.

import { cPhases, runCLoop } from '../lib/c-loop.js';
import type { BenchContext, Sizes } from '../lib/context.js';
import type { Measurement } from '../lib/harness.js';
import { measure, runPhase } from '../lib/harness.js';
import { snapImage, snapImagePrefix } from './snapshot.js';

export async function readBench(ctx: BenchContext, concurrency: number, sizes: Sizes): Promise<Measurement[]> {
  const { cluster } = ctx;
  const base = { bench: 'read', concurrency, cluster: cluster.name, ...sizes };
  const out: Measurement[] = [];
  for (const backend of ctx.backends) {
    const storage = ctx.storage[backend]!;
    out.push(
      ...(await measure({ ...base, backend }, async () => {
        const info = await runPhase('image_info', concurrency, sizes.count, async (w) => {
          await storage.imageInfo(cluster.pool, snapImage(ctx, w));
        });
        const list = await runPhase('image_list', concurrency, sizes.count, async () => {
          await storage.listImages(cluster.pool);
        });
        return [info, list];
      })),
    );
  }
  out.push(
    ...(await measure({ ...base, backend: 'c' }, async () =>
      cPhases(await runCLoop(cluster, { mode: 'read', prefix: snapImagePrefix(ctx), workers: concurrency, count: sizes.count })),
    )),
  );
  return out;
}
