// volplugin as dockerd sees it: the real binary on its socket, a real volmaster, etcd and Ceph.
// Every Docker call, reference counting, data surviving remounts, the lock and host report in
// etcd, errors that say what to do, and failures that leave nothing behind.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKV } from '../../src/state/etcd.js';
import { StateStore } from '../../src/state/store.js';
import { cleanUpRun, imageMeta, leftoversBelow, rbd, testPool, watchers } from '../helpers/plugin-ceph.js';
import { createVolume, startMaster, TestPlugin, testPolicy, uniq, type TestMaster } from '../helpers/plugin-harness.js';

const run = uniq();
const tenant = `pp${run}`;
const root = path.join(process.env.VOLPLUGIN_TEST_ROOT ?? '/tmp', `plugin-protocol-${run}`);
const pool = testPool();

let master: TestMaster;
let plugin: TestPlugin;
let kv: EtcdKV;
let store: StateStore;

beforeAll(async () => {
  master = await startMaster(root, `/volplugin-test-${run}`);
  await master.api.uploadTenant(tenant, testPolicy({ writeIops: 100 }));
  await master.api.uploadTenant(`${tenant}b`, testPolicy({ filesystems: { ext4: 'mkfs.ext4 -q -b 3 %', broken: 'mkfs.ext4 -q -b 3 %' } }));
  plugin = await TestPlugin.start({ label: 'a', root, master });
  kv = new EtcdKV({ endpoints: [process.env.VOLPLUGIN_TEST_ETCD!] });
  store = new StateStore(kv, { prefix: master.prefix });
});

afterAll(async () => {
  await plugin?.stop();
  await master?.stop();
  await kv?.close();
  expect(await cleanUpRun({ tenant, root, pool: testPool() })).toEqual([]);
});

