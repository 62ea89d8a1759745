// One contract for every real storage backend, run against the real one-node cluster
// (test/helpers/global-setup.ts starts it and sets CEPH_CONF): each operation, each error path,
// 64+ calls in flight on one connection, no leaked image handles. The last block runs the same
// calls on both backends side by side and compares results and errors field by field.
//
// Image names are unique per test (backend, label, pid, counter, random), so files running in
// parallel and reruns on a kept cluster never collide.

import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStorage } from '../../src/storage/index.js';
import { RbdError } from '../../src/storage/errors.js';
import type { DiffExport, DiffSummary, Storage } from '../../src/storage/types.js';
import { diffStream, imageDigest, random, rbdImportDiff, userSnaps } from '../helpers/rbd-diff.js';

const CONF = process.env.CEPH_CONF;
if (!CONF) {
  throw new Error(
    'CEPH_CONF is not set: the storage contract needs a real cluster. Run it through vitest with the ' +
      "repository's config (test/helpers/global-setup.ts starts one), or point CEPH_CONF at a ceph.conf.",
  );
}
const POOL = process.env.VOLPLUGIN_TEST_POOL ?? 'rbd';
const MiB = 1 << 20;
const RUN = randomBytes(3).toString('hex');
let counter = 0;

/** A name no other test, file or run uses. */
function unique(kind: string, label: string): string {
  return `ct-${kind}-${label}-${process.pid}-${RUN}-${++counter}`;
}

/** The fields that make two RbdErrors "the same error". */
function shape(err: unknown) {
  if (!(err instanceof RbdError)) return { notAnRbdError: String(err) };
  return { name: err.name, code: err.code, errno: err.errno, pool: err.pool, image: err.image, snapshot: err.snapshot };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail, it succeeded');
}

async function expectRbdError(
  promise: Promise<unknown>,
  expected: { code: string; pool?: string; image?: string; snapshot?: string; op?: string | RegExp },
): Promise<RbdError> {
  const err = await rejection(promise);
  expect(err).toBeInstanceOf(RbdError);
  const e = err as RbdError;
  expect(e.code).toBe(expected.code);
  expect(e.errno).toBeLessThan(0);
  if ('pool' in expected) expect(e.pool).toBe(expected.pool);
  if ('image' in expected) expect(e.image).toBe(expected.image);
  if ('snapshot' in expected) expect(e.snapshot).toBe(expected.snapshot);
  if (expected.op instanceof RegExp) expect(e.op).toMatch(expected.op);
  else if (expected.op !== undefined) expect(e.op).toBe(expected.op);
  expect(typeof e.op).toBe('string');
  expect(e.op.length).toBeGreaterThan(0);
  return e;
}

/** Removes an image whatever state a test left it in: locks, protected snapshots, clones first. */
async function destroy(s: Storage, pool: string, name: string): Promise<void> {
  if (!(await s.imageExists(pool, name))) return;
  for (const lock of await s.listLocks(pool, name)) {
    if (!lock.cookie.startsWith('auto ')) await s.breakLock(pool, name, lock);
  }
  for (const snap of await s.listSnapshots(pool, name)) {
    for (const child of await s.listChildren({ pool, image: name, snapshot: snap.name })) {
      const [childPool, childImage] = child.split('/') as [string, string];
      await destroy(s, childPool, childImage);
    }
    if (snap.protected) await s.unprotectSnapshot(pool, name, snap.name);
    await s.removeSnapshot(pool, name, snap.name);
  }
  await s.removeImage(pool, name);
}

/**
 * A client that watches an image's header, as rbd-fuse or krbd would: `rados watch` on
 * rbd_header.<id>. It stays until stop() (it exits when its stdin closes).
 */
