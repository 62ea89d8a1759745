// The mount manager with fakes for the host, the mapper and the master, the in-memory Ceph twin
// (MemoryStorage) and the real StateStore on MemoryKV: reference counting, the cross-host lock,
// fencing a previous holder, and that every failure undoes what was done.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Fencing, HOLDER_KEY } from '../../src/fencing/index.js';
import type { RateLimit } from '../../src/policy/types.js';
import { RateLimiter } from '../../src/ratelimit/index.js';
import { MemoryKV } from '../../src/state/memory.js';
import { StateStore } from '../../src/state/store.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { DeviceContents } from '../../src/mapper/fs.js';
import { HostLease } from '../../src/plugin/cluster/lease.js';
import { MountLocks } from '../../src/plugin/cluster/mount-lock.js';
import { PluginError } from '../../src/plugin/errors.js';
import { KeyedMutex } from '../../src/plugin/mounts/keyed-mutex.js';
import { LocalState } from '../../src/plugin/mounts/local-state.js';
import { MountManager } from '../../src/plugin/mounts/manager.js';
import { Mounter } from '../../src/plugin/mounts/mounter.js';
import { FakeHost, FakeMapper, FakeMaster, blocklistCalls, limitedVolume } from '../helpers/plugin-fakes.js';
import { parseMetrics, valueOf } from '../helpers/metrics.js';
import { registries } from '../../src/metrics/families.js';

const log = pino({ level: 'silent' });
const limits: RateLimit = { writeIops: 100, readIops: 0, writeBps: 0, readBps: 0 };

interface Host {
  manager: MountManager;
  store: StateStore;
  lease: HostLease;
  local: LocalState;
  mapper: FakeMapper;
  host: FakeHost;
  hostId: string;
}

let dir: string;
let kv: MemoryKV;
let storage: MemoryStorage;
let master: FakeMaster;
/** What each image holds (shared by the hosts of a test, like Ceph). */
let images: Map<string, DeviceContents>;
const signal = () => new AbortController().signal;

/** The holder note on the image, as Ceph keeps it. */
const holderNote = async (image: string) => (await storage.getMetadata('rbd', image))[HOLDER_KEY];

