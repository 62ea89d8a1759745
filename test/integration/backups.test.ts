// Backups on the real cluster and etcd (issue 16): files volplugin writes import with the real
// `rbd import-diff` to the source snapshots' bytes, and files the real `rbd export-diff` writes
// restore with volplugin; a replica in a second pool; a full target; a volsupervisor killed in
// the middle of a backup leaves nothing counted and the next one continues; a tiered keep prunes
// real backups by their time, freeing whole chains, and every backup it keeps still restores; a
// backup and a restore through a real volmaster run as operations whose progress and end a client
// polls.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isApiError } from '../../src/api/errors.js';
import type { BackupConfig } from '../../src/backups/config.js';
import { restoreIntoNew } from '../../src/backups/restore.js';
import { BackupService } from '../../src/backups/service.js';
import { verifyBackups } from '../../src/backups/verify.js';
import { validatePolicy } from '../../src/policy/validate.js';
import { ManualClock } from '../../src/snapshots/clock.js';
import { policyCopyRecord } from '../../src/snapshots/copy-record.js';
import { EtcdKV } from '../../src/state/etcd.js';
import type { VolumeRecord } from '../../src/state/records.js';
import { StateStore } from '../../src/state/store.js';
import { openStorage } from '../../src/storage/index.js';
import type { Storage } from '../../src/storage/types.js';
import { diffStream, imageDigest, random, rbd, rbdImportDiff } from '../helpers/rbd-diff.js';
import { startMaster, testPolicy, waitFor, type TestMaster } from '../helpers/plugin-harness.js';
import type { OperationRecord } from '../../src/state/records.js';
import { repoRoot } from '../helpers/sandbox.js';

const backend = existsSync(path.join(repoRoot, 'build/Release/volplugin_rbd.node')) ? 'native' : 'cli';
const pool = process.env.VOLPLUGIN_TEST_POOL ?? 'rbd';
const MiB = 1024 * 1024;
const SIZE = 32 * MiB;
const log = pino({ level: process.env.VOLPLUGIN_TEST_VERBOSE ? 'debug' : 'silent' });

const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');

