// Two volplugin "hosts" on one machine (own labels, sockets, mount roots, state dirs) sharing one
// etcd and one Ceph cluster: they race for a volume and never both get it; a holder killed with
// -9 loses it after the lock TTL and the taker fences its Ceph client; a paused holder is fenced
// and its writes fail after it resumes; a restarted volplugin keeps its mounts and references.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatDevice, mountDevice } from '../../src/mapper/fs.js';
import { FuseMapper } from '../../src/mapper/fuse.js';
import { EtcdKV } from '../../src/state/etcd.js';
import { StateStore } from '../../src/state/store.js';
import { blocklisted, cleanUpRun, directWrite, leftoversBelow, mountsAt, watchers } from '../helpers/plugin-ceph.js';
import { createVolume, sleep, startMaster, TestPlugin, testPolicy, testRun, waitFor, type TestMaster } from '../helpers/plugin-harness.js';

const { run, tenant, root, pool } = testRun('ph', 'plugin-hosts');
const TTL = 4;

let master: TestMaster;
let a: TestPlugin;
let b: TestPlugin;
let kv: EtcdKV;
let store: StateStore;
const fenced: string[] = [];

const mountsOf = (plugin: TestPlugin, name: string) => mountsAt(plugin.mountpointOf(name));

beforeAll(async () => {
  master = await startMaster(root, `/volplugin-test-${run}`);
  await master.api.uploadTenant(tenant, testPolicy());
  a = await TestPlugin.start({ label: 'hosta', root, master, lockTtl: TTL, convergeSeconds: 1 });
  b = await TestPlugin.start({ label: 'hostb', root, master, lockTtl: TTL, convergeSeconds: 1 });
  kv = new EtcdKV({ endpoints: [process.env.VOLPLUGIN_TEST_ETCD!] });
  store = new StateStore(kv, { prefix: master.prefix });
});

afterAll(async () => {
  a?.proc.signal('SIGCONT');
  await a?.stop();
  await b?.stop();
  // Whatever a killed instance left behind is cleaned by starting it once more with nothing to keep.
  await master?.stop();
  await kv?.close();
  const left = await cleanUpRun({ tenant, root, pool, fenced });
  expect(left).toEqual([]);
});