function makeHost(hostId: string, label: string, sharedMapper?: FakeMapper): Host {
  const client = kv.client();
  const store = new StateStore(client);
  const lease = new HostLease(client, 30);
  const local = new LocalState(path.join(dir, `${hostId}.json`));
  const mapper = sharedMapper ?? new FakeMapper({ clientBase: 1000 });
  const host = new FakeHost({ imageOf: mapper.imageOf, images });
  const limiter = new RateLimiter({ docker: null, storage });
  const mounter = new Mounter({
    host: { id: hostId, label },
    mountRoot: '/mnt/ceph',
    locks: new MountLocks(store, lease, { id: hostId, label }),
    fencing: new Fencing(storage, mapper, 600),
    limits: limiter,
    mapper,
    hostOps: host,
    local,
    log,
  });
  const manager = new MountManager({ mounter, volumes: master, local, mutex: new KeyedMutex(), limits: limiter, deviceNumber: host.deviceNumber, syncFilesystem: (d) => host.syncFilesystem(d), log });
  return { manager, store, lease, local, mapper, host, hostId };
}

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'volplugin-mounts-'));
  kv = new MemoryKV();
  storage = new MemoryStorage();
  await storage.createImage('rbd', 'tenant1.foo', { size: 10 << 20 });
  master = new FakeMaster();
  master.volumes.set('tenant1/foo', limitedVolume('tenant1', 'foo', limits));
  await new StateStore(kv).createVolume(limitedVolume('tenant1', 'foo', limits));
  images = new Map();
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('MountManager', () => {
  it('first Mount locks, maps, formats, mounts and records the holder; it returns MOUNT-ROOT/tenant/volume', async () => {
    const a = makeHost('host-a', 'a');
    const mountpoint = await a.manager.mount('tenant1', 'foo', 'id1', signal());
    expect(mountpoint).toBe('/mnt/ceph/tenant1/foo');
    expect(a.host.mounted.get(mountpoint)).toBe('/dev/loop0');
    expect(a.host.formats).toEqual(['/dev/loop0']);
    const lock = await a.store.getMount('tenant1', 'foo');
    expect(lock).toMatchObject({ hostId: 'host-a', host: 'a', device: '/dev/loop0', clientAddress: '127.0.0.1:0/1000', mapper: 'fuse' });
    expect(JSON.parse((await holderNote('tenant1.foo'))!)).toMatchObject({ hostId: 'host-a', clientAddress: '127.0.0.1:0/1000' });
    expect(await storage.getQos('rbd', 'tenant1.foo')).toMatchObject({ writeIops: 100 });
    expect(a.local.get('tenant1', 'foo')?.refs).toEqual(['id1']);
  });

  it('counts references per Mount ID: only the last Unmount unmounts, unmaps, clears the note and releases the lock', async () => {
    const a = makeHost('host-a', 'a');
    await a.manager.mount('tenant1', 'foo', 'id1', signal());
    await a.manager.mount('tenant1', 'foo', 'id2', signal());
    await a.manager.mount('tenant1', 'foo', 'id2', signal()); // a repeated ID holds one reference
    expect(a.mapper.next).toBe(1);
    expect(a.local.get('tenant1', 'foo')?.refs).toEqual(['id1', 'id2']);
    await a.manager.unmount('tenant1', 'foo', 'id1', signal());
    expect(a.host.mounted.size).toBe(1);
    expect(await a.store.getMount('tenant1', 'foo')).not.toBeNull();
    await a.manager.unmount('tenant1', 'foo', 'id2', signal());
    expect(a.host.mounted.size).toBe(0);
    expect(a.mapper.mapped.size).toBe(0);
    expect(await a.store.getMount('tenant1', 'foo')).toBeNull();
    expect(await holderNote('tenant1.foo')).toBeUndefined();
    expect(a.local.all()).toEqual([]);
  });

  it('an Unmount with an unknown ID leaves a mounted volume alone', async () => {
    const a = makeHost('host-a', 'a');
    await a.manager.mount('tenant1', 'foo', 'id1', signal());
    await a.manager.unmount('tenant1', 'foo', 'nope', signal());
    expect(a.host.mounted.size).toBe(1);
    await a.manager.unmount('tenant1', 'other', 'x', signal());
  });

  it('a second host gets LOCKED naming the holder, and maps nothing', async () => {
    const a = makeHost('host-a', 'alpha');
    const b = makeHost('host-b', 'beta');
    await a.manager.mount('tenant1', 'foo', 'id1', signal());
    const err = await b.manager.mount('tenant1', 'foo', 'id9', signal()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PluginError);
    expect((err as PluginError).code).toBe('LOCKED');
    expect((err as PluginError).message).toMatch(/mounted on alpha \(host id host-a\)/);
    expect((err as PluginError).message).toMatch(/expires within 30 s/);
    expect(b.mapper.next).toBe(0);
    expect(b.local.all()).toEqual([]);
  });

  it('after the holder\'s lease expires another host takes over and fences the old client first', async () => {
    const a = makeHost('host-a', 'alpha');
    const b = makeHost('host-b', 'beta');
    await a.manager.mount('tenant1', 'foo', 'id1', signal());
    kv.expireLease((await a.lease.get()).id);
    expect(await b.store.getMount('tenant1', 'foo')).toBeNull();
    b.mapper.next = 5;
    await b.manager.mount('tenant1', 'foo', 'id2', signal());
    expect(blocklistCalls(storage)).toEqual([{ address: '127.0.0.1:0/1000', seconds: 600 }]);
    expect(await b.store.getMount('tenant1', 'foo')).toMatchObject({ hostId: 'host-b', clientAddress: '127.0.0.1:0/1005' });
  });

  it('a clean unmount leaves nothing to fence', async () => {
    const a = makeHost('host-a', 'alpha');
    const b = makeHost('host-b', 'beta');
    await a.manager.mount('tenant1', 'foo', 'id1', signal());
    await a.manager.unmount('tenant1', 'foo', 'id1', signal());
    await b.manager.mount('tenant1', 'foo', 'id2', signal());
    expect(blocklistCalls(storage)).toEqual([]);
  });

  for (const step of ['formatDevice', 'mountDevice', 'probeDevice'] as const) {
    it(`a failure in ${step} unmaps, clears the holder note and releases the lock`, async () => {
      const a = makeHost('host-a', 'a');
      a.host.fail[step] = new Error(`${step} broke`);
      await expect(a.manager.mount('tenant1', 'foo', 'id1', signal())).rejects.toThrow(`${step} broke`);
      expect(a.mapper.mapped.size).toBe(0);
      expect(a.host.mounted.size).toBe(0);
      expect(await a.store.getMount('tenant1', 'foo')).toBeNull();
      expect(await holderNote('tenant1.foo')).toBeUndefined();
      expect(a.local.all()).toEqual([]);
    });
  }

  it('a failure to map releases the lock', async () => {
    const a = makeHost('host-a', 'a');
    a.mapper.failMap = new Error('rbd-fuse broke');
    await expect(a.manager.mount('tenant1', 'foo', 'id1', signal())).rejects.toThrow('rbd-fuse broke');
    expect(await a.store.getMount('tenant1', 'foo')).toBeNull();
  });

  it('an unknown volume fails before anything is locked', async () => {
    const a = makeHost('host-a', 'a');
    await expect(a.manager.mount('tenant1', 'nope', 'id1', signal())).rejects.toMatchObject({ code: 'VOLUME_NOT_FOUND' });
    expect(await a.store.listMounts()).toEqual([]);
  });

  it('a request aborted at its deadline rolls back instead of committing', async () => {
    const a = makeHost('host-a', 'a');
    const controller = new AbortController();
    a.host.mountDevice = async (device, dir) => {
      a.host.mounted.set(dir, device);
      controller.abort(new PluginError('TIMEOUT', 'too slow'));
    };
    await expect(a.manager.mount('tenant1', 'foo', 'id1', controller.signal)).rejects.toThrow('too slow');
    expect(a.host.mounted.size).toBe(0);
    expect(a.mapper.mapped.size).toBe(0);
    expect(await a.store.getMount('tenant1', 'foo')).toBeNull();
    expect(a.local.all()).toEqual([]);
  });

  it('etcd down: a clear STATE_UNAVAILABLE error and nothing mapped', async () => {
    const a = makeHost('host-a', 'a');
    kv.setUnavailable(true);
    const err = await a.manager.mount('tenant1', 'foo', 'id1', signal()).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'STATE_UNAVAILABLE' });
    expect((err as Error).message).toMatch(/check --etcd/);
    expect(a.mapper.next).toBe(0);
  });

  it('an Unmount that cannot unmount keeps the entry (without references) for the loop to retry', async () => {
    const a = makeHost('host-a', 'a');
    await a.manager.mount('tenant1', 'foo', 'id1', signal());
    a.host.fail.unmountAll = new Error('target is busy');
    await expect(a.manager.unmount('tenant1', 'foo', 'id1', signal())).rejects.toThrow(/retries in the background/);
    expect(a.local.get('tenant1', 'foo')?.refs).toEqual([]);
    delete a.host.fail.unmountAll;
    await a.manager.teardown(a.local.get('tenant1', 'foo')!);
    expect(a.local.all()).toEqual([]);
    expect(await a.store.getMount('tenant1', 'foo')).toBeNull();
  });

  it('the table survives a restart: a new manager on the same file finds the references', async () => {
    const a = makeHost('host-a', 'a');
    await a.manager.mount('tenant1', 'foo', 'id1', signal());
    await a.manager.mount('tenant1', 'foo', 'id2', signal());
    const reloaded = new LocalState(a.local.file);
    await reloaded.load();
    expect(reloaded.get('tenant1', 'foo')).toMatchObject({ refs: ['id1', 'id2'], mountpoint: '/mnt/ceph/tenant1/foo' });
  });
});

