// The read path: image info (what `volcli volume get` and the plugin's checks need) and the pool
// listing, for the native addon, the `rbd` CLI and the C program; and, to show where the CLI's time
// goes, how long starting an `rbd` process takes when it does nothing else.

import { cPhases, runCLoop } from '../lib/c-loop.js';
import { sh } from '../lib/cluster.js';
import type { BenchContext, Sizes } from '../lib/context.js';
import type { Measurement } from '../lib/harness.js';
import { type Contender, measureInterleaved, runPhase } from '../lib/harness.js';
import { snapImage, snapImagePrefix } from './snapshot.js';

export async function readBench(ctx: BenchContext, concurrency: number, sizes: Sizes): Promise<Measurement[]> {
  const { cluster } = ctx;
  const base = { bench: 'read', concurrency, cluster: cluster.name };
  const contenders: Contender[] = ctx.backends.map((backend) => {
    const storage = ctx.storage[backend]!;
    return {
      spec: { ...base, backend },
      round: async () => {
        const info = await runPhase('image_info', concurrency, sizes.count, async (w) => {
          await storage.imageInfo(cluster.pool, snapImage(ctx, w));
        });
        const list = await runPhase('image_list', concurrency, sizes.count, async () => {
          await storage.listImages(cluster.pool);
        });
        return [info, list];
      },
    };
  });
  if (ctx.backends.includes('cli')) {
    // What every CLI call pays before it talks to Ceph: starting `rbd` (loading librbd, librados
    // and their dependencies, building a CephContext). No connection is made.
    contenders.push({
      spec: { ...base, backend: 'cli', notes: { command: 'rbd --version' } },
      round: async () => [
        await runPhase('cli_process_start', concurrency, sizes.count, async () => {
          await sh('rbd', ['--version']);
        }),
      ],
    });
  }
  contenders.push({
    spec: { ...base, backend: 'c' },
    round: async () => cPhases(await runCLoop(cluster, { mode: 'read', prefix: snapImagePrefix(ctx), workers: concurrency, count: sizes.count })),
  });
  return measureInterleaved(contenders, sizes.warmup, sizes.rounds);
}