describe('two hosts, one volume', () => {
  it('50 races to mount one volume: exactly one host wins each time, never both', async () => {
    const name = `${tenant}/race`;
    await createVolume(a, name, null);
    const wins = { hosta: 0, hostb: 0 };
    for (let round = 0; round < 50; round++) {
      const [ra, rb] = await Promise.all([a.mount(name, `a${round}`), b.mount(name, `b${round}`)]);
      const winners = [ra, rb].filter((r) => r.Err === '');
      expect(winners, `round ${round}: ${ra.Err} / ${rb.Err}`).toHaveLength(1);
      const [winner, loser, lost] = ra.Err === '' ? [a, b, rb] : [b, a, ra];
      wins[winner.options.label as 'hosta' | 'hostb']++;
      expect(lost.Err).toMatch(new RegExp(`mounted on ${winner.options.label} \\(host id`));
      expect(await mountsOf(winner, name)).toBe(1);
      expect(await mountsOf(loser, name)).toBe(0);
      const lock = await store.getMount(tenant, 'race');
      expect(lock?.host).toBe(winner.options.label);
      expect((await winner.unmount(name, winner === a ? `a${round}` : `b${round}`)).Err).toBe('');
    }
    expect(wins.hosta + wins.hostb).toBe(50);
    expect(await leftoversBelow(root)).toEqual([]);
  }, 600_000);

  it('a restarted volplugin keeps its mounts: the lock is adopted and later Unmounts still work', async () => {
    const name = `${tenant}/restart`;
    await createVolume(a, name, null);
    expect((await a.mount(name, 'r1')).Err).toBe('');
    expect((await a.mount(name, 'r2')).Err).toBe('');
    await writeFile(path.join(a.mountpointOf(name), 'kept'), 'kept\n');
    const before = await store.getMount(tenant, 'restart');
    await a.kill9();
    // The container's view stays: the mount is still there while volplugin is down.
    expect(await mountsOf(a, name)).toBe(1);
    await a.start();
    const after = await store.getMount(tenant, 'restart');
    expect(after?.hostId).toBe(before?.hostId);
    expect(after?.lease).not.toBe(before?.lease);
    expect(await readFile(path.join(a.mountpointOf(name), 'kept'), 'utf8')).toBe('kept\n');
    // Another host still cannot have it.
    expect((await b.mount(name, 'x')).Err).toMatch(/mounted on hosta/);
    expect((await a.unmount(name, 'r1')).Err).toBe('');
    expect(await mountsOf(a, name)).toBe(1);
    expect((await a.unmount(name, 'r2')).Err).toBe('');
    expect(await mountsOf(a, name)).toBe(0);
    expect(await store.getMount(tenant, 'restart')).toBeNull();
    expect(await leftoversBelow(root)).toEqual([]);
  });

  it('kill -9 of the holder: the other host is refused until the TTL, then takes over and fences the old client', async () => {
    const name = `${tenant}/killed`;
    await createVolume(a, name, null);
    expect((await a.mount(name, 'k1')).Err).toBe('');
    const held = (await store.getMount(tenant, 'killed'))!;
    await a.kill9();
    const refused = await b.mount(name, 'k2');
    expect(refused.Err).toMatch(new RegExp(`mounted on hosta .*expires within ${TTL} s`));
    const started = Date.now();
    let answer = refused;
    while (answer.Err !== '' && Date.now() - started < (TTL + 10) * 1000) {
      await sleep(500);
      answer = await b.mount(name, 'k2');
    }
    expect(answer.Err).toBe('');
    expect(Date.now() - started).toBeLessThan((TTL + 10) * 1000);
    expect(await blocklisted(held.clientAddress!)).toBe(true);
    fenced.push(held.clientAddress!);
    expect((await store.getMount(tenant, 'killed'))?.host).toBe('hostb');
    expect(await directWrite(b.mountpointOf(name))).toBe(true);

    // hosta comes back: it sees the volume is lost, keeps it only for its Unmount, which cleans up.
    await a.start();
    await waitFor('hosta to report the volume as taken over', async () => {
      const report = await store.getHostReport(await a.hostId());
      return (report?.problems ?? []).some((p) => p.includes(`${tenant}/killed: lost to this host`));
    }, 20_000);
    expect((await a.unmount(name, 'k1')).Err).toBe('');
    expect(await mountsOf(a, name)).toBe(0);
    expect((await store.getMount(tenant, 'killed'))?.host).toBe('hostb');
    expect((await b.unmount(name, 'k2')).Err).toBe('');
    expect(await leftoversBelow(root)).toEqual([]);
  });

  it('a paused holder (SIGSTOP) is fenced before the takeover: its writes fail after the other host took the volume', async () => {
    const name = `${tenant}/paused`;
    await createVolume(a, name, null);
    expect((await a.mount(name, 'p1')).Err).toBe('');
    const held = (await store.getMount(tenant, 'paused'))!;
    expect(await directWrite(a.mountpointOf(name))).toBe(true);
    a.proc.signal('SIGSTOP');
    try {
      // hosta's volplugin is frozen, but its rbd-fuse still runs and could still write.
      expect(await directWrite(a.mountpointOf(name))).toBe(true);
      let answer = await b.mount(name, 'p2');
      const started = Date.now();
      while (answer.Err !== '' && Date.now() - started < (TTL + 10) * 1000) {
        await sleep(500);
        answer = await b.mount(name, 'p2');
      }
      expect(answer.Err).toBe('');
      fenced.push(held.clientAddress!);
      expect(await blocklisted(held.clientAddress!)).toBe(true);
      // The old holder's write now fails instead of landing on the volume hostb uses.
      await waitFor('hosta\'s writes to fail', async () => !(await directWrite(a.mountpointOf(name))), 10_000);
      expect(await directWrite(b.mountpointOf(name))).toBe(true);
    } finally {
      a.proc.signal('SIGCONT');
    }
    // Resumed, hosta finds its lease gone and the lock taken: it reports the volume as lost.
    await waitFor('hosta to notice it lost the volume', async () => {
      const report = await store.getHostReport(await a.hostId());
      return (report?.problems ?? []).some((p) => p.includes(`${tenant}/paused: lost to this host`));
    }, 30_000);
    expect((await a.mount(name, 'p3')).Err).toMatch(/is lost to this host/);
    expect(await directWrite(a.mountpointOf(name))).toBe(false);
    expect((await a.unmount(name, 'p1')).Err).toBe('');
    expect(await mountsOf(a, name)).toBe(0);
    expect((await store.getMount(tenant, 'paused'))?.host).toBe('hostb');
    expect((await b.unmount(name, 'p2')).Err).toBe('');
    expect(await watchers(pool, `${tenant}.paused`)).toEqual([]);
    expect(await leftoversBelow(root)).toEqual([]);
  });

  it('leftovers of a crash in the middle of a mount (mapping, mount, lock) are cleaned up when volplugin starts', async () => {
    const name = `${tenant}/crashed`;
    await createVolume(b, name, null);
    await a.stop();
    const cli = { listWatchers: async (p: string, i: string) => (await watchers(p, i)).map((address, n) => ({ address, clientId: n, cookie: n })) };
    const mapper = new FuseMapper({ root: path.join(a.stateDir, 'fuse'), ceph: { confPath: process.env.CEPH_CONF }, watchers: cli });
    const mapping = await mapper.map({ tenant, volume: 'crashed', pool, image: `${tenant}.crashed` });
    await formatDevice('mkfs.ext4 -q %', mapping.device!);
    await mountDevice(mapping.device!, a.mountpointOf(name));
    const hostId = await a.hostId();
    await kv.put(
      store.keys.mount(tenant, 'crashed'),
      JSON.stringify({ tenant, volume: 'crashed', host: 'hosta', hostId, lease: 'dead', device: mapping.device, mountpoint: a.mountpointOf(name), mapper: 'fuse', clientAddress: mapping.clientAddress, since: new Date().toISOString() }),
    );
    await a.start();
    await waitFor('the leftovers to be cleaned up', async () => (await leftoversBelow(path.join(root, 'hosta'))).length === 0, 20_000);
    await waitFor('the lock to be released', async () => (await store.getMount(tenant, 'crashed')) === null, 20_000);
    await waitFor('the rbd-fuse client to go', async () => (await watchers(pool, `${tenant}.crashed`)).length === 0, 30_000);
    // And the volume is usable again, from the other host too.
    expect((await b.mount(name, 'c1')).Err).toBe('');
    expect((await b.unmount(name, 'c1')).Err).toBe('');
  });
});