describe('formatting at most once (issue 12, rule 1)', () => {
  /** The volume record as etcd has it. */
  /** The volume's format marks as etcd has them. */
  const recordNow = () => new StateStore(kv).getVolumeFormat('tenant1', 'foo');

  it('a first mount formats once and records when; later mounts never format again', async () => {
    const a = makeHost('host-a', 'a');
    await a.manager.mount('tenant1', 'foo', 'id1', signal());
    await a.manager.unmount('tenant1', 'foo', 'id1', signal());
    await a.manager.mount('tenant1', 'foo', 'id2', signal());
    expect(a.host.formats).toEqual(['/dev/loop0']);
    const record = await recordNow();
    expect(record.formatted).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(record.formatStarted).toBeDefined();
  });

  it('a volume recorded as formatted whose device shows no filesystem is never formatted again: the mount fails, naming it', async () => {
    const a = makeHost('host-a', 'a');
    await a.manager.mount('tenant1', 'foo', 'id1', signal());
    await a.manager.unmount('tenant1', 'foo', 'id1', signal());
    images.set('tenant1.foo', { kind: 'empty' }); // e.g. a read that came back as zeros
    const err = await a.manager.mount('tenant1', 'foo', 'id2', signal()).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UNSAFE_DEVICE' });
    expect((err as Error).message).toMatch(/^tenant1\/foo was formatted at .* never formats a volume twice/);
    expect(a.host.formats).toEqual(['/dev/loop0']);
    expect(a.mapper.mapped.size).toBe(0);
    expect(await a.store.getMount('tenant1', 'foo')).toBeNull();
  });

  it('a device that cannot be read is neither formatted nor mounted', async () => {
    const a = makeHost('host-a', 'a');
    a.host.unreadable.add('tenant1.foo');
    const err = await a.manager.mount('tenant1', 'foo', 'id1', signal()).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^refusing to format tenant1\/foo: the device cannot be read \(\/dev\/loop0 cannot be read: Input\/output error\)/);
    expect(a.host.formats).toEqual([]);
    expect(a.host.mounted.size).toBe(0);
    expect(a.mapper.mapped.size).toBe(0);
    expect(await a.store.getMount('tenant1', 'foo')).toBeNull();
    expect((await recordNow()).formatStarted).toBeUndefined();
  });

  it('a device holding data blkid does not know is not formatted (a record from before `formatted`)', async () => {
    const a = makeHost('host-a', 'a');
    images.set('tenant1.foo', { kind: 'data', detail: 'its first or last 1 MiB are not zeros and blkid finds no filesystem' });
    const err = await a.manager.mount('tenant1', 'foo', 'id1', signal()).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^refusing to format tenant1\/foo: the device holds data/);
    expect(a.host.formats).toEqual([]);
    expect(a.mapper.mapped.size).toBe(0);
  });

  it('a record from before `formatted` whose device has a filesystem is mounted and recorded as formatted', async () => {
    const a = makeHost('host-a', 'a');
    images.set('tenant1.foo', { kind: 'filesystem', type: 'ext4' });
    await a.manager.mount('tenant1', 'foo', 'id1', signal());
    expect(a.host.formats).toEqual([]);
    expect((await recordNow()).formatted).toBeDefined();
  });

  it('a first format that began and did not finish is done again, after wiping what it wrote', async () => {
    const a = makeHost('host-a', 'a');
    // A format that began (its mark is written by the lock holder) and never finished.
    await kv.put(new StateStore(kv).keys.format('tenant1', 'foo'), JSON.stringify({ formatStarted: '2026-11-22T12:00:00.000Z', by: 'host-a' }));
    images.set('tenant1.foo', { kind: 'data', detail: 'half an ext4' });
    await a.manager.mount('tenant1', 'foo', 'id1', signal());
    expect(a.host.wipes).toEqual(['/dev/loop0']);
    expect(a.host.formats).toEqual(['/dev/loop0']);
    expect((await recordNow()).formatted).toBeDefined();
  });

  it('only the lock holder records a format', async () => {
    const a = makeHost('host-a', 'a');
    const lease = await a.lease.get();
    expect(await a.store.markFormat('tenant1', 'foo', { hostId: 'host-a', lease }, 'done')).toEqual({ ok: false, reason: 'not-holder' });
    expect((await recordNow()).formatted).toBeUndefined();
  });
});

