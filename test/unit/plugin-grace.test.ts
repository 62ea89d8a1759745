// The unmount grace (issue 14.1) with fakes for the host and the mapper, the in-memory Ceph twin
// (MemoryStorage) and the real StateStore and host-request inbox on MemoryKV: a volume kept after
// its last Unmount is taken as it is by the next Mount on its host, let go of when the grace ends,
// released at once when another host or a remove asks for it (never while containers use it), and
// never kept past the host's lease or after another host took its lock.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { DeviceContents } from '../../src/mapper/fs.js';
import type { RateLimit } from '../../src/policy/types.js';
import { MemoryKV } from '../../src/state/memory.js';
import type { VolumeRecord } from '../../src/state/records.js';
import { StateStore } from '../../src/state/store.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { HostRequestInbox } from '../../src/plugin/cluster/requests.js';
import { planConvergence, type Observation } from '../../src/plugin/converge/plan.js';
import { PluginError } from '../../src/plugin/errors.js';
import { handleReleaseRequests } from '../../src/plugin/mounts/idle.js';
import type { LocalVolume } from '../../src/plugin/mounts/local-state.js';
import { FakeMaster, blocklistCalls, limitedVolume } from '../helpers/plugin-fakes.js';
import { assembledFakeHost } from '../helpers/plugin-host.js';

const log = pino({ level: 'silent' });
const limits: RateLimit = { writeIops: 0, readIops: 0, writeBps: 0, readBps: 0 };
const record = (volume: string): VolumeRecord => limitedVolume('t', volume, limits);

let dir: string;
let kv: MemoryKV;
let storage: MemoryStorage;
let images: Map<string, DeviceContents>;
const master = new FakeMaster();
master.volumes.set('t/a', record('a'));
const signal = () => new AbortController().signal;
const stops: Array<() => Promise<void>> = [];

/** A host with its mount manager, convergence loop and request inbox (as volplugin wires them). */
function host(hostId: string, base: number, graceMs: number) {
  const h = assembledFakeHost({ kv, storage, images, volumes: master, dir }, hostId, base, { clientBase: base, graceMs });
  const { store, manager, loop } = h;
  const inbox = new HostRequestInbox({ store, hostId, log, pollMs: 200 });
  handleReleaseRequests(inbox, manager);
  void inbox.start();
  stops.push(async () => {
    await manager.stop();
    await inbox.stop();
    await loop.stop();
  });
  return h;
}

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'volplugin-grace-'));
  kv = new MemoryKV();
  storage = new MemoryStorage();
  images = new Map();
  await storage.createImage('rbd', 't.a', { size: 1 << 20 });
  await new StateStore(kv).createVolume(record('a'));
});

afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
  await rm(dir, { recursive: true, force: true });
});

