// Backups (src/backups) on the memory twins: a real directory target in a temp dir with real
// `rbd export-diff` v1 files, a second memory cluster as the Ceph target. The real cluster and the
// rbd CLI are test/integration/backups.test.ts.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isApiError } from '../../src/api/errors.js';
import type { BackupConfig } from '../../src/backups/config.js';
import { BACKUP_PREFIX, backupName, isBackupName } from '../../src/backups/names.js';
import { chainTo, emptyManifest, nextBase, planBackupPrune, type Manifest, type ManifestEntry } from '../../src/backups/manifest.js';
import { restoreInPlace, restoreIntoNew } from '../../src/backups/restore.js';
import { BackupScheduler } from '../../src/backups/scheduler.js';
import { BackupService } from '../../src/backups/service.js';
import type { BackupProgress } from '../../src/backups/target.js';
import { verifyBackups } from '../../src/backups/verify.js';
import { validatePolicy } from '../../src/policy/validate.js';
import { ManualClock } from '../../src/snapshots/clock.js';
import { policyCopyRecord } from '../../src/snapshots/copy-record.js';
import { MemoryKV } from '../../src/state/memory.js';
import type { VolumeRecord } from '../../src/state/records.js';
import { StateStore } from '../../src/state/store.js';
import { memoryStorage, type MemoryStorage } from '../../src/storage/memory.js';
import { manifestEntry, mountRecord, volumeRecord } from '../helpers/fixtures.js';

const log = pino({ level: 'silent' });
const MiB = 1024 * 1024;

async function codeOf(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, 'expected a failure').not.toBeNull();
  return isApiError(err) ? err.code : String((err as { code?: string }).code ?? err);
}

/** Whole images compared as bytes (toEqual on megabytes is slow, and its diff unreadable). */
const same = (a: Buffer, b: Buffer) => a.length === b.length && a.equals(b);

const entry = (name: string, parent: string | null): ManifestEntry => manifestEntry(name, parent);

describe('backup manifest rules', () => {
  const manifest = (...entries: ManifestEntry[]): Manifest => ({ ...emptyManifest('t1', 'data'), backups: entries });

  it('names backups vb-<time>, with -N for a second in the same second', () => {
    const at = Date.UTC(2026, 11, 1, 12, 0, 0, 400);
    expect(backupName(at)).toBe('vb-20261201T120000Z');
    expect(backupName(at, 2)).toBe('vb-20261201T120000Z-2');
    expect(isBackupName('vb-20261201T120000Z-2')).toBe(true);
    expect(isBackupName('vs-20261201T120000Z')).toBe(false);
    expect(BACKUP_PREFIX).toBe('vb-');
  });

  it('follows a chain back to its full backup and names a missing parent', () => {
    const m = manifest(entry('a', null), entry('b', 'a'), entry('c', 'b'));
    expect(chainTo(m, 'c').map((e) => e.name)).toEqual(['a', 'b', 'c']);
    const broken = manifest(entry('b', 'a'), entry('c', 'b'));
    expect(() => chainTo(broken, 'c')).toThrow(/a diff from a, which the target no longer has/);
  });

  it('starts a new chain when the base snapshot is gone, the image changed or the chain has keep backups', () => {
    const m = manifest(entry('a', null), entry('b', 'a'));
    const source = { pool: 'rbd', image: 't1.data', snapshots: ['b'] };
    expect(nextBase(m, source, 3)).toBe('b');
    expect(nextBase(m, source, 2)).toBeNull();
    expect(nextBase(m, source, 2, false)).toBe('b');
    expect(nextBase(m, { ...source, snapshots: [] }, 3)).toBeNull();
    expect(nextBase(m, { ...source, image: 'other' }, 3)).toBeNull();
    expect(nextBase(emptyManifest('t1', 'data'), source, 3)).toBeNull();
  });

  it('prunes to keep restore points and never removes the base of a kept diff', () => {
    const m = manifest(entry('a', null), entry('b', 'a'), entry('c', null), entry('d', 'c'), entry('e', 'd'));
    expect(planBackupPrune(m, 2).remove.map((e) => e.name)).toEqual(['a', 'b']);
    expect(planBackupPrune(m, 1).keep.map((e) => e.name)).toEqual(['c', 'd', 'e']);
    expect(planBackupPrune(m, 1, false).keep.map((e) => e.name)).toEqual(['e']);
  });
});

