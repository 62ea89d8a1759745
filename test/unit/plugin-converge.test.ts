// The convergence loop's actions with fakes (host, mapper), the in-memory Ceph twin
// (MemoryStorage) and MemoryKV: adopting locks after a restart, fencing itself when another host
// took a volume, releasing stale locks, finishing a half-done teardown, re-applying changed rate
// limits, and the host report.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HOLDER_KEY } from '../../src/fencing/index.js';
import type { DeviceContents } from '../../src/mapper/fs.js';
import type { RateLimit } from '../../src/policy/types.js';
import { MemoryKV } from '../../src/state/memory.js';
import type { VolumeRecord } from '../../src/state/records.js';
import { StateStore } from '../../src/state/store.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { LocalState } from '../../src/plugin/mounts/local-state.js';
import { FakeHost, FakeMapper, FakeMaster, blocklistCalls, lastQos, limitedVolume } from '../helpers/plugin-fakes.js';
import { assembledFakeHost } from '../helpers/plugin-host.js';

const limits: RateLimit = { writeIops: 100, readIops: 0, writeBps: 0, readBps: 0 };

function record(volume: string, rateLimit = limits): VolumeRecord {
  return limitedVolume('t', volume, rateLimit);
}

let dir: string;
let kv: MemoryKV;
let storage: MemoryStorage;
/** What each image holds (shared by the hosts, like Ceph). */
let images: Map<string, DeviceContents>;
const master = new FakeMaster();
for (const v of ['a', 'b', 'x']) master.volumes.set(`t/${v}`, record(v));

function host(hostId: string, base: number, reuse?: { local: LocalState; mapper: FakeMapper; ops: FakeHost }) {
  return assembledFakeHost({ kv, storage, images, volumes: master, dir }, hostId, base, { reuse });
}

