// The convergence loop's actions with fakes (host, mapper, Ceph) on MemoryKV: adopting locks after
// a restart, fencing itself when another host took a volume, releasing stale locks, finishing a
// half-done teardown, re-applying changed rate limits, and the host report.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { MountInfo } from '../../src/mapper/mountinfo.js';
import type { Mapper, Mapping, MapTarget } from '../../src/mapper/types.js';
import type { RateLimit } from '../../src/policy/types.js';
import { MemoryKV } from '../../src/state/memory.js';
import type { VolumeRecord } from '../../src/state/records.js';
import { StateStore } from '../../src/state/store.js';
import type { QosLimits, Watcher } from '../../src/storage/types.js';
import { Convergence } from '../../src/plugin/converge/loop.js';
import { PluginError } from '../../src/plugin/errors.js';
import { KeyedMutex } from '../../src/plugin/mounts/keyed-mutex.js';
import { LocalState } from '../../src/plugin/mounts/local-state.js';
import { HostLease } from '../../src/plugin/cluster/lease.js';
import type { MasterClient } from '../../src/plugin/cluster/master.js';
import { MountManager, type HostOps, type PluginStorage } from '../../src/plugin/mounts/manager.js';
import { RateLimiter } from '../../src/ratelimit/index.js';

const log = pino({ level: 'silent' });
const limits: RateLimit = { writeIops: 100, readIops: 0, writeBps: 0, readBps: 0 };

function record(volume: string, rateLimit = limits): VolumeRecord {
  return {
    tenant: 't',
    volume,
    pool: 'rbd',
    image: `t.${volume}`,
    options: { pool: 'rbd', sizeBytes: 1 << 20, snapshots: false, snapshot: { frequency: '1h', keep: 1 }, filesystem: 'ext4', ephemeral: false, rateLimit },
    runtime: { snapshots: false, snapshot: { frequency: '1h', keep: 1 }, rateLimit },
    policyRevision: 1,
    formatCommand: 'mkfs.ext4 %',
    createdAt: 'then',
  };
}

class FakeStorage implements PluginStorage {
  meta = new Map<string, Record<string, string>>();
  blocklisted: string[] = [];
  qos = new Map<string, QosLimits>();
  async listWatchers(): Promise<Watcher[]> {
    return [];
  }
  async blocklistAdd(address: string): Promise<void> {
    this.blocklisted.push(address);
  }
  async setQos(pool: string, image: string, l: QosLimits): Promise<void> {
    this.qos.set(`${pool}/${image}`, l);
  }
  async getMetadata(pool: string, image: string): Promise<Record<string, string>> {
    return { ...(this.meta.get(`${pool}/${image}`) ?? {}) };
  }
  async setMetadata(pool: string, image: string, key: string, value: string): Promise<void> {
    this.meta.set(`${pool}/${image}`, { ...(this.meta.get(`${pool}/${image}`) ?? {}), [key]: value });
  }
  async removeMetadata(pool: string, image: string, key: string): Promise<void> {
    delete this.meta.get(`${pool}/${image}`)?.[key];
  }
}

/** One mapper shared by both "hosts" of a test would mix their mappings: each host has its own. */
class FakeMapper implements Mapper {
  readonly kind = 'fuse' as const;
  mapped = new Map<string, Mapping>();
  stopped: string[] = [];
  constructor(private readonly base: number) {}
  private n = 0;
  async map(target: MapTarget): Promise<Mapping> {
    const n = this.base + this.n++;
    const m: Mapping = { ...target, kind: 'fuse', device: `/dev/loop${n}`, clientAddress: `127.0.0.1:0/${n}`, fuseDir: `/state${this.base}/fuse/${target.tenant}/${target.volume}` };
    this.mapped.set(m.device!, m);
    return m;
  }
  async unmap(m: Mapping): Promise<void> {
    if (m.device) this.mapped.delete(m.device);
  }
  async discover(): Promise<Mapping[]> {
    return [...this.mapped.values()];
  }
  async stopIo(m: Mapping): Promise<void> {
    this.stopped.push(m.device ?? '?');
  }
}

class FakeHost implements HostOps {
  mounted = new Map<string, string>();
  async probeFilesystem(): Promise<string | null> {
    return 'ext4';
  }
  async formatDevice(): Promise<void> {}
  async mountDevice(device: string, dir: string): Promise<void> {
    this.mounted.set(dir, device);
  }
  async unmountAll(dir: string): Promise<void> {
    this.mounted.delete(dir);
  }
  async mountsAt(dir: string): Promise<number> {
    return this.mounted.has(dir) ? 1 : 0;
  }
  async deviceNumber(): Promise<{ major: number; minor: number }> {
    return { major: 7, minor: 0 };
  }
  async removeDir(): Promise<void> {}
}

