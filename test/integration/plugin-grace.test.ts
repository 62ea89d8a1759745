// The unmount grace (issue 14.1) on real hosts: two volplugin processes against the real etcd and
// Ceph (rbd-fuse + loop). A volume kept idle on one host after its last Unmount is taken by the
// other host's Mount at once: the holder lets go when asked (its lock never expires meanwhile:
// both hosts stay up, and the grace and the lock TTL outlast the test), the data is there, and
// nothing is fenced. A remove through the master gets an idle volume the same way.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKV } from '../../src/state/etcd.js';
import { StateStore } from '../../src/state/store.js';
import { blocklisted, cleanUpRun, leftoversBelow, mountsAt, watchers } from '../helpers/plugin-ceph.js';
import { createVolume, startMaster, TestPlugin, testPolicy, testRun, type TestMaster } from '../helpers/plugin-harness.js';

const { run, tenant, root, pool } = testRun('gr', 'plugin-grace');
/** Longer than the test: only a release lets go of an idle volume here, never the grace or a lock expiry. */
const GRACE = 600;
const TTL = 600;

let master: TestMaster;
let a: TestPlugin;
let b: TestPlugin;
let kv: EtcdKV;
let store: StateStore;

beforeAll(async () => {
  master = await startMaster(root, `/volplugin-test-${run}`);
  await master.api.uploadTenant(tenant, testPolicy());
  a = await TestPlugin.start({ label: 'hosta', root, master, lockTtl: TTL, unmountGrace: GRACE });
  b = await TestPlugin.start({ label: 'hostb', root, master, lockTtl: TTL, unmountGrace: GRACE });
  kv = new EtcdKV({ endpoints: [process.env.VOLPLUGIN_TEST_ETCD!] });
  store = new StateStore(kv, { prefix: master.prefix });
});

afterAll(async () => {
  // Stopping lets go of idle volumes: nothing may be left.
  await a?.stop();
  await b?.stop();
  await master?.stop();
  await kv?.close();
  expect(await cleanUpRun({ tenant, root, pool })).toEqual([]);
});

describe('the unmount grace on real hosts', () => {
  it("an idle volume on one host is released at once for the other host's Mount: same data, nothing fenced, and back again", async () => {
    const name = `${tenant}/shared`;
    await createVolume(a, name, null);
    expect((await a.mount(name, 'a1')).Err).toBe('');
    await writeFile(path.join(a.mountpointOf(name), 'from-a'), 'written on hosta\n');
    expect((await a.unmount(name, 'a1')).Err).toBe('');

    // Idle on hosta: still mounted, mapped and locked, reported as idle.
    const held = (await store.getMount(tenant, 'shared'))!;
    expect(held.host).toBe('hosta');
    expect(await mountsAt(a.mountpointOf(name))).toBe(1);
    const report = await store.getHostReport(await a.hostId());
    expect(report?.idle?.map((i) => i.volume)).toEqual(['shared']);
    expect(report?.mounts).toEqual([]);

    // hostb's Mount: hosta is asked, lets go, and hostb mounts (the lock could not have expired).
    expect((await b.mount(name, 'b1')).Err).toBe('');
    expect((await store.getMount(tenant, 'shared'))?.host).toBe('hostb');
    expect(await mountsAt(a.mountpointOf(name))).toBe(0);
    expect(await readFile(path.join(b.mountpointOf(name), 'from-a'), 'utf8')).toBe('written on hosta\n');
    expect(await blocklisted(held.clientAddress!)).toBe(false);
    expect(await watchers(pool, `${tenant}.shared`)).not.toContain(held.clientAddress);
    await writeFile(path.join(b.mountpointOf(name), 'from-b'), 'written on hostb\n');
    expect((await b.unmount(name, 'b1')).Err).toBe('');

    // And back: hostb keeps it idle now and lets go for hosta.
    expect((await a.mount(name, 'a2')).Err).toBe('');
    expect(await readFile(path.join(a.mountpointOf(name), 'from-b'), 'utf8')).toBe('written on hostb\n');
    expect(await mountsAt(b.mountpointOf(name))).toBe(0);
    expect((await a.unmount(name, 'a2')).Err).toBe('');
  });

  it('a volume in use is not released: the other host is refused as before', async () => {
    const name = `${tenant}/busy`;
    await createVolume(a, name, null);
    expect((await a.mount(name, 'a1')).Err).toBe('');
    expect((await b.mount(name, 'b1')).Err).toMatch(/mounted on hosta/);
    expect(await mountsAt(a.mountpointOf(name))).toBe(1);
    expect(await mountsAt(b.mountpointOf(name))).toBe(0);
    expect((await a.unmount(name, 'a1')).Err).toBe('');
  });

  it('a remove through the master gets an idle volume: the holder lets go and the volume is removed', async () => {
    const name = `${tenant}/removed`;
    await createVolume(a, name, null);
    expect((await a.mount(name, 'a1')).Err).toBe('');
    expect((await a.unmount(name, 'a1')).Err).toBe('');
    expect(await mountsAt(a.mountpointOf(name))).toBe(1);
    await master.api.removeVolume(tenant, 'removed');
    expect(await store.getVolume(tenant, 'removed')).toBeNull();
    expect(await store.getMount(tenant, 'removed')).toBeNull();
    expect(await mountsAt(a.mountpointOf(name))).toBe(0);
    // (Other volumes of this file may still be idle on hosta: only this one's mount and mapping count.)
    expect(await leftoversBelow(a.mountpointOf(name))).toEqual([]);
    expect(await leftoversBelow(path.join(a.stateDir, 'fuse', name))).toEqual([]);
  });
});
