// Backups in the `rbd export-diff` format: an incremental export of a 1 GiB image with 1% of it
// changed since the last snapshot, against a full export of the same snapshot, by the addon
// (exportDiff) and by the `rbd export-diff` CLI, side by side in alternating rounds. The image has
// the features the master gives volumes (object-map, fast-diff) and is written through (every
// object allocated, none of it zeros); the change is 1% of its bytes in random 4 KiB writes, so
// nearly every object holds some of it (the case whole-object diffing handles worst: it is measured
// too). Files go to a tmpfs (/dev/shm when there is one), so that the local disk's speed, which a
// backup target would add for both alike, does not blur the comparison.
//
// A fourth contender is the whole backup as volplugin takes it (BackupService.take, what
// `volcli volume backup take` and volsupervisor run): a vb- snapshot, the export to a directory
// target, the checksum read back, fsyncs and the manifest. Each of its rounds takes a full backup,
// writes a fresh 1% (not timed) and takes the incremental one.

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadAddon } from '../../src/storage/native.js';
import type * as Addon from '../../native/volplugin_rbd.js';
import { RBD_FEATURE } from '../lib/c-loop.js';
import { rbd, sh } from '../lib/cluster.js';
import type { BenchContext, Sizes } from '../lib/context.js';
import type { Storage } from '../../src/storage/types.js';
import type { Contender, Measurement, PhaseResult } from '../lib/harness.js';
import { measureInterleaved, progress } from '../lib/harness.js';
import { BackupService } from '../../src/backups/service.js';
import { validatePolicy } from '../../src/policy/validate.js';
import { MemoryKV } from '../../src/state/memory.js';
import { StateStore } from '../../src/state/store.js';
import { isBackupName } from '../../src/backups/names.js';

const GiB = 2 ** 30;
const IMAGE_SIZE = GiB;
/** 1% of the image, in whole 4 KiB writes. */
const CHANGED = Math.floor(IMAGE_SIZE / 100 / 4096) * 4096;