let dir: string;
let kv: MemoryKV;
let storage: FakeStorage;
const master: MasterClient = {
  getVolume: async (tenant, volume) => {
    if (volume === 'nope') throw new PluginError('VOLUME_NOT_FOUND', 'no');
    return record(volume);
  },
  listVolumes: async () => [],
  createVolume: async () => record('x'),
  removeVolume: async () => undefined,
};

function host(hostId: string, base: number, reuse?: { local: LocalState; mapper: FakeMapper; ops: FakeHost }) {
  const client = kv.client();
  const store = new StateStore(client);
  const lease = new HostLease(client, 10);
  const local = reuse?.local ?? new LocalState(path.join(dir, `${hostId}.json`));
  const mapper = reuse?.mapper ?? new FakeMapper(base);
  const ops = reuse?.ops ?? new FakeHost();
  const mutex = new KeyedMutex();
  const rateLimiter = new RateLimiter({ docker: null, storage });
  const common = { hostId, host: hostId, mountRoot: '/nonexistent/mnt', fenceSeconds: 60, store, lease, storage, mapper, local, mutex, log };
  const manager = new MountManager({ ...common, master, limits: rateLimiter, hostOps: ops });
  const readMounts = async (): Promise<MountInfo[]> =>
    [...ops.mounted].map(([mountPoint, source]) => ({ id: 1, parentId: 0, devNumber: '7:0', major: 7, minor: 0, root: '/', mountPoint, options: 'rw', fsType: 'ext4', source, superOptions: 'rw' }));
  const loop = new Convergence({ ...common, version: 'test', intervalMs: 60_000, manager, limits: rateLimiter, docker: null, readMounts });
  return { store, lease, local, mapper, ops, manager, loop, hostId, client };
}

const signal = () => new AbortController().signal;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'volplugin-converge-'));
  kv = new MemoryKV();
  storage = new FakeStorage();
  const store = new StateStore(kv);
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
    kv.expireLease((await a.lease.get()).id);
    await b.manager.mount('t', 'a', 'id9', signal());
    await a.loop.runNow('test');
    expect(storage.blocklisted).toContain('127.0.0.1:0/0');
    expect(a.mapper.stopped).toEqual(['/dev/loop0']);
    expect(a.local.get('t', 'a')?.lost).toMatch(/h2/);
    await a.loop.runNow('again');
    expect((await a.store.getHostReport('h1'))?.problems.join()).toMatch(/taken over by another host/);
    expect((await a.store.getMount('t', 'a'))?.hostId).toBe('h2');
    // Docker's Unmount then only cleans this host up; the lock stays with h2.
    await a.manager.unmount('t', 'a', 'id1', signal());
    expect(a.mapper.mapped.size).toBe(0);
    expect((await a.store.getMount('t', 'a'))?.hostId).toBe('h2');
    await a.loop.stop();
    await b.loop.stop();
  });

  it('a lock lost without a new holder (lease expired) is taken back', async () => {
    const a = host('h1', 0);
    await a.manager.mount('t', 'a', 'id1', signal());
    kv.expireLease((await a.lease.get()).id);
    expect(await a.store.getMount('t', 'a')).toBeNull();
    await a.loop.runNow('lease lost');
    expect((await a.store.getMount('t', 'a'))?.hostId).toBe('h1');
    expect(a.local.get('t', 'a')?.lost).toBeNull();
    await a.loop.stop();
  });

  it('a lock of this host for a volume it does not have is released', async () => {
    const a = host('h1', 0);
    const lease = await a.lease.get();
    await a.store.acquireMount(
      { tenant: 't', volume: 'b', host: 'h1', hostId: 'h1', lease: lease.id, device: '', mountpoint: '', mapper: 'fuse', clientAddress: null, since: 'x' },
      lease,
    );
    await a.loop.runNow('test');
    expect(await a.store.getMount('t', 'b')).toBeNull();
    await a.loop.stop();
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
    expect(storage.qos.get('rbd/t.a')).toEqual({ writeIops: 50, readIops: 0, writeBps: 0, readBps: 0 });
    expect(a.local.get('t', 'a')?.appliedLimits).toEqual(fifty);
    expect(a.loop.lastPlan?.problems).toEqual([]);
    await a.loop.stop();
  });
});
