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
    store = new StateStore(kv.client(), { owner: 'test' });
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
});