describe('the unmount grace', () => {
  it('keeps the volume mapped, mounted and locked after its last Unmount, reports it idle, and the next Mount takes it as it is', async () => {
    const a = host('h1', 0, 60_000);
    const mountpoint = await a.manager.mount('t', 'a', 'id1', signal());
    const lock = await a.store.getMount('t', 'a');
    await a.manager.unmount('t', 'a', 'id1', signal());
    expect(a.mapper.mapped.size).toBe(1);
    expect(a.ops.mounted.has(mountpoint)).toBe(true);
    expect(await a.store.getMount('t', 'a')).toEqual(lock);
    const report = await a.store.getHostReport('h1');
    expect(report?.mounts).toEqual([]);
    expect(report?.idle).toMatchObject([{ tenant: 't', volume: 'a', mountpoint }]);

    expect(await a.manager.mount('t', 'a', 'id2', signal())).toBe(mountpoint);
    expect(a.mapper.next).toBe(1); // mapped once for both Mounts
    expect(a.local.get('t', 'a')).toMatchObject({ refs: ['id2'], idleUntil: null });
    expect(await a.store.getMount('t', 'a')).toEqual(lock);
    expect((await a.store.getHostReport('h1'))?.mounts).toMatchObject([{ volume: 'a', references: 1 }]);
  });

  it("writes the filesystem to its device when the last container goes, before it is reported idle (a snapshot during the grace has the container's writes)", async () => {
    const a = host('h1', 0, 60_000);
    const mountpoint = await a.manager.mount('t', 'a', 'id1', signal());
    await a.manager.mount('t', 'a', 'id2', signal());
    await a.manager.unmount('t', 'a', 'id1', signal());
    expect(a.ops.synced).toEqual([]); // a container still uses it
    await a.manager.unmount('t', 'a', 'id2', signal());
    expect(a.ops.synced).toEqual([mountpoint]);
    expect(a.local.get('t', 'a')?.idleUntil).not.toBeNull();
  });

  it("an Unmount does not wait for the convergence loop's question to dockerd about the volume's containers (dockerd answers it only after the Unmount)", async () => {
    let unmounted = false;
    let asked = 0;
    let answer: () => void = () => undefined;
    const docker = {
      info: async () => ({ driver: 'cgroupfs', version: 1, root: '/sys/fs/cgroup', parent: '' }) as never,
      // dockerd holds the container while it calls Unmount: its answer waits for the Unmount.
      containersUsingVolume: async () => {
        asked++;
        if (!unmounted) await new Promise<void>((resolve) => (answer = resolve));
        return [];
      },
      inspect: async () => ({}),
    };
    const h = assembledFakeHost({ kv, storage, images, volumes: master, dir }, 'h1', 0, { graceMs: 60_000, docker });
    stops.push(async () => {
      await h.manager.stop();
      await h.loop.stop();
    });
    await h.manager.mount('t', 'a', 'id1', signal());
    const limited = { ...limits, writeIops: 100 };
    master.volumes.set('t/a', limitedVolume('t', 'a', limited));
    await new StateStore(kv).updateRuntime('t', 'a', { ...record('a').runtime, rateLimit: limited });
    const round = h.loop.runNow('test');
    await vi.waitFor(() => expect(asked).toBe(1), { timeout: 5_000 });
    await h.manager.unmount('t', 'a', 'id1', signal()); // would wait for the round's question without the fix
    unmounted = true;
    answer();
    await round;
    expect(h.local.get('t', 'a')?.refs).toEqual([]);
    master.volumes.set('t/a', record('a'));
  });

  it('a volume that cannot be written to its device is torn down instead of kept idle (the unmount flushes or fails visibly)', async () => {
    const a = host('h1', 0, 60_000);
    const mountpoint = await a.manager.mount('t', 'a', 'id1', signal());
    a.ops.fail.syncFilesystem = new Error('EIO');
    await a.manager.unmount('t', 'a', 'id1', signal());
    expect(a.local.get('t', 'a')).toBeUndefined();
    expect(a.ops.mounted.has(mountpoint)).toBe(false);
    expect(await a.store.getMount('t', 'a')).toBeNull();
  });

  it('lets go of the volume when the grace ends: unmounted, unmapped, its lock released', async () => {
    const a = host('h1', 0, 50);
    const mountpoint = await a.manager.mount('t', 'a', 'id1', signal());
    await a.manager.unmount('t', 'a', 'id1', signal());
    // The teardown forgets the volume before it releases the lock: wait for the lock.
    await vi.waitFor(async () => expect(await a.store.getMount('t', 'a')).toBeNull(), { timeout: 5_000 });
    expect(a.local.get('t', 'a')).toBeUndefined();
    expect(a.mapper.mapped.size).toBe(0);
    expect(a.ops.mounted.has(mountpoint)).toBe(false);
    expect((await a.store.getHostReport('h1'))?.idle).toEqual([]);
  });

  it('without a grace the last Unmount tears down at once', async () => {
    const a = host('h1', 0, 0);
    await a.manager.mount('t', 'a', 'id1', signal());
    await a.manager.unmount('t', 'a', 'id1', signal());
    expect(a.local.get('t', 'a')).toBeUndefined();
    expect(await a.store.getMount('t', 'a')).toBeNull();
  });

  it("another host's Mount gets an idle volume at once: the holder releases it when asked, and nothing is fenced", async () => {
    const a = host('h1', 0, 60_000);
    const b = host('h2', 100, 60_000);
    await a.manager.mount('t', 'a', 'id1', signal());
    await a.manager.unmount('t', 'a', 'id1', signal());
    const mountpoint = await b.manager.mount('t', 'a', 'id2', signal());
    expect(mountpoint).toBe('/nonexistent/mnt/t/a');
    expect(a.local.get('t', 'a')).toBeUndefined();
    expect(a.mapper.mapped.size).toBe(0);
    expect(await b.store.getMount('t', 'a')).toMatchObject({ hostId: 'h2' });
    expect(blocklistCalls(storage)).toEqual([]);
  });

  it('a holder whose containers use the volume is not asked: the other host is refused (LOCKED) and the holder keeps it', async () => {
    const a = host('h1', 0, 60_000);
    const b = host('h2', 100, 60_000);
    await a.manager.mount('t', 'a', 'id1', signal());
    const refused = await b.manager.mount('t', 'a', 'id2', signal()).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(PluginError);
    expect((refused as PluginError).code).toBe('LOCKED');
    expect(a.local.get('t', 'a')?.refs).toEqual(['id1']);
    expect(b.mapper.next).toBe(100);
    expect(await a.store.askRelease((await a.store.getMount('t', 'a'))!)).toMatchObject({ asked: false, released: false });
  });

  it('a release that arrives after the volume was taken again is refused (IN_USE): the mount stays', async () => {
    const a = host('h1', 0, 60_000);
    await a.manager.mount('t', 'a', 'id1', signal());
    const refused = await a.manager.release('t', 'a').catch((e: unknown) => e);
    expect((refused as PluginError).code).toBe('IN_USE');
    expect(a.local.get('t', 'a')?.refs).toEqual(['id1']);
    expect(await a.store.getMount('t', 'a')).toMatchObject({ hostId: 'h1' });
  });

  it("a remove (the master's exclusion) asks an idle holder to let go and then runs", async () => {
    const a = host('h1', 0, 60_000);
    await a.manager.mount('t', 'a', 'id1', signal());
    await a.manager.unmount('t', 'a', 'id1', signal());
    const masterStore = new StateStore(kv.client(), { owner: 'volmaster@test' });
    const ran = await masterStore.withMountsExcluded('t', 'a', { reason: 'remove' }, async () => 'removed');
    expect(ran).toBe('removed');
    expect(a.local.get('t', 'a')).toBeUndefined();
    expect(await masterStore.getMount('t', 'a')).toBeNull();
  });

  it("a lost host lease stops an idle volume's I/O at once and lets go of it; its lock is not retaken", async () => {
    const a = host('h1', 0, 60_000);
    await a.manager.mount('t', 'a', 'id1', signal());
    await a.manager.unmount('t', 'a', 'id1', signal());
    kv.expireLease((await a.lease.get()).id);
    await vi.waitFor(() => expect(a.mapper.stopped).toEqual(['/dev/loop0']));
    await a.loop.runNow('lease lost');
    expect(a.local.get('t', 'a')).toBeUndefined();
    expect(await a.store.getMount('t', 'a')).toBeNull();
  });

  it('a stopping volplugin lets go of its idle volumes and keeps those in use', async () => {
    await storage.createImage('rbd', 't.b', { size: 1 << 20 });
    master.volumes.set('t/b', record('b'));
    await new StateStore(kv).createVolume(record('b'));
    const a = host('h1', 0, 60_000);
    await a.manager.mount('t', 'a', 'id1', signal());
    await a.manager.mount('t', 'b', 'id2', signal());
    await a.manager.unmount('t', 'a', 'id1', signal());
    await a.manager.stop();
    expect(a.local.get('t', 'a')).toBeUndefined();
    expect(await a.store.getMount('t', 'a')).toBeNull();
    expect(a.local.get('t', 'b')?.refs).toEqual(['id2']);
  });
});

