// The in-memory Storage twin used by the unit tests of the layers above: it must keep the
// contract's rules (the same errors for the same mistakes), and its fault hooks must fail as the
// real backends do, or those tests prove nothing.

import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { TimeoutError } from '../../src/common/timeout.js';
import { RbdError } from '../../src/storage/errors.js';
import { openStorage } from '../../src/storage/index.js';
import { MemoryStorage, memoryStorage } from '../../src/storage/memory.js';
import { timed } from '../../src/storage/timed.js';

const MiB = 1 << 20;

async function code(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof RbdError) return err.code;
    return (err as Error).name;
  }
  return 'ok';
}

describe('memory storage', () => {
  let s: MemoryStorage;

  beforeEach(async () => {
    s = (await openStorage('memory')) as MemoryStorage;
  });

  it('1 creates images with the contract’s defaults', async () => {
    await s.createImage('rbd', 'a', { size: 8 * MiB });
    expect(await s.imageInfo('rbd', 'a')).toEqual({
      pool: 'rbd',
      name: 'a',
      size: 8 * MiB,
      order: 22,
      objectSize: 4 * MiB,
      features: ['layering', 'exclusive-lock'],
      parent: null,
      snapshotCount: 0,
      group: null,
    });
    expect(await s.listImages('rbd')).toEqual(['a']);
    expect(await s.imageExists('rbd', 'a')).toBe(true);
  });

  it('2 gives the real backends’ error codes for the same mistakes', async () => {
    await s.createImage('rbd', 'a', { size: MiB });
    expect(await code(s.createImage('rbd', 'a', { size: MiB }))).toBe('EEXIST');
    expect(await code(s.createImage('nopool', 'a', { size: MiB }))).toBe('ENOENT');
    expect(await code(s.imageInfo('rbd', 'b'))).toBe('ENOENT');
    expect(await code(s.resizeImage('rbd', 'a', 1))).toBe('EINVAL');
    expect(await code(s.resizeImage('rbd', 'a', -1))).toBe('RangeError');
    expect(await code(s.createSnapshot('rbd', 'a', 'a@b'))).toBe('TypeError');
    await s.createSnapshot('rbd', 'a', 's');
    expect(await code(s.createSnapshot('rbd', 'a', 's'))).toBe('EEXIST');
    expect(await code(s.removeImage('rbd', 'a'))).toBe('ENOTEMPTY');
    expect(await code(s.unprotectSnapshot('rbd', 'a', 's'))).toBe('EINVAL');
    expect(await code(s.cloneSnapshot({ pool: 'rbd', image: 'a', snapshot: 's' }, 'rbd', 'c'))).toBe('EINVAL');
    expect(await code(s.removeSnapshot('rbd', 'a', 'none'))).toBe('ENOENT');
    expect(await code(s.removeMetadata('rbd', 'a', 'none'))).toBe('ENOENT');
    expect(await code(s.flattenImage('rbd', 'a'))).toBe('EINVAL');
    expect(await code(s.renameImage('rbd', 'zz', 'yy'))).toBe('ENOENT');
  });

  it('3 clones, lists children, refuses to unprotect a parent with clones, flattens', async () => {
    await s.createImage('rbd', 'p', { size: MiB });
    await s.createSnapshot('rbd', 'p', 'gold');
    await s.protectSnapshot('rbd', 'p', 'gold');
    expect(await code(s.protectSnapshot('rbd', 'p', 'gold'))).toBe('EBUSY');
    await s.cloneSnapshot({ pool: 'rbd', image: 'p', snapshot: 'gold' }, 'rbd', 'c');
    expect((await s.imageInfo('rbd', 'c')).parent).toEqual({ pool: 'rbd', image: 'p', snapshot: 'gold' });
    expect(await s.listChildren({ pool: 'rbd', image: 'p', snapshot: 'gold' })).toEqual(['rbd/c']);
    expect(await code(s.unprotectSnapshot('rbd', 'p', 'gold'))).toBe('EBUSY');
    await s.flattenImage('rbd', 'c');
    await s.unprotectSnapshot('rbd', 'p', 'gold');
  });

  it('4 simulated watchers and locks keep an image from being removed (EBUSY)', async () => {
    await s.createImage('rbd', 'w', { size: MiB });
    s.addWatcher('rbd', 'w', { address: '10.0.0.9:0/1', clientId: 9, cookie: 1 });
    expect(await s.listWatchers('rbd', 'w')).toEqual([{ address: '10.0.0.9:0/1', clientId: 9, cookie: 1 }]);
    expect(await code(s.removeImage('rbd', 'w'))).toBe('EBUSY');
    s.removeWatcher('rbd', 'w', '10.0.0.9:0/1');
    await s.addLock('rbd', 'w', { cookie: 'c', exclusive: true });
    expect(await code(s.addLock('rbd', 'w', { cookie: 'd', exclusive: true }))).toBe('EBUSY');
    expect(await code(s.removeImage('rbd', 'w'))).toBe('EBUSY');
    const [lock] = await s.listLocks('rbd', 'w');
    await s.breakLock('rbd', 'w', lock!);
    await s.removeImage('rbd', 'w');
  });

  it('5 QoS goes through conf_rbd_qos_* metadata', async () => {
    await s.createImage('rbd', 'q', { size: MiB });
    await s.setQos('rbd', 'q', { iops: 10, writeBps: 20 });
    expect(await s.getMetadata('rbd', 'q')).toEqual({ conf_rbd_qos_iops_limit: '10', conf_rbd_qos_write_bps_limit: '20' });
    await s.setQos('rbd', 'q', { iops: 0, readIops: 0 });
    expect(await s.getQos('rbd', 'q')).toEqual({ writeBps: 20 });
    expect(await code(s.setMetadata('rbd', 'q', 'conf_rbd_qos_iops_limit', 'x'))).toBe('EINVAL');
  });

  it('6 records blocklisting and closes idempotently', async () => {
    await s.blocklistAdd('10.0.0.9:0/1', 60);
    expect(s.blocklist.has('10.0.0.9:0/1')).toBe(true);
    await s.blocklistRemove('10.0.0.9:0/1');
    expect(s.blocklist.size).toBe(0);
    await s.close();
    await s.close();
    expect(await code(s.listImages('rbd'))).toBe('ENOTCONN');
    expect(s.stats()).toEqual({ pending: 0, running: 0, queued: 0, openImages: 0, pools: 0 });
  });
});