async function watchImage(s: Storage, pool: string, image: string): Promise<{ address: string; stop: () => Promise<void> }> {
  const { stdout } = await execa('rbd', [`--conf=${CONF}`, 'info', `--pool=${pool}`, `--image=${image}`, '--format=json']);
  const id = (JSON.parse(stdout) as { id: string }).id;
  const child: ResultPromise = execa('rados', [`--conf=${CONF}`, `--pool=${pool}`, 'watch', `rbd_header.${id}`], {
    stdin: 'pipe',
    reject: false,
  });
  // End of input makes it unwatch and exit; a killed watcher would linger for 30 s.
  const stop = async () => {
    child.stdin?.end('\n');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await child;
    clearTimeout(timer);
  };
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const watchers = await s.listWatchers(pool, image);
    if (watchers.length > 0) return { address: watchers[0]!.address, stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`rados watch on ${pool}/${image} did not show up as a watcher within 20 s`);
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

const BACKENDS = ['native', 'cli'] as const;

let diffDir = '';
beforeAll(async () => {
  diffDir = await mkdtemp(path.join(tmpdir(), 'storage-contract-'));
});
afterAll(async () => {
  if (diffDir) await rm(diffDir, { recursive: true, force: true });
});

/** An image with known contents at snapshots s1 and s2 (written with `rbd import-diff` of streams made by the test helper). */
async function diffSource(s: Storage, name: string): Promise<{ s1: string; s2: string }> {
  await s.createImage(POOL, name, { size: 8 * MiB, features: ['layering', 'exclusive-lock', 'object-map', 'fast-diff'] });
  await rbdImportDiff(diffStream({ to: 's1', size: 8 * MiB, records: [{ w: [0, random(MiB)] }, { w: [5 * MiB + 1234, random(70_000)] }] }), `${POOL}/${name}`);
  await rbdImportDiff(
    diffStream({ from: 's1', to: 's2', size: 12 * MiB, records: [{ w: [4096, random(8192)] }, { z: [5 * MiB, MiB] }, { w: [10 * MiB, random(MiB)] }] }),
    `${POOL}/${name}`,
  );
  return { s1: await imageDigest(`${POOL}/${name}@s1`), s2: await imageDigest(`${POOL}/${name}@s2`) };
}

/** An export's summary as applyDiff and inspectDiff report it (they do not know how it was walked). */
const withoutWhole = ({ wholeObject: _whole, ...rest }: DiffExport): DiffSummary => rest;

const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');

describe.each(BACKENDS)('storage contract: %s backend', (kind) => {
  let s: Storage;
  const created: string[] = [];

  /** Creates an image that afterAll removes (4 MiB unless told). */
  async function image(label: string, size = 4 * MiB, features?: ('layering' | 'exclusive-lock')[]): Promise<string> {
    const name = unique(kind, label);
    await s.createImage(POOL, name, { size, ...(features ? { features } : {}) });
    created.push(name);
    return name;
  }

  beforeAll(async () => {
    s = await openStorage(kind, { confPath: CONF });
  });

  afterAll(async () => {
    if (!s) return;
    // Cleaning up is not under test: the native backend does it in a fraction of the CLI's time.
    const sweeper = await openStorage('native', { confPath: CONF });
    for (const name of created.reverse()) {
      await destroy(sweeper, POOL, name).catch((err: unknown) => {
        console.warn(`cleanup of ${POOL}/${name} failed: ${String(err)}`);
      });
    }
    await sweeper.close();
    await s.close();
    expect(s.stats()).toMatchObject({ pending: 0, openImages: 0 });
  });

  describe('1. connection', () => {
    it('1.1 reports the cluster fsid and the monitors krbd talks to', async () => {
      const info = await s.clusterInfo();
      expect(info.fsid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(info.monAddresses.length).toBeGreaterThan(0);
      for (const addr of info.monAddresses) expect(addr).toMatch(/^(\d{1,3}\.){3}\d{1,3}:\d+$/);
    });

    it('1.2 starts idle: nothing pending, no image open', () => {
      expect(s.stats()).toMatchObject({ pending: 0, openImages: 0 });
      expect(s.kind).toBe(kind);
    });

    it('1.3 fails to open with a configuration file that does not exist (ENOENT)', async () => {
      await expectRbdError(openStorage(kind, { confPath: `/nonexistent/${RUN}/ceph.conf` }), {
        code: 'ENOENT',
        op: 'rados_conf_read_file',
      });
    });

    it('1.4 close is idempotent, waits for pending calls, and refuses calls afterwards (ENOTCONN)', async () => {
      const other = await openStorage(kind, { confPath: CONF });
      const calls = Array.from({ length: 8 }, () => other.listImages(POOL));
      expect(other.stats().pending).toBe(8);
      const closes = [other.close(), other.close()];
      const results = await Promise.all(calls);
      for (const names of results) expect(Array.isArray(names)).toBe(true);
      await Promise.all(closes);
      await other.close();
      expect(other.stats()).toMatchObject({ pending: 0, openImages: 0 });
      await expectRbdError(other.listImages(POOL), { code: 'ENOTCONN' });
      await expectRbdError(other.imageInfo(POOL, 'x'), { code: 'ENOTCONN' });
    });

    it('1.5 errors carry the stack of the calling code', async () => {
      const err = await expectRbdError(s.imageInfo(POOL, unique(kind, 'nostack')), { code: 'ENOENT' });
      expect(err.stack).toContain('storage-contract.test.ts');
      expect(err.stack?.split('\n')[0]).toBe(`RbdError: ${err.message}`);
    });
  });

  describe('2. images', () => {
    it('2.1 creates an image with the default features and reports its info', async () => {
      const name = await image('info', 8 * MiB);
      expect(await s.imageInfo(POOL, name)).toEqual({
        pool: POOL,
        name,
        size: 8 * MiB,
        order: 22,
        objectSize: 4 * MiB,
        features: ['layering', 'exclusive-lock'],
        parent: null,
        snapshotCount: 0,
        group: null,
      });
    });

    it('2.2 honours features and order', async () => {
      const name = unique(kind, 'opts');
      await s.createImage(POOL, name, { size: 3 * MiB, features: ['exclusive-lock', 'layering', 'object-map', 'fast-diff'], order: 20 });
      created.push(name);
      const info = await s.imageInfo(POOL, name);
      expect(info.features).toEqual(['layering', 'exclusive-lock', 'object-map', 'fast-diff']);
      expect(info).toMatchObject({ order: 20, objectSize: MiB, size: 3 * MiB });
    });

    it('2.3 creates an image with no features at all', async () => {
      const name = unique(kind, 'nofeat');
      await s.createImage(POOL, name, { size: MiB, features: [] });
      created.push(name);
      expect((await s.imageInfo(POOL, name)).features).toEqual([]);
    });

    it('2.4 takes a data pool (the same pool here: only one exists)', async () => {
      const name = unique(kind, 'datapool');
      await s.createImage(POOL, name, { size: MiB, dataPool: POOL });
      created.push(name);
      expect((await s.imageInfo(POOL, name)).size).toBe(MiB);
    });

    it('2.5 refuses a data pool that does not exist (ENOENT)', async () => {
      const name = unique(kind, 'nodatapool');
      await expectRbdError(s.createImage(POOL, name, { size: MiB, dataPool: `nopool-${RUN}` }), { code: 'ENOENT' });
      expect(await s.imageExists(POOL, name)).toBe(false);
    });

    it('2.6 refuses an existing name (EEXIST)', async () => {
      const name = await image('exists');
      await expectRbdError(s.createImage(POOL, name, { size: MiB }), { code: 'EEXIST', pool: POOL, image: name, op: 'rbd_create4' });
    });

    it('2.7 refuses an unknown pool (ENOENT naming the pool)', async () => {
      const pool = `nopool-${RUN}`;
      const name = unique(kind, 'nopool');
      await expectRbdError(s.createImage(pool, name, { size: MiB }), { code: 'ENOENT', pool, op: 'rados_ioctx_create' });
      await expectRbdError(s.listImages(pool), { code: 'ENOENT', pool, op: 'rados_ioctx_create' });
      await expectRbdError(s.imageExists(pool, name), { code: 'ENOENT', pool, op: 'rados_ioctx_create' });
      await expectRbdError(s.imageInfo(pool, name), { code: 'ENOENT', pool, op: 'rados_ioctx_create' });
    });

    it('2.8 lists and finds images', async () => {
      const a = await image('list-a');
      const b = await image('list-b');
      const names = await s.listImages(POOL);
      expect(names).toEqual([...names].sort());
      expect(names).toEqual(expect.arrayContaining([a, b]));
      expect(await s.imageExists(POOL, a)).toBe(true);
      expect(await s.imageExists(POOL, unique(kind, 'absent'))).toBe(false);
    });

    it('2.8b lists a pool with more images than the first guess of the list buffer (64)', async () => {
      const many = await Promise.all(Array.from({ length: 70 }, (_, i) => image(`many-${i}`)));
      expect(await s.listImages(POOL)).toEqual(expect.arrayContaining(many));
    });

    it('2.9 grows an image', async () => {
      const name = await image('grow', MiB);
      await s.resizeImage(POOL, name, 5 * MiB);
      expect((await s.imageInfo(POOL, name)).size).toBe(5 * MiB);
    });

    it('2.10 shrinks only when allowed (EINVAL otherwise)', async () => {
      const name = await image('shrink', 4 * MiB);
      await expectRbdError(s.resizeImage(POOL, name, MiB), { code: 'EINVAL', pool: POOL, image: name });
      expect((await s.imageInfo(POOL, name)).size).toBe(4 * MiB);
      await s.resizeImage(POOL, name, MiB, { allowShrink: true });
      expect((await s.imageInfo(POOL, name)).size).toBe(MiB);
    });

    it('2.11 refuses a size below zero or not an integer before reaching Ceph (RangeError)', async () => {
      const name = await image('negsize', MiB);
      await expect(s.resizeImage(POOL, name, -1)).rejects.toThrow(RangeError);
      await expect(s.resizeImage(POOL, name, -1)).rejects.toThrow(/size/);
      await expect(s.resizeImage(POOL, name, 1.5)).rejects.toThrow(RangeError);
      await expect(s.createImage(POOL, unique(kind, 'zero'), { size: 0 })).rejects.toThrow(RangeError);
      await expect(s.createImage(POOL, unique(kind, 'neg'), { size: -MiB })).rejects.toThrow(/options\.size/);
      expect(s.stats().pending).toBe(0);
    });

    it('2.12 resizing a missing image fails with ENOENT', async () => {
      const name = unique(kind, 'resize-missing');
      await expectRbdError(s.resizeImage(POOL, name, MiB), { code: 'ENOENT', pool: POOL, image: name });
    });

    it('2.13 renames an image; refuses a taken name (EEXIST) or a missing source (ENOENT)', async () => {
      const from = await image('ren-from');
      const taken = await image('ren-taken');
      const to = unique(kind, 'ren-to');
      await expectRbdError(s.renameImage(POOL, from, taken), { code: 'EEXIST', pool: POOL, image: taken });
      await s.renameImage(POOL, from, to);
      created.push(to);
      expect(await s.imageExists(POOL, from)).toBe(false);
      expect(await s.imageExists(POOL, to)).toBe(true);
      await expectRbdError(s.renameImage(POOL, from, unique(kind, 'ren-x')), { code: 'ENOENT', pool: POOL, image: from });
    });

    it('2.14 removes an image; a missing one is ENOENT', async () => {
      const name = unique(kind, 'rm');
      await s.createImage(POOL, name, { size: MiB });
      await s.removeImage(POOL, name);
      expect(await s.imageExists(POOL, name)).toBe(false);
      await expectRbdError(s.removeImage(POOL, name), { code: 'ENOENT', pool: POOL, image: name });
    });

    it('2.14b remove, resize and flatten report progress: done of total, ending with all done', async () => {
      const calls: Array<[number, number]> = [];
      const onProgress = (done: number, total: number) => void calls.push([done, total]);
      const last = () => {
        const end = calls.at(-1);
        calls.length = 0;
        return end;
      };
      const big = await image('progress', 16 * MiB, ['layering']);
      await s.resizeImage(POOL, big, 8 * MiB, { allowShrink: true, onProgress });
      const shrunk = last();
      expect(shrunk![0]).toBe(shrunk![1]);
      expect(shrunk![1]).toBeGreaterThan(0);
      await s.createSnapshot(POOL, big, 'base');
      await s.protectSnapshot(POOL, big, 'base');
      const child = unique(kind, 'progress-child');
      await s.cloneSnapshot({ pool: POOL, image: big, snapshot: 'base' }, POOL, child);
      await s.flattenImage(POOL, child, { onProgress });
      const flattened = last();
      expect(flattened![0]).toBe(flattened![1]);
      expect(flattened![1]).toBeGreaterThan(0);
      await s.removeImage(POOL, child, { onProgress });
      const removed = last();
      expect(removed![0]).toBe(removed![1]);
      await s.unprotectSnapshot(POOL, big, 'base');
      await s.removeSnapshot(POOL, big, 'base');
      await expect(s.removeImage(POOL, big, { onProgress: 'no' as never })).rejects.toThrow(/onProgress must be a function/);
    });

    it('2.15 refuses to remove an image with snapshots (ENOTEMPTY)', async () => {
      const name = await image('rm-snaps');
      await s.createSnapshot(POOL, name, 'keep');
      await expectRbdError(s.removeImage(POOL, name), { code: 'ENOTEMPTY', pool: POOL, image: name, op: 'rbd_remove' });
    });

    it('2.16 refuses to remove an image another client has open (EBUSY)', async () => {
      const name = await image('rm-watched');
      const watcher = await watchImage(s, POOL, name);
      try {
        await expectRbdError(s.removeImage(POOL, name), { code: 'EBUSY', pool: POOL, image: name, op: 'rbd_remove' });
      } finally {
        await watcher.stop();
      }
    });

    it('2.17 refuses to remove a locked image (EBUSY) instead of spinning on the lock', async () => {
      const name = await image('rm-locked');
      await s.addLock(POOL, name, { cookie: 'held', exclusive: true });
      await expectRbdError(s.removeImage(POOL, name), { code: 'EBUSY', pool: POOL, image: name, op: 'rbd_remove' });
    });

    it('2.18 refuses bad names and options before reaching Ceph (TypeError/RangeError naming the field)', async () => {
      await expect(s.createImage(POOL, '', { size: MiB })).rejects.toThrow(/name must not be empty/);
      await expect(s.createImage(POOL, 'a/b', { size: MiB })).rejects.toThrow(TypeError);
      await expect(s.createImage(POOL, 'a@b', { size: MiB })).rejects.toThrow(/name must not contain/);
      await expect(s.createImage('', 'x', { size: MiB })).rejects.toThrow(/pool must not be empty/);
      await expect(s.createImage(POOL, 'x', { size: MiB, order: 11 })).rejects.toThrow(RangeError);
      await expect(s.createImage(POOL, 'x', { size: MiB, order: 26 })).rejects.toThrow(/options\.order/);
      // @ts-expect-error: not a feature
      await expect(s.createImage(POOL, 'x', { size: MiB, features: ['bogus'] })).rejects.toThrow(/options\.features\[0\]/);
      await expect(s.createImage(POOL, 'x', { size: MiB, features: ['data-pool'] })).rejects.toThrow(TypeError);
      // @ts-expect-error: not a string
      await expect(s.imageInfo(POOL, 42)).rejects.toThrow(/name must be a string/);
      expect(s.stats().pending).toBe(0);
    });
  });

  describe('3. snapshots', () => {
    it('3.1 creates and lists snapshots in creation order', async () => {
      const name = await image('snaps', 2 * MiB);
      const before = Date.now();
      await s.createSnapshot(POOL, name, 'one');
      await s.resizeImage(POOL, name, 3 * MiB);
      await s.createSnapshot(POOL, name, 'two');
      const snaps = await s.listSnapshots(POOL, name);
      expect(snaps.map((x) => [x.name, x.size, x.protected])).toEqual([
        ['one', 2 * MiB, false],
        ['two', 3 * MiB, false],
      ]);
      expect(snaps[0]!.id).toBeLessThan(snaps[1]!.id);
      for (const snap of snaps) {
        expect(snap.createdAt).toBeInstanceOf(Date);
        expect(Math.abs(snap.createdAt!.getTime() - before)).toBeLessThan(120_000);
      }
      expect((await s.imageInfo(POOL, name)).snapshotCount).toBe(2);
    });

    it('3.2 refuses an existing snapshot name (EEXIST)', async () => {
      const name = await image('snap-dup');
      await s.createSnapshot(POOL, name, 'dup');
      await expectRbdError(s.createSnapshot(POOL, name, 'dup'), { code: 'EEXIST', pool: POOL, image: name, snapshot: 'dup' });
    });

    it('3.3 missing snapshots and images are ENOENT for every snapshot call', async () => {
      const name = await image('snap-missing');
      const snap = 'nope';
      for (const call of [
        () => s.removeSnapshot(POOL, name, snap),
        () => s.rollbackSnapshot(POOL, name, snap),
        () => s.protectSnapshot(POOL, name, snap),
        () => s.unprotectSnapshot(POOL, name, snap),
      ]) {
        await expectRbdError(call(), { code: 'ENOENT', pool: POOL, image: name, snapshot: snap });
      }
      const gone = unique(kind, 'snap-noimage');
      await expectRbdError(s.createSnapshot(POOL, gone, 'x'), { code: 'ENOENT', pool: POOL, image: gone });
      await expectRbdError(s.listSnapshots(POOL, gone), { code: 'ENOENT', pool: POOL, image: gone });
    });

    it('3.4 refuses bad snapshot names before reaching Ceph (TypeError)', async () => {
      const name = await image('snap-badname');
      await expect(s.createSnapshot(POOL, name, '')).rejects.toThrow(/snapshot must not be empty/);
      await expect(s.createSnapshot(POOL, name, 'a@b')).rejects.toThrow(TypeError);
      await expect(s.createSnapshot(POOL, name, 'a/b')).rejects.toThrow(/snapshot must not contain/);
      await expect(s.createSnapshot(POOL, name, 'new\nline')).rejects.toThrow(TypeError);
      expect(await s.listSnapshots(POOL, name)).toEqual([]);
    });

    it('3.5 removes a snapshot', async () => {
      const name = await image('snap-rm');
      await s.createSnapshot(POOL, name, 'gone');
      await s.removeSnapshot(POOL, name, 'gone');
      expect(await s.listSnapshots(POOL, name)).toEqual([]);
    });

    it('3.6 rolls back to a snapshot (its size comes back)', async () => {
      const name = await image('rollback', 2 * MiB);
      await s.createSnapshot(POOL, name, 'base');
      await s.resizeImage(POOL, name, 6 * MiB);
      await s.rollbackSnapshot(POOL, name, 'base');
      expect((await s.imageInfo(POOL, name)).size).toBe(2 * MiB);
    });

    it('3.7 protects and unprotects; protection blocks removal (EBUSY) and cannot be doubled', async () => {
      const name = await image('protect');
      await s.createSnapshot(POOL, name, 'p');
      await s.protectSnapshot(POOL, name, 'p');
      expect((await s.listSnapshots(POOL, name))[0]!.protected).toBe(true);
      await expectRbdError(s.protectSnapshot(POOL, name, 'p'), { code: 'EBUSY', pool: POOL, image: name, snapshot: 'p' });
      await expectRbdError(s.removeSnapshot(POOL, name, 'p'), { code: 'EBUSY', pool: POOL, image: name, snapshot: 'p' });
      await s.unprotectSnapshot(POOL, name, 'p');
      await expectRbdError(s.unprotectSnapshot(POOL, name, 'p'), { code: 'EINVAL', pool: POOL, image: name, snapshot: 'p' });
      await s.removeSnapshot(POOL, name, 'p');
    });

    it('3.8 clones a protected snapshot, lists the child, then flattens it', async () => {
      const parent = await image('parent', 4 * MiB);
      await s.createSnapshot(POOL, parent, 'gold');
      await s.protectSnapshot(POOL, parent, 'gold');
      const child = unique(kind, 'child');
      await s.cloneSnapshot({ pool: POOL, image: parent, snapshot: 'gold' }, POOL, child);
      created.push(child);
      const info = await s.imageInfo(POOL, child);
      expect(info.parent).toEqual({ pool: POOL, image: parent, snapshot: 'gold' });
      expect(info.size).toBe(4 * MiB);
      expect(info.features).toEqual(['layering', 'exclusive-lock']);
      expect(await s.listChildren({ pool: POOL, image: parent, snapshot: 'gold' })).toEqual([`${POOL}/${child}`]);
      await expectRbdError(s.unprotectSnapshot(POOL, parent, 'gold'), { code: 'EBUSY', pool: POOL, image: parent, snapshot: 'gold' });
      await s.flattenImage(POOL, child);
      expect((await s.imageInfo(POOL, child)).parent).toBeNull();
      expect(await s.listChildren({ pool: POOL, image: parent, snapshot: 'gold' })).toEqual([]);
      await s.unprotectSnapshot(POOL, parent, 'gold');
    });

    it('3.9 a clone takes its own features and order when given', async () => {
      const parent = await image('parent-opts');
      await s.createSnapshot(POOL, parent, 's');
      await s.protectSnapshot(POOL, parent, 's');
      const child = unique(kind, 'child-opts');
      await s.cloneSnapshot({ pool: POOL, image: parent, snapshot: 's' }, POOL, child, { features: ['layering'], order: 21 });
      created.push(child);
      expect(await s.imageInfo(POOL, child)).toMatchObject({ features: ['layering'], order: 21, objectSize: 2 * MiB });
    });

    it('3.10 clone errors: unprotected parent (EINVAL), missing parent (ENOENT), taken name (EEXIST)', async () => {
      const parent = await image('parent-err');
      await s.createSnapshot(POOL, parent, 'open');
      const ref = { pool: POOL, image: parent, snapshot: 'open' };
      const child = unique(kind, 'child-err');
      await expectRbdError(s.cloneSnapshot(ref, POOL, child), { code: 'EINVAL', pool: POOL, image: parent, snapshot: 'open' });
      await expectRbdError(s.cloneSnapshot({ ...ref, snapshot: 'absent' }, POOL, child), {
        code: 'ENOENT',
        pool: POOL,
        image: parent,
        snapshot: 'absent',
      });
      await s.protectSnapshot(POOL, parent, 'open');
      const taken = await image('child-taken');
      await expectRbdError(s.cloneSnapshot(ref, POOL, taken), { code: 'EEXIST', pool: POOL, image: taken });
      expect(await s.imageExists(POOL, child)).toBe(false);
    });

    it('3.11 flattening an image that is no clone is EINVAL', async () => {
      const name = await image('flat');
      await expectRbdError(s.flattenImage(POOL, name), { code: 'EINVAL', pool: POOL, image: name });
    });
  });

  describe('3b. consistency groups', () => {
    it('3b.1 a group snapshot covers every member at one instant; members are held until the group goes', async () => {
      const group = unique(kind, 'grp');
      const [a, b] = [await image('grp-a'), await image('grp-b')];
      await s.createGroup(POOL, group);
      try {
        await s.addGroupImage(POOL, group, { pool: POOL, image: a });
        await s.addGroupImage(POOL, group, { pool: POOL, image: b });
        await s.addGroupImage(POOL, group, { pool: POOL, image: a }); // already a member: nothing
        expect((await s.listGroupImages(POOL, group)).map((m) => `${m.pool}/${m.image}`).sort()).toEqual([`${POOL}/${a}`, `${POOL}/${b}`].sort());
        await s.createGroupSnapshot(POOL, group, 'g1');
        expect(await s.listGroupSnapshots(POOL, group)).toEqual([{ name: 'g1', complete: true }]);
        // In the members' group namespace: not a user snapshot, but it counts and holds the image.
        expect(await s.listSnapshots(POOL, a)).toEqual([]);
        expect(await s.imageInfo(POOL, a)).toMatchObject({ snapshotCount: 1, group: { pool: POOL, name: group } });
        await expectRbdError(s.removeImage(POOL, a), { code: 'ENOTEMPTY', pool: POOL, image: a });
        await expectRbdError(s.createGroupSnapshot(POOL, group, 'g1'), { code: 'EEXIST' });
        await s.removeGroupSnapshot(POOL, group, 'g1');
        expect(await s.listGroupSnapshots(POOL, group)).toEqual([]);
        await expectRbdError(s.removeImage(POOL, a), { code: 'EMLINK', pool: POOL, image: a });
      } finally {
        await s.removeGroup(POOL, group);
      }
      expect(await s.imageInfo(POOL, a)).toMatchObject({ snapshotCount: 0, group: null });
    });

    it('3b.2 refuses a member of another group (EEXIST), a taken group name (EEXIST) and a missing group (ENOENT)', async () => {
      const [g1, g2] = [unique(kind, 'grp1'), unique(kind, 'grp2')];
      const a = await image('grp-x');
      await s.createGroup(POOL, g1);
      await s.createGroup(POOL, g2);
      try {
        await expectRbdError(s.createGroup(POOL, g1), { code: 'EEXIST' });
        await s.addGroupImage(POOL, g1, { pool: POOL, image: a });
        await expectRbdError(s.addGroupImage(POOL, g2, { pool: POOL, image: a }), { code: 'EEXIST' });
        const missing = unique(kind, 'nogrp');
        await expectRbdError(s.listGroupImages(POOL, missing), { code: 'ENOENT' });
        await expectRbdError(s.listGroupSnapshots(POOL, missing), { code: 'ENOENT' });
        await expectRbdError(s.createGroupSnapshot(POOL, missing, 'x'), { code: 'ENOENT' });
        await expectRbdError(s.removeGroupSnapshot(POOL, g1, 'nope'), { code: 'ENOENT' });
        await expectRbdError(s.removeGroup(POOL, missing), { code: 'ENOENT' });
      } finally {
        await s.removeGroup(POOL, g1);
        await s.removeGroup(POOL, g2);
      }
    });
    it('3b.3 each member lists its part of a group snapshot by id; a rollback brings all back with progress; a copy at that id (native only)', async () => {
      const group = unique(kind, 'grp3');
      const [a, b] = [await image('grp3-a'), await image('grp3-b')];
      await s.createGroup(POOL, group);
      try {
        for (const m of [a, b]) await s.addGroupImage(POOL, group, { pool: POOL, image: m });
        for (const m of [a, b]) await rbdImportDiff(diffStream({ size: 4 * MiB, records: [{ w: [0, random(8192)] }] }), `${POOL}/${m}`);
        const at = await Promise.all([a, b].map((m) => imageDigest(`${POOL}/${m}`)));
        await s.createGroupSnapshot(POOL, group, 'g1');
        const parts = await Promise.all([a, b].map((m) => s.listMemberSnapshots(POOL, m)));
        for (const listed of parts) {
          expect(listed).toHaveLength(1);
          expect(listed[0]).toMatchObject({ size: 4 * MiB, group: { pool: POOL, group, snapshot: 'g1' } });
          expect(listed[0]!.createdAt).toBeInstanceOf(Date);
        }
        for (const m of [a, b]) await rbdImportDiff(diffStream({ size: 4 * MiB, records: [{ w: [MiB, random(8192)] }] }), `${POOL}/${m}`);
        const copy = unique(kind, 'grp3-copy');
        const source = { pool: POOL, image: a, snapshotId: parts[0]![0]!.id };
        if (kind === 'cli') {
          await expectRbdError(s.copySnapshot(source, POOL, copy), { code: 'EOPNOTSUPP' });
        } else {
          created.push(copy);
          await s.copySnapshot(source, POOL, copy);
          expect(await imageDigest(`${POOL}/${copy}`)).toBe(at[0]);
          await expectRbdError(s.copySnapshot({ ...source, snapshotId: 987_654 }, POOL, unique(kind, 'nocopy')), { code: 'ENOENT', image: a });
          await expectRbdError(s.copySnapshot(source, POOL, b), { code: 'EEXIST', image: b });
        }
        const reports: Array<[number, number]> = [];
        await s.rollbackGroupSnapshot(POOL, group, 'g1', { onProgress: (done, total) => void reports.push([done, total]) });
        expect(await Promise.all([a, b].map((m) => imageDigest(`${POOL}/${m}`)))).toEqual(at);
        const last = reports.at(-1);
        expect(last !== undefined && last[0] === last[1]).toBe(true);
        await expectRbdError(s.rollbackGroupSnapshot(POOL, group, 'nope'), { code: 'ENOENT' });
        await expectRbdError(s.rollbackGroupSnapshot(POOL, unique(kind, 'nogrp'), 'g1'), { code: 'ENOENT' });
      } finally {
        await s.removeGroup(POOL, group);
      }
      expect(await s.listMemberSnapshots(POOL, a)).toEqual([]);
    });
  });

  describe('4. watchers, locks, fencing', () => {
    it('4.1 an idle image has no watchers (our own calls do not count)', async () => {
      const name = await image('watch-none');
      expect(await s.listWatchers(POOL, name)).toEqual([]);
    });

    it('4.2 lists a client that has the image open, and a blocklist fences it off', async () => {
      const name = await image('watch-fence');
      const watcher = await watchImage(s, POOL, name);
      try {
        const watchers = await s.listWatchers(POOL, name);
        expect(watchers).toHaveLength(1);
        expect(watchers[0]).toMatchObject({ address: watcher.address });
        expect(watchers[0]!.address).toMatch(/^(\d{1,3}\.){3}\d{1,3}:\d+\/\d+$/);
        expect(watchers[0]!.clientId).toBeGreaterThan(0);
        expect(watchers[0]!.cookie).toBeGreaterThan(0);
        await s.blocklistAdd(watcher.address, 120);
        // The OSD drops a blocklisted client's watches: the image is free again.
        await waitFor('the blocklisted watcher to go', async () => (await s.listWatchers(POOL, name)).length === 0);
        await s.blocklistRemove(watcher.address);
      } finally {
        await watcher.stop();
      }
    });

    it('4.3 removing an address that is not blocklisted is fine; bad addresses never reach Ceph', async () => {
      await s.blocklistRemove('127.0.0.1:0/1');
      await expect(s.blocklistAdd('bogus', 60)).rejects.toThrow(TypeError);
      await expect(s.blocklistAdd('127.0.0.1:0/1', 0)).rejects.toThrow(RangeError);
    });

    it('4.4 an exclusive lock is listed, excludes others (EBUSY) and can be broken', async () => {
      const name = await image('lock-x');
      await s.addLock(POOL, name, { cookie: 'first', exclusive: true });
      const locks = await s.listLocks(POOL, name);
      expect(locks).toHaveLength(1);
      expect(locks[0]).toMatchObject({ cookie: 'first', tag: '', exclusive: true });
      expect(locks[0]!.owner).toMatch(/^client\.\d+$/);
      expect(locks[0]!.address).toMatch(/:\d+\/\d+$/);
      await expectRbdError(s.addLock(POOL, name, { cookie: 'second', exclusive: true }), { code: 'EBUSY', pool: POOL, image: name });
      await expectRbdError(s.addLock(POOL, name, { cookie: 'second', tag: 't', exclusive: false }), { code: 'EBUSY' });
      await s.breakLock(POOL, name, locks[0]!);
      expect(await s.listLocks(POOL, name)).toEqual([]);
      // breakLock does not fence: the owner is not blocklisted (that is blocklistAdd's job).
      expect(await s.listImages(POOL)).toContain(name);
    });

    it('4.5 shared locks need the same tag (EBUSY otherwise)', async () => {
      const name = await image('lock-s');
      await s.addLock(POOL, name, { cookie: 'a', tag: 'grp', exclusive: false });
      await s.addLock(POOL, name, { cookie: 'b', tag: 'grp', exclusive: false });
      await expectRbdError(s.addLock(POOL, name, { cookie: 'c', tag: 'other', exclusive: false }), { code: 'EBUSY' });
      const locks = await s.listLocks(POOL, name);
      expect(locks.map((l) => [l.cookie, l.tag, l.exclusive]).sort()).toEqual([
        ['a', 'grp', false],
        ['b', 'grp', false],
      ]);
    });

    it('4.6 breaking a lock that is not there is ENOENT; locks of a missing image are ENOENT', async () => {
      const name = await image('lock-none');
      await expectRbdError(s.breakLock(POOL, name, { owner: 'client.1', cookie: 'none' }), { code: 'ENOENT', pool: POOL, image: name });
      const gone = unique(kind, 'lock-noimage');
      await expectRbdError(s.listLocks(POOL, gone), { code: 'ENOENT', pool: POOL, image: gone });
      await expectRbdError(s.addLock(POOL, gone, { cookie: 'x', exclusive: true }), { code: 'ENOENT', pool: POOL, image: gone });
      await expectRbdError(s.listWatchers(POOL, gone), { code: 'ENOENT', pool: POOL, image: gone });
    });

    it('4.7 lock arguments are checked (a shared lock needs a tag, an exclusive one has none)', async () => {
      const name = await image('lock-args');
      await expect(s.addLock(POOL, name, { cookie: '', exclusive: true })).rejects.toThrow(/lock\.cookie/);
      await expect(s.addLock(POOL, name, { cookie: 'c', exclusive: false })).rejects.toThrow(/lock\.tag/);
      await expect(s.addLock(POOL, name, { cookie: 'c', tag: 't', exclusive: true })).rejects.toThrow(TypeError);
    });
  });

  describe('5. metadata and QoS', () => {
    it('5.1 sets, lists and removes metadata (values may look like options)', async () => {
      const name = await image('meta');
      expect(await s.getMetadata(POOL, name)).toEqual({});
      await s.setMetadata(POOL, name, 'owner', 'tenant1');
      await s.setMetadata(POOL, name, '-k', '-5');
      // `rbd image-meta set` cannot store an empty value: no backend takes one.
      await expect(s.setMetadata(POOL, name, 'empty', '')).rejects.toThrow(/value must not be empty/);
      expect(await s.getMetadata(POOL, name)).toEqual({ '-k': '-5', owner: 'tenant1' });
      await s.removeMetadata(POOL, name, 'owner');
      expect(await s.getMetadata(POOL, name)).toEqual({ '-k': '-5' });
      await expectRbdError(s.removeMetadata(POOL, name, 'owner'), { code: 'ENOENT', pool: POOL, image: name, op: 'rbd_metadata_remove' });
    });

    it('5.2 QoS limits go to conf_rbd_qos_* metadata and come back', async () => {
      const name = await image('qos');
      expect(await s.getQos(POOL, name)).toEqual({});
      await s.setQos(POOL, name, { iops: 100, bps: 10 * MiB, readIops: 50, writeIops: 40, readBps: MiB, writeBps: 2 * MiB });
      expect(await s.getQos(POOL, name)).toEqual({ iops: 100, bps: 10 * MiB, readIops: 50, writeIops: 40, readBps: MiB, writeBps: 2 * MiB });
      expect(await s.getMetadata(POOL, name)).toMatchObject({
        conf_rbd_qos_iops_limit: '100',
        conf_rbd_qos_bps_limit: String(10 * MiB),
        conf_rbd_qos_read_iops_limit: '50',
        conf_rbd_qos_write_iops_limit: '40',
        conf_rbd_qos_read_bps_limit: String(MiB),
        conf_rbd_qos_write_bps_limit: String(2 * MiB),
      });
      // 0 removes a limit (even one that was never set); absent keys stay.
      await s.setQos(POOL, name, { iops: 0, readIops: 0, bps: undefined });
      await s.setQos(POOL, name, { iops: 0 });
      expect(await s.getQos(POOL, name)).toEqual({ bps: 10 * MiB, writeIops: 40, readBps: MiB, writeBps: 2 * MiB });
    });

    it('5.3 librbd checks QoS values (EINVAL); bad limits never reach Ceph', async () => {
      const name = await image('qos-bad');
      await expectRbdError(s.setMetadata(POOL, name, 'conf_rbd_qos_iops_limit', 'lots'), { code: 'EINVAL', pool: POOL, image: name });
      await expect(s.setQos(POOL, name, { iops: -1 })).rejects.toThrow(RangeError);
      // @ts-expect-error: not a QoS key
      await expect(s.setQos(POOL, name, { speed: 1 })).rejects.toThrow(/limits\.speed/);
    });

    it('5.5 createImage sets metadata on the new image; a key that cannot be set leaves no image', async () => {
      const name = unique(kind, 'create-meta');
      created.push(name);
      await s.createImage(POOL, name, {
        size: 4 * MiB,
        features: ['layering', 'exclusive-lock', 'object-map', 'fast-diff'],
        metadata: { 'volplugin.volume': 't/v', conf_rbd_qos_write_iops_limit: '40' },
      });
      expect(await s.getMetadata(POOL, name)).toEqual({ conf_rbd_qos_write_iops_limit: '40', 'volplugin.volume': 't/v' });
      expect(await s.getQos(POOL, name)).toEqual({ writeIops: 40 });
      // Ceph's own tools read it as metadata librbd wrote, and the image opens as usual.
      const { stdout } = await execa('rbd', [`--conf=${CONF}`, 'image-meta', 'list', `--pool=${POOL}`, `--image=${name}`, '--format=json']);
      expect(JSON.parse(stdout)).toEqual({ conf_rbd_qos_write_iops_limit: '40', 'volplugin.volume': 't/v' });
      expect((await s.imageInfo(POOL, name)).features).toEqual(['layering', 'exclusive-lock', 'object-map', 'fast-diff']);
      await s.setMetadata(POOL, name, 'later', 'yes');
      expect(await s.getMetadata(POOL, name)).toMatchObject({ later: 'yes', 'volplugin.volume': 't/v' });

      // What librbd's check of conf_* values would refuse is refused before Ceph is asked.
      const bad = unique(kind, 'create-meta-bad');
      created.push(bad);
      await expect(s.createImage(POOL, bad, { size: 4 * MiB, metadata: { owner: 'x', conf_rbd_qos_iops_limit: 'lots' } })).rejects.toThrow(/unsigned integer/);
      await expect(s.createImage(POOL, bad, { size: 4 * MiB, metadata: { conf_rbd_cache: 'false' } })).rejects.toThrow(/only the QoS limits/);
      await expect(s.createImage(POOL, bad, { size: 4 * MiB, metadata: { owner: '' } })).rejects.toThrow(/options\.metadata\.owner must not be empty/);
      expect(await s.imageExists(POOL, bad)).toBe(false);
      // An existing name: EEXIST from the create, and the image that was there keeps its metadata.
      await expectRbdError(s.createImage(POOL, name, { size: 4 * MiB, metadata: { 'volplugin.volume': 'other' } }), { code: 'EEXIST', pool: POOL, image: name, op: 'rbd_create4' });
      expect((await s.getMetadata(POOL, name))['volplugin.volume']).toBe('t/v');
    });

    it('5.4 metadata of a missing image is ENOENT', async () => {
      const gone = unique(kind, 'meta-noimage');
      await expectRbdError(s.getMetadata(POOL, gone), { code: 'ENOENT', pool: POOL, image: gone });
      await expectRbdError(s.setMetadata(POOL, gone, 'k', 'v'), { code: 'ENOENT', pool: POOL, image: gone });
      await expectRbdError(s.getQos(POOL, gone), { code: 'ENOENT', pool: POOL, image: gone });
    });
  });

  describe('6b. export-diff streams', () => {
    let src = '';
    let digests: { s1: string; s2: string };
    const file = (label: string) => path.join(diffDir, `${kind}-${label}-${++counter}`);

    beforeAll(async () => {
      src = unique(kind, 'diffsrc');
      created.push(src);
      digests = await diffSource(s, src);
    });

    it('6b.1 a full and an incremental export applied to a fresh image give the source snapshots’ bytes', async () => {
      const full = file('full');
      const inc = file('inc');
      const progress: Array<[number, number]> = [];
      const r1 = await s.exportDiff(POOL, src, { from: null, to: 's1' }, full, { onProgress: (d, t) => progress.push([d, t]) });
      const r2 = await s.exportDiff(POOL, src, { from: 's1', to: 's2' }, inc);
      expect(r1).toMatchObject({ fromSnapshot: null, toSnapshot: 's1', size: 8 * MiB, wholeObject: false });
      expect(r2).toMatchObject({ fromSnapshot: 's1', toSnapshot: 's2', size: 12 * MiB, wholeObject: false });
      expect(r2.zeroRecords).toBeGreaterThan(0);
      expect(r1.streamBytes).toBe((await stat(full)).size);
      expect((await stat(full)).mode & 0o777).toBe(0o600);
      expect(progress.at(-1)).toEqual([8 * MiB, 8 * MiB]);
      for (const [d, t] of progress) expect(d).toBeLessThanOrEqual(t);

      const dst = await image('diffdst', MiB);
      const a1 = await s.applyDiff(POOL, dst, full);
      const a2 = await s.applyDiff(POOL, dst, inc);
      expect(a1).toEqual(withoutWhole(r1));
      expect([a2.fromSnapshot, a2.toSnapshot]).toEqual(['s1', 's2']);
      expect(await userSnaps(`${POOL}/${dst}`)).toEqual(['s1', 's2']);
      expect(await imageDigest(`${POOL}/${dst}@s1`)).toBe(digests.s1);
      expect(await imageDigest(`${POOL}/${dst}@s2`)).toBe(digests.s2);
      expect(await s.inspectDiff(inc)).toEqual(withoutWhole(r2));
    });

    it('6b.2 never overwrites a file (EEXIST), and a missing snapshot is ENOENT with no file left', async () => {
      const existing = file('existing');
      await writeFile(existing, 'keep me');
      await expectRbdError(s.exportDiff(POOL, src, { from: 's1', to: 's2' }, existing), { code: 'EEXIST', op: 'open' });
      expect(await readFile(existing, 'utf8')).toBe('keep me');
      const none = file('none');
      await expectRbdError(s.exportDiff(POOL, src, { from: 'nope', to: 's2' }, none), { code: 'ENOENT', pool: POOL, image: src, snapshot: 'nope' });
      await expectRbdError(s.exportDiff(POOL, src, { from: null, to: 'nope' }, none), { code: 'ENOENT', pool: POOL, image: src });
      expect(existsSync(none)).toBe(false);
      await expectRbdError(s.exportDiff(POOL, src, { from: null, to: 's1' }, path.join(diffDir, 'no-such-dir', 'x')), { code: 'ENOENT', op: 'open' });
    });

    it('6b.3 refuses a corrupt or truncated file (EBADMSG) and snapshots out of order, changing nothing', async () => {
      const full = file('full-b');
      await s.exportDiff(POOL, src, { from: null, to: 's1' }, full);
      const dst = await image('diffbad', MiB);
      await s.applyDiff(POOL, dst, full);
      const before = { snaps: await userSnaps(`${POOL}/${dst}`), digest: await imageDigest(`${POOL}/${dst}`) };
      const cut = file('cut');
      const inc = file('inc-b');
      await s.exportDiff(POOL, src, { from: 's1', to: 's2' }, inc);
      await writeFile(cut, (await readFile(inc)).subarray(0, 100));
      const bad = await expectRbdError(s.applyDiff(POOL, dst, cut), { code: 'EBADMSG', op: 'rbd_diff_v1' });
      expect(bad.message).toMatch(/truncated diff stream/);
      expect(bad.message).toContain(cut);
      await expectRbdError(s.inspectDiff(cut), { code: 'EBADMSG', op: 'rbd_diff_v1' });
      const fromMissing = file('from-missing');
      await writeFile(fromMissing, diffStream({ from: 's9', to: 's10', size: MiB, records: [{ w: [0, random(4096)] }] }));
      await expectRbdError(s.applyDiff(POOL, dst, fromMissing), { code: 'ENOENT', op: 'rbd_snap_exists', snapshot: 's9' });
      await expectRbdError(s.applyDiff(POOL, dst, full), { code: 'EEXIST', op: 'rbd_snap_exists', snapshot: 's1' });
      await expectRbdError(s.inspectDiff(file('absent')), { code: 'ENOENT', op: 'open' });
      expect({ snaps: await userSnaps(`${POOL}/${dst}`), digest: await imageDigest(`${POOL}/${dst}`) }).toEqual(before);
    });

    it('6b.4 an aborted signal cancels (ECANCELED) and leaves no file', async () => {
      const out = file('cancelled');
      const controller = new AbortController();
      controller.abort();
      await expectRbdError(s.exportDiff(POOL, src, { from: null, to: 's2' }, out, { signal: controller.signal }), { code: 'ECANCELED' });
      expect(existsSync(out)).toBe(false);
      expect(s.stats()).toMatchObject({ pending: 0, openImages: 0 });
    });
  });

  describe('6. concurrency and handles', () => {
    it('6.1 keeps 64+ calls in flight on one connection and settles them all', async () => {
      const images = await Promise.all(Array.from({ length: 16 }, (_, i) => image(`conc-${i}`, MiB)));
      const calls: Promise<unknown>[] = [];
      for (const name of images) {
        for (let i = 0; i < 4; i++) calls.push(s.createSnapshot(POOL, name, `s${i}`));
        calls.push(s.imageInfo(POOL, name));
        calls.push(s.listWatchers(POOL, name));
      }
      // Failing calls in the same crowd must not disturb the others.
      for (let i = 0; i < 8; i++) calls.push(rejection(s.imageInfo(POOL, unique(kind, 'conc-missing'))));
      expect(calls.length).toBeGreaterThanOrEqual(64);
      expect(s.stats().pending).toBeGreaterThanOrEqual(64);
      const results = await Promise.all(calls);
      for (const r of results.slice(-8)) expect(r).toMatchObject({ code: 'ENOENT' });
      for (const name of images) {
        // Concurrent creates on one image get their ids in whatever order they reached the monitor.
        expect((await s.listSnapshots(POOL, name)).map((x) => x.name).sort()).toEqual(['s0', 's1', 's2', 's3']);
      }
      expect(s.stats()).toMatchObject({ pending: 0, openImages: 0 });
    });

    it('6.2 leaves no image handle open after many calls, failed ones included', async () => {
      const name = await image('handles');
      for (let i = 0; i < 5; i++) {
        await Promise.all([
          s.imageInfo(POOL, name),
          s.listSnapshots(POOL, name),
          s.getMetadata(POOL, name),
          s.listLocks(POOL, name),
          rejection(s.removeSnapshot(POOL, name, 'none')),
          rejection(s.imageInfo(POOL, `${name}-missing`)),
          rejection(s.resizeImage(POOL, name, 1, { allowShrink: false })),
        ]);
      }
      expect(s.stats()).toMatchObject({ pending: 0, openImages: 0 });
    });
  });
});

describe('storage contract: both backends give the same answers', () => {
  const s: Partial<Record<(typeof BACKENDS)[number], Storage>> = {};
  const created: string[] = [];

  beforeAll(async () => {
    for (const kind of BACKENDS) s[kind] = await openStorage(kind, { confPath: CONF });
  });

  afterAll(async () => {
    const native = s.native;
    if (native) for (const name of created.reverse()) await destroy(native, POOL, name).catch(() => undefined);
    for (const kind of BACKENDS) await s[kind]?.close();
  });

  const both = () => [s.native!, s.cli!] as const;

  it('7.1 reads the same image, snapshots, clone, locks, metadata and cluster', async () => {
    const [native, cli] = both();
    const parent = unique('x', 'parent');
    const child = unique('x', 'child');
    created.push(parent, child);
    await native.createImage(POOL, parent, { size: 6 * MiB, features: ['layering', 'exclusive-lock', 'object-map'] });
    await cli.createSnapshot(POOL, parent, 'a');
    await native.createSnapshot(POOL, parent, 'b');
    await native.protectSnapshot(POOL, parent, 'b');
    await cli.cloneSnapshot({ pool: POOL, image: parent, snapshot: 'b' }, POOL, child);
    await native.setMetadata(POOL, child, 'k', 'v');
    await cli.setQos(POOL, child, { writeIops: 7 });
    await cli.addLock(POOL, child, { cookie: 'c', tag: 'g', exclusive: false });
    await native.addLock(POOL, child, { cookie: 'd', tag: 'g', exclusive: false });

    for (const read of [
      (x: Storage) => x.imageInfo(POOL, parent),
      (x: Storage) => x.imageInfo(POOL, child),
      (x: Storage) => x.listSnapshots(POOL, parent),
      (x: Storage) => x.listChildren({ pool: POOL, image: parent, snapshot: 'b' }),
      (x: Storage) => x.listWatchers(POOL, child),
      (x: Storage) => x.listLocks(POOL, child),
      (x: Storage) => x.getMetadata(POOL, child),
      (x: Storage) => x.getQos(POOL, child),
      (x: Storage) => x.imageExists(POOL, child),
      (x: Storage) => x.clusterInfo(),
    ]) {
      const [a, b] = await Promise.all([read(native), read(cli)]);
      expect(b).toEqual(a);
    }
    const [na, cl] = await Promise.all([native.listImages(POOL), cli.listImages(POOL)]);
    expect(na).toContain(parent);
    expect(cl).toContain(parent);
  });

  it('7.2 fails the same way: same error class, code, errno, pool, image and snapshot', async () => {
    const [native] = both();
    const base = unique('x', 'errors');
    created.push(base);
    await native.createImage(POOL, base, { size: MiB });
    await native.createSnapshot(POOL, base, 'snap');
    const missing = unique('x', 'missing');
    const cases: [string, (x: Storage) => Promise<unknown>][] = [
      ['info of a missing image', (x) => x.imageInfo(POOL, missing)],
      ['unknown pool', (x) => x.listImages(`nopool-${RUN}`)],
      ['existing name', (x) => x.createImage(POOL, base, { size: MiB })],
      ['remove with snapshots', (x) => x.removeImage(POOL, base)],
      ['shrink without allowShrink', (x) => x.resizeImage(POOL, base, 1)],
      ['negative size', (x) => x.resizeImage(POOL, base, -1)],
      ['bad snapshot name', (x) => x.createSnapshot(POOL, base, 'a@b')],
      ['missing snapshot', (x) => x.rollbackSnapshot(POOL, base, 'nope')],
      ['existing snapshot', (x) => x.createSnapshot(POOL, base, 'snap')],
      ['unprotect unprotected', (x) => x.unprotectSnapshot(POOL, base, 'snap')],
      ['clone unprotected', (x) => x.cloneSnapshot({ pool: POOL, image: base, snapshot: 'snap' }, POOL, missing)],
      ['flatten non-clone', (x) => x.flattenImage(POOL, base)],
      ['break missing lock', (x) => x.breakLock(POOL, base, { owner: 'client.1', cookie: 'x' })],
      ['remove missing key', (x) => x.removeMetadata(POOL, base, 'nokey')],
      ['bad QoS value', (x) => x.setMetadata(POOL, base, 'conf_rbd_qos_bps_limit', 'x')],
      ['rename onto itself', (x) => x.renameImage(POOL, base, base)],
    ];
    for (const [what, call] of cases) {
      // One after the other: run together, one backend's call could see the other's open image
      // (a watcher) and answer EBUSY where it would say ENOTEMPTY alone.
      const a = await rejection(call(both()[0]));
      const b = await rejection(call(both()[1]));
      expect({ what, ...shape(b) }).toEqual({ what, ...shape(a) });
      if (!(a instanceof RbdError)) expect(String(b)).toBe(String(a));
    }
  });

  it('7.3 write the same export-diff file, byte for byte, and fail the same way on diffs', async () => {
    const [native, cli] = both();
    const src = unique('x', 'diff');
    created.push(src);
    await diffSource(native, src);
    for (const range of [{ from: null, to: 's1' }, { from: 's1', to: 's2' }]) {
      const [a, b] = [path.join(diffDir, unique('x', 'n')), path.join(diffDir, unique('x', 'c'))];
      const [ra, rb] = [await native.exportDiff(POOL, src, range, a), await cli.exportDiff(POOL, src, range, b)];
      expect(rb).toEqual(ra);
      expect(await sha256(b)).toBe(await sha256(a));
    }
    const cases: [string, (x: Storage) => Promise<unknown>][] = [
      ['export from a missing snapshot', (x) => x.exportDiff(POOL, src, { from: 'nope', to: 's2' }, path.join(diffDir, unique('x', 'm')))],
      ['export of a missing image', (x) => x.exportDiff(POOL, `${src}-gone`, { from: null, to: 's2' }, path.join(diffDir, unique('x', 'g')))],
      ['apply of a missing file', (x) => x.applyDiff(POOL, src, path.join(diffDir, 'absent'))],
      ['inspect of a missing file', (x) => x.inspectDiff(path.join(diffDir, 'absent'))],
    ];
    for (const [what, call] of cases) {
      const a = await rejection(call(native));
      const b = await rejection(call(cli));
      expect({ what, ...shape(b) }).toEqual({ what, ...shape(a) });
    }
  });
});
