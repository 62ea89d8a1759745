// Snapshot create + remove on existing images (worker w snapshots image w, so N workers spread over
// N images), for the native addon, the `rbd` CLI (N processes at once) and the C program (N
// threads on one connection). The addon runs in the bench process on its own threads (a pool of
// up to 256 per connection, native/pool.h), as the daemons do.
//
// On a cluster with Ceph's default paxos interval (1 s) a snapshot waits for a monitor commit, and
// a commit that follows a quiet second goes out at once while the next one waits out the interval:
// each phase therefore starts after a pause of one interval (plus a margin) with every worker
// waiting at the start line, for every program alike (the C program sleeps with --pause-ms), so
// that no contender inherits a commit the previous one just made.

import { setTimeout as sleep } from 'node:timers/promises';
import type * as Addon from '../../native/volplugin_rbd.js';
import { loadAddon } from '../../src/storage/native.js';
import { cPhases, runCLoop } from '../lib/c-loop.js';
import type { Cluster } from '../lib/cluster.js';
import { rbd } from '../lib/cluster.js';
import type { BenchContext, Sizes } from '../lib/context.js';
import type { Measurement } from '../lib/harness.js';
import { type Contender, measureInterleaved, runPhase } from '../lib/harness.js';

const IMAGE_SIZE = 1 << 30;

export const snapImagePrefix = (ctx: Pick<BenchContext, 'prefix'>) => `${ctx.prefix}snap`;
export const snapImage = (ctx: Pick<BenchContext, 'prefix'>, w: number) => `${snapImagePrefix(ctx)}-${w}`;

/** The images the snapshot and read benchmarks work on (not timed): the addon makes them 16 at a time, else the CLI. */
export async function createSnapImages(ctx: Pick<BenchContext, 'prefix' | 'storage'>, cluster: Cluster, count: number): Promise<void> {
  const native = ctx.storage.native;
  for (let w = 0; w < count; w += 16) {
    const batch = Array.from({ length: Math.min(16, count - w) }, (_, k) => w + k);
    await Promise.all(
      batch.map((n) =>
        native
          ? native.createImage(cluster.pool, snapImage(ctx, n), { size: IMAGE_SIZE, features: ['layering', 'exclusive-lock'] })
          : rbd(cluster, ['create', '--size', `${IMAGE_SIZE >> 20}M`, '--image-feature', 'layering,exclusive-lock', `${cluster.pool}/${snapImage(ctx, n)}`]),
      ),
    );
  }
}

export interface SnapshotPlan {
  concurrency: number;
  sizes: Sizes;
  /** Include the `rbd` CLI (a process per call: at 64 or 256 at once it measures the machine, not Ceph). */
  cli: boolean;
}

/** The untimed pause before each phase: one paxos interval and a margin when the interval is long, else none. */
export function phasePauseMs(cluster: Pick<Cluster, 'paxosInForce'>): number {
  return cluster.paxosInForce >= 0.5 ? Math.round(cluster.paxosInForce * 1000) + 300 : 0;
}

export async function snapshotBench(ctx: BenchContext, plans: readonly SnapshotPlan[]): Promise<Measurement[]> {
  const { cluster } = ctx;
  const pauseMs = phasePauseMs(cluster);
  const out: Measurement[] = [];
  for (const { concurrency, sizes, cli } of plans) {
    const base = { bench: 'snapshot', concurrency, cluster: cluster.name };
    const contenders: Contender[] = ctx.backends
      .filter((backend) => backend === 'native' || cli)
      .map((backend) => {
        const storage = ctx.storage[backend]!;
        const notes: Record<string, number> = { pause_ms: pauseMs };
        if (backend === 'native') notes.addon_threads = 256;
        return {
          spec: { ...base, backend, notes },
          round: async (r) => {
            const snap = (w: number, i: number) => `${ctx.prefix}s${backend[0]}${r}-${w}-${i}`;
            if (pauseMs) await sleep(pauseMs);
            const create = await runPhase('snap_create', concurrency, sizes.count, (w, i) =>
              storage.createSnapshot(cluster.pool, snapImage(ctx, w), snap(w, i)),
            );
            if (pauseMs) await sleep(pauseMs);
            const remove = await runPhase('snap_remove', concurrency, sizes.count, (w, i) =>
              storage.removeSnapshot(cluster.pool, snapImage(ctx, w), snap(w, i)),
            );
            return [create, remove];
          },
        };
      });
    contenders.push({
      spec: { ...base, backend: 'c', notes: { open_per_op: true, pause_ms: pauseMs } },
      round: async () =>
        cPhases(await runCLoop(cluster, { mode: 'snap', prefix: snapImagePrefix(ctx), workers: concurrency, count: sizes.count, pauseMs })),
    });
    let probe: { contender: Contender; close: () => Promise<void> } | null = null;
    if (concurrency === 1 && cluster.name === 'tuned') {
      if (ctx.backends.includes('native')) {
        probe = await roundTripProbe(cluster);
        contenders.push(probe.contender);
      }
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
    try {
      out.push(...(await measureInterleaved(contenders, sizes.warmup, sizes.rounds)));
    } finally {
      await probe?.close();
    }
  }
  return out;
}

/**
 * The addon's own per-call path without Ceph: rados_cluster_fsid (a copy of a string librados
 * holds) queued to the addon's threads and settled back on the JS thread, through the raw addon.
 * Its notes split each call into the addon's timers (native/cluster.cc): queued -> running on a
 * thread -> settled on the JS thread.
 */
async function roundTripProbe(cluster: Cluster): Promise<{ contender: Contender; close: () => Promise<void> }> {
  const mod = loadAddon();
  const raw: Addon.Cluster = new mod.Cluster();
  await raw.connect(cluster.confPath, null, 'admin', {});
  const notes: Record<string, number> = {};
  const contender: Contender = {
    spec: { bench: 'snapshot', backend: 'native', concurrency: 1, cluster: cluster.name, notes },
    round: async () => {
      const before = raw.threadStats();
      const phase = await runPhase('addon_round_trip', 1, 200, async () => {
        await raw.fsid();
      });
      const after = raw.threadStats();
      const n = after.completed - before.completed;
      notes.queue_wait_ms = round3((after.queueWaitMs - before.queueWaitMs) / n);
      notes.run_ms = round3((after.runMs - before.runMs) / n);
      notes.deliver_wait_ms = round3((after.deliverWaitMs - before.deliverWaitMs) / n);
      return [phase];
    },
  };
  return { contender, close: () => raw.close() };
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;