describe('memory storage: what tests look at', () => {
  it('7 shows images as copies, by pool/name, with snapshots, metadata and QoS', async () => {
    const s = memoryStorage({ pools: ['rbd', 'fast'] });
    await s.createImage('fast', 'a', { size: MiB });
    await s.createSnapshot('fast', 'a', 's1');
    await s.setMetadata('fast', 'a', 'owner', 't/a');
    await s.setQos('fast', 'a', { writeIops: 7 });
    s.addWatcher('fast', 'a', { address: '10.0.0.9:0/1', clientId: 9, cookie: 1 });
    const view = s.images.get('fast/a')!;
    expect([...s.images.keys()]).toEqual(['fast/a']);
    expect(view).toMatchObject({ size: MiB, parent: null, snapshots: ['s1'], metadata: { owner: 't/a' }, qos: { writeIops: 7 } });
    expect(view.watchers).toHaveLength(1);
    view.snapshots.push('not-there');
    expect(s.snapshotNames('fast', 'a')).toEqual(['s1']);
    expect(s.snapshotNames('fast', 'none')).toEqual([]);
  });

  it('8 a snapshot of a clone keeps the clone a child after flattening, unless deep-flatten', async () => {
    const s = memoryStorage();
    await s.createImage('rbd', 'p', { size: MiB });
    await s.setMetadata('rbd', 'p', 'owner', 't/p');
    await s.createSnapshot('rbd', 'p', 'gold');
    await s.protectSnapshot('rbd', 'p', 'gold');
    const gold = { pool: 'rbd', image: 'p', snapshot: 'gold' };
    await s.cloneSnapshot(gold, 'rbd', 'c');
    await s.cloneSnapshot(gold, 'rbd', 'd', { features: ['layering', 'exclusive-lock', 'deep-flatten'] });
    expect(s.images.get('rbd/c')!.metadata).toEqual({ owner: 't/p' });
    await s.createSnapshot('rbd', 'c', 'kept');
    await s.createSnapshot('rbd', 'd', 'kept');
    await s.flattenImage('rbd', 'c');
    await s.flattenImage('rbd', 'd');
    expect(s.images.get('rbd/c')!.parent).toBeNull();
    expect(await s.listChildren(gold)).toEqual(['rbd/c']);
    expect(await code(s.unprotectSnapshot('rbd', 'p', 'gold'))).toBe('EBUSY');
    await s.removeSnapshot('rbd', 'c', 'kept');
    await s.unprotectSnapshot('rbd', 'p', 'gold');
  });

  it('9 takes snapshot times from the clock it is given, to the second', async () => {
    let now = Date.UTC(2026, 10, 22, 12, 30, 0, 250);
    const s = memoryStorage({ now: () => now });
    await s.createImage('rbd', 'a', { size: MiB });
    await s.createSnapshot('rbd', 'a', 's1');
    now += 5_000;
    s.now = () => now + 1;
    await s.createSnapshot('rbd', 'a', 's2');
    expect((await s.listSnapshots('rbd', 'a')).map((x) => x.createdAt?.toISOString())).toEqual([
      '2026-11-22T12:30:00.000Z',
      '2026-11-22T12:30:05.000Z',
    ]);
  });
});

