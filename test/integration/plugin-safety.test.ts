// Safety under faults (issue 12) with the real binary, master, etcd and Ceph, one behaviour per
// test: a volume is formatted at most once (a read error or a replaced image never leads to a
// format), a reboot forgets what it destroyed, a stored device is not reused once it maps another
// image, a cloned host id does not start, and remove/rollback and mounts exclude each other. The
// fault-injection suite (make chaos) drives the same rules many times over.
import { execFile } from 'node:child_process';
import { copyFile, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKV } from '../../src/state/etcd.js';
import { StateStore } from '../../src/state/store.js';
import { cleanUpRun, leftoversBelow, mountsAt, rbd } from '../helpers/plugin-ceph.js';
import { createVolume, startMaster, TestPlugin, testPolicy, testRun, waitFor, type TestMaster } from '../helpers/plugin-harness.js';

const exec = promisify(execFile);
const { run, tenant, root, pool } = testRun('ps', 'plugin-safety');
const TTL = 4;

let master: TestMaster;
let a: TestPlugin;
let b: TestPlugin;
let kv: EtcdKV;
let store: StateStore;
/** Loop devices this file attached itself (detached in afterAll). */
const ownLoops: string[] = [];

/** The loop device in front of `plugin`'s rbd-fuse mapping of `volume`. */
async function loopOf(plugin: TestPlugin, volume: string): Promise<string> {
  const { stdout } = await exec('losetup', ['--json', '--list', '--output', 'NAME,BACK-FILE']);
  const dir = path.join(plugin.stateDir, 'fuse', tenant, volume);
  const loop = (JSON.parse(stdout) as { loopdevices: Array<{ name: string; 'back-file': string }> }).loopdevices.find((l) => l['back-file'].startsWith(`${dir}/`));
  if (!loop) throw new Error(`no loop device below ${dir}`);
  return loop.name;
}

/** What a reboot (or a person) does to a host's mapping of `volume`: unmount, detach the loop device, stop rbd-fuse. */
async function tearDownByHand(plugin: TestPlugin, volume: string): Promise<string> {
  const device = await loopOf(plugin, volume);
  await exec('umount', [plugin.mountpointOf(`${tenant}/${volume}`)]);
  await exec('losetup', ['--detach', device]);
  await exec('umount', [path.join(plugin.stateDir, 'fuse', tenant, volume)]);
  return device;
}

beforeAll(async () => {
  master = await startMaster(root, `/volplugin-test-${run}`);
  await master.api.uploadTenant(tenant, testPolicy());
  // hosta reads its boot id from a file, so that a test can "reboot" it.
  await writeFile(path.join(root, 'hosta-boot'), 'boot-1\n');
  a = await TestPlugin.start({ label: 'hosta', root, master, lockTtl: TTL, convergeSeconds: 1, env: { VOLPLUGIN_BOOT_ID_FILE: path.join(root, 'hosta-boot') } });
  b = await TestPlugin.start({ label: 'hostb', root, master, lockTtl: TTL, convergeSeconds: 1 });
  kv = new EtcdKV({ endpoints: [process.env.VOLPLUGIN_TEST_ETCD!] });
  store = new StateStore(kv, { prefix: master.prefix });
}, 120_000);

afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await master?.stop();
  await kv?.close();
  for (const loop of ownLoops) await exec('losetup', ['--detach', loop]).catch(() => undefined);
  const left = await cleanUpRun({ tenant, root, pool });
  expect(left).toEqual([]);
});

describe('format at most once (rule 1)', () => {
  it('a device that cannot be read at mount time (failpoint read-error-at-mount) is neither formatted nor mounted', async () => {
    const name = `${tenant}/unread`;
    await createVolume(b, name, null);
    b.options.env = { VOLPLUGIN_FAILPOINTS: 'read-error-at-mount' };
    await b.stop();
    await b.start();
    try {
      const answer = await b.mount(name, 'u1');
      expect(answer.Err).toMatch(new RegExp(`^refusing to format ${name}: the device cannot be read .*Input/output error`));
      expect(await store.getVolume(tenant, 'unread')).not.toMatchObject({ formatStarted: expect.anything() });
      expect(await store.getMount(tenant, 'unread')).toBeNull();
      expect(await leftoversBelow(path.join(root, 'hostb'))).toEqual([]);
    } finally {
      b.options.env = {};
      await b.stop();
      await b.start();
    }
    // Readable again, it gets its first (and only) format.
    expect((await b.mount(name, 'u2')).Err).toBe('');
    expect((await b.unmount(name, 'u2')).Err).toBe('');
  });

  it('an image replaced by an empty one after its volume was formatted is never formatted again: the mount fails naming it', async () => {
    const name = `${tenant}/replaced`;
    await createVolume(b, name, null);
    expect((await b.mount(name, 'r1')).Err).toBe('');
    expect((await b.unmount(name, 'r1')).Err).toBe('');
    const { formatted } = await store.getVolumeFormat(tenant, 'replaced');
    expect(formatted).toBeDefined();
    await rbd('rm', '--no-progress', `${pool}/${tenant}.replaced`);
    await rbd('create', '--size', '32M', `${pool}/${tenant}.replaced`);
    const answer = await b.mount(name, 'r2');
    expect(answer.Err).toMatch(new RegExp(`^${name} was formatted at ${formatted}, but its device /dev/loop\\d+ reads as zeros .* never formats a volume twice`));
    expect(await leftoversBelow(path.join(root, 'hostb'))).toEqual([]);
    expect(await store.getMount(tenant, 'replaced')).toBeNull();
  });
});

