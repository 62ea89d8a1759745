// Consistent snapshots on the twins: a snapshotter (SnapshotService on a MemoryStorage) asks the
// host that holds an fsfreeze volume (a real HostRequestInbox and HostFreezer on the etcd twin,
// with a fake fsfreeze) to freeze it, takes the snapshot, then thaws; the order of the three, what
// happens when the holder is silent, refuses, or the freeze runs out, and that the host thaws by
// itself when its requester never comes back.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isApiError } from '../../src/api/errors.js';
import { HostRequestInbox } from '../../src/plugin/cluster/requests.js';
import { HostFreezer, type FreezeOps } from '../../src/plugin/mounts/freeze.js';
import { KeyedMutex } from '../../src/plugin/mounts/keyed-mutex.js';
import { LocalState, type LocalVolume } from '../../src/plugin/mounts/local-state.js';
import { MemoryKV } from '../../src/state/memory.js';
import type { VolumeRecord } from '../../src/state/records.js';
import { StateStore } from '../../src/state/store.js';
import { ManualClock } from '../../src/snapshots/clock.js';
import { SnapshotService } from '../../src/snapshots/service.js';
import { supervisorSnapshotName } from '../../src/snapshots/names.js';
import type { FreezeSettings } from '../../src/snapshots/freeze.js';
import { memoryStorage, type MemoryStorage } from '../../src/storage/memory.js';
import { mountRecord, volumeRecord } from '../helpers/fixtures.js';

const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A host whose fsfreeze is a fake that logs what it did, in order with the Ceph twin's calls. */
class FakeHost {
  readonly events: string[] = [];
  readonly frozen = new Set<string>();
  failFreeze: Error | null = null;
  watchdogs = 0;
  readonly ops: FreezeOps;

  constructor(storage: MemoryStorage) {
    const snapshots = () => storage.calls.filter((c) => c.startsWith('createSnapshot')).length;
    this.ops = {
      mounted: async () => true,
      freeze: async (dir) => {
        if (this.failFreeze) throw this.failFreeze;
        this.frozen.add(dir);
        this.events.push(`freeze ${dir} after ${snapshots()} snapshots`);
      },
      thaw: async (dir) => {
        const was = this.frozen.delete(dir);
        this.events.push(`thaw ${dir} after ${snapshots()} snapshots`);
        return was ? 'thawed' : 'not-frozen';
      },
      watchdog: async (dir, ms) => {
        this.watchdogs++;
        this.events.push(`watchdog ${dir} ${ms}`);
        return { cancel: () => void this.events.push(`watchdog cancelled ${dir}`) };
      },
    };
  }
}

function entry(tenant: string, volume: string, overrides: Partial<LocalVolume> = {}): LocalVolume {
  return {
    tenant,
    volume,
    pool: 'rbd',
    image: `${tenant}.${volume}`,
    mapping: { kind: 'fuse', pool: 'rbd', image: `${tenant}.${volume}`, device: '/dev/loop9', clientAddress: null } as LocalVolume['mapping'],
    mountpoint: `/mnt/${tenant}/${volume}`,
    refs: ['id1'],
    since: '2026-11-22T12:00:00.000Z',
    appliedLimits: null,
    lost: null,
    lockGeneration: 1,
    idleUntil: null,
    ...overrides,
  };
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<Error> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e as Error,
  );
  expect(err, `expected ${code}`).not.toBeNull();
  expect(isApiError(err) ? err.code : err).toBe(code);
  return err!;
}