describe('a fenceable client for every mount (issue 12, rule 3)', () => {
  it('a mapping whose Ceph client is unknown is undone and the mount fails: nothing mapped, locked or noted', async () => {
    const a = makeHost('host-a', 'a');
    a.mapper.noClient = true;
    const err = await a.manager.mount('tenant1', 'foo', 'id1', signal()).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/could not learn its Ceph client's address, so another host could not fence this mount/);
    expect(a.mapper.mapped.size).toBe(0);
    expect(a.host.formats).toEqual([]);
    expect(await a.store.getMount('tenant1', 'foo')).toBeNull();
    expect(await holderNote('tenant1.foo')).toBeUndefined();
  });
});

describe('remove and rollback exclude a mount (issue 12, rule 6)', () => {
  it('no mount while a remove or rollback excludes the volume; the error says what runs', async () => {
    const a = makeHost('host-a', 'a');
    const store = new StateStore(kv, { owner: 'volmaster@m1:1' });
    let refused: unknown;
    await store.withMountsExcluded('tenant1', 'foo', { reason: 'remove' }, async () => {
      refused = await a.manager.mount('tenant1', 'foo', 'id1', signal()).catch((e: unknown) => e);
    });
    expect((refused as Error).message).toMatch(/^tenant1\/foo cannot be mounted while remove by volmaster@m1:1 since .* runs on it/);
    expect(a.mapper.next).toBe(0);
    await a.manager.mount('tenant1', 'foo', 'id2', signal());
  });

  it('a mounted volume cannot be excluded: the remove is refused before it starts', async () => {
    const a = makeHost('host-a', 'a');
    await a.manager.mount('tenant1', 'foo', 'id1', signal());
    let ran = false;
    const err = await new StateStore(kv)
      .withMountsExcluded('tenant1', 'foo', { reason: 'remove' }, async () => {
        ran = true;
      })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'StateMountedError' });
    expect((err as Error).message).toMatch(/mounted on host a at \/mnt\/ceph\/tenant1\/foo/);
    expect(ran).toBe(false);
  });
});

