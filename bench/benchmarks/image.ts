// Image create + remove, the thin-provisioned path the master uses (createImage with the default
// features, no data written), for the native addon, the `rbd` CLI and the C program. Remove is a
// phase of its own: librbd deletes every possible data object of an image without an object map,
// so its cost grows with the image's size, not with what was written; the C program also measures
// the two ways librbd offers around that (the trash, and the object-map feature).
//
// The addon and the C program are compared call by call (measurePaired: the C program in serve
// mode, one call each in turn): a create takes about 3 ms, and on a shared machine the load moves
// more than that between two rounds a few seconds apart. The CLI, 10× slower, runs in rounds.

import { CServer, cPhases, RBD_FEATURE, runCLoop } from '../lib/c-loop.js';
import type { BenchContext, Sizes } from '../lib/context.js';
import type { Measurement, PhaseResult } from '../lib/harness.js';
import { measure, measurePaired, runPhase } from '../lib/harness.js';

/** 10 GiB: a typical volume; thin, so creating it writes only the header objects. */
export const IMAGE_SIZE = 10 * 2 ** 30;

export async function imageBench(ctx: BenchContext, concurrency: number, sizes: Sizes): Promise<Measurement[]> {
  const { cluster } = ctx;
  const base = { bench: 'image', concurrency, cluster: cluster.name };
  const out: Measurement[] = [];
  const cli = ctx.storage.cli;
  if (cli) {
    out.push(
      ...(await measure({ ...base, backend: 'cli', ...sizes }, async (r) => {
        const name = (w: number, i: number) => `${ctx.prefix}ic${r}-${w}-${i}`;
        const create = await runPhase('image_create', concurrency, sizes.count, (w, i) => cli.createImage(cluster.pool, name(w, i), { size: IMAGE_SIZE }));
        const remove = await runPhase('image_remove', concurrency, sizes.count, (w, i) => cli.removeImage(cluster.pool, name(w, i)));
        return [create, remove];
      })),
    );
  }
  const native = ctx.storage.native;
  if (!native) return out;
  const server = await CServer.start(cluster, { size: IMAGE_SIZE });
  try {
    const name = (who: string, r: number, i: number) => `${ctx.prefix}ip${who}${r}-${i}`;
    out.push(
      ...(await measurePaired(
        [
          {
            spec: { ...base, backend: 'native' },
            run: async (op, r, i) => {
              if (op === 'image_create') await native.createImage(cluster.pool, name('n', r, i), { size: IMAGE_SIZE });
              else await native.removeImage(cluster.pool, name('n', r, i));
            },
          },
          { spec: { ...base, backend: 'c' }, run: (op, r, i) => server.run(op, name('c', r, i)), pid: () => server.pid },
        ],
        ['image_create', 'image_remove'],
        sizes.warmup,
        sizes.rounds,
        sizes.count,
      )),
    );
  } finally {
    await server.close();
  }
  return out;
}

/**
 * What librbd allows for a fast user-visible remove, measured with the C program: moving the image
 * to the trash (one metadata operation; the data objects are deleted later by `rbd trash purge` or
 * a background job), and creating images with object-map + fast-diff (remove then deletes only
 * the objects that exist).
 */
export async function removeVariantsBench(ctx: BenchContext, sizes: Sizes): Promise<Measurement[]> {
  const { cluster } = ctx;
  const base = { bench: 'image-remove', concurrency: 1, cluster: cluster.name, backend: 'c' as const, ...sizes };
  const trash = await measure({ ...base, notes: { remove: 'rbd_trash_move, then rbd_trash_remove' } }, async (r) =>
    cPhases(await runCLoop(cluster, { mode: 'image', prefix: `${ctx.prefix}it${r}`, workers: 1, count: sizes.count, size: IMAGE_SIZE, remove: 'trash' }), {
      image_create: 'image_create_trash_run',
      image_remove: 'image_remove_trash_move',
      trash_purge: 'image_trash_purge',
    }).filter((p: PhaseResult) => p.op !== 'image_create_trash_run'),
  );
  const objectMap = await measure({ ...base, notes: { features: 'layering,exclusive-lock,object-map,fast-diff' } }, async (r) =>
    cPhases(
      await runCLoop(cluster, {
        mode: 'image',
        prefix: `${ctx.prefix}io${r}`,
        workers: 1,
        count: sizes.count,
        size: IMAGE_SIZE,
        features: RBD_FEATURE.layering | RBD_FEATURE.exclusiveLock | RBD_FEATURE.objectMap | RBD_FEATURE.fastDiff,
      }),
      { image_create: 'image_create_object_map', image_remove: 'image_remove_object_map' },
    ),
  );
  return [...trash, ...objectMap];
}