const signal = () => new AbortController().signal;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'volplugin-converge-'));
  kv = new MemoryKV();
  storage = new MemoryStorage();
  images = new Map();
  const store = new StateStore(kv);
  for (const v of ['a', 'b']) await storage.createImage('rbd', `t.${v}`, { size: 1 << 20 });
  for (const v of ['a', 'b']) await store.createVolume(record(v));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('Convergence', () => {
  it('reports this host\'s mounts with their reference counts', async () => {
    const h = host('h1', 0);
    await h.manager.mount('t', 'a', 'id1', signal());
    await h.manager.mount('t', 'a', 'id2', signal());
    await h.loop.runNow('test');
    const report = await h.store.getHostReport('h1');
    expect(report).toMatchObject({ hostId: 'h1', host: 'h1', version: 'test' });
    expect(report!.mounts).toEqual([{ tenant: 't', volume: 'a', device: '/dev/loop0', mountpoint: '/nonexistent/mnt/t/a', mapper: 'fuse', references: 2 }]);
    await h.loop.stop();
  });

  it('after a restart the lock held under the old lease is adopted by the new one', async () => {
    const before = host('h1', 0);
    await before.manager.mount('t', 'a', 'id1', signal());
    const oldLease = (await before.store.getMount('t', 'a'))!.lease;
    await before.loop.stop();
    // "Restart": a new process (new etcd client and lease) on the same table, mapper and host.
    const local = new LocalState(before.local.file);
    await local.load();
    const after = host('h1', 0, { local, mapper: before.mapper, ops: before.ops });
    await after.loop.runNow('start');
    const lock = await after.store.getMount('t', 'a');
    expect(lock?.hostId).toBe('h1');
    expect(lock?.lease).not.toBe(oldLease);
    expect(lock?.lease).toBe(after.lease.currentId);
    await after.loop.stop();
  });

  it('a lock taken by another host: this host fences its own client, cuts local I/O and reports the volume lost', async () => {
    const a = host('h1', 0);
    const b = host('h2', 10);
    await a.manager.mount('t', 'a', 'id1', signal());
    await a.store.forceRemoveMount('t', 'a'); // an operator's force-remove; a's lease lives on
    await b.manager.mount('t', 'a', 'id9', signal());
    await a.loop.runNow('test');
    expect(blocklistCalls(storage).map((c) => c.address)).toContain('127.0.0.1:0/0');
    expect(a.mapper.stopped).toEqual(['/dev/loop0']);
    expect(a.local.get('t', 'a')?.lost).toMatch(/h2/);
    await a.loop.runNow('again');
    expect((await a.store.getHostReport('h1'))?.problems.join()).toMatch(/t\/a: lost to this host/);
    expect((await a.store.getMount('t', 'a'))?.hostId).toBe('h2');
    // Docker's Unmount then only cleans this host up; the lock stays with h2.
    await a.manager.unmount('t', 'a', 'id1', signal());
    expect(a.mapper.mapped.size).toBe(0);
    expect((await a.store.getMount('t', 'a'))?.hostId).toBe('h2');
    await a.loop.stop();
    await b.loop.stop();
  });

  it('a lock that vanished while nobody acquired it (force-removed) is taken back', async () => {
    const a = host('h1', 0);
    await a.manager.mount('t', 'a', 'id1', signal());
    await a.store.forceRemoveMount('t', 'a');
    await a.loop.runNow('lock gone');
    expect((await a.store.getMount('t', 'a'))?.hostId).toBe('h1');
    expect(a.local.get('t', 'a')?.lost).toBeNull();
    expect(a.mapper.stopped).toEqual([]);
    await a.loop.stop();
  });

  it('a lock another host acquired and released meanwhile is never taken back: the volume is lost here and no host is blocked (rule 2)', async () => {
    const a = host('h1', 0);
    const c = host('h3', 20);
    await a.manager.mount('t', 'a', 'id1', signal());
    await a.store.forceRemoveMount('t', 'a');
    // h3 takes the volume over (fencing h1's client) and lets go again, all before h1 looks.
    await c.manager.mount('t', 'a', 'c1', signal());
    await c.manager.unmount('t', 'a', 'c1', signal());
    await a.loop.runNow('lock gone');
    expect(await a.store.getMount('t', 'a')).toBeNull();
    expect(a.local.get('t', 'a')?.lost).toMatch(/h3 \(host id h3\) took it at .* \(acquisition 2\)/);
    expect(a.mapper.stopped).toEqual(['/dev/loop0']);
    await expect(a.manager.mount('t', 'a', 'id2', signal())).rejects.toMatchObject({ code: 'LOST' });
    // Another host is not refused because of h1.
    await c.manager.mount('t', 'a', 'c2', signal());
    expect((await c.store.getMount('t', 'a'))?.hostId).toBe('h3');
    await a.loop.stop();
    await c.loop.stop();
  });

  it('a lost host lease stops the I/O of every volume at once and marks them lost; the locks are released, never retaken (rule 7)', async () => {
    const a = host('h1', 0);
    await a.manager.mount('t', 'a', 'id1', signal());
    await a.manager.mount('t', 'b', 'id2', signal());
    kv.expireLease((await a.lease.get()).id);
    await vi.waitFor(() => expect(a.mapper.stopped.sort()).toEqual(['/dev/loop0', '/dev/loop1']));
    expect(a.local.get('t', 'a')?.lost).toMatch(/host lease was not renewed in time/);
    await a.loop.runNow('lease lost');
    expect(await a.store.getMount('t', 'a')).toBeNull();
    expect(await a.store.getMount('t', 'b')).toBeNull();
    expect((await a.store.getHostReport('h1'))?.problems).toHaveLength(2);
    await a.loop.stop();
  });

  it('an etcd watch that dies is set up again, and a round runs (rule 8)', async () => {
    const a = host('h1', 0);
    await a.manager.mount('t', 'a', 'id1', signal());
    await a.loop.runNow('start');
    expect(kv.watchCount).toBe(2);
    const rounds = a.loop.rounds;
    kv.killWatches();
    expect(kv.watchCount).toBe(0);
    await vi.waitFor(() => expect(kv.watchCount).toBe(2), { timeout: 5_000 });
    expect(a.loop.rounds).toBeGreaterThan(rounds);
    // And the new watch delivers: a runtime change is applied without waiting for the interval.
    const fifty = { ...limits, writeIops: 50 };
    await a.store.updateRuntime('t', 'a', { ...record('a').runtime, rateLimit: fifty });
    await vi.waitFor(() => expect(a.local.get('t', 'a')?.appliedLimits).toEqual(fifty), { timeout: 5_000 });
    await a.loop.stop();
  });

  it('a watch that dies alone is set up again alone: the live one is not closed (closing a watch etcd cancels too crashed etcd3)', async () => {
    const a = host('h1', 0);
    await a.manager.mount('t', 'a', 'id1', signal());
    await a.loop.runNow('start');
    expect(kv.watchCount).toBe(2);
    const watch = vi.spyOn(MemoryKV.prototype, 'watch'); // every client's (the host's is kv.client())
    const rounds = a.loop.rounds;
    const volumes = a.store.keys.volumes;
    kv.killWatches((prefix) => prefix === volumes);
    expect(kv.watchCount).toBe(1);
    await vi.waitFor(() => expect(kv.watchCount).toBe(2), { timeout: 5_000 });
    expect(a.loop.rounds).toBeGreaterThan(rounds);
    expect(watch.mock.calls.map(([prefix]) => prefix)).toEqual([volumes]);
    watch.mockRestore();
    // The new volumes watch delivers.
    const fifty = { ...limits, writeIops: 50 };
    await a.store.updateRuntime('t', 'a', { ...record('a').runtime, rateLimit: fifty });
    await vi.waitFor(() => expect(a.local.get('t', 'a')?.appliedLimits).toEqual(fifty), { timeout: 5_000 });
    await a.loop.stop();
  });

  it('a lock of this host for a volume it does not have is released (on the first pass, which lists every lock, and on later ones, through the host\'s index)', async () => {
    const a = host('h1', 0);
    const lease = await a.lease.get();
    const take = (volume: string) =>
      a.store.acquireMount({ tenant: 't', volume, host: 'h1', hostId: 'h1', lease: lease.id, device: '', mountpoint: '', mapper: 'fuse', clientAddress: null, since: 'x' }, lease);
    await take('b');
    await a.loop.runNow('test');
    expect(await a.store.getMount('t', 'b')).toBeNull();
    await take('a');
    await a.loop.runNow('test');
    expect(await a.store.getMount('t', 'a')).toBeNull();
    await a.loop.stop();
  });

  it('a leftover mapping (its host rebooted): its client is blocklisted before its holder note is cleared, so no dead watch holds the image\'s lock', async () => {
    const a = host('h1', 0);
    await a.manager.mount('t', 'a', 'id1', signal());
    expect((await storage.getMetadata('rbd', 't.a'))[HOLDER_KEY]).toContain('127.0.0.1:0/0');
    a.local.forgetAll(); // what a reboot forgets (boot.ts); the mapping below it is a leftover
    storage.calls.length = 0;
    await a.loop.runNow('test');
    expect(a.mapper.mapped.size).toBe(0);
    expect(blocklistCalls(storage).map((c) => c.address)).toEqual(['127.0.0.1:0/0']);
    const order = storage.calls.map((c) => c.split(' ')[0]);
    expect(order.indexOf('blocklistAdd')).toBeGreaterThanOrEqual(0);
    expect(order.indexOf('blocklistAdd')).toBeLessThan(order.indexOf('removeMetadata'));
    expect((await storage.getMetadata('rbd', 't.a'))[HOLDER_KEY]).toBeUndefined();
    await a.loop.stop();
  });

  it('a leftover mapping whose client cannot be blocklisted keeps its holder note, for the next holder to fence (fail closed)', async () => {
    const a = host('h1', 0);
    await a.manager.mount('t', 'a', 'id1', signal());
    a.local.forgetAll();
    storage.failNext('blocklistAdd', 'ETIMEDOUT');
    await a.loop.runNow('test');
    expect(a.mapper.mapped.size).toBe(0);
    expect((await storage.getMetadata('rbd', 't.a'))[HOLDER_KEY]).toContain('127.0.0.1:0/0');
    const b = host('h2', 10);
    await vi.waitFor(async () => expect(await a.store.getMount('t', 'a')).toBeNull(), { timeout: 5_000 });
    storage.calls.length = 0;
    storage.callArgs.length = 0;
    await b.manager.mount('t', 'a', 'id9', signal());
    expect(blocklistCalls(storage).map((c) => c.address)).toEqual(['127.0.0.1:0/0']);
    await a.loop.stop();
    await b.loop.stop();
  });

  it('an entry left without references (a failed Unmount) is torn down', async () => {
    const a = host('h1', 0);
    await a.manager.mount('t', 'a', 'id1', signal());
    a.local.get('t', 'a')!.refs = [];
    await a.loop.runNow('test');
    expect(a.local.all()).toEqual([]);
    expect(a.mapper.mapped.size).toBe(0);
    expect(await a.store.getMount('t', 'a')).toBeNull();
    await a.loop.stop();
  });

  it('changed rate limits in the volume record are applied (librbd QoS) and remembered', async () => {
    const a = host('h1', 0);
    await a.manager.mount('t', 'a', 'id1', signal());
    await a.loop.runNow('start');
    expect(a.local.get('t', 'a')?.appliedLimits).toEqual(limits);
    const fifty = { ...limits, writeIops: 50 };
    await a.store.updateRuntime('t', 'a', { ...record('a').runtime, rateLimit: fifty });
    await a.loop.runNow('volume put');
    expect(a.loop.lastPlan?.actions).toContainEqual({ kind: 'apply-limits', volume: 't/a', limits: fifty, changed: true });
    // Only what differs is written; the image ends with the new limits.
    expect(lastQos(storage, 'rbd', 't.a')).toEqual({ writeIops: 50 });
    expect(await storage.getQos('rbd', 't.a')).toMatchObject({ writeIops: 50 });
    expect(a.local.get('t', 'a')?.appliedLimits).toEqual(fifty);
    expect(a.loop.lastPlan?.problems).toEqual([]);
    await a.loop.stop();
  });
});
