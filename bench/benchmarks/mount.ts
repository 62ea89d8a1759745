// The mount path as volplugin runs it, step by step: create the image, map it (rbd-fuse + a loop
// device: the mapper these machines have; krbd and rbd-nbd cannot load here), probe it (what a
// first Mount reads before it formats), mkfs, mount, then unmount, unmap and remove. The map and
// unmap steps also get a row for each of their own parts (`map.rbd-fuse`, `map.loop`, ...: what the
// mapper records into volplugin's per-step times, src/common/steps.ts). Each step is its own row, and the whole cycle one more, for both
// backends (the mapper's own tools are the same for both; the backend does create, the watcher
// listing that finds rbd-fuse's client address, and remove).

import { rm } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { FuseMapper, checkFuseAvailable } from '../../src/mapper/fuse.js';
import { formatDevice, mountDevice, probeDevice, unmountAll } from '../../src/mapper/fs.js';
import { StepTimes } from '../../src/common/steps.js';
import { benchRoot } from '../lib/cluster.js';
import type { BenchContext, Sizes } from '../lib/context.js';
import type { Measurement, PhaseResult } from '../lib/harness.js';
import { type Contender, measureInterleaved } from '../lib/harness.js';

/** 1 GiB: mkfs.ext4 time depends on the size (inode tables), so it is fixed here. */
const MOUNT_IMAGE_SIZE = 2 ** 30;
const MKFS = 'mkfs.ext4 -q -m0 -E lazy_journal_init=1 %';

export const mountSteps = ['create', 'map', 'probe', 'mkfs', 'mount', 'unmount', 'unmap', 'remove'] as const;

export async function mountBench(ctx: BenchContext, sizes: Sizes, missing: string[]): Promise<Measurement[]> {
  try {
    await checkFuseAvailable();
  } catch (err) {
    missing.push(`mount path: ${(err as Error).message}`);
    return [];
  }
  const { cluster } = ctx;
  const root = path.join(benchRoot, 'fuse');
  const mnt = path.join(benchRoot, 'mnt');
  const contenders: Contender[] = ctx.backends.map((backend) => {
    const storage = ctx.storage[backend]!;
    const mapper = new FuseMapper({ root, ceph: { confPath: cluster.confPath, clientId: 'admin' }, watchers: storage });
    return {
      spec: { bench: 'mount', backend, concurrency: 1, cluster: cluster.name },
      round: async (r: number) => {
        const phases: PhaseResult[] = [];
        const image = `${ctx.prefix}m${backend[0]}${r}`;
        const target = { tenant: 'bench', volume: image, pool: cluster.pool, image };
        const dir = path.join(mnt, image);
        const cycleStart = performance.now();
        const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
          const t = performance.now();
          const value = await fn();
          const ms = performance.now() - t;
          phases.push({ op: `mount_${name}`, latMs: [ms], wallMs: ms, cpuOps: 0 });
          return value;
        };
        await step('create', () => storage.createImage(cluster.pool, image, { size: MOUNT_IMAGE_SIZE }));
        const parts = new StepTimes();
        const mapping = await step('map', () => mapper.map(target, { steps: parts }));
        try {
          await step('probe', () => probeDevice(mapping.device!));
          await step('mkfs', () => formatDevice(MKFS, mapping.device!));
          await step('mount', () => mountDevice(mapping.device!, dir));
          await step('unmount', () => unmountAll(dir));
        } finally {
          await step('unmap', () => mapper.unmap(mapping, { steps: parts }));
        }
        for (const [name, ms] of Object.entries(parts.ms)) phases.push({ op: `mount_${name}`, latMs: [ms], wallMs: ms, cpuOps: 0 });
        await step('remove', () => storage.removeImage(cluster.pool, image));
        const total = performance.now() - cycleStart;
        phases.push({ op: 'mount_cycle', latMs: [total], wallMs: total });
        await rm(dir, { recursive: true, force: true });
        return phases;
      },
    };
  });
  return measureInterleaved(contenders, sizes.warmup, sizes.rounds);
}
