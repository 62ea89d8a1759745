// The rbd-fuse + loop mapper on the real test cluster: a volume gets its own rbd-fuse client and a
// loop device, the client's address is the watcher Ceph shows, discovery after a "restart" finds
// the mapping, unmapping leaves nothing behind, and blocklisting the address fences the volume.
import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceReadError, EDGE_BYTES, formatDevice, mountDevice, probeDevice, unmountAll } from '../../src/mapper/fs.js';
import { FuseMapper } from '../../src/mapper/fuse.js';
import type { Mapping, WatcherSource } from '../../src/mapper/types.js';
import { blocklisted, ceph, cephConf, createImage, leftoversBelow, removeImage, testPool, watchers } from '../helpers/plugin-ceph.js';

const exec = promisify(execFile);
const run = `${process.pid}-${Date.now().toString(36)}`;
const pool = testPool();
const tenant = 'maptest';
const images = { a: `${tenant}.a-${run}`, b: `${tenant}.b-${run}` };

const cliWatchers: WatcherSource = {
  listWatchers: async (p, image) => (await watchers(p, image)).map((address, i) => ({ address, clientId: i, cookie: i })),
};

let root: string;
let mapper: FuseMapper;
const mapped: Mapping[] = [];

beforeAll(async () => {
  root = path.join(process.env.VOLPLUGIN_TEST_ROOT ?? '/tmp', `mapper-fuse-${run}`);
  await mkdir(root, { recursive: true });
  mapper = new FuseMapper({ root: path.join(root, 'fuse'), ceph: { confPath: cephConf(), clientId: 'admin' }, watchers: cliWatchers });
  await createImage(pool, images.a, 64);
  await createImage(pool, images.b, 64);
});

afterAll(async () => {
  await unmountAll(path.join(root, 'mnt')).catch(() => undefined);
  await unmountAll(path.join(root, 'mnt-c')).catch(() => undefined);
  for (const m of mapped) await mapper.unmap(m).catch(() => undefined);
  for (const m of await mapper.discover().catch(() => [])) await mapper.unmap(m).catch(() => undefined);
  await removeImage(pool, images.a);
  await removeImage(pool, images.b);
  expect(await leftoversBelow(root)).toEqual([]);
  await rm(root, { recursive: true, force: true });
});