export async function backupBench(ctx: BenchContext, sizes: Sizes): Promise<Measurement[]> {
  const { cluster } = ctx;
  const image = `${ctx.prefix}backup`;
  const spec = `${cluster.pool}/${image}`;
  const base = path.join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'volplugin-bench-');
  const dir = await mkdtemp(base);
  // The raw addon for the stream rows (the calls NativeStorage.exportDiff makes); the service row uses Storage.
  const mod = loadAddon();
  const raw: Addon.Cluster = new mod.Cluster();
  await raw.connect(cluster.confPath, null, 'admin', {});
  try {
    const features = RBD_FEATURE.layering | RBD_FEATURE.exclusiveLock | RBD_FEATURE.objectMap | RBD_FEATURE.fastDiff;
    await raw.createImage(cluster.pool, image, IMAGE_SIZE, features, 22, null);
    progress(`backup: writing ${IMAGE_SIZE / GiB} GiB into ${spec}, then ${(CHANGED / 2 ** 20).toFixed(1)} MiB of random 4 KiB writes`);
    await rbd(cluster, ['bench', '--io-type', 'write', '--io-size', '4M', '--io-threads', '4', '--io-total', `${IMAGE_SIZE}`, '--io-pattern', 'seq', spec]);
    await raw.createSnapshot(cluster.pool, image, 'base');
    await rbd(cluster, ['bench', '--io-type', 'write', '--io-size', '4K', '--io-threads', '4', '--io-total', `${CHANGED}`, '--io-pattern', 'rand', spec]);
    await raw.createSnapshot(cluster.pool, image, 'next');

    const file = (name: string) => path.join(dir, name);
    const timed = async (op: string, target: string, run: () => Promise<unknown>, notes: Record<string, string | number | boolean>): Promise<PhaseResult> => {
      await rm(target, { force: true });
      const t = performance.now();
      await run();
      const ms = performance.now() - t;
      const bytes = (await stat(target)).size;
      notes[`${op}_bytes`] = bytes;
      await rm(target, { force: true });
      return { op, latMs: [ms], wallMs: ms };
    };
    const row = { bench: 'backup', concurrency: 1, cluster: cluster.name };
    const nativeNotes: Record<string, string | number | boolean> = { image_gib: 1, changed_pct: 1, target: dir.startsWith('/dev/shm') ? 'tmpfs' : 'disk' };
    const cliNotes: Record<string, string | number | boolean> = { ...nativeNotes };
    const wholeNotes: Record<string, string | number | boolean> = { ...nativeNotes, whole_object: true };
    const contenders: Contender[] = [];
    const storage = ctx.storage.native;
    if (storage) contenders.push(await serviceContender(ctx, storage, image, dir, row));
    contenders.push(
      {
        spec: { ...row, backend: 'native', notes: nativeNotes },
        round: async () => [
          await timed('backup_incremental', file('n-inc'), () => raw.exportDiff(cluster.pool, image, 'base', 'next', file('n-inc'), false, null), nativeNotes),
          await timed('backup_full', file('n-full'), () => raw.exportDiff(cluster.pool, image, null, 'next', file('n-full'), false, null), nativeNotes),
        ],
      },
      {
        spec: { ...row, backend: 'cli', notes: cliNotes },
        round: async () => [
          await timed('backup_incremental', file('c-inc'), () => sh('rbd', ['-c', cluster.confPath, 'export-diff', '--no-progress', '--from-snap', 'base', `${spec}@next`, file('c-inc')]), cliNotes),
          await timed('backup_full', file('c-full'), () => sh('rbd', ['-c', cluster.confPath, 'export-diff', '--no-progress', `${spec}@next`, file('c-full')]), cliNotes),
        ],
      },
      {
        // Whole objects from the fast-diff map: no per-object listing, but every touched object in full.
        spec: { ...row, backend: 'native', notes: wholeNotes },
        round: async () => [
          await timed('backup_incremental_whole_object', file('w-inc'), () => raw.exportDiff(cluster.pool, image, 'base', 'next', file('w-inc'), true, null), wholeNotes),
        ],
      },
    );
    return await measureInterleaved(contenders, sizes.warmup, sizes.rounds);
  } finally {
    for (const snap of await raw.listSnapshots(cluster.pool, image).catch(() => [] as { name: string }[])) {
      if (isBackupName(snap.name)) await raw.removeSnapshot(cluster.pool, image, snap.name).catch(() => undefined);
    }
    await raw.removeSnapshot(cluster.pool, image, 'next').catch(() => undefined);
    await raw.removeSnapshot(cluster.pool, image, 'base').catch(() => undefined);
    await raw.removeImage(cluster.pool, image).catch(() => undefined);
    await raw.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * volplugin's own backup of the bench image to a directory target: the service on the native
 * Storage, its records in a MemoryKV (etcd's share of a backup is two small writes).
 */
async function serviceContender(ctx: BenchContext, storage: Storage, image: string, dir: string, row: { bench: string; concurrency: number; cluster: string }): Promise<Contender> {
  const { cluster } = ctx;
  const store = new StateStore(new MemoryKV(), { owner: 'bench' });
  const target = path.join(dir, 'target');
  await mkdir(target);
  await store.putTenant('bench', validatePolicy({ 'default-options': { pool: cluster.pool, size: '1GB', backup: { keep: 2, target: { directory: target } } } }));
  const runtime = { snapshots: false, snapshot: { frequency: '1h', keep: 1 }, rateLimit: { writeIops: 0, readIops: 0, writeBps: 0, readBps: 0 } };
  await store.createVolume({
    tenant: 'bench',
    volume: 'v',
    pool: cluster.pool,
    image,
    options: { pool: cluster.pool, sizeBytes: IMAGE_SIZE, filesystem: 'ext4', ephemeral: false, ...runtime },
    runtime,
    policyRevision: 1,
    formatCommand: 'mkfs.ext4 %',
    createdAt: new Date().toISOString(),
  });
  const service = new BackupService(storage, store, { config: { allow: [dir], hookAllow: [], hookTimeoutMs: 1000, stagingDir: path.join(dir, 'staging') } });
  const notes: Record<string, string | number | boolean> = { image_gib: 1, changed_pct: 1, target: dir.startsWith('/dev/shm') ? 'tmpfs' : 'disk', path: 'BackupService.take' };
  return {
    spec: { ...row, backend: 'native', notes },
    round: async () => {
      // A fresh chain each round: the previous round's files and base snapshot go.
      await rm(path.join(target, 'bench'), { recursive: true, force: true });
      for (const snap of await storage.listSnapshots(cluster.pool, image)) if (isBackupName(snap.name)) await storage.removeSnapshot(cluster.pool, image, snap.name);
      let t = performance.now();
      const full = await service.take('bench', 'v');
      const fullMs = performance.now() - t;
      await new Promise((r) => setTimeout(r, 1000)); // the next backup's name is a second later
      await rbd(cluster, ['bench', '--io-type', 'write', '--io-size', '4K', '--io-threads', '4', '--io-total', `${CHANGED}`, '--io-pattern', 'rand', `${cluster.pool}/${image}`]);
      t = performance.now();
      const incremental = await service.take('bench', 'v');
      const incMs = performance.now() - t;
      notes.backup_service_full_bytes = full.bytes;
      notes.backup_service_incremental_bytes = incremental.bytes;
      return [
        { op: 'backup_service_incremental', latMs: [incMs], wallMs: incMs },
        { op: 'backup_service_full', latMs: [fullMs], wallMs: fullMs },
      ];
    },
  };
}
