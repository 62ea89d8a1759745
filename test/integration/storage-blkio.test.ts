// blkio throttling written into a real cgroup v1 blkio hierarchy (the kernel of these machines
// mounts it at /sys/fs/cgroup/blkio) through the native single-write writer, and read back as the
// kernel keeps it. cgroup v2's io.max is unit-tested only: the io controller is bound to v1 here.

import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyBlkioV1, readBlkioV1, type DeviceNumber } from '../../src/ratelimit/index.js';
import { RbdError } from '../../src/storage/errors.js';
import { writeSysfsFile } from '../../src/storage/index.js';

const BLKIO = '/sys/fs/cgroup/blkio';
if (!existsSync(path.join(BLKIO, 'blkio.throttle.read_iops_device'))) {
  throw new Error(`no cgroup v1 blkio hierarchy at ${BLKIO}: this test needs one (mount -t cgroup -o blkio none ${BLKIO})`);
}

const cgroup = path.join(BLKIO, `volplugin-storage-test-${process.pid}`);
let dev: DeviceNumber;

beforeAll(async () => {
  // Any block device the kernel knows will do: the first one listed in /sys/block.
  const names = (await readdir('/sys/block')).sort();
  const first = names.find((n) => existsSync(path.join('/sys/block', n, 'dev')));
  if (!first) throw new Error('no block device in /sys/block');
  const [major, minor] = (await readFile(path.join('/sys/block', first, 'dev'), 'utf8')).trim().split(':').map(Number);
  dev = { major: major!, minor: minor! };
  await mkdir(cgroup);
});

afterAll(async () => {
  await rmdir(cgroup).catch(() => undefined);
});

describe('blkio v1 throttling in a real cgroup', () => {
  it('1 sets the four limits of a device, as the kernel then reports them', async () => {
    await applyBlkioV1(cgroup, dev, { readIops: 100, writeIops: 50, readBps: 1 << 20, writeBps: 2 << 20 }, writeSysfsFile);
    expect(await readBlkioV1(cgroup, dev)).toEqual({ readIops: 100, writeIops: 50, readBps: 1 << 20, writeBps: 2 << 20 });
    const raw = await readFile(path.join(cgroup, 'blkio.throttle.write_iops_device'), 'utf8');
    expect(raw.trim()).toBe(`${dev.major}:${dev.minor} 50`);
  });

  it('2 changes one limit and leaves the others', async () => {
    await applyBlkioV1(cgroup, dev, { writeIops: 75 }, writeSysfsFile);
    expect(await readBlkioV1(cgroup, dev)).toMatchObject({ readIops: 100, writeIops: 75 });
  });

  it('3 a limit of 0 removes the rule', async () => {
    await applyBlkioV1(cgroup, dev, { readIops: 0, writeIops: 0, readBps: 0, writeBps: 0 }, writeSysfsFile);
    expect(await readBlkioV1(cgroup, dev)).toEqual({ readIops: 0, writeIops: 0, readBps: 0, writeBps: 0 });
    expect((await readFile(path.join(cgroup, 'blkio.throttle.read_iops_device'), 'utf8')).trim()).toBe('');
  });

  it('4 the kernel refuses a malformed line (EINVAL) and an unknown device (ENODEV) with its errno', async () => {
    const file = path.join(cgroup, 'blkio.throttle.read_iops_device');
    const bad = await writeSysfsFile(file, 'not a rule').catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(RbdError);
    expect(bad).toMatchObject({ op: 'write', code: 'EINVAL' });
    const unknown = await writeSysfsFile(file, '4095:4095 10').catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(RbdError);
    expect((unknown as RbdError).code).toMatch(/^(ENODEV|EINVAL)$/);
  });
});