describe('volplugin protocol (real binary, master, etcd, Ceph)', () => {
  const name = () => `${tenant}/foo`;

  it('Activate and Capabilities (scope global)', async () => {
    expect(await plugin.call('Plugin.Activate', {})).toEqual({ Implements: ['VolumeDriver'] });
    expect(await plugin.call('VolumeDriver.Capabilities', {})).toEqual({ Capabilities: { Scope: 'global' } });
  });

  it('a master asking the host (host request ping) gets the running volplugin\'s answer', async () => {
    const answer = await store.askHost(await plugin.hostId(), { kind: 'ping' }, 10_000);
    expect(answer).toMatchObject({ ok: true, result: { hostId: await plugin.hostId(), host: 'a' } });
    expect(await store.pendingHostRequests(await plugin.hostId())).toEqual([]);
  });

  it('Get of a volume that does not exist says how to create it', async () => {
    const answer = await plugin.call('VolumeDriver.Get', { Name: name() });
    expect(answer.Err).toMatch(/does not exist: create it with docker volume create -d volplugin/);
  });

  it('Create makes the volume through the master (options honoured); Get and List show it', async () => {
    await createVolume(plugin, name(), null);
    await createVolume(plugin, `${tenant}/big`, { size: '48MB' });
    const big = await master.api.getVolume(tenant, 'big');
    expect(big.options.sizeBytes).toBe(48 * 1024 * 1024);
    const got = await plugin.call('VolumeDriver.Get', { Name: name() });
    expect(got.Err).toBe('');
    expect(got.Volume).toMatchObject({ Name: name(), Mountpoint: '' });
    const list = await plugin.call('VolumeDriver.List', {});
    expect((list.Volumes as Array<{ Name: string }>).map((v) => v.Name)).toEqual(expect.arrayContaining([name(), `${tenant}/big`]));
  });

  it('Mount maps, formats on first use and mounts at MOUNT-ROOT/tenant/volume; the lock and report name this host', async () => {
    const answer = await plugin.mount(name(), 'id-1');
    expect(answer).toEqual({ Mountpoint: plugin.mountpointOf(name()), Err: '' });
    const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
    expect(mountinfo).toMatch(new RegExp(` ${plugin.mountpointOf(name())} .* - ext4 /dev/loop\\d+ `));
    const lock = await store.getMount(tenant, 'foo');
    expect(lock).toMatchObject({ host: 'a', hostId: await plugin.hostId(), mapper: 'fuse', mountpoint: plugin.mountpointOf(name()) });
    expect(lock!.device).toMatch(/^\/dev\/loop\d+$/);
    expect(await watchers(pool, `${tenant}.foo`)).toEqual([lock!.clientAddress]);
    const meta = await imageMeta(pool, `${tenant}.foo`);
    expect(JSON.parse(meta['volplugin.holder']!)).toMatchObject({ host: 'a', clientAddress: lock!.clientAddress });
    expect(meta.conf_rbd_qos_write_iops_limit).toBe('100');
    const report = await store.getHostReport(await plugin.hostId());
    expect(report?.mounts).toEqual([expect.objectContaining({ tenant, volume: 'foo', references: 1, mapper: 'fuse' })]);
    await writeFile(path.join(plugin.mountpointOf(name()), 'hello'), 'hello\n');
  });

  it('a second Mount ID only adds a reference; the first Unmount keeps the volume mounted', async () => {
    const device = (await store.getMount(tenant, 'foo'))!.device;
    expect((await plugin.mount(name(), 'id-2')).Err).toBe('');
    expect((await store.getMount(tenant, 'foo'))!.device).toBe(device);
    expect((await plugin.unmount(name(), 'id-1')).Err).toBe('');
    expect(existsSync(path.join(plugin.mountpointOf(name()), 'hello'))).toBe(true);
    expect((await plugin.call('VolumeDriver.Path', { Name: name() })).Mountpoint).toBe(plugin.mountpointOf(name()));
  });

  it('volume rm is refused while mounted', async () => {
    const answer = await plugin.call('VolumeDriver.Remove', { Name: name() });
    expect(answer.Err).toMatch(/mounted on this host.*stop the containers/);
  });

  it('the last Unmount unmounts, unmaps, clears the holder note and releases the lock', async () => {
    expect((await plugin.unmount(name(), 'id-2')).Err).toBe('');
    expect(await leftoversBelow(root)).toEqual([]);
    expect(await store.getMount(tenant, 'foo')).toBeNull();
    expect((await imageMeta(pool, `${tenant}.foo`))['volplugin.holder']).toBeUndefined();
    expect((await store.getHostReport(await plugin.hostId()))?.mounts).toEqual([]);
    expect((await plugin.call('VolumeDriver.Path', { Name: name() })).Mountpoint).toBe('');
  });

  it('data survives: a later mount finds the file and does not format again', async () => {
    expect((await plugin.mount(name(), 'id-3')).Err).toBe('');
    expect(await readFile(path.join(plugin.mountpointOf(name()), 'hello'), 'utf8')).toBe('hello\n');
    expect((await plugin.unmount(name(), 'id-3')).Err).toBe('');
  });

  it('an Unmount with an unknown ID is harmless', async () => {
    expect((await plugin.unmount(name(), 'never-mounted')).Err).toBe('');
  });

  it('volume rm of a normal volume keeps its image; of an ephemeral one removes it', async () => {
    expect((await plugin.call('VolumeDriver.Remove', { Name: name() })).Err).toBe('');
    await expect(master.api.getVolume(tenant, 'foo')).rejects.toMatchObject({ code: 'VOLUME_NOT_FOUND' });
    expect((await rbd('ls', pool)).split('\n')).toContain(`${tenant}.foo`);
    await createVolume(plugin, `${tenant}/eph`, { ephemeral: 'true' });
    expect((await plugin.mount(`${tenant}/eph`, 'e1')).Err).toBe('');
    expect((await plugin.unmount(`${tenant}/eph`, 'e1')).Err).toBe('');
    expect((await plugin.call('VolumeDriver.Remove', { Name: `${tenant}/eph` })).Err).toBe('');
    expect((await rbd('ls', pool)).split('\n')).not.toContain(`${tenant}.eph`);
  });

  it('bad names, unknown tenants and unknown options are Errs that say what to do', async () => {
    expect((await plugin.call('VolumeDriver.Create', { Name: 'foo', Opts: null })).Err).toMatch(/not TENANT\/VOLUME.*--name tenant1\/data/);
    expect((await plugin.call('VolumeDriver.Create', { Name: `${tenant}/b@d`, Opts: null })).Err).toMatch(/contains "@"/);
    expect((await plugin.call('VolumeDriver.Create', { Name: 'nosuchtenant/x', Opts: null })).Err).toMatch(/tenant nosuchtenant does not exist.*upload/);
    expect((await plugin.call('VolumeDriver.Create', { Name: `${tenant}/x`, Opts: { sise: '1' } })).Err).toMatch(/did you mean "size"/);
    expect((await plugin.call('VolumeDriver.Create', { Name: `${tenant}/x`, Opts: { filesystem: 'zfs' } })).Err).toMatch(/filesystem/);
    expect((await plugin.mount('nosuchtenant/x', 'x')).Err).toMatch(/does not exist|not found/i);
  });

  it('a mount whose format command fails leaves nothing mapped, mounted or locked', async () => {
    const bad = `${tenant}b/vol`;
    await createVolume(plugin, bad, null);
    const answer = await plugin.mount(bad, 'b1');
    expect(answer.Err).toMatch(/mkfs.ext4 -q -b 3 .*failed with exit status 1: mkfs.ext4: invalid block size - 3/);
    expect(await leftoversBelow(root)).toEqual([]);
    expect(await store.getMount(`${tenant}b`, 'vol')).toBeNull();
    expect(await watchers(pool, `${tenant}b.vol`)).toEqual([]);
    expect((await imageMeta(pool, `${tenant}b.vol`))['volplugin.holder']).toBeUndefined();
    await master.api.removeVolume(`${tenant}b`, 'vol');
  });

  it('a master that does not answer gives an Err that says so, within a bounded time; a Mount does not need it', async () => {
    await master.stop();
    try {
      const started = Date.now();
      const answer = await plugin.call('VolumeDriver.Create', { Name: `${tenant}/late`, Opts: null });
      expect(answer.Err).toMatch(/cannot reach volmaster at .*is it running/);
      expect(Date.now() - started).toBeLessThan(30_000);
      // volplugin reads volume records from etcd (issue 14.1): an existing volume mounts without the master.
      expect((await plugin.mount(`${tenant}/big`, 'm1')).Err).toBe('');
      expect((await plugin.unmount(`${tenant}/big`, 'm1')).Err).toBe('');
      expect(await leftoversBelow(root)).toEqual([]);
    } finally {
      await master.restart();
    }
  });
});