describe('rbd-fuse + loop mapper', () => {
  it('maps one image through its own rbd-fuse and a direct-I/O loop device, and knows its client address', async () => {
    const m = await mapper.map({ tenant, volume: `a-${run}`, pool, image: images.a });
    mapped.push(m);
    expect(m.device).toMatch(/^\/dev\/loop\d+$/);
    expect(await watchers(pool, images.a)).toEqual([m.clientAddress]);
    // The other image of the pool is not opened by this volume's client.
    expect(await watchers(pool, images.b)).toEqual([]);
    const { stdout } = await exec('losetup', ['--json', '--list', '--output', 'NAME,DIO', m.device!]);
    expect(stdout).toMatch(/"dio": ?(true|"1")/);
  });

  it('discovery (as after a restart) finds the mapping with its pool, image, device and address', async () => {
    const fresh = new FuseMapper({ root: path.join(root, 'fuse'), ceph: { confPath: cephConf() }, watchers: cliWatchers });
    const found = await fresh.discover();
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ tenant, volume: `a-${run}`, pool, image: images.a, device: mapped[0]!.device, clientAddress: mapped[0]!.clientAddress, kind: 'fuse' });
    expect(await fresh.isMapped(found[0]!)).toBe(true);
  });

  it('the device takes a filesystem, mounts and holds data', async () => {
    const device = mapped[0]!.device!;
    expect(await probeDevice(device)).toEqual({ kind: 'empty' });
    await formatDevice('mkfs.ext4 -q -m0 %', device);
    expect(await probeDevice(device)).toMatchObject({ kind: 'filesystem', type: 'ext4' });
    const mnt = path.join(root, 'mnt');
    await mountDevice(device, mnt);
    await writeFile(path.join(mnt, 'hello'), 'hello\n');
    await unmountAll(mnt);
  });

  it('blocklisting the recorded address fences the volume: O_DIRECT writes fail at once', async () => {
    const m = mapped[0]!;
    const mnt = path.join(root, 'mnt');
    await mountDevice(m.device!, mnt);
    await exec('dd', ['if=/dev/zero', `of=${mnt}/before`, 'bs=4k', 'count=4', 'oflag=direct'], { timeout: 30_000 });
    await ceph('osd', 'blocklist', 'add', m.clientAddress!, '600');
    expect(await blocklisted(m.clientAddress!)).toBe(true);
    // The OSD applies the blocklist with its next map: give it a moment under load, then every write fails.
    const started = Date.now();
    let write = 'written';
    while (Date.now() - started < 10_000) {
      write = await exec('dd', ['if=/dev/zero', `of=${mnt}/after`, 'bs=4k', 'count=4', 'oflag=direct'], { timeout: 30_000 }).then(
        () => 'written',
        (err: { stderr?: string }) => err.stderr ?? 'failed',
      );
      if (write !== 'written') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(write).toMatch(/Input\/output error/);
    expect(Date.now() - started).toBeLessThan(10_000);
    await unmountAll(mnt);
    await ceph('osd', 'blocklist', 'rm', m.clientAddress!);
  });

  it('unmap removes the loop device, the rbd-fuse client and its directory', async () => {
    const m = mapped.pop()!;
    await mapper.unmap(m);
    expect(await leftoversBelow(root)).toEqual([]);
    expect(await mapper.discover()).toEqual([]);
    // rbd-fuse exits when unmounted: its watch goes (immediately, or once the OSD notices).
    for (let i = 0; i < 50 && (await watchers(pool, images.a)).length > 0; i++) await new Promise((r) => setTimeout(r, 200));
    expect(await watchers(pool, images.a)).toEqual([]);
  });

  it('mapping an image that does not exist fails clearly and leaves nothing', async () => {
    await expect(mapper.map({ tenant, volume: `nope-${run}`, pool, image: `${tenant}.nope-${run}` })).rejects.toThrow(/check that the image exists/);
    expect(await leftoversBelow(root)).toEqual([]);
    expect(await mapper.discover()).toEqual([]);
  }, 60_000);

  it('a mapping whose Ceph client cannot be told is undone: no loop device, no rbd-fuse left (issue 12, rule 3)', async () => {
    // The image's watchers as listed before rbd-fuse started: its own watcher never shows as new.
    let frozen: Awaited<ReturnType<WatcherSource['listWatchers']>> | null = null;
    const blind: WatcherSource = {
      listWatchers: async (p, image) => (frozen ??= await cliWatchers.listWatchers(p, image)),
    };
    const m = new FuseMapper({ root: path.join(root, 'fuse'), ceph: { confPath: cephConf(), clientId: 'admin' }, watchers: blind });
    await expect(m.map({ tenant, volume: `b-${run}`, pool, image: images.b })).rejects.toThrow(
      /fuse: cannot tell which Ceph client opened .* \(no new watcher appeared\); without its address no other host could fence this mapping, so it was undone/,
    );
    expect(await leftoversBelow(root)).toEqual([]);
    expect(await mapper.discover()).toEqual([]);
    await new Promise((r) => setTimeout(r, 200));
    const { stdout } = await exec('pgrep', ['-f', `rbd-fuse.*b-${run}`]).catch(() => ({ stdout: '' }));
    expect(stdout.trim()).toBe('');
  });

  it('mapping again where a crashed volplugin left a mapping replaces the leftover', async () => {
    const first = await mapper.map({ tenant, volume: `b-${run}`, pool, image: images.b });
    const second = await mapper.map({ tenant, volume: `b-${run}`, pool, image: images.b });
    mapped.push(second);
    expect(second.clientAddress).not.toBe(first.clientAddress);
    const loops = (await leftoversBelow(root)).filter((l) => l.startsWith('loop'));
    expect(loops).toHaveLength(1);
    await mapper.unmap(mapped.pop()!);
    expect(await leftoversBelow(root)).toEqual([]);
  });
});

