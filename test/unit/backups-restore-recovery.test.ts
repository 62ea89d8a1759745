// A restore into a volume whose master dies half-way (found by the chaos suite's
// master-mid-restore: a `<image>:restoring` or `<image>:replaced` image, as big as the volume, was
// left until the next restore of that volume, and a volume killed between the two renames had no
// image): the restore writes an intent in etcd before its scratch image, and the janitor's pass
// (recoverDeadRestores) finishes or undoes the swap, removes what is left and the intent. On the
// memory twins; the dying master is another etcd client that crashes while its restore is held.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BackupConfig } from '../../src/backups/config.js';
import { recoverDeadRestores, restoreInPlace } from '../../src/backups/restore.js';
import { BackupService } from '../../src/backups/service.js';
import { validatePolicy } from '../../src/policy/validate.js';
import { ManualClock } from '../../src/snapshots/clock.js';
import { MemoryKV } from '../../src/state/memory.js';
import type { VolumeRecord } from '../../src/state/records.js';
import { StateStore } from '../../src/state/store.js';
import { memoryStorage, type MemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/types.js';
import { volumeRecord } from '../helpers/fixtures.js';

const log = pino({ level: 'silent' });
const MiB = 1024 * 1024;

describe('a restore into a volume whose master dies half-way', () => {
  let kv: MemoryKV;
  let store: StateStore;
  let storage: MemoryStorage;
  let clock: ManualClock;
  let root: string;
  let config: BackupConfig;
  let service: BackupService;
  let record: VolumeRecord;
  let dyingKv: MemoryKV;

  beforeEach(async () => {
    kv = new MemoryKV();
    store = new StateStore(kv, { owner: 'janitor' });
    clock = new ManualClock(Date.UTC(2026, 10, 30, 12, 0, 0));
    storage = memoryStorage({ pools: ['rbd'], now: () => clock.now() });
    root = await mkdtemp(path.join(tmpdir(), 'volplugin-restore-recovery-'));
    await mkdir(path.join(root, 'dir'));
    config = { allow: [root], hookAllow: [], hookTimeoutMs: 5000, stagingDir: path.join(root, '.staging') };
    await store.putTenant('t1', validatePolicy({ 'default-options': { pool: 'rbd', size: '10MB', backup: { keep: 3, target: { directory: path.join(root, 'dir') } } } }));
    record = volumeRecord('t1', 'data');
    await storage.createImage('rbd', record.image, { size: 4 * MiB });
    await store.createVolume(record);
    service = new BackupService(storage, store, { config, clock, logger: log, lockWaitMs: 200 });
    dyingKv = kv.client();
  });

  afterEach(async () => {
    await service.close();
    await rm(root, { recursive: true, force: true });
  });

  const write = (fill: number) => storage.writeData('rbd', record.image, 0, Buffer.alloc(4096, fill));
  const head = () => storage.readData('rbd', record.image).subarray(0, 4096);
  const images = async () => (await storage.listImages('rbd')).sort();

  /**
   * Backup with 1s, then 7s written: a restore brings the 1s back. The dying master's restore
   * stops for good at the `nth` call of `call` (that call never returns, nothing after it runs),
   * and its etcd client crashes: its lock, exclusion and leases go, as with kill -9.
   */
  async function dieDuring(call: keyof Storage, nth = 1): Promise<void> {
    write(1);
    await service.take('t1', 'data');
    write(7);
    let reach!: () => void;
    const reached = new Promise<void>((resolve) => (reach = resolve));
    let calls = 0;
    const stopsThere = new Proxy(storage, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target) as unknown;
        if (typeof value !== 'function') return value;
        if (prop !== call) return value.bind(target);
        return (...args: unknown[]) => {
          if (++calls < nth) return (value as (...a: unknown[]) => unknown).apply(target, args);
          reach();
          return new Promise(() => undefined);
        };
      },
    });
    const dying = new BackupService(stopsThere, new StateStore(dyingKv, { owner: 'dying' }), { config, clock, logger: log, lockWaitMs: 200 });
    void restoreInPlace(dying, 't1', 'data', {}).catch(() => undefined);
    await reached;
    dyingKv.crash();
  }

  it('dead while building: the janitor removes the scratch image and the intent; the volume is as it was', async () => {
    await dieDuring('applyDiff');
    expect(await images()).toEqual([record.image, `${record.image}:restoring`]);
    expect((await store.listRestoreIntents()).map((i) => `${i.tenant}/${i.volume} ${i.owner}`)).toEqual(['t1/data dying']);

    expect(await recoverDeadRestores(service, 10)).toBe(1);
    expect(await images()).toEqual([record.image]);
    expect(head()).toEqual(Buffer.alloc(4096, 7));
    expect(await store.listRestoreIntents()).toEqual([]);
    expect(await recoverDeadRestores(service, 10)).toBe(0);
  });

  it('dead between its renames (the volume has no image): the janitor puts the complete restored image in place', async () => {
    await dieDuring('renameImage', 2);
    expect(await images()).toEqual([`${record.image}:replaced`, `${record.image}:restoring`]);
    expect(await recoverDeadRestores(service, 10)).toBe(1);
    expect(await images()).toEqual([record.image]);
    expect(head()).toEqual(Buffer.alloc(4096, 1));
    expect(await storage.getMetadata('rbd', record.image)).not.toHaveProperty('volplugin.restore');
    expect(await store.listRestoreIntents()).toEqual([]);
  });

  it('dead after its renames: the janitor removes the replaced image', async () => {
    await dieDuring('removeMetadata');
    expect(await images()).toEqual([record.image, `${record.image}:replaced`]);
    expect(await recoverDeadRestores(service, 10)).toBe(1);
    expect(await images()).toEqual([record.image]);
    expect(head()).toEqual(Buffer.alloc(4096, 1));
    expect(await store.listRestoreIntents()).toEqual([]);
  });

  it('a running restore is left alone by the janitor', async () => {
    write(1);
    await service.take('t1', 'data');
    const hang = storage.hang('applyDiff');
    const restoring = restoreInPlace(new BackupService(storage, new StateStore(dyingKv, { owner: 'other' }), { config, clock, logger: log }), 't1', 'data', {});
    await hang.reached;
    expect(await recoverDeadRestores(service, 10)).toBe(0);
    expect(await images()).toContain(`${record.image}:restoring`);
    await hang.release();
    await restoring;
    expect(await images()).toEqual([record.image]);
    expect(await store.listRestoreIntents()).toEqual([]);
  });
});