describe('BackupService', () => {
  let kv: MemoryKV;
  let store: StateStore;
  let storage: MemoryStorage;
  let replica: MemoryStorage;
  let clock: ManualClock;
  let root: string;
  let config: BackupConfig;
  let service: BackupService;
  let record: VolumeRecord;

  const policy = (target: unknown, extra: Record<string, unknown> = {}) =>
    validatePolicy({ 'default-options': { pool: 'rbd', size: '10MB', backups: true, backup: { keep: 3, target, ...extra } } });

  beforeEach(async () => {
    kv = new MemoryKV();
    store = new StateStore(kv, { owner: 'test' });
    clock = new ManualClock(Date.UTC(2026, 10, 22, 12, 0, 0));
    storage = memoryStorage({ pools: ['rbd'], now: () => clock.now() });
    replica = memoryStorage({ pools: ['backups'], fsid: '11111111-0000-4000-8000-000000000000', now: () => clock.now() });
    root = await mkdtemp(path.join(tmpdir(), 'volplugin-backups-'));
    config = { allow: [root, '/etc/ceph'], hookAllow: ['true', 'false'], hookTimeoutMs: 5000, stagingDir: path.join(root, '.staging') };
    await store.putTenant('t1', policy({ directory: path.join(root, 'dir') }));
    await mkdir(path.join(root, 'dir'));
    record = volumeRecord('t1', 'data', { runtime: { backups: true, backup: { frequency: '1h', keep: 3 } } });
    await storage.createImage('rbd', record.image, { size: 4 * MiB });
    await store.createVolume(record);
    service = new BackupService(storage, store, { config, clock, logger: log, lockWaitMs: 200, openTargetStorage: async () => replica });
  });

  afterEach(async () => {
    await service.close();
    await rm(root, { recursive: true, force: true });
  });

  /** The create path a restore into a new volume takes (the master's route adds intents and marks). */
  const restoreHooks = () => {
    const build = policyCopyRecord(store, {}, clock);
    return { build: (i: { target: { tenant: string; volume: string }; sizeBytes: number; source: VolumeRecord | null; backup: string }) => build({ target: i.target, sizeBytes: i.sizeBytes, sourceRecord: i.source ?? record, snapshot: i.backup }) };
  };
  const write = (offset: number, bytes: number, fill: number) => storage.writeData('rbd', record.image, offset, Buffer.alloc(bytes, fill));
  const tick = () => clock.advance(1500);

  describe('to a directory', () => {
    it('takes a full backup, then incrementals that hold only what changed, and records bytes and time', async () => {
      write(0, MiB, 1);
      const progress: BackupProgress[] = [];
      const first = await service.take('t1', 'data', { onProgress: (p) => progress.push(p) });
      expect(first).toMatchObject({ kind: 'full', parent: null, sizeBytes: 4 * MiB, dataBytes: MiB });
      expect(progress.some((p) => p.phase === 'export' && p.done === p.total && p.total > 0)).toBe(true);
      tick();
      write(MiB, 4096, 2);
      const second = await service.take('t1', 'data');
      expect(second).toMatchObject({ kind: 'incremental', parent: first.name, dataBytes: 4096 });
      expect(second.bytes).toBeLessThan(first.bytes / 100);
      const files = await readdir(path.join(root, 'dir', 't1', 'data'));
      expect(files.sort()).toEqual([`${first.name}.diff`, `${second.name}.diff`, 'manifest.json'].sort());
      const etcd = await store.getBackupRecord('t1', 'data');
      expect(etcd?.backups.map((b) => [b.name, b.bytes])).toEqual([
        [first.name, first.bytes],
        [second.name, second.bytes],
      ]);
      // Only the last backup's snapshot stays on the volume: the base of the next diff.
      expect((await storage.listSnapshots('rbd', record.image)).map((s) => s.name)).toEqual([second.name]);
    });

    it('refuses a record whose keep keeps nothing (etcd is not trusted) before anything is written', async () => {
      await store.updateVolume('t1', 'data', (r) => ({ ...r, runtime: { ...r.runtime, backup: { frequency: '1h', keep: { daily: 0 } } } }));
      const err = await service.take('t1', 'data').catch((e: unknown) => e);
      expect(isApiError(err) && [err.code, err.field]).toEqual(['INVALID_OPTION', 'backups.keep']);
      expect((err as Error).message).toMatch(/keeps nothing.*volcli volume runtime set/);
      expect(await storage.listSnapshots('rbd', record.image)).toEqual([]);
      expect(await readdir(path.join(root, 'dir'))).toEqual([]);
    });

    it('restores at a time or by name into a new volume with the bytes of that moment', async () => {
      await store.putTenant('t2', validatePolicy({ 'default-options': { pool: 'rbd', size: '10MB' } }));
      write(0, 8192, 1);
      const first = await service.take('t1', 'data');
      tick();
      write(0, 4096, 9);
      const second = await service.take('t1', 'data');
      const at = storage.readData('rbd', record.image, second.name);
      const hooks = restoreHooks();
      const r = await restoreIntoNew(service, { tenant: 't1', volume: 'data' }, { at: new Date(first.at) }, { tenant: 't2', volume: 'old' }, hooks);
      expect(r).toMatchObject({ backup: first.name, created: true, tenant: 't2', volume: 'old' });
      expect(storage.readData('rbd', 't2.old').subarray(0, 8192)).toEqual(Buffer.alloc(8192, 1));
      expect(await store.getVolume('t2', 'old')).not.toBeNull();
      expect(await storage.listSnapshots('rbd', 't2.old')).toEqual([]);
      await restoreIntoNew(service, { tenant: 't1', volume: 'data' }, { backup: second.name }, { tenant: 't2', volume: 'new' }, hooks);
      expect(same(storage.readData('rbd', 't2.new'), at)).toBe(true);
      expect(await codeOf(restoreIntoNew(service, { tenant: 't1', volume: 'data' }, {}, { tenant: 't2', volume: 'new' }, hooks))).toBe('VOLUME_EXISTS');
      expect(await codeOf(restoreIntoNew(service, { tenant: 't1', volume: 'data' }, { at: new Date(Date.parse(first.at) - 60_000) }, { tenant: 't2', volume: 'x' }, hooks))).toBe('BACKUP_NOT_FOUND');
    });

    it('restores into the volume itself, refused while it is mounted, and the chain continues afterwards', async () => {
      write(0, 4096, 1);
      const first = await service.take('t1', 'data');
      write(0, 4096, 7);
      const lease = await kv.lease(10);
      const mount = mountRecord('t1', 'data', { lease: lease.id });
      expect((await store.acquireMount(mount, lease)).ok).toBe(true);
      expect(await codeOf(restoreInPlace(service, 't1', 'data', {}))).toBe('VOLUME_MOUNTED');
      expect(storage.readData('rbd', record.image).subarray(0, 4096)).toEqual(Buffer.alloc(4096, 7));
      expect(await store.releaseMount('t1', 'data', { hostId: mount.hostId, lease: lease.id })).toBe(true);
      const r = await restoreInPlace(service, 't1', 'data', {});
      expect(r).toMatchObject({ backup: first.name, created: false });
      expect(storage.readData('rbd', record.image).subarray(0, 4096)).toEqual(Buffer.alloc(4096, 1));
      tick();
      expect((await service.take('t1', 'data')).kind).toBe('incremental');
    });

    it('verifies a good chain, and finds a damaged or missing diff; a restore needing it is refused', async () => {
      write(0, 4096, 1);
      const first = await service.take('t1', 'data');
      tick();
      write(0, 4096, 2);
      await service.take('t1', 'data');
      expect((await verifyBackups(service, 't1', 'data')).ok).toBe(true);
      const file = path.join(root, 'dir', 't1', 'data', `${first.name}.diff`);
      const bytes = await readFile(file);
      bytes.writeUInt8(bytes.readUInt8(bytes.length - 20) ^ 0xff, bytes.length - 20);
      await writeFile(file, bytes);
      const report = await verifyBackups(service, 't1', 'data');
      expect(report.ok).toBe(false);
      expect(report.backups[0]!.problems.join()).toMatch(/does not match its checksum/);
      expect(report.backups[1]!.problems.join()).toMatch(/its chain is broken/);
      expect(await codeOf(restoreInPlace(service, 't1', 'data', {}))).toBe('BACKUP_CHAIN_BROKEN');
      expect(storage.readData('rbd', record.image).subarray(0, 4096)).toEqual(Buffer.alloc(4096, 2));
      await rm(file);
      expect((await verifyBackups(service, 't1', 'data')).backups[0]!.problems.join()).toMatch(/is missing/);
    });

    it('counts nothing when the process dies after the export, and the next run tidies and continues', async () => {
      write(0, 4096, 1);
      const first = await service.take('t1', 'data');
      tick();
      const dying = new BackupService(storage, store, {
        config,
        clock,
        logger: log,
        afterExport: () => Promise.reject(Object.assign(new Error('killed'), { code: 'KILLED' })),
      });
      expect(await codeOf(dying.take('t1', 'data'))).toBe('KILLED');
      const dir = path.join(root, 'dir', 't1', 'data');
      // A partial file can be left by a real kill: make one.
      await writeFile(path.join(dir, 'vb-20261122T120001Z.diff.partial'), 'half');
      await storage.createSnapshot('rbd', record.image, 'vb-20261122T120001Z');
      expect((await service.list('t1', 'data')).backups.map((b) => b.name)).toEqual([first.name]);
      tick();
      const next = await service.take('t1', 'data');
      expect(next).toMatchObject({ kind: 'incremental', parent: first.name });
      expect((await readdir(dir)).filter((f) => f.includes('partial'))).toEqual([]);
      expect((await storage.listSnapshots('rbd', record.image)).map((s) => s.name)).toEqual([next.name]);
      expect((await store.getBackupRecord('t1', 'data'))?.lastError).toBeUndefined();
    });

    it('reports a full target (507) and a missing one (503) with nothing counted', async () => {
      storage.failNext('exportDiff', 'ENOSPC');
      const full = await service.take('t1', 'data').catch((e: unknown) => e);
      expect(isApiError(full) && full.code).toBe('BACKUP_TARGET_FULL');
      expect((full as Error).message).toMatch(/is full .*nothing was counted/);
      expect((await store.getBackupRecord('t1', 'data'))?.lastError?.message).toMatch(/is full/);
      expect(await storage.listSnapshots('rbd', record.image)).toEqual([]);
      await rm(path.join(root, 'dir'), { recursive: true });
      const missing = await service.take('t1', 'data').catch((e: unknown) => e);
      expect(isApiError(missing) && missing.code).toBe('BACKUP_TARGET_UNAVAILABLE');
      expect((missing as Error).message).toMatch(/does not exist: create it, or mount the NFS share/);
    });

    it('refuses a target outside --backup-allow and a tenant without a target', async () => {
      await store.putTenant('t1', policy({ directory: '/tmp' }));
      expect((await service.take('t1', 'data').catch((e: Error) => e.message)) as string).toMatch(/not under an allowed directory/);
      await store.putTenant('t1', validatePolicy({ 'default-options': { pool: 'rbd', size: '10MB' } }));
      expect(await codeOf(service.take('t1', 'data'))).toBe('BACKUPS_NOT_CONFIGURED');
    });

    it('prunes to keep restore points, never a chain base still needed', async () => {
      const names: string[] = [];
      for (let i = 0; i < 5; i++) {
        write(0, 4096, i + 1);
        names.push((await service.take('t1', 'data')).name);
        tick();
      }
      // keep 3: chains of at most 3; backups 0-2 are one chain, 3-4 the next. The newest three are 2, 3, 4; 2 needs 0 and 1.
      const kept = (await service.list('t1', 'data')).backups;
      expect(kept.map((b) => [b.name, b.kind])).toEqual([
        [names[0], 'full'],
        [names[1], 'incremental'],
        [names[2], 'incremental'],
        [names[3], 'full'],
        [names[4], 'incremental'],
      ]);
      write(0, 4096, 9);
      await service.take('t1', 'data');
      expect((await service.list('t1', 'data')).backups.map((b) => b.name)).toEqual([names[3], names[4], expect.any(String)]);
      expect((await readdir(path.join(root, 'dir', 't1', 'data'))).length).toBe(4);
    });

    it('runs the hook with volume, snapshot and file; a failing one is recorded, the backup stays', async () => {
      await store.putTenant('t1', policy({ directory: path.join(root, 'dir') }, { hook: ['false'] }));
      const b = await service.take('t1', 'data');
      const list = await service.list('t1', 'data');
      expect(list.backups.map((x) => x.name)).toEqual([b.name]);
      expect(list.lastHook).toMatchObject({ backup: b.name, ok: false, message: expect.stringMatching(/exited with 1/) });
      await store.putTenant('t1', policy({ directory: path.join(root, 'dir') }, { hook: ['rclone'] }));
      tick();
      await service.take('t1', 'data');
      expect((await service.list('t1', 'data')).lastHook?.message).toMatch(/not an allowed program/);
    });
  });

  describe('to a Ceph cluster', () => {
    let conf: string;
    beforeEach(async () => {
      conf = path.join(root, 'backup.conf');
      await writeFile(conf, '[global]\n');
      await store.putTenant('t1', policy({ ceph: { conf, pool: 'backups' } }));
    });

    it('applies each diff to a replica whose snapshots are whole restore points', async () => {
      write(0, 4096, 1);
      const first = await service.take('t1', 'data');
      tick();
      write(4096, 4096, 2);
      const second = await service.take('t1', 'data');
      expect(second).toMatchObject({ kind: 'incremental', location: `backups/t1.data@${second.name}` });
      const atFirst = replica.readData('backups', 't1.data', first.name);
      expect(atFirst.subarray(0, 4096)).toEqual(Buffer.alloc(4096, 1));
      expect(atFirst.subarray(4096, 8192)).toEqual(Buffer.alloc(4096, 0));
      expect(same(replica.readData('backups', 't1.data', second.name), storage.readData('rbd', record.image, second.name))).toBe(true);
      expect((await verifyBackups(service, 't1', 'data')).ok).toBe(true);
      // verify reads the replica's data back: an unreadable snapshot is found.
      replica.failNext('exportDiff', 'EIO');
      const damaged = await verifyBackups(service, 't1', 'data');
      expect(damaged.ok).toBe(false);
      expect(damaged.backups[0]!.problems.join()).toMatch(/cannot be read back/);
      // A whole pool lost: the volume comes back from the replica alone.
      await storage.removeSnapshot('rbd', record.image, second.name);
      await storage.removeImage('rbd', record.image);
      await store.deleteVolume('t1', 'data');
      const r = await restoreIntoNew(service, { tenant: 't1', volume: 'data' }, {}, { tenant: 't1', volume: 'data' }, restoreHooks());
      expect(r.backup).toBe(second.name);
      expect(same(storage.readData('rbd', record.image), replica.readData('backups', 't1.data', second.name))).toBe(true);
    });

    it('rolls back a replica an apply died in, and refuses the volume\'s own pool', async () => {
      const first = await service.take('t1', 'data');
      tick();
      write(0, 4096, 5);
      replica.failNext('applyDiff', 'EIO');
      await expect(service.take('t1', 'data')).rejects.toThrow();
      const meta = await replica.getMetadata('backups', 't1.data');
      expect(meta['volplugin.backup.applying']).toBeDefined();
      tick();
      const next = await service.take('t1', 'data');
      // The failed run removed its own snapshot: the last good backup's is still the base.
      expect(next).toMatchObject({ kind: 'incremental', parent: first.name });
      expect(same(replica.readData('backups', 't1.data', next.name), storage.readData('rbd', record.image, next.name))).toBe(true);
      expect((await replica.listSnapshots('backups', 't1.data')).map((s) => s.name)).toEqual([first.name, next.name]);
      expect((await replica.getMetadata('backups', 't1.data'))['volplugin.backup.applying']).toBeUndefined();
      await store.putTenant('t1', policy({ ceph: { conf, pool: 'rbd' } }));
      const own = new BackupService(storage, store, { config, clock, logger: log, openTargetStorage: async () => storage });
      expect((await own.take('t1', 'data').catch((e: Error) => e.message)) as string).toMatch(/the volume's own pool/);
      await own.close();
    });
  });

  describe('scheduler', () => {
    it('takes one backup per slot of the volume\'s frequency, and none for volumes without backups', async () => {
      const other = volumeRecord('t1', 'plain');
      await storage.createImage('rbd', other.image, { size: MiB });
      await store.createVolume(other);
      const scheduler = new BackupScheduler(store, service, clock, log, { tickMs: 1000 });
      await scheduler.tick();
      await scheduler.idle();
      await scheduler.tick();
      await scheduler.idle();
      const record1 = await store.getBackupRecord('t1', 'data');
      expect(record1?.backups).toHaveLength(1);
      expect(record1?.lastSlot).toBe('2026-11-22T12:00:00.000Z');
      clock.advance(3_600_000);
      await scheduler.tick();
      await scheduler.idle();
      expect((await store.getBackupRecord('t1', 'data'))?.backups).toHaveLength(2);
      expect(await store.getBackupRecord('t1', 'plain')).toBeNull();
      // A new leader reads the last slot from etcd: no second backup in the same slot.
      const fresh = new BackupScheduler(store, service, clock, log, { tickMs: 1000 });
      await fresh.tick();
      await fresh.idle();
      expect((await store.getBackupRecord('t1', 'data'))?.backups).toHaveLength(2);
    });
  });
});