describe('memory storage: fault hooks', () => {
  let s: MemoryStorage;

  beforeEach(async () => {
    s = memoryStorage();
    await s.createImage('rbd', 'a', { size: MiB });
  });

  it('10 fails the next call of a named method with an errno, as an RbdError like librbd’s', async () => {
    s.failNext('createSnapshot', 'ENOSPC');
    await s.createImage('rbd', 'b', { size: MiB });
    const err = await s.createSnapshot('rbd', 'a', 's1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RbdError);
    expect(err).toMatchObject({ code: 'ENOSPC', errno: -28, op: 'rbd_snap_create', pool: 'rbd', image: 'a', snapshot: 's1' });
    expect((err as RbdError).message).toBe('rbd_snap_create rbd/a@s1: no space left on device (ENOSPC)');
    expect((err as RbdError).stack).toContain('storage-memory.test.ts');
    expect(s.snapshotNames('rbd', 'a')).toEqual([]);
    await s.createSnapshot('rbd', 'a', 's1');
    expect(s.snapshotNames('rbd', 'a')).toEqual(['s1']);
  });

  it('11 fails the next call of any method; errnos by name or number, failures in the order given', async () => {
    s.failNext('*', 5);
    s.failNext('*', 'EBUSY');
    expect(await s.listImages('rbd').catch((e: unknown) => e)).toMatchObject({ code: 'EIO', op: 'rbd_list2', pool: 'rbd' });
    expect(await code(s.clusterInfo())).toBe('EBUSY');
    expect(await s.listImages('rbd')).toEqual(['a']);
    s.failNext('cloneSnapshot');
    expect(await s.cloneSnapshot({ pool: 'rbd', image: 'a', snapshot: 'x' }, 'rbd', 'c').catch((e: unknown) => e)).toMatchObject({
      code: 'EIO',
      op: 'rbd_clone3',
      pool: 'rbd',
      image: 'c',
    });
    expect(() => s.failNext('createImage', 'ENOTANERRNO')).toThrow(TypeError);
  });

  it('12 hangs calls until released; held calls then run as usual', async () => {
    const hang = s.hang('createSnapshot');
    let settled = false;
    const held = s.createSnapshot('rbd', 'a', 's1').then(() => (settled = true));
    await hang.reached;
    expect(hang.held).toBe(1);
    expect(s.stats().pending).toBe(1);
    expect(await s.listImages('rbd')).toEqual(['a']);
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
    expect(s.snapshotNames('rbd', 'a')).toEqual([]);
    await hang.release();
    expect(settled).toBe(true);
    await held;
    expect(s.snapshotNames('rbd', 'a')).toEqual(['s1']);
    expect(s.stats().pending).toBe(0);
    await s.createSnapshot('rbd', 'a', 's2');
  });

  it('13 a held call released with an errno fails with it and changes nothing', async () => {
    const hang = s.hang('createImage');
    const held = s.createImage('rbd', 'b', { size: MiB }).catch((e: unknown) => e);
    await hang.reached;
    await hang.release('ETIMEDOUT');
    expect(await held).toMatchObject({ code: 'ETIMEDOUT', op: 'rbd_create4', pool: 'rbd', image: 'b' });
    expect([...s.images.keys()]).toEqual(['rbd/a']);
    await s.createImage('rbd', 'b', { size: MiB });
  });

  it('14 a hang of every call, bounded by timed(): the caller gets a TimeoutError', async () => {
    const bounded = timed(s, 30);
    const hang = bounded.hang();
    await expect(bounded.imageInfo('rbd', 'a')).rejects.toThrow(TimeoutError);
    await expect(bounded.imageInfo('rbd', 'a')).rejects.toThrow(/Ceph imageInfo did not finish within 30 ms/);
    await hang.release();
    expect((await bounded.imageInfo('rbd', 'a')).size).toBe(MiB);
  });

  it('15 unreachable: every call fails with ETIMEDOUT naming the librbd function, until it is back', async () => {
    s.unreachable = true;
    expect(await s.createImage('rbd', 'b', { size: MiB }).catch((e: unknown) => e)).toMatchObject({
      code: 'ETIMEDOUT',
      op: 'rbd_create4',
      pool: 'rbd',
      image: 'b',
    });
    expect(await code(s.clusterInfo())).toBe('ETIMEDOUT');
    expect(await code(s.listWatchers('rbd', 'a'))).toBe('ETIMEDOUT');
    expect(await code(s.setQos('rbd', 'a', { iops: 1 }))).toBe('ETIMEDOUT');
    s.unreachable = false;
    expect(await s.listImages('rbd')).toEqual(['a']);
  });

  it('16 logs every call that reaches it, not those the argument checks refuse', async () => {
    s.calls.length = 0;
    await s.createSnapshot('rbd', 'a', 's1');
    await s.protectSnapshot('rbd', 'a', 's1');
    await s.cloneSnapshot({ pool: 'rbd', image: 'a', snapshot: 's1' }, 'rbd', 'c');
    await s.setQos('rbd', 'c', { iops: 3 });
    expect(await code(s.createSnapshot('rbd', 'a', 'a@b'))).toBe('TypeError');
    s.failNext('removeImage', 'EBUSY');
    expect(await code(s.removeImage('rbd', 'c'))).toBe('EBUSY');
    expect(s.calls).toEqual([
      'createSnapshot rbd a s1',
      'protectSnapshot rbd a s1',
      'cloneSnapshot rbd/a@s1 rbd c',
      'setQos rbd c {"iops":3}',
      'removeImage rbd c',
    ]);
  });

  it('17 the hooks stay reachable through openStorage’s decorators', async () => {
    const opened = (await openStorage('memory', {}, { callTimeoutMs: 1_000 })) as MemoryStorage;
    opened.failNext('listImages', 'EIO');
    expect(await code(opened.listImages('rbd'))).toBe('EIO');
    expect(opened.calls).toEqual(['listImages rbd']);
    expect(opened).toBeInstanceOf(MemoryStorage);
  });
});

describe('openStorage', () => {
  it('refuses an unknown backend name', async () => {
    // @ts-expect-error: not a backend
    await expect(openStorage('nfs')).rejects.toThrow(/native, cli, memory/);
  });
});

describe('memory storage: export-diff streams', () => {
  let s: MemoryStorage;
  let dir: string;
  const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) % 251 || 1));

  beforeEach(async () => {
    s = memoryStorage();
    dir = await mkdtemp(path.join(tmpdir(), 'memory-diff-'));
    await s.createImage('rbd', 'a', { size: MiB });
    s.writeData('rbd', 'a', 0, bytes(10_000, 1));
    s.writeData('rbd', 'a', 300_000, bytes(5000, 2));
    await s.createSnapshot('rbd', 'a', 's1');
    s.writeData('rbd', 'a', 8192, Buffer.alloc(4096)); // zeros written over data
    s.writeData('rbd', 'a', 600_000, bytes(100, 3));
    await s.resizeImage('rbd', 'a', 2 * MiB);
    await s.createSnapshot('rbd', 'a', 's2');
    return () => rm(dir, { recursive: true, force: true });
  });

  it('1 a chain exported and applied to a fresh image reads as the source snapshots, snapshot by snapshot', async () => {
    const full = path.join(dir, 'full');
    const inc = path.join(dir, 'inc');
    const progress: number[][] = [];
    const r1 = await s.exportDiff('rbd', 'a', { from: null, to: 's1' }, full, { onProgress: (d, t) => progress.push([d, t]) });
    const r2 = await s.exportDiff('rbd', 'a', { from: 's1', to: 's2' }, inc);
    expect(r1).toMatchObject({ fromSnapshot: null, toSnapshot: 's1', size: MiB, wholeObject: false, streamBytes: (await stat(full)).size });
    expect(r2).toMatchObject({ fromSnapshot: 's1', toSnapshot: 's2', size: 2 * MiB, zeroRecords: 1 });
    expect(progress).toEqual([[MiB, MiB]]);
    expect((await stat(full)).mode & 0o777).toBe(0o600);
    await s.createImage('rbd', 'b', { size: 4096 });
    await s.applyDiff('rbd', 'b', full);
    await s.applyDiff('rbd', 'b', inc);
    expect(s.snapshotNames('rbd', 'b')).toEqual(['s1', 's2']);
    expect(s.readData('rbd', 'b', 's1').equals(s.readData('rbd', 'a', 's1'))).toBe(true);
    expect(s.readData('rbd', 'b').equals(s.readData('rbd', 'a', 's2'))).toBe(true);
    const { wholeObject: _whole, ...summary } = r2;
    expect(await s.inspectDiff(inc)).toEqual(summary);
  });

  it('2 keeps the addon’s rules: no overwrite, snapshots in order, a corrupt file changes nothing', async () => {
    const full = path.join(dir, 'full');
    await s.exportDiff('rbd', 'a', { from: null, to: 's1' }, full);
    expect(await code(s.exportDiff('rbd', 'a', { from: null, to: 's1' }, full))).toBe('EEXIST');
    expect(await code(s.exportDiff('rbd', 'a', { from: 'zz', to: 's1' }, path.join(dir, 'x')))).toBe('ENOENT');
    expect(await code(s.exportDiff('rbd', 'a', { from: null, to: 'zz' }, path.join(dir, 'x')))).toBe('ENOENT');
    expect(await code(s.exportDiff('rbd', 'a', { from: null, to: 's1' }, 'relative'))).toBe('TypeError');
    await s.createImage('rbd', 'b', { size: 4096 });
    await writeFile(path.join(dir, 'cut'), (await readFile(full)).subarray(0, 40));
    const err = await s.applyDiff('rbd', 'b', path.join(dir, 'cut')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'EBADMSG', op: 'rbd_diff_v1', pool: 'rbd', image: 'b' });
    expect((err as Error).message).toMatch(/truncated diff stream.*cut/);
    expect(s.images.get('rbd/b')).toMatchObject({ size: 4096, snapshots: [] });
    await s.applyDiff('rbd', 'b', full);
    expect(await code(s.applyDiff('rbd', 'b', full))).toBe('EEXIST');
    const controller = new AbortController();
    controller.abort();
    expect(await code(s.exportDiff('rbd', 'a', { from: 's1', to: 's2' }, path.join(dir, 'c'), { signal: controller.signal }))).toBe('ECANCELED');
    expect(existsSync(path.join(dir, 'c'))).toBe(false);
  });

  it('3 a rollback, a clone and a shrink carry the data as librbd does', async () => {
    s.writeData('rbd', 'a', 0, bytes(100, 9));
    await s.rollbackSnapshot('rbd', 'a', 's1');
    expect(s.readData('rbd', 'a').subarray(0, 10_000).equals(bytes(10_000, 1))).toBe(true);
    await s.protectSnapshot('rbd', 'a', 's1');
    await s.cloneSnapshot({ pool: 'rbd', image: 'a', snapshot: 's1' }, 'rbd', 'c');
    expect(s.readData('rbd', 'c').equals(s.readData('rbd', 'a', 's1'))).toBe(true);
    await s.resizeImage('rbd', 'c', 5000, { allowShrink: true });
    await s.resizeImage('rbd', 'c', MiB);
    expect(s.readData('rbd', 'c').subarray(5000, 10_000).equals(Buffer.alloc(5000))).toBe(true);
    s.failNext('exportDiff', 'ENOSPC');
    expect(await code(s.exportDiff('rbd', 'a', { from: null, to: 's1' }, path.join(dir, 'f')))).toBe('ENOSPC');
  });
});