describe(`backups on real Ceph and etcd (${backend} backend)`, () => {
  const id = randomUUID().slice(0, 8);
  const prefix = `/it-backups-${id}`;
  const tenant = `bk${id}`;
  let kv: EtcdKV;
  let store: StateStore;
  let storage: Storage;
  let root: string;
  let config: BackupConfig;
  let service: BackupService;

  /** A volume record and its image (with fast-diff, as volplugin makes them), some data written. */
  async function volume(name: string, runtime: Partial<VolumeRecord['runtime']> = {}): Promise<VolumeRecord> {
    const rt = { snapshots: false, snapshot: { frequency: '1h', keep: 3 }, rateLimit: { writeIops: 0, readIops: 0, writeBps: 0, readBps: 0 }, ...runtime };
    const record: VolumeRecord = {
      tenant,
      volume: name,
      pool,
      image: `${tenant}.${name}`,
      options: { pool, sizeBytes: SIZE, filesystem: 'ext4', ephemeral: false, ...rt },
      runtime: rt,
      policyRevision: 1,
      formatCommand: 'mkfs.ext4 -q %',
      createdAt: new Date().toISOString(),
    };
    await rbd('create', '--size', `${SIZE / MiB}M`, '--image-feature', 'layering,exclusive-lock,object-map,fast-diff', `${pool}/${record.image}`);
    await rbdImportDiff(diffStream({ size: SIZE, records: [{ w: [0, random(MiB)] }, { w: [9 * MiB + 777, random(300_000)] }] }), `${pool}/${record.image}`);
    expect(await store.createVolume(record)).toBe(true);
    return record;
  }

  /** Removes the images of `owner`'s volumes (with their snapshots) and the etcd keys under `keys`. */
  async function removeAll(owner: string, keys: string): Promise<void> {
    for (const image of (await storage.listImages(pool)).filter((i) => i.startsWith(`${owner}.`))) {
      await rbd('snap', 'purge', '--no-progress', `${pool}/${image}`).catch(() => undefined);
      await rbd('rm', '--no-progress', `${pool}/${image}`).catch(() => undefined);
    }
    for (const entry of await kv.list(`${keys}/`)) await kv.delete(entry.key);
  }

  const putPolicy = (target: unknown) => store.putTenant(tenant, validatePolicy({ 'default-options': { pool, size: '32MB', backups: false, backup: { keep: 4, target } } }));
  const targetDir = (v: string) => path.join(root, 'dir', tenant, v);

  beforeAll(async () => {
    kv = new EtcdKV({ endpoints: [process.env.VOLPLUGIN_TEST_ETCD!] });
    store = new StateStore(kv, { prefix, owner: `it-${id}` });
    storage = await openStorage(backend, { confPath: process.env.CEPH_CONF });
    root = await mkdtemp(path.join(tmpdir(), 'volplugin-it-backups-'));
    await mkdir(path.join(root, 'dir'));
    config = { allow: [root], hookAllow: [], hookTimeoutMs: 10_000, stagingDir: path.join(root, 'staging') };
    service = new BackupService(storage, store, { config, logger: log });
    await putPolicy({ directory: path.join(root, 'dir') });
  });

  afterAll(async () => {
    await service?.close();
    await removeAll(tenant, prefix);
    await storage.close();
    await kv.close();
    await execa('umount', [path.join(root, 'small')], { reject: false });
    await rm(root, { recursive: true, force: true });
  });

  it('1 a full and an incremental backup import with the real `rbd import-diff` to the source snapshots\u2019 bytes', async () => {
    const v = await volume('v1');
    const first = await service.take(tenant, 'v1');
    const firstDigest = await imageDigest(`${pool}/${v.image}@${first.name}`);
    await rbdImportDiff(diffStream({ size: SIZE, records: [{ w: [MiB * 20, random(4096)] }, { z: [0, 65536] }] }), `${pool}/${v.image}`);
    // Between the export and the commit both snapshots exist: the real `rbd export-diff` of the same range, for test 2.
    const fromRbd = path.join(root, 'rbd-incr.diff');
    const svc = new BackupService(storage, store, {
      config,
      logger: log,
      afterExport: async () => {
        const snaps = (await storage.listSnapshots(pool, v.image)).map((s) => s.name);
        await rbd('export-diff', '--no-progress', '--from-snap', first.name, `${pool}/${v.image}@${snaps.at(-1)}`, fromRbd);
      },
    });
    const second = await svc.take(tenant, 'v1');
    await svc.close();
    expect(second).toMatchObject({ kind: 'incremental', parent: first.name });
    expect(second.bytes).toBeLessThan(first.bytes / 10);
    const secondDigest = await imageDigest(`${pool}/${v.image}@${second.name}`);

    const fresh = `${tenant}.fresh`;
    await rbd('create', '--size', '1M', `${pool}/${fresh}`);
    await rbd('import-diff', '--no-progress', path.join(targetDir('v1'), `${first.name}.diff`), `${pool}/${fresh}`);
    expect(await imageDigest(`${pool}/${fresh}@${first.name}`)).toBe(firstDigest);
    await rbd('import-diff', '--no-progress', path.join(targetDir('v1'), `${second.name}.diff`), `${pool}/${fresh}`);
    expect(await imageDigest(`${pool}/${fresh}@${second.name}`)).toBe(secondDigest);

    // 2: the incremental file the real rbd wrote takes the place of volplugin's; verify and a restore accept it.
    const manifest = JSON.parse(await readFile(path.join(targetDir('v1'), 'manifest.json'), 'utf8')) as { backups: Array<{ name: string; sha256: string; bytes: number }> };
    const entry = manifest.backups.find((b) => b.name === second.name)!;
    expect(await sha256(fromRbd), 'rbd export-diff and volplugin write the same stream').toBe(entry.sha256);
    await rename(fromRbd, path.join(targetDir('v1'), `${second.name}.diff`));
    expect((await verifyBackups(service, tenant, 'v1')).ok).toBe(true);
    const hooks = { build: async (i: { target: { tenant: string; volume: string }; sizeBytes: number; source: VolumeRecord | null; backup: string }) => policyCopyRecord(store, {})({ target: i.target, sizeBytes: i.sizeBytes, sourceRecord: i.source ?? v, snapshot: i.backup }) };
    const restored = await restoreIntoNew(service, { tenant, volume: 'v1' }, {}, { tenant, volume: 'v1-restored' }, hooks);
    expect(restored.backup).toBe(second.name);
    expect(await imageDigest(`${pool}/${restored.image}`)).toBe(secondDigest);
  }, 120_000);

  it('3 a replica in a second pool: each backup a snapshot with the source\u2019s bytes; the volume comes back from it alone', async () => {
    const backupPool = `bk${id}`;
    await execa('ceph', ['osd', 'pool', 'create', backupPool, '8', '8'], { timeout: 60_000 });
    try {
      await execa('rbd', ['pool', 'init', backupPool], { timeout: 60_000 });
      await putPolicy({ ceph: { conf: process.env.CEPH_CONF!, pool: backupPool } });
      const cephService = new BackupService(storage, store, { config: { ...config, allow: [root, path.dirname(process.env.CEPH_CONF!)] }, logger: log });
      try {
        const v = await volume('v3');
        const first = await cephService.take(tenant, 'v3');
        expect(first.location).toBe(`${backupPool}/${v.image}@${first.name}`);
        await rbdImportDiff(diffStream({ size: SIZE, records: [{ w: [5 * MiB, random(8192)] }] }), `${pool}/${v.image}`);
        const second = await cephService.take(tenant, 'v3');
        expect(second.kind).toBe('incremental');
        const digest = await imageDigest(`${pool}/${v.image}@${second.name}`);
        expect(await imageDigest(`${backupPool}/${v.image}@${second.name}`)).toBe(digest);
        expect((await verifyBackups(cephService, tenant, 'v3')).ok).toBe(true);
        // The source image and record gone, as with a lost pool.
        await rbd('snap', 'purge', '--no-progress', `${pool}/${v.image}`);
        await rbd('rm', '--no-progress', `${pool}/${v.image}`);
        await store.deleteVolume(tenant, 'v3');
        const hooks = { build: async (i: { target: { tenant: string; volume: string }; sizeBytes: number; source: VolumeRecord | null; backup: string }) => policyCopyRecord(store, {})({ target: i.target, sizeBytes: i.sizeBytes, sourceRecord: i.source ?? v, snapshot: i.backup }) };
        const r = await restoreIntoNew(cephService, { tenant, volume: 'v3' }, {}, { tenant, volume: 'v3' }, hooks);
        expect(await imageDigest(`${pool}/${r.image}`)).toBe(digest);
      } finally {
        await cephService.close();
        await putPolicy({ directory: path.join(root, 'dir') });
      }
    } finally {
      await execa('ceph', ['osd', 'pool', 'rm', backupPool, backupPool, '--yes-i-really-really-mean-it'], { reject: false, timeout: 60_000 });
    }
  }, 180_000);

  it('4 a full target (a 256 KiB tmpfs) is BACKUP_TARGET_FULL with nothing counted or left behind', async () => {
    const small = path.join(root, 'small');
    await mkdir(small);
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', small]);
    await putPolicy({ directory: small });
    try {
      const v = await volume('v4');
      const err = await service.take(tenant, 'v4').catch((e: unknown) => e);
      expect(isApiError(err) && err.code, String(err)).toBe('BACKUP_TARGET_FULL');
      expect(await readdir(path.join(small, tenant, 'v4'))).toEqual([]);
      expect(await storage.listSnapshots(pool, v.image)).toEqual([]);
      expect((await store.getBackupRecord(tenant, 'v4'))?.lastError?.message).toMatch(/is full/);
    } finally {
      await putPolicy({ directory: path.join(root, 'dir') });
      await execa('umount', [small], { reject: false });
    }
  }, 60_000);

  it('6 a tiered keep prunes real backups by their time: a diff no point needs goes, then a whole old chain; every kept backup restores', async () => {
    // {"last": 1, "daily": 2}: chains of 3 (the tiers' sum). Backups at 10:00 and 20:00 of three days.
    const v = await volume('v6', { backup: { frequency: '12h', keep: { last: 1, daily: 2 } } });
    const clock = new ManualClock(Date.UTC(2026, 5, 1, 10));
    const svc = new BackupService(storage, store, { config, logger: log, clock });
    const digests = new Map<string, string>();
    const kept: string[][] = [];
    try {
      for (const [i, at] of [Date.UTC(2026, 5, 1, 10), Date.UTC(2026, 5, 1, 20), Date.UTC(2026, 5, 2, 10), Date.UTC(2026, 5, 2, 20), Date.UTC(2026, 5, 3, 10)].entries()) {
        clock.set(at);
        if (i > 0) await rbdImportDiff(diffStream({ size: SIZE, records: [{ w: [i * 3 * MiB + 4096, random(65_536)] }] }), `${pool}/${v.image}`);
        const b = await svc.take(tenant, 'v6');
        digests.set(b.name, await imageDigest(`${pool}/${v.image}@${b.name}`));
        kept.push((await svc.list(tenant, 'v6')).backups.map((x) => x.name));
      }
    } finally {
      await svc.close();
    }
    const [b0, b1, b2, b3, b4] = [...digests.keys()];
    expect(kept[2], 'after the third: one chain of 3, all needed').toEqual([b0, b1, b2]);
    // Day 2, 20:00 starts a new chain; the points are b3 (last, daily) and b1 (day 1's newest): b2 goes, b0 stays as b1's base.
    expect(kept[3]).toEqual([b0, b1, b3]);
    expect(kept[4], 'the points b4 and b3 (day 3, day 2) need only the new chain: the old one is freed whole').toEqual([b3, b4]);
    const listing = await service.list(tenant, 'v6');
    expect(listing.backups.map((b) => [b.name, b.kind])).toEqual([
      [b3, 'full'],
      [b4, 'incremental'],
    ]);
    expect((await readdir(targetDir('v6'))).sort()).toEqual([`${b3}.diff`, `${b4}.diff`, 'manifest.json'].sort());
    expect((await store.getBackupRecord(tenant, 'v6'))?.backups.map((b) => b.name)).toEqual([b3, b4]);
    expect((await verifyBackups(service, tenant, 'v6')).ok).toBe(true);
    const hooks = { build: async (i: { target: { tenant: string; volume: string }; sizeBytes: number; source: VolumeRecord | null; backup: string }) => policyCopyRecord(store, {})({ target: i.target, sizeBytes: i.sizeBytes, sourceRecord: i.source ?? v, snapshot: i.backup }) };
    for (const [i, name] of [b3!, b4!].entries()) {
      const r = await restoreIntoNew(service, { tenant, volume: 'v6' }, { backup: name }, { tenant, volume: `v6-restored-${i}` }, hooks);
      expect(await imageDigest(`${pool}/${r.image}`), `restore of ${name}`).toBe(digests.get(name));
    }
  }, 120_000);

  describe('through a real volmaster', () => {
    const mtenant = `bm${id}`;
    const mprefix = `/it-backups-master-${id}`;
    let master: TestMaster;
    const policy = (directory: string) => {
      const base = testPolicy();
      return { ...base, 'default-options': { ...base['default-options'], backup: { target: { directory } } } };
    };

    beforeAll(async () => {
      // The pause after a backup's export holds the operation running with its bytes counted, so that a poll sees them.
      master = await startMaster(path.join(root, 'master'), mprefix, { env: { VOLMASTER_FAILPOINTS: 'backup-after-export=3000' }, extraArgs: ['--backup-allow', root] });
      await master.api.uploadTenant(mtenant, policy(path.join(root, 'dir')));
    });

    afterAll(async () => {
      await master?.stop();
      await removeAll(mtenant, mprefix);
    });

    /** Polls an operation to its end; returns every state seen. */
    async function follow(first: OperationRecord): Promise<OperationRecord[]> {
      const seen = [first];
      await waitFor(`operation ${first.id} to end`, async () => {
        const op = await master.api.getOperation(first.id);
        seen.push(op);
        return op.state !== 'running';
      }, 60_000);
      return seen;
    }

    it('7 a backup and a restore run as operations: bytes done of total while running, the backup and the restore as results, the audit names them', async () => {
      const { volume: record } = await master.api.createVolume(mtenant, 'm1');
      await rbdImportDiff(diffStream({ size: record.options.sizeBytes, records: [{ w: [2 * MiB, random(MiB)] }] }), `${pool}/${record.image}`);
      const started = await master.api.startBackup(mtenant, 'm1');
      expect(started).toMatchObject({ kind: 'backup', tenant: mtenant, volume: 'm1', state: 'running', by: 'bootstrap' });
      const seen = await follow(started);
      const running = seen.filter((op) => op.state === 'running' && op.unit === 'bytes' && op.total > 0);
      expect(running.length, JSON.stringify(seen)).toBeGreaterThan(0);
      expect(running.at(-1)!.done).toBeLessThanOrEqual(running.at(-1)!.total);
      const done = seen.at(-1)!;
      expect(done).toMatchObject({ state: 'done', unit: 'bytes', result: { kind: 'full', parent: null }, message: expect.stringMatching(/^took full backup vb-/) });
      const backup = done.result as { name: string; bytes: number };
      expect(backup.bytes).toBeGreaterThan(MiB);
      const digest = await imageDigest(`${pool}/${record.image}@${backup.name}`);
      expect((await master.api.listBackups(mtenant, 'm1')).backups.map((b) => b.name)).toEqual([backup.name]);

      const restore = await master.api.startRestore(mtenant, 'm1', { into: { tenant: mtenant, volume: 'm1-back' } });
      expect(restore).toMatchObject({ kind: 'restore', target: { tenant: mtenant, volume: 'm1-back' } });
      const restored = (await follow(restore)).at(-1)!;
      expect(restored).toMatchObject({ state: 'done', unit: 'bytes', result: { backup: backup.name, created: true, tenant: mtenant, volume: 'm1-back' } });
      expect(restored.total).toBeGreaterThan(0);
      expect(await imageDigest(`${pool}/${(restored.result as { image: string }).image}`)).toBe(digest);
      expect((await master.api.getVolume(mtenant, 'm1-back')).options.sizeBytes).toBe(record.options.sizeBytes);

      const audit = await master.api.listAudit({ tenant: mtenant });
      expect(audit.find((e) => e.operation === started.id)).toMatchObject({ method: 'POST', route: '/v1/volumes/:tenant/:volume/backups', outcome: 'ok', status: 202 });
      expect(audit.find((e) => e.operation === restore.id)).toMatchObject({ route: '/v1/volumes/:tenant/:volume/backups/restore', outcome: 'ok', status: 202 });
    }, 120_000);

    it('8 a backup whose target directory is missing ends its operation with the error, and nothing is counted', async () => {
      const { volume: record } = await master.api.createVolume(mtenant, 'm2');
      await master.api.uploadTenant(mtenant, policy(path.join(root, 'gone')));
      try {
        const started = await master.api.startBackup(mtenant, 'm2');
        const failed = (await follow(started)).at(-1)!;
        expect(failed).toMatchObject({ state: 'failed', error: { code: 'BACKUP_TARGET_UNAVAILABLE', message: expect.stringMatching(/gone does not exist/) } });
        expect(await storage.listSnapshots(pool, record.image)).toEqual([]);
        const err = await master.api.restoreBackup(mtenant, 'm2', {}).catch((e: unknown) => e);
        expect(isApiError(err) && err.code, String(err)).toBe('BACKUP_TARGET_UNAVAILABLE');
      } finally {
        await master.api.uploadTenant(mtenant, policy(path.join(root, 'dir')));
      }
    }, 60_000);
  });

  describe('volsupervisor', () => {
    const bin = path.join(repoRoot, 'dist/supervisor/main.js');
    const children: ChildProcess[] = [];

    function start(env: Record<string, string> = {}): { child: ChildProcess; out: () => string } {
      let out = '';
      const child = spawn(
        process.execPath,
        [bin, '--etcd', process.env.VOLPLUGIN_TEST_ETCD!, '--prefix', prefix, '--ceph-conf', process.env.CEPH_CONF!, '--ceph-id', 'admin', '--backend', backend, '--election-ttl', '2', '--tick-ms', '200', '--backup-tick-ms', '200', '--backup-allow', root],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
      );
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      children.push(child);
      return { child, out: () => out };
    }

    afterAll(async () => {
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    });

    it('5 killed in the middle of a backup: nothing counted; the next leader tidies up and takes it', async () => {
      const v = await volume('v5', { backups: true, backup: { frequency: '1h', keep: 4 } });
      const dying = start({ VOLSUPERVISOR_FAILPOINTS: 'backup-after-export=60000' });
      await waitFor('the failpoint after the export', async () => dying.out().includes('failpoint backup-after-export'), 30_000);
      const partial = (await readdir(targetDir('v5'))).filter((f) => f.endsWith('.partial'));
      expect(partial).toHaveLength(1);
      dying.child.kill('SIGKILL');
      await new Promise((r) => dying.child.once('exit', r));
      expect(existsSync(path.join(targetDir('v5'), 'manifest.json'))).toBe(false);
      expect(await store.getBackupRecord(tenant, 'v5')).toBeNull();
      const stray = (await storage.listSnapshots(pool, v.image)).map((s) => s.name);
      expect(stray).toHaveLength(1);

      const next = start();
      await waitFor('a backup counted', async () => ((await store.getBackupRecord(tenant, 'v5'))?.backups.length ?? 0) === 1, 30_000);
      const record = (await store.getBackupRecord(tenant, 'v5'))!;
      expect(record.backups[0]).toMatchObject({ parent: null });
      expect(record.backups[0]!.bytes).toBeGreaterThan(MiB);
      expect(record.lastSlot).toBeDefined();
      const files = await readdir(targetDir('v5'));
      expect(files.sort()).toEqual(['manifest.json', `${record.backups[0]!.name}.diff`]);
      expect((await storage.listSnapshots(pool, v.image)).map((s) => s.name)).toEqual([record.backups[0]!.name]);
      expect((await verifyBackups(service, tenant, 'v5')).ok).toBe(true);
      next.child.kill('SIGTERM');
      await new Promise((r) => next.child.once('exit', r));
    }, 90_000);
  });
});