describe('reboots (rule 4)', () => {
  it('after a reboot the old mount table is forgotten: its lock is released, not adopted, and another host mounts at once', async () => {
    const name = `${tenant}/rebooted`;
    await createVolume(a, name, null);
    expect((await a.mount(name, 'r1')).Err).toBe('');
    await writeFile(path.join(a.mountpointOf(name), 'kept'), 'kept\n');
    await a.kill9();
    await tearDownByHand(a, 'rebooted');
    await writeFile(path.join(root, 'hosta-boot'), 'boot-2\n');
    await a.start();
    // Before it served Docker it let go of the lock (within the old lease's TTL, so it still existed).
    expect(await store.getMount(tenant, 'rebooted')).toBeNull();
    expect(JSON.parse(await readFile(path.join(a.stateDir, 'mounts.json'), 'utf8'))).toMatchObject({ bootId: 'boot-2', volumes: [] });
    expect((await b.mount(name, 'b1')).Err).toBe('');
    expect(await readFile(path.join(b.mountpointOf(name), 'kept'), 'utf8')).toBe('kept\n');
    expect((await b.unmount(name, 'b1')).Err).toBe('');
    await waitFor('hosta to clean up what the reboot left', async () => (await leftoversBelow(path.join(root, 'hosta'))).length === 0, 20_000);
  });

  it('a stored loop device that now maps another image is not mounted again', async () => {
    const name = `${tenant}/reused`;
    await createVolume(a, name, null);
    expect((await a.mount(name, 'x1')).Err).toBe('');
    await a.kill9();
    const device = await tearDownByHand(a, 'reused');
    // Another filesystem takes the device number (if another process got it first, it maps something else: the same for volplugin).
    const scratch = path.join(root, 'scratch.img');
    await exec('truncate', ['-s', '16M', scratch]);
    await exec('mkfs.ext4', ['-q', scratch]);
    await exec('losetup', [device, scratch]).then(
      () => ownLoops.push(device),
      () => undefined,
    );
    await a.start();
    const answer = await a.mount(name, 'x2');
    expect(answer.Err).toMatch(new RegExp(`no longer mounted and its device ${device} no longer maps ${pool}/${tenant}\\.reused`));
    expect(await mountsAt(a.mountpointOf(name))).toBe(0);
    // Docker's Unmount of the old reference cleans up without touching that device.
    expect((await a.unmount(name, 'x1')).Err).toBe('');
    if (ownLoops.includes(device)) {
      const { stdout } = await exec('losetup', ['--list', '--noheadings', '--output', 'BACK-FILE', device]);
      expect(stdout.trim()).toBe(scratch);
    }
    await waitFor('the lock to be released', async () => (await store.getMount(tenant, 'reused')) === null, 20_000);
  });
});

describe('one live process per host id (rule 5)', () => {
  it('a second volplugin with the same host id (a copied state dir) refuses to start, saying how to get a new identity', async () => {
    const clone = new TestPlugin({ label: 'clone', root, master, lockTtl: TTL });
    await mkdir(clone.stateDir, { recursive: true });
    await copyFile(path.join(a.stateDir, 'host-id'), path.join(clone.stateDir, 'host-id'));
    const err = await clone.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    await clone.proc.exited;
    expect(await clone.logs()).toMatch(
      new RegExp(`another volplugin runs with this host's id ${await a.hostId()}: pid ${a.proc.pid} .*move ${clone.stateDir}/host-id and ${clone.stateDir}/mounts.json aside`),
    );
    expect((await a.call('Plugin.Activate', {})).Implements).toEqual(['VolumeDriver']);
  });
});

describe('remove and rollback exclude a mount (rule 6)', () => {
  it('a refused remove or rollback of a mounted volume changes nothing: snapshots and data stay', async () => {
    const name = `${tenant}/busy`;
    await createVolume(a, name, null);
    expect((await a.mount(name, 'm1')).Err).toBe('');
    // Written and fsync'd (never a global sync: one hung FUSE mount elsewhere on the machine blocks it).
    const file = await open(path.join(a.mountpointOf(name), 'data'), 'w');
    await file.writeFile('data\n');
    await file.sync();
    await file.close();
    await master.api.takeSnapshot(tenant, 'busy', 'before');
    await expect(master.api.removeVolume(tenant, 'busy')).rejects.toMatchObject({ code: 'VOLUME_MOUNTED' });
    await expect(master.api.rollbackSnapshot(tenant, 'busy', 'before')).rejects.toMatchObject({ code: 'VOLUME_MOUNTED' });
    expect((await master.api.listSnapshots(tenant, 'busy')).map((s) => s.name)).toEqual(['before']);
    expect(await readFile(path.join(a.mountpointOf(name), 'data'), 'utf8')).toBe('data\n');
    expect(await store.getExclusion(tenant, 'busy')).toBeNull();
    expect((await a.unmount(name, 'm1')).Err).toBe('');
  });

  it('no host mounts a volume while a remove or rollback runs on it', async () => {
    const name = `${tenant}/excluded`;
    await createVolume(b, name, null);
    const owner = new StateStore(kv, { prefix: master.prefix, owner: 'volmaster@test:1' });
    let during = '';
    await owner.withMountsExcluded(tenant, 'excluded', { reason: 'remove' }, async () => {
      during = (await b.mount(name, 'e1')).Err ?? '';
    });
    expect(during).toMatch(new RegExp(`^${name} cannot be mounted while remove by volmaster@test:1 since .* runs on it`));
    expect(await leftoversBelow(path.join(root, 'hostb'))).toEqual([]);
    expect((await b.mount(name, 'e2')).Err).toBe('');
    expect((await b.unmount(name, 'e2')).Err).toBe('');
  });
});