describe('the convergence plan for idle volumes', () => {
  const entry = (extra: Partial<LocalVolume> = {}): LocalVolume => ({
    tenant: 't',
    volume: 'a',
    pool: 'rbd',
    image: 't.a',
    mountpoint: '/mnt/t/a',
    mapping: { tenant: 't', volume: 'a', pool: 'rbd', image: 't.a', kind: 'fuse', device: '/dev/loop0', clientAddress: '127.0.0.1:0/1', fuseDir: '/state/fuse/t/a' },
    refs: [],
    since: 'then',
    appliedLimits: null,
    lost: null,
    lockGeneration: 1,
    idleUntil: new Date(2_000).toISOString(),
    ...extra,
  });
  const lock = (hostId: string, lease: string) => ({
    tenant: 't',
    volume: 'a',
    host: hostId,
    hostId,
    lease,
    device: '/dev/loop0',
    mountpoint: '/mnt/t/a',
    mapper: 'fuse' as const,
    clientAddress: '127.0.0.1:0/1',
    since: 'then',
  });
  const observe = (o: Partial<Observation>): Observation => ({
    hostId: 'h1',
    leaseId: 'L1',
    locksKnown: true,
    entries: [entry()],
    mounts: [{ id: 1, parentId: 0, devNumber: '7:0', major: 7, minor: 0, root: '/', mountPoint: '/mnt/t/a', options: 'rw', fsType: 'ext4', source: '/dev/loop0', superOptions: 'rw' }],
    mappings: [entry().mapping],
    locks: [lock('h1', 'L1')],
    limits: new Map(),
    busy: new Set(),
    mountRoot: '/mnt',
    now: 1_000,
    ...o,
  });
  const dropOf = (o: Observation) => planConvergence(o).actions.filter((a) => a.kind === 'drop-idle' || a.kind === 'teardown');

  it('an idle volume within its grace, locked by this host under its live lease, is left alone', () => {
    expect(dropOf(observe({}))).toEqual([]);
  });

  it('is let go of when its grace is over (its timer did not fire), without fencing', () => {
    expect(dropOf(observe({ now: 3_000 }))).toEqual([{ kind: 'drop-idle', volume: 't/a', why: 'its grace is over', fence: false }]);
  });

  it("is fenced and let go of when another host holds its lock, or the lock vanished", () => {
    expect(dropOf(observe({ locks: [lock('h2', 'L9')] }))).toMatchObject([{ kind: 'drop-idle', fence: true }]);
    expect(dropOf(observe({ locks: [] }))).toMatchObject([{ kind: 'drop-idle', fence: true }]);
  });

  it('is let go of when its lock is held under an earlier lease of this host (after a restart)', () => {
    expect(dropOf(observe({ locks: [lock('h1', 'L0')] }))).toMatchObject([{ kind: 'drop-idle', fence: false }]);
  });
});