describe('reboots and reused devices (issue 12, rule 4)', () => {
  it('a volume unmounted by hand whose device now maps another image is not mounted from that device', async () => {
    const a = makeHost('host-a', 'a');
    await a.manager.mount('tenant1', 'foo', 'id1', signal());
    // Someone unmounted it and unmapped its device, which then went to another image.
    a.host.mounted.clear();
    a.mapper.mapped.set('/dev/loop0', { ...a.mapper.mapped.get('/dev/loop0')!, image: 'other.image' });
    const err = await a.manager.mount('tenant1', 'foo', 'id2', signal()).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/its device \/dev\/loop0 no longer maps rbd\/tenant1\.foo/);
    expect(a.host.mounted.size).toBe(0);
  });
});

describe('the mount metrics (src/metrics)', () => {
  const count = async (name: string, labels: Record<string, string>) => valueOf(parseMetrics(await registries.host.metrics()), name, labels);

  it('a first mount and its teardown count once in the histogram of every step, by mapper; a failing step counts as the failure', async () => {
    const a = makeHost('host-a', 'a');
    const steps = ['lock', 'fence', 'qos', 'map', 'note', 'format', 'mount', 'record'];
    const before = await Promise.all(steps.map((step) => count('volplugin_mount_step_duration_seconds_count', { mapper: 'fuse', step })));
    const unmountBefore = await count('volplugin_unmount_step_duration_seconds_count', { mapper: 'fuse', step: 'unmap' });
    await a.manager.mount('tenant1', 'foo', 'id1', signal());
    const after = await Promise.all(steps.map((step) => count('volplugin_mount_step_duration_seconds_count', { mapper: 'fuse', step })));
    expect(after.map((n, i) => n - before[i]!)).toEqual(steps.map(() => 1));
    await a.manager.mount('tenant1', 'foo', 'id2', signal()); // a later reference runs no step
    expect(await count('volplugin_mount_step_duration_seconds_count', { mapper: 'fuse', step: 'lock' })).toBe(after[0]);
    await a.manager.unmount('tenant1', 'foo', 'id1', signal());
    await a.manager.unmount('tenant1', 'foo', 'id2', signal());
    expect(await count('volplugin_unmount_step_duration_seconds_count', { mapper: 'fuse', step: 'unmap' })).toBe(unmountBefore + 1);

    const failures = await count('volplugin_mount_failures_total', { mapper: 'fuse', step: 'mount' });
    a.host.fail.mountDevice = new Error('mount: wrong fs type');
    await expect(a.manager.mount('tenant1', 'foo', 'id3', signal())).rejects.toThrow(/wrong fs type/);
    expect(await count('volplugin_mount_failures_total', { mapper: 'fuse', step: 'mount' })).toBe(failures + 1);
  });
});