describe('fsfreeze-consistent snapshots (twins)', () => {
  let kv: MemoryKV;
  let master: StateStore;
  let storage: MemoryStorage;
  let host: FakeHost;
  let local: LocalState;
  let mutex: KeyedMutex;
  let freezer: HostFreezer;
  let dir: string;
  let record: VolumeRecord;
  const inboxes: HostRequestInbox[] = [];

  function service(freeze: FreezeSettings = {}): SnapshotService {
    return new SnapshotService(storage, master, { clock: new ManualClock(), logger: log, lockWaitMs: 500, freeze: { askTimeoutMs: 2_000, ...freeze } });
  }

  /** The host `hostId` holds the mount lock of t1/data. */
  async function mountedOn(hostId: string): Promise<void> {
    const lease = await kv.lease(30);
    expect((await master.acquireMount(mountRecord('t1', 'data', { hostId, host: hostId, lease: lease.id }), lease)).ok).toBe(true);
  }

  async function startInbox(hostId: string, withFreezer: boolean): Promise<HostRequestInbox> {
    const hostStore = new StateStore(kv.client(), { owner: `volplugin@${hostId}` });
    const box = new HostRequestInbox({ store: hostStore, hostId, log, pollMs: 50 });
    if (withFreezer) freezer.register(box);
    await box.start();
    inboxes.push(box);
    return box;
  }

  beforeEach(async () => {
    kv = new MemoryKV();
    master = new StateStore(kv.client(), { owner: 'volmaster@test' });
    storage = memoryStorage();
    host = new FakeHost(storage);
    dir = await mkdtemp(path.join(tmpdir(), 'freeze-test-'));
    local = LocalState.inDir(dir);
    local.set(entry('t1', 'data'));
    mutex = new KeyedMutex();
    freezer = new HostFreezer({ local, mutex, ops: host.ops, log });
    await startInbox('h1', true);
    record = volumeRecord('t1', 'data', { runtime: { snapshots: true, snapshot: { frequency: '1h', keep: 3, consistency: 'fsfreeze' } } });
    await storage.createImage('rbd', 't1.data', { size: record.options.sizeBytes });
    await master.createVolume(record);
  });

  afterEach(async () => {
    await freezer.thawAll();
    await Promise.all(inboxes.splice(0).map((b) => b.stop()));
    await rm(dir, { recursive: true, force: true });
  });

  it('freezes on the holder, takes the snapshot, then thaws: in that order, watchdog first', async () => {
    await mountedOn('h1');
    const snap = await service().take('t1', 'data');
    expect(host.events).toEqual([
      'watchdog /mnt/t1/data 11000',
      'freeze /mnt/t1/data after 0 snapshots',
      'thaw /mnt/t1/data after 1 snapshots',
      'watchdog cancelled /mnt/t1/data',
    ]);
    expect(storage.snapshotNames('rbd', 't1.data')).toEqual([snap.name]);
    expect(freezer.held()).toEqual([]);
    expect(mutex.busy('t1/data')).toBe(false);
  });

  it('does the same for a scheduled snapshot', async () => {
    await mountedOn('h1');
    const slot = Date.UTC(2026, 10, 22, 12, 0, 0);
    expect(await service().takeScheduled(record, slot)).toEqual({ outcome: 'taken', name: supervisorSnapshotName(slot) });
    expect(host.events.filter((e) => !e.startsWith('watchdog'))).toEqual(['freeze /mnt/t1/data after 0 snapshots', 'thaw /mnt/t1/data after 1 snapshots']);
  });

  it('asks nothing for a crash-consistent volume or an unmounted one', async () => {
    await master.updateVolume('t1', 'data', (r) => ({ ...r, runtime: { ...r.runtime, snapshot: { frequency: '1h', keep: 3 } } }));
    await mountedOn('h1');
    await service().take('t1', 'data');
    expect(host.events).toEqual([]);
    await master.forceRemoveMount('t1', 'data');
    await master.updateVolume('t1', 'data', () => record);
    await service().take('t1', 'data');
    expect(host.events).toEqual([]);
    expect(storage.snapshotNames('rbd', 't1.data')).toHaveLength(2);
  });

  it('holds a volume its holder has not mounted: no freeze, but no Mount there until the thaw', async () => {
    local.delete('t1', 'data');
    await mountedOn('h1');
    let busyDuring = false;
    await service({ afterFreeze: async () => void (busyDuring = mutex.busy('t1/data')) }).take('t1', 'data');
    expect(busyDuring).toBe(true);
    expect(mutex.busy('t1/data')).toBe(false);
    expect(host.events).toEqual([]);
    expect(storage.snapshotNames('rbd', 't1.data')).toHaveLength(1);
  });

  it('refuses, taking nothing, when the holder does not answer', async () => {
    await mountedOn('h2'); // no volplugin for h2
    const err = await expectCode(service({ askTimeoutMs: 200 }).take('t1', 'data'), 'FREEZE_FAILED');
    expect(err.message).toMatch(/mounted on host h2 .*did not answer the request to freeze it.*snapshots\.consistency=crash/);
    expect(storage.snapshotNames('rbd', 't1.data')).toEqual([]);
  });

  it('refuses when the holder does not know freeze requests (older volplugin) or fsfreeze fails', async () => {
    await startInbox('h3', false);
    await mountedOn('h3');
    expect((await expectCode(service().take('t1', 'data'), 'FREEZE_FAILED')).message).toMatch(/does not know freeze requests.*upgrade/);
    await master.forceRemoveMount('t1', 'data');
    await mountedOn('h1');
    host.failFreeze = new Error('fsfreeze -f /mnt/t1/data failed with exit status 1: Operation not supported');
    expect((await expectCode(service().take('t1', 'data'), 'FREEZE_FAILED')).message).toMatch(/could not freeze t1\/data: fsfreeze -f .*Operation not supported/);
    expect(host.events).toEqual(['watchdog /mnt/t1/data 11000', 'watchdog cancelled /mnt/t1/data']);
    expect(storage.snapshotNames('rbd', 't1.data')).toEqual([]);
    expect(mutex.busy('t1/data')).toBe(false);
  });

  it('removes the snapshot and refuses when the freeze ran out before it was taken', async () => {
    await mountedOn('h1');
    const slow = service({ thawAfterMs: 100, afterFreeze: () => until('the host to thaw by itself', () => host.frozen.size === 0) });
    const err = await expectCode(slow.take('t1', 'data'), 'FREEZE_FAILED');
    expect(err.message).toMatch(/did not hold until the snapshot was taken.*not held for this request/);
    expect(storage.snapshotNames('rbd', 't1.data')).toEqual([]);
    // A scheduled one is not recorded either, so that the next tick takes it again.
    await expectCode(slow.takeScheduled(record, Date.UTC(2026, 10, 22, 12)), 'FREEZE_FAILED');
    expect(await master.getLastSnapshot('t1', 'data')).toBeNull();
    expect(storage.snapshotNames('rbd', 't1.data')).toEqual([]);
  });

  it('refuses (BUSY) when an unmounted volume was mounted while the snapshot was taken', async () => {
    const err = await expectCode(service({ afterFreeze: () => mountedOn('h1') }).take('t1', 'data'), 'BUSY');
    expect(err.message).toMatch(/was mounted on host h1 while the snapshot was taken/);
    expect(storage.snapshotNames('rbd', 't1.data')).toEqual([]);
  });

  it('thaws by itself at the bound when its requester never comes back, and a later freeze takes over', async () => {
    await mountedOn('h1');
    const ask = (token: string, thawAfterMs: number) =>
      master.askHost('h1', { kind: 'freeze', tenant: 't1', volume: 'data', params: { token, thawAfterMs } }, 2_000);
    expect(await ask('dead-requester-1', 150)).toMatchObject({ ok: true, result: { frozen: true, dir: '/mnt/t1/data' } });
    expect(host.frozen.has('/mnt/t1/data')).toBe(true);
    expect(mutex.busy('t1/data')).toBe(true);
    // The requester "died": nobody thaws. The host does, at the bound, and lets go of the volume.
    await until('the auto-thaw', () => host.frozen.size === 0);
    expect(mutex.busy('t1/data')).toBe(false);
    // A freeze while one is held (its requester gone) takes it over; the old token thaws nothing.
    expect(await ask('requester-2', 5_000)).toMatchObject({ ok: true, result: { frozen: true } });
    expect(await ask('requester-3', 5_000)).toMatchObject({ ok: true, result: { frozen: true } });
    const thaw = (token: string) => master.askHost('h1', { kind: 'thaw', tenant: 't1', volume: 'data', params: { token } }, 2_000);
    expect(await thaw('requester-2')).toMatchObject({ ok: true, result: { thawed: false } });
    expect(host.frozen.size).toBe(1);
    expect(await thaw('requester-3')).toMatchObject({ ok: true, result: { thawed: true } });
    expect(host.frozen.size).toBe(0);
  });

  it('refuses bad freeze requests with BAD_REQUEST', async () => {
    const ask = (params: Record<string, unknown>) => master.askHost('h1', { kind: 'freeze', tenant: 't1', volume: 'data', params }, 2_000);
    expect(await ask({ token: 'abcdefgh', thawAfterMs: 61_000 })).toMatchObject({ ok: false, code: 'BAD_REQUEST', error: expect.stringMatching(/from 100 to 60000/) });
    expect(await ask({ token: 'x', thawAfterMs: 1_000 })).toMatchObject({ ok: false, code: 'BAD_REQUEST' });
    expect(host.events).toEqual([]);
  });

  it('thaws what it holds when volplugin stops', async () => {
    await mountedOn('h1');
    await master.askHost('h1', { kind: 'freeze', tenant: 't1', volume: 'data', params: { token: 'stopping-1', thawAfterMs: 30_000 } }, 2_000);
    await freezer.thawAll();
    expect(host.frozen.size).toBe(0);
    expect(mutex.busy('t1/data')).toBe(false);
  });
});
