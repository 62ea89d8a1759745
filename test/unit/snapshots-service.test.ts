import pino from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import { isApiError } from '../../src/api/errors.js';
import { MemoryKV } from '../../src/state/memory.js';
import { StateStore } from '../../src/state/store.js';
import type { VolumeRecord } from '../../src/state/records.js';
import { ManualClock } from '../../src/snapshots/clock.js';
import { policyCopyRecord } from '../../src/snapshots/copy-record.js';
import { SnapshotService } from '../../src/snapshots/service.js';
import { supervisorSnapshotName } from '../../src/snapshots/names.js';
import { memoryStorage, type MemoryStorage } from '../../src/storage/memory.js';
import { mountRecord, volumeRecord, type VolumeRecordOverrides } from '../helpers/fixtures.js';

const log = pino({ level: 'silent' });
const MB = 1024 * 1024;

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).not.toBeNull();
  expect(isApiError(err) ? err.code : err).toBe(code);
}

describe('SnapshotService', () => {
  let kv: MemoryKV;
  let store: StateStore;
  let storage: MemoryStorage;
  let clock: ManualClock;
  let service: SnapshotService;

  async function addVolume(tenant: string, volume: string, overrides: VolumeRecordOverrides = {}): Promise<VolumeRecord> {
    const record = volumeRecord(tenant, volume, { runtime: { snapshots: true, snapshot: { frequency: '2s', keep: 3 } }, ...overrides });
    await storage.createImage(record.pool, record.image, { size: record.options.sizeBytes });
    await store.createVolume(record);
    return record;
  }

  beforeEach(async () => {
    kv = new MemoryKV();
    store = new StateStore(kv, { owner: 'test' });
    clock = new ManualClock(Date.UTC(2026, 10, 22, 12, 30, 0, 250));
    storage = memoryStorage({ pools: ['rbd', 'fast'], now: () => clock.now() });
    service = new SnapshotService(storage, store, { clock, logger: log, lockWaitMs: 200 });
    await addVolume('t1', 'data');
  });

  describe('take', () => {
    it('names on-demand snapshots manual-<time>, a second one within the second with -2', async () => {
      const first = await service.take('t1', 'data');
      const second = await service.take('t1', 'data');
      expect(first).toMatchObject({ name: 'manual-20261122T123000Z', origin: 'manual', protected: false, clones: [], sizeBytes: 10 * MB });
      expect(second.name).toBe('manual-20261122T123000Z-2');
    });

    it('takes a given name, refuses an existing one and one starting with vs-', async () => {
      expect((await service.take('t1', 'data', 'before-upgrade')).origin).toBe('other');
      await expectCode(service.take('t1', 'data', 'before-upgrade'), 'SNAPSHOT_EXISTS');
      await expectCode(service.take('t1', 'data', 'vs-20261122T123000Z'), 'INVALID_NAME');
      await expectCode(service.take('t1', 'data', 'a/b'), 'INVALID_NAME');
      expect(storage.snapshotNames('rbd', 't1.data')).toEqual(['before-upgrade']);
    });

    it('refuses an unknown volume', async () => {
      await expectCode(service.take('t1', 'nope'), 'VOLUME_NOT_FOUND');
    });
  });

  describe('list', () => {
    it('lists oldest first with who made each and its clones', async () => {
      await storage.createSnapshot('rbd', 't1.data', 'zz-by-hand');
      await storage.createSnapshot('rbd', 't1.data', supervisorSnapshotName(clock.now() + 2000));
      await storage.createSnapshot('rbd', 't1.data', supervisorSnapshotName(clock.now()));
      await storage.protectSnapshot('rbd', 't1.data', 'zz-by-hand');
      await storage.cloneSnapshot({ pool: 'rbd', image: 't1.data', snapshot: 'zz-by-hand' }, 'rbd', 'other.clone');
      const list = await service.list('t1', 'data');
      expect(list.map((s) => [s.name, s.origin])).toEqual([
        ['vs-20261122T123000Z', 'supervisor'],
        ['vs-20261122T123002Z', 'supervisor'],
        ['zz-by-hand', 'other'],
      ]);
      expect(list[2]).toMatchObject({ protected: true, clones: ['rbd/other.clone'] });
    });

    it('refuses an unknown volume', async () => {
      await expectCode(service.list('t9', 'data'), 'VOLUME_NOT_FOUND');
    });
  });

  describe('remove', () => {
    it('removes a snapshot, unprotecting it when no clone depends on it', async () => {
      await storage.createSnapshot('rbd', 't1.data', 'a');
      await storage.protectSnapshot('rbd', 't1.data', 'a');
      await service.remove('t1', 'data', 'a');
      expect(storage.snapshotNames('rbd', 't1.data')).toEqual([]);
    });

    it('refuses an unknown snapshot and one with clones, changing nothing', async () => {
      await expectCode(service.remove('t1', 'data', 'nope'), 'SNAPSHOT_NOT_FOUND');
      await storage.createSnapshot('rbd', 't1.data', 'a');
      await storage.protectSnapshot('rbd', 't1.data', 'a');
      await storage.cloneSnapshot({ pool: 'rbd', image: 't1.data', snapshot: 'a' }, 'rbd', 'x.y');
      await expectCode(service.remove('t1', 'data', 'a'), 'VOLUME_HAS_CLONES');
      expect(storage.snapshotNames('rbd', 't1.data')).toEqual(['a']);
      expect(storage.calls.filter((c) => c.startsWith('unprotect') || c.startsWith('removeSnapshot'))).toEqual([]);
    });
  });

  describe('rollback', () => {
    beforeEach(async () => {
      await storage.createSnapshot('rbd', 't1.data', 'good');
    });

    it('rolls back an unused volume', async () => {
      await service.rollback('t1', 'data', 'good');
      expect(storage.calls).toContain('rollbackSnapshot rbd t1.data good');
    });

    it('is refused while the volume is mounted', async () => {
      const lease = await kv.lease(10);
      const mount = mountRecord('t1', 'data', { lease: lease.id });
      expect((await store.acquireMount(mount, lease)).ok).toBe(true);
      await expectCode(service.rollback('t1', 'data', 'good'), 'VOLUME_MOUNTED');
      expect(storage.calls.some((c) => c.startsWith('rollbackSnapshot'))).toBe(false);
    });

    it('is refused while a client has the image open', async () => {
      storage.addWatcher('rbd', 't1.data', { address: '127.0.0.1:0/42', clientId: 42, cookie: 1 });
      await expectCode(service.rollback('t1', 'data', 'good'), 'VOLUME_IN_USE');
      expect(storage.calls.some((c) => c.startsWith('rollbackSnapshot'))).toBe(false);
    });

    it('no host can take the mount lock while it rolls back (issue 12, rule 6)', async () => {
      const lease = await kv.lease(10);
      const hang = storage.hang('rollbackSnapshot');
      const rolling = service.rollback('t1', 'data', 'good');
      await hang.reached;
      const during = await store.acquireMount(mountRecord('t1', 'data', { lease: lease.id }), lease);
      await hang.release();
      await rolling;
      expect(during).toMatchObject({ ok: false, reason: 'excluded', by: { reason: 'snapshot rollback' } });
      expect((await store.acquireMount(mountRecord('t1', 'data', { lease: lease.id }), lease)).ok).toBe(true);
    });

    it('refuses an unknown volume or snapshot', async () => {
      await expectCode(service.rollback('t1', 'nope', 'good'), 'VOLUME_NOT_FOUND');
      await expectCode(service.rollback('t1', 'data', 'bad'), 'SNAPSHOT_NOT_FOUND');
    });
  });

  describe('copy', () => {
    beforeEach(async () => {
      await store.putTenant('t2', {
        'default-options': { pool: 'fast', size: '1GB', filesystem: 'xfs', snapshots: true, snapshot: { frequency: '1h', keep: 7 }, 'rate-limit': { 'write-iops': 50 } },
        filesystems: { xfs: 'mkfs.xfs %' },
      });
      await storage.createSnapshot('rbd', 't1.data', 'snap1');
    });

    const build = () => policyCopyRecord(store, {}, clock);

    it("clones the snapshot into a new volume under the target tenant's policy", async () => {
      const record = await service.copy({ tenant: 't1', volume: 'data', snapshot: 'snap1' }, { tenant: 't2', volume: 'restored' }, { build: build() });
      expect(record).toMatchObject({
        tenant: 't2',
        volume: 'restored',
        pool: 'fast',
        image: 't2.restored',
        source: { tenant: 't1', volume: 'data', snapshot: 'snap1' },
        runtime: { snapshots: true, snapshot: { frequency: '1h', keep: 7 } },
        options: { sizeBytes: 10 * MB, filesystem: 'ext4' },
        formatCommand: 'mkfs.ext4 -m0 %',
      });
      expect(record.runtime.rateLimit.writeIops).toBe(50);
      expect(await store.getVolume('t2', 'restored')).toEqual(record);
      expect(storage.images.get('fast/t2.restored')?.parent).toEqual({ pool: 'rbd', image: 't1.data', snapshot: 'snap1' });
      expect((await service.list('t1', 'data'))[0]).toMatchObject({ protected: true, clones: ['fast/t2.restored'] });
    });

    it('a copy of a snapshot taken after its source was formatted is recorded as formatted; of an older one, not (issue 12, rule 1)', async () => {
      const marks = store.keys.format('t1', 'data');
      await kv.put(marks, JSON.stringify({ formatted: '2000-01-01T00:00:00.000Z', by: 'host-a' }));
      await service.copy({ tenant: 't1', volume: 'data', snapshot: 'snap1' }, { tenant: 't2', volume: 'later' }, { build: build() });
      expect((await store.getVolumeFormat('t2', 'later')).formatted).toBe('2000-01-01T00:00:00.000Z');
      await kv.put(marks, JSON.stringify({ formatted: '2999-01-01T00:00:00.000Z', by: 'host-a' }));
      await service.copy({ tenant: 't1', volume: 'data', snapshot: 'snap1' }, { tenant: 't2', volume: 'older' }, { build: build() });
      expect((await store.getVolumeFormat('t2', 'older')).formatted).toBeUndefined();
    });

    it('then flattens the copy and unprotects the snapshot', async () => {
      const record = await service.copy({ tenant: 't1', volume: 'data', snapshot: 'snap1' }, { tenant: 't2', volume: 'restored' }, { build: build() });
      expect(await service.finishClone(record)).toBe('flattened');
      expect(storage.images.get('fast/t2.restored')?.parent).toBeNull();
      expect((await service.list('t1', 'data'))[0]).toMatchObject({ protected: false, clones: [] });
      expect(await service.finishClone(record)).toBe('not-a-clone');
    });

    it('refuses an existing target, an unknown source, snapshot or target tenant, changing nothing', async () => {
      await addVolume('t2', 'taken');
      const src = { tenant: 't1', volume: 'data', snapshot: 'snap1' };
      await expectCode(service.copy(src, { tenant: 't2', volume: 'taken' }, { build: build() }), 'VOLUME_EXISTS');
      await expectCode(service.copy(src, { tenant: 't1', volume: 'data' }, { build: build() }), 'VOLUME_EXISTS');
      await expectCode(service.copy({ ...src, volume: 'nope' }, { tenant: 't2', volume: 'new' }, { build: build() }), 'VOLUME_NOT_FOUND');
      await expectCode(service.copy({ ...src, snapshot: 'nope' }, { tenant: 't2', volume: 'new' }, { build: build() }), 'SNAPSHOT_NOT_FOUND');
      await expectCode(service.copy(src, { tenant: 't3', volume: 'new' }, { build: build() }), 'TENANT_NOT_FOUND');
      await expectCode(service.copy(src, { tenant: 't2', volume: 'new' }, { build: policyCopyRecord(store, { size: '5GB' }) }), 'INVALID_OPTION');
      expect(storage.calls.filter((c) => /^(protect|clone)/.test(c))).toEqual([]);
      expect(await store.getVolume('t2', 'new')).toBeNull();
    });

    it('refuses a target whose image exists in Ceph', async () => {
      await storage.createImage('fast', 't2.stray', { size: MB });
      await expectCode(service.copy({ tenant: 't1', volume: 'data', snapshot: 'snap1' }, { tenant: 't2', volume: 'stray' }, { build: build() }), 'IMAGE_EXISTS');
      expect(storage.calls.filter((c) => /^(protect|clone)/.test(c))).toEqual([]);
    });

    it('removes the clone and unprotects the snapshot again when the record cannot be written', async () => {
      const hooks = { build: build(), commit: async () => false, abandon: async () => undefined };
      await expectCode(service.copy({ tenant: 't1', volume: 'data', snapshot: 'snap1' }, { tenant: 't2', volume: 'late' }, hooks), 'VOLUME_EXISTS');
      expect(storage.images.has('fast/t2.late')).toBe(false);
      expect((await service.list('t1', 'data'))[0]!.protected).toBe(false);
    });
  });

  describe('scheduled snapshots and pruning', () => {
    it('takes a slot once and records it; a slot taken already is only recorded', async () => {
      const record = (await store.getVolume('t1', 'data'))!;
      const slot = Date.UTC(2026, 10, 22, 12, 30, 0);
      expect(await service.takeScheduled(record, slot)).toEqual({ outcome: 'taken', name: 'vs-20261122T123000Z' });
      expect(await service.takeScheduled(record, slot)).toEqual({ outcome: 'existed', name: 'vs-20261122T123000Z' });
      expect(storage.snapshotNames('rbd', 't1.data')).toEqual(['vs-20261122T123000Z']);
      expect((await store.getLastSnapshot('t1', 'data'))?.getTime()).toBe(slot);
    });

    it('a scheduled run snapshots and prunes under one operation lock, records the slot as it gives the lock back, and records nothing for a holder that lost the lock', async () => {
      const record = (await store.getVolume('t1', 'data'))!;
      const t = Date.UTC(2026, 10, 22, 12, 0, 0);
      for (let i = 0; i < 3; i++) await storage.createSnapshot('rbd', 't1.data', supervisorSnapshotName(t + i * 60_000));
      const slot = t + 3 * 60_000;
      const run = await service.runScheduled(record, { slotMs: slot, keep: 2 }, undefined);
      expect(run).toMatchObject({ taken: { outcome: 'taken' }, pruned: { removed: [supervisorSnapshotName(t), supervisorSnapshotName(t + 60_000)] } });
      expect((await store.getLastSnapshot('t1', 'data'))?.getTime()).toBe(slot);
      expect(await store.getOperationLock('t1', 'data')).toBeNull(); // given back
      // A holder whose lock was lost (its lease lapsed and another process took the lock) records
      // nothing as it ends, and leaves the other holder's lock alone.
      await store.withOperationLock('t1', 'data', { reason: 'snapshot', waitMs: 0 }, async (_signal, lock) => {
        await kv.delete(store.keys.operation('t1', 'data'));
        await new StateStore(kv, { owner: 'other' }).withOperationLock('t1', 'data', { reason: 'remove', waitMs: 0 }, async () => {
          await store.setLastSnapshot('t1', 'data', new Date(slot + 60_000), lock);
          expect((await store.getLastSnapshot('t1', 'data'))?.getTime()).toBe(slot);
          expect(await store.getOperationLock('t1', 'data')).toMatchObject({ owner: 'other' });
        });
      });
    });

    it('reports a removed volume as gone and writes no schedule for it', async () => {
      const record = (await store.getVolume('t1', 'data'))!;
      await store.deleteVolume('t1', 'data');
      expect(await service.takeScheduled(record, clock.now())).toEqual({ outcome: 'gone' });
      expect(await store.getLastSnapshot('t1', 'data')).toBeNull();
    });

    it('prunes only its own snapshots beyond keep, never one with clones', async () => {
      const record = (await store.getVolume('t1', 'data'))!;
      const t = Date.UTC(2026, 10, 22, 12, 0, 0);
      for (let i = 0; i < 6; i++) await storage.createSnapshot('rbd', 't1.data', supervisorSnapshotName(t + i * 2000));
      await storage.createSnapshot('rbd', 't1.data', 'manual-20261122T115959Z');
      await storage.createSnapshot('rbd', 't1.data', 'keep-me');
      const cloned = supervisorSnapshotName(t);
      await storage.protectSnapshot('rbd', 't1.data', cloned);
      await storage.cloneSnapshot({ pool: 'rbd', image: 't1.data', snapshot: cloned }, 'rbd', 't1.copy');
      const result = await service.prune(record, 2);
      expect(result).toMatchObject({
        removed: [supervisorSnapshotName(t + 2000), supervisorSnapshotName(t + 4000), supervisorSnapshotName(t + 6000)],
        retained: [cloned],
        keep: [supervisorSnapshotName(t + 8000), supervisorSnapshotName(t + 10_000)],
      });
      expect(storage.snapshotNames('rbd', 't1.data').sort()).toEqual(
        ['keep-me', 'manual-20261122T115959Z', cloned, supervisorSnapshotName(t + 8000), supervisorSnapshotName(t + 10_000)].sort(),
      );
    });

    it('prunes by tiers and retains what the protectedSnapshots provider names (a backup chain base)', async () => {
      const needed: string[] = [];
      const asked: string[] = [];
      service = new SnapshotService(storage, store, {
        clock,
        logger: log,
        protectedSnapshots: async (volume) => {
          asked.push(`${volume.tenant}/${volume.volume}`);
          return needed;
        },
      });
      const record = (await store.getVolume('t1', 'data'))!;
      // Every 6 hours for 3 days: 12 snapshots; keep the newest 2 and the newest of each of 3 days.
      const t = Date.UTC(2026, 10, 20, 0, 0, 0);
      const all = Array.from({ length: 12 }, (_, i) => supervisorSnapshotName(t + i * 6 * 3_600_000));
      for (const name of all) await storage.createSnapshot('rbd', 't1.data', name);
      needed.push(all[0]!);
      const result = await service.prune(record, { last: 2, daily: 3 });
      expect(asked).toEqual(['t1/data']);
      expect(result).toMatchObject({ keep: [all[3], all[7], all[10], all[11]], retained: [all[0]], failed: [] });
      expect(storage.snapshotNames('rbd', 't1.data').sort()).toEqual([all[0], all[3], all[7], all[10], all[11]].sort());
    });

    it('prunes nothing when the protectedSnapshots provider fails (fail closed)', async () => {
      service = new SnapshotService(storage, store, {
        clock,
        logger: log,
        protectedSnapshots: async () => {
          throw new Error('backup state unreadable');
        },
      });
      const record = (await store.getVolume('t1', 'data'))!;
      for (let i = 0; i < 4; i++) await storage.createSnapshot('rbd', 't1.data', supervisorSnapshotName(clock.now() + i * 2000));
      await expect(service.prune(record, 1)).rejects.toThrow(/backup state unreadable/);
      expect(storage.snapshotNames('rbd', 't1.data')).toHaveLength(4);
    });

    it('returns busy without waiting long while another operation holds the volume', async () => {
      const record = (await store.getVolume('t1', 'data'))!;
      let release!: () => void;
      const held = store.withOperationLock('t1', 'data', { reason: 'test' }, () => new Promise<void>((r) => (release = r)));
      await new Promise((r) => setTimeout(r, 20));
      expect(await service.takeScheduled(record, clock.now())).toEqual({ outcome: 'busy' });
      release();
      await held;
    });
  });
});