describe('growing a resized volume (issue 15)', () => {
  const ext4 = (sizeBytes: number, deviceBytes: number): DeviceContents => ({ kind: 'filesystem', type: 'ext4', sizeBytes, deviceBytes });

  it('a mount grows an ext4 filesystem smaller than its device before mounting it (offline: no capability needed)', async () => {
    images.set('tenant1.foo', ext4(10 << 20, 20 << 20));
    const a = makeHost('host-a', 'a');
    await a.manager.mount('tenant1', 'foo', 'id1', signal());
    expect(a.host.grownUnmounted).toEqual(['/dev/loop0']);
    expect(a.host.grown).toEqual([]);
  });

  it('a mount grows an xfs filesystem smaller than its device after mounting it (xfs grows only mounted)', async () => {
    images.set('tenant1.foo', { kind: 'filesystem', type: 'xfs', sizeBytes: 300 << 20, deviceBytes: 400 << 20 });
    const a = makeHost('host-a', 'a');
    await a.manager.mount('tenant1', 'foo', 'id1', signal());
    expect(a.host.grown).toEqual(['/mnt/ceph/tenant1/foo']);
    expect(a.host.grownUnmounted).toEqual([]);
  });

  it('a filesystem as large as its device (within the slack of a partial block) is not grown', async () => {
    images.set('tenant1.foo', ext4((20 << 20) - 4096, 20 << 20));
    const a = makeHost('host-a', 'a');
    await a.manager.mount('tenant1', 'foo', 'id1', signal());
    expect([...a.host.grown, ...a.host.grownUnmounted]).toEqual([]);
  });

  it('a grow that fails at mount leaves the volume mounted as it is (retried at the next mount)', async () => {
    images.set('tenant1.foo', ext4(10 << 20, 20 << 20));
    const a = makeHost('host-a', 'a');
    a.host.fail.growUnmounted = new Error('e2fsck: UNEXPECTED INCONSISTENCY');
    const mountpoint = await a.manager.mount('tenant1', 'foo', 'id1', signal());
    expect(a.host.mounted.get(mountpoint)).toBe('/dev/loop0');
    await a.manager.unmount('tenant1', 'foo', 'id1', signal());
    delete a.host.fail.growUnmounted;
    await a.manager.mount('tenant1', 'foo', 'id2', signal());
    expect(a.host.grownUnmounted).toEqual([a.host.mounted.get(mountpoint)]);
  });

  it('resize-fs on the holder refreshes the device, waits for its new size and grows the mounted filesystem', async () => {
    const a = makeHost('host-a', 'a');
    await a.manager.mount('tenant1', 'foo', 'id1', signal());
    a.host.sizes.set('/dev/loop0', 10 << 20);
    // The device shows the new size only after a refresh, as a loop device over rbd-fuse does.
    a.mapper.refreshSize = async () => void a.host.sizes.set('/dev/loop0', 20 << 20);
    const report = await a.manager.growFilesystem('tenant1', 'foo', 20 << 20);
    expect(report).toMatchObject({ deviceBytes: 20 << 20, afterBytes: 20 << 20 });
    expect(a.host.grown).toEqual(['/mnt/ceph/tenant1/foo']);
  });

  it('resize-fs on a host that does not hold the volume answers NOT_MOUNTED and grows nothing', async () => {
    const a = makeHost('host-a', 'a');
    const err = await a.manager.growFilesystem('tenant1', 'foo', 20 << 20).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NOT_MOUNTED' });
    expect(a.host.grown).toEqual([]);
  });
});
