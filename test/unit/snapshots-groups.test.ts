// Group snapshots on the twins (SnapshotService.groups on a MemoryStorage and the etcd twin): the
// group is made on its first snapshot and removed with its last, members are one tenant's volumes
// of one pool, a volume of another group and a partial member list are refused, and a take that
// fails leaves no group behind.

import pino from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import { isApiError } from '../../src/api/errors.js';
import { MemoryKV } from '../../src/state/memory.js';
import { StateStore } from '../../src/state/store.js';
import { ManualClock } from '../../src/snapshots/clock.js';
import { policyCopyRecord } from '../../src/snapshots/copy-record.js';
import { SnapshotService } from '../../src/snapshots/service.js';
import { memoryStorage, type MemoryStorage } from '../../src/storage/memory.js';
import { mountRecord, volumeRecord, type VolumeRecordOverrides } from '../helpers/fixtures.js';

const log = pino({ level: 'silent' });

async function code(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  return isApiError(err) ? err.code : `not an ApiError: ${String(err)}`;
}

describe('group snapshots (twins)', () => {
  let storage: MemoryStorage;
  let kv: MemoryKV;
  /** The master's own etcd client (crash() kills it as a master dies). */
  let masterKv: MemoryKV;
  let store: StateStore;
  let service: SnapshotService;

  async function volume(name: string, overrides: VolumeRecordOverrides = {}): Promise<void> {
    const record = volumeRecord('t1', name, overrides);
    await storage.createImage(record.pool, record.image, { size: record.options.sizeBytes });
    await store.createVolume(record);
  }

  beforeEach(async () => {
    storage = memoryStorage({ pools: ['rbd', 'fast'] });
    kv = new MemoryKV();
    masterKv = kv.client();
    store = new StateStore(masterKv, { owner: 'test' });
    service = new SnapshotService(storage, store, { clock: new ManualClock(Date.UTC(2026, 10, 22, 12, 30)), logger: log, lockWaitMs: 200, freeze: { askTimeoutMs: 200 } });
    await volume('db');
    await volume('files');
  });

  it('makes the group on its first snapshot, lists it, and removes it with its last', async () => {
    const first = await service.groups.take('t1', 'app', ['files', 'db', 'db']);
    expect(first).toEqual({ tenant: 't1', group: 'app', name: 'manual-20261122T123000Z', volumes: ['db', 'files'], complete: true });
    await service.groups.take('t1', 'app', ['db', 'files'], 'before-upgrade');
    expect((await service.groups.list('t1', 'app')).map((s) => [s.name, s.volumes])).toEqual([
      ['manual-20261122T123000Z', ['db', 'files']],
      ['before-upgrade', ['db', 'files']],
    ]);
    expect(await code(service.groups.take('t1', 'app', ['db', 'files'], 'before-upgrade'))).toBe('SNAPSHOT_EXISTS');
    // Not user snapshots of the volumes.
    expect(storage.snapshotNames('rbd', 't1.db')).toEqual([]);
    await service.groups.remove('t1', 'app', 'before-upgrade');
    expect(await code(service.groups.remove('t1', 'app', 'before-upgrade'))).toBe('SNAPSHOT_NOT_FOUND');
    await service.groups.remove('t1', 'app', 'manual-20261122T123000Z');
    expect(await code(service.groups.list('t1', 'app'))).toBe('GROUP_NOT_FOUND');
    expect(await code(storage.listGroupImages('rbd', 't1.app'))).toMatch(/ENOENT|not an ApiError/);
    await storage.removeImage('rbd', 't1.db'); // free again
  });

  it('refuses bad members before anything is made: none, missing, two pools, another group, a partial list', async () => {
    expect(await code(service.groups.take('t1', 'app', []))).toBe('INVALID_REQUEST');
    expect(await code(service.groups.take('t1', 'app', ['db', 'nope']))).toBe('VOLUME_NOT_FOUND');
    await volume('elsewhere', { pool: 'fast' });
    expect(await code(service.groups.take('t1', 'app', ['db', 'elsewhere']))).toBe('INVALID_REQUEST');
    expect(await code(service.groups.take('t1', 'bad/name', ['db']))).toBe('INVALID_NAME');
    await service.groups.take('t1', 'app', ['db', 'files']);
    await volume('logs');
    expect(await code(service.groups.take('t1', 'other', ['logs', 'db']))).toBe('BUSY');
    expect(await code(service.groups.take('t1', 'app', ['db']))).toBe('BUSY');
    // The refused take of "other" left no group holding "logs".
    expect(await code(service.groups.list('t1', 'other'))).toBe('GROUP_NOT_FOUND');
    await service.groups.take('t1', 'solo', ['logs']);
  });

  it('leaves no group when the snapshot is refused (an fsfreeze member whose host does not answer)', async () => {
    await volume('frozen', { runtime: { snapshots: true, snapshot: { frequency: '1h', keep: 3, consistency: 'fsfreeze' } } });
    const lease = await kv.lease(30);
    expect((await store.acquireMount(mountRecord('t1', 'frozen', { hostId: 'gone', host: 'gone', lease: lease.id }), lease)).ok).toBe(true);
    expect(await code(service.groups.take('t1', 'app', ['db', 'frozen']))).toBe('FREEZE_FAILED');
    expect(await code(service.groups.list('t1', 'app'))).toBe('GROUP_NOT_FOUND');
    await service.groups.take('t1', 'other', ['db', 'files']); // db is free
  });

  describe('rollback and copy of a group snapshot', () => {
    const bytes = (text: string) => Buffer.from(text.padEnd(16, '.'));
    const read = (image: string, at = 0) => storage.readData('rbd', image).subarray(at, at + 16).toString();

    beforeEach(async () => {
      storage.writeData('rbd', 't1.db', 0, bytes('db-1'));
      storage.writeData('rbd', 't1.files', 0, bytes('files-1'));
      await service.groups.take('t1', 'app', ['db', 'files'], 'one');
      storage.writeData('rbd', 't1.db', 0, bytes('db-2'));
      storage.writeData('rbd', 't1.files', 0, bytes('files-2'));
    });

    it('rolls every member back to the instant, reporting progress once accepted', async () => {
      const steps: string[] = [];
      const reports: Array<[number, number]> = [];
      const result = await service.groups.rollback('t1', 'app', 'one', {
        accept: async (message) => {
          steps.push(message);
          return (done, total) => void reports.push([done, total]);
        },
      });
      expect(result).toEqual({ volumes: ['db', 'files'] });
      expect([read('t1.db'), read('t1.files')]).toEqual([bytes('db-1').toString(), bytes('files-1').toString()]);
      expect(steps).toEqual(['rolling 2 volumes back to app@one']);
      expect(reports.at(-1)).toEqual([2, 2]);
      // Nothing is left held: both mount and take again.
      for (const v of ['db', 'files']) expect(await store.getExclusion('t1', v)).toBeNull();
      await service.groups.take('t1', 'app', ['db', 'files'], 'two');
    });

    it('is refused, with nothing changed and nothing held, while any member is mounted or open', async () => {
      const lease = await kv.lease(30);
      expect((await store.acquireMount(mountRecord('t1', 'files', { lease: lease.id }), lease)).ok).toBe(true);
      let accepted = false;
      const step = { accept: async () => void (accepted = true) };
      expect(await code(service.groups.rollback('t1', 'app', 'one', step))).toBe('VOLUME_MOUNTED');
      expect(accepted).toBe(false);
      expect([read('t1.db'), read('t1.files')]).toEqual([bytes('db-2').toString(), bytes('files-2').toString()]);
      // db was not left excluded: a host may mount it.
      expect(await store.getExclusion('t1', 'db')).toBeNull();
      expect((await store.acquireMount(mountRecord('t1', 'db', { lease: lease.id }), lease)).ok).toBe(true);
      await lease.revoke();
      storage.addWatcher('rbd', 't1.db', { address: '10.0.0.9:0/1', clientId: 9, cookie: 1 });
      expect(await code(service.groups.rollback('t1', 'app', 'one', step))).toBe('VOLUME_IN_USE');
      expect(accepted).toBe(false);
      expect(read('t1.db')).toBe(bytes('db-2').toString());
      for (const v of ['db', 'files']) expect(await store.getExclusion('t1', v)).toBeNull();
    });

    it('no member can be mounted while it runs', async () => {
      const hang = storage.hang('rollbackGroupSnapshot');
      const rolling = service.groups.rollback('t1', 'app', 'one');
      await hang.reached;
      const lease = await kv.lease(30);
      for (const v of ['db', 'files']) expect(await store.acquireMount(mountRecord('t1', v, { lease: lease.id }), lease)).toMatchObject({ ok: false, reason: 'excluded' });
      await hang.release();
      await rolling;
      expect((await store.acquireMount(mountRecord('t1', 'files', { lease: lease.id }), lease)).ok).toBe(true);
      await lease.revoke();
    });

    it('a master that dies mid-rollback holds nothing once its leases lapse', async () => {
      const hang = storage.hang('rollbackGroupSnapshot');
      const rolling = service.groups.rollback('t1', 'app', 'one').catch((e: unknown) => e);
      await hang.reached;
      const other = new StateStore(kv.client(), { owner: 'other' });
      for (const v of ['db', 'files']) {
        expect(await other.getExclusion('t1', v)).toMatchObject({ reason: 'group snapshot rollback' });
        expect(await other.getOperationLock('t1', v)).toMatchObject({ reason: 'group snapshot rollback' });
      }
      masterKv.crash();
      const lease = await kv.lease(30);
      for (const v of ['db', 'files']) {
        expect(await other.getExclusion('t1', v)).toBeNull();
        expect(await other.getOperationLock('t1', v)).toBeNull();
        expect((await other.acquireMount(mountRecord('t1', v, { lease: lease.id }), lease)).ok).toBe(true);
      }
      await hang.release();
      await rolling;
      await lease.revoke();
    });

    it('a failed rollback leaves nothing held', async () => {
      storage.failNext('rollbackGroupSnapshot', 'EBUSY');
      expect(await code(service.groups.rollback('t1', 'app', 'one'))).toMatch(/not an ApiError: .*EBUSY/);
      for (const v of ['db', 'files']) {
        expect(await store.getExclusion('t1', v)).toBeNull();
        expect(await store.getOperationLock('t1', v)).toBeNull();
      }
    });

    it('refuses a group holding an image that is no volume of the tenant (nothing rolled back)', async () => {
      await storage.createImage('rbd', 'stranger', { size: 1 << 20 });
      await storage.addGroupImage('rbd', 't1.app', { pool: 'rbd', image: 'stranger' });
      const refused = await service.groups.rollback('t1', 'app', 'one').catch((e: unknown) => e);
      expect(refused).toMatchObject({ code: 'VOLUME_NOT_FOUND', message: expect.stringMatching(/holds image rbd\/stranger, which is no volume of t1/) });
      expect(read('t1.db')).toBe(bytes('db-2').toString());
    });

    it('refuses an unknown group, snapshot or incomplete name with clear codes', async () => {
      expect(await code(service.groups.rollback('t1', 'nope', 'one'))).toBe('GROUP_NOT_FOUND');
      expect(await code(service.groups.rollback('t1', 'app', 'nope'))).toBe('SNAPSHOT_NOT_FOUND');
      expect(await code(service.groups.rollback('t1', 'app', 'bad name'))).toBe('INVALID_NAME');
      expect(await code(service.groups.rollback('t1', 'bad/group', 'one'))).toBe('INVALID_NAME');
    });

    describe('copy of a member', () => {
      const build = () => policyCopyRecord(store, {});
      beforeEach(async () => {
        await store.putTenant('t2', { 'default-options': { pool: 'fast', size: '1GB', filesystem: 'ext4' }, filesystems: { ext4: 'mkfs.ext4 %' } });
      });

      it("makes a new volume holding the member's part of the instant, through the create hooks", async () => {
        const calls: string[] = [];
        const record = await service.groups.copy(
          { tenant: 't1', group: 'app', snapshot: 'one', volume: 'files' },
          { tenant: 't2', volume: 'restored' },
          { build: build(), prepare: async () => void calls.push('prepare'), afterClone: async () => void calls.push('mark') },
          { accept: async (message) => void calls.push(message) },
        );
        expect(record).toMatchObject({ tenant: 't2', volume: 'restored', pool: 'fast', image: 't2.restored', source: { tenant: 't1', volume: 'files', snapshot: 'app@one' } });
        expect(record.options.sizeBytes).toBe(10 * 1024 * 1024);
        expect(calls).toEqual(['prepare', 'copying t1/files as of app@one to fast/t2.restored', 'mark']);
        expect(storage.readData('fast', 't2.restored').subarray(0, 16).toString()).toBe(bytes('files-1').toString());
        expect(await store.getVolume('t2', 'restored')).toMatchObject({ image: 't2.restored' });
        // An independent copy: no parent, and the group snapshot stays removable.
        expect((await storage.imageInfo('fast', 't2.restored')).parent).toBeNull();
        await service.groups.remove('t1', 'app', 'one');
      });

      it('refuses bad input with nothing made: unknown group, snapshot, non-member, removed member, taken name', async () => {
        const target = { tenant: 't2', volume: 'c' };
        const src = { tenant: 't1', group: 'app', snapshot: 'one', volume: 'db' };
        expect(await code(service.groups.copy({ ...src, group: 'nope' }, target, { build: build() }))).toBe('GROUP_NOT_FOUND');
        expect(await code(service.groups.copy({ ...src, snapshot: 'nope' }, target, { build: build() }))).toBe('SNAPSHOT_NOT_FOUND');
        await volume('other');
        const notMember = await service.groups.copy({ ...src, volume: 'other' }, target, { build: build() }).catch((e: unknown) => e);
        expect(notMember).toMatchObject({ code: 'SNAPSHOT_NOT_FOUND', field: 'volume' });
        expect((notMember as Error).message).toContain('its volumes are db, files');
        expect(await code(service.groups.copy({ ...src, volume: 'gone' }, target, { build: build() }))).toBe('VOLUME_NOT_FOUND');
        await store.createVolume({ ...(await store.getVolume('t1', 'db'))!, tenant: 't2', volume: 'c', image: 't2.c' });
        expect(await code(service.groups.copy(src, target, { build: build() }))).toBe('VOLUME_EXISTS');
        expect(await code(service.groups.copy(src, { tenant: 't1', volume: 'db' }, { build: build() }))).toBe('VOLUME_EXISTS');
        expect([...storage.images.keys()].filter((k) => k.startsWith('fast/'))).toEqual([]);
      });

      it('a copy that fails midway removes its image and undoes the intent', async () => {
        const undone: string[] = [];
        storage.failNext('setMetadata', 'EIO');
        const hooks = {
          build: build(),
          prepare: async () => undefined,
          afterClone: async (r: { pool: string; image: string }) => storage.setMetadata(r.pool, r.image, 'k', 'v'),
          abandon: async (r: { volume: string }) => void undone.push(r.volume),
        };
        expect(await code(service.groups.copy({ tenant: 't1', group: 'app', snapshot: 'one', volume: 'db' }, { tenant: 't2', volume: 'x' }, hooks))).toMatch(/EIO/);
        expect(undone).toEqual(['x']);
        expect(await storage.imageExists('fast', 't2.x')).toBe(false);
        expect(await store.getVolume('t2', 'x')).toBeNull();
      });
    });
  });
});