describe('what a device holds, before a first format (issue 12, rule 1)', () => {
  const volume = `d-${run}`;
  const image = `${tenant}.${volume}`;
  let m: Mapping;
  const write = (offset: number) =>
    exec('dd', ['if=/dev/urandom', `of=${m.device!}`, 'bs=4096', 'count=1', `seek=${offset / 4096}`, 'oflag=direct', 'conv=notrunc'], { timeout: 30_000 });
  const zero = (offset: number) =>
    exec('dd', ['if=/dev/zero', `of=${m.device!}`, 'bs=4096', 'count=1', `seek=${offset / 4096}`, 'oflag=direct', 'conv=notrunc'], { timeout: 30_000 });

  beforeAll(async () => {
    await createImage(pool, image, 64);
    m = await mapper.map({ tenant, volume, pool, image });
  });

  afterAll(async () => {
    if (m) await mapper.unmap(m).catch(() => undefined);
    await removeImage(pool, image);
  });

  it('a fresh thin image reads as zeros at its start and end: empty', async () => {
    expect(await probeDevice(m.device!)).toEqual({ kind: 'empty' });
  });

  it('bytes that are no filesystem at the start, or only at the end, are data (blkid finding nothing does not make it empty)', async () => {
    await write(4096);
    expect(await probeDevice(m.device!)).toMatchObject({ kind: 'data' });
    await zero(4096);
    const last = 64 * 1024 * 1024 - 4096;
    await write(last);
    expect(await probeDevice(m.device!)).toMatchObject({ kind: 'data' });
    await zero(last);
    // Beyond the edges nothing is read: data in the middle does not count.
    await write(EDGE_BYTES * 8);
    expect(await probeDevice(m.device!)).toEqual({ kind: 'empty' });
  });

  it('a device whose client is fenced cannot be read: DeviceReadError, never "empty"', async () => {
    await ceph('osd', 'blocklist', 'add', m.clientAddress!, '600');
    try {
      const err = await probeDevice(m.device!).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DeviceReadError);
      expect((err as Error).message).toMatch(new RegExp(`^${m.device!} cannot be read`));
    } finally {
      await ceph('osd', 'blocklist', 'rm', m.clientAddress!);
    }
  });
});

describe('rbd-fuse mapper with a fenced client', () => {
  it('unmapping a blocklisted rbd-fuse does not hang (no stat of its mount; its process is reaped)', async () => {
    const volume = `c-${run}`;
    const image = `${tenant}.${volume}`;
    await createImage(pool, image, 64);
    try {
      const m = await mapper.map({ tenant, volume, pool, image });
      await formatDevice('mkfs.ext4 -q %', m.device!);
      const mnt = path.join(root, 'mnt-c');
      await mountDevice(m.device!, mnt);
      await ceph('osd', 'blocklist', 'add', m.clientAddress!, '600');
      await exec('dd', ['if=/dev/zero', `of=${mnt}/x`, 'bs=4k', 'count=1', 'oflag=direct']).catch(() => undefined);
      const started = Date.now();
      await unmountAll(mnt);
      await mapper.unmap(m);
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(await leftoversBelow(root)).toEqual([]);
      const { stdout } = await exec('pgrep', ['-f', `rbd-fuse.*${volume}`]).catch(() => ({ stdout: '' }));
      expect(stdout.trim()).toBe('');
      await ceph('osd', 'blocklist', 'rm', m.clientAddress!);
    } finally {
      await removeImage(pool, image);
    }
  });
});
