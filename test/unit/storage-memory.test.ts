// The in-memory Storage twin used by the unit tests of the layers above: it must keep the
// contract's rules (the same errors for the same mistakes) or those tests prove nothing.

import { beforeEach, describe, expect, it } from 'vitest';
import { RbdError } from '../../src/storage/errors.js';
import { openStorage } from '../../src/storage/index.js';
import { MemoryStorage } from '../../src/storage/memory.js';

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
    expect(s.stats()).toEqual({ pending: 0, openImages: 0, pools: 0 });
  });
});

describe('openStorage', () => {
  it('refuses an unknown backend name', async () => {
    // @ts-expect-error: not a backend
    await expect(openStorage('nfs')).rejects.toThrow(/native, cli, memory/);
  });
});
