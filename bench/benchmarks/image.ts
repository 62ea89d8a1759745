// Image create + remove, the thin-provisioned path the master uses (createImage with the default
// features, no data written), for the native addon, the `rbd` CLI and the C program. Remove is a
// phase of its own: librbd deletes every possible data object of an image without an object map,
// so its cost grows with the image's size, not with what was written; the C program also measures
// the two ways librbd offers around that (the trash, and the object-map feature).

import { cPhases, RBD_FEATURE, runCLoop } from '../lib/c-loop.js';
import type { BenchContext, Sizes } from '../lib/context.js';
import type { Measurement, PhaseResult } from '../lib/harness.js';
import { type Contender, measure, measureInterleaved, runPhase } from '../lib/harness.js';

/** 10 GiB: a typical volume; thin, so creating it writes only the header objects. */
export const IMAGE_SIZE = 10 * 2 ** 30;

export async function imageBench(ctx: BenchContext, concurrency: number, sizes: Sizes): Promise<Measurement[]> {
  const { cluster } = ctx;
  const base = { bench: 'image', concurrency, cluster: cluster.name };
  const contenders: Contender[] = ctx.backends.map((backend) => {
    const storage = ctx.storage[backend]!;
    return {
      spec: { ...base, backend },
      round: async (r) => {
        const name = (w: number, i: number) => `${ctx.prefix}i${backend[0]}${r}-${w}-${i}`;
        const create = await runPhase('image_create', concurrency, sizes.count, (w, i) =>
          storage.createImage(cluster.pool, name(w, i), { size: IMAGE_SIZE }),
        );
        const remove = await runPhase('image_remove', concurrency, sizes.count, (w, i) => storage.removeImage(cluster.pool, name(w, i)));
        return [create, remove];
      },
    };
  });
  contenders.push({
    spec: { ...base, backend: 'c' },
    round: async (r) =>
      cPhases(await runCLoop(cluster, { mode: 'image', prefix: `${ctx.prefix}ic${r}`, workers: concurrency, count: sizes.count, size: IMAGE_SIZE })),
  });
  return measureInterleaved(contenders, sizes.warmup, sizes.rounds);
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
