import pino from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import { MemoryKV } from '../../src/state/memory.js';
import { StateStore } from '../../src/state/store.js';
import type { VolumeRecord } from '../../src/state/records.js';
import { ManualClock } from '../../src/snapshots/clock.js';
import { SnapshotService } from '../../src/snapshots/service.js';
import { supervisorSnapshotName } from '../../src/snapshots/names.js';
import { Scheduler } from '../../src/supervisor/scheduler.js';
import { memoryStorage, type MemoryStorage } from '../../src/storage/memory.js';

const log = pino({ level: 'silent' });
const MB = 1024 * 1024;
const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);

function record(tenant: string, volume: string, frequency: string, keep: number, extra: Partial<VolumeRecord> = {}): VolumeRecord {
  const runtime = { snapshots: true, snapshot: { frequency, keep }, rateLimit: { writeIops: 0, readIops: 0, writeBps: 0, readBps: 0 } };
  return {
    tenant,
    volume,
    pool: 'rbd',
    image: `${tenant}.${volume}`,
    options: { pool: 'rbd', sizeBytes: 10 * MB, filesystem: 'ext4', ephemeral: false, ...runtime },
    runtime,
    policyRevision: 1,
    formatCommand: 'mkfs.ext4 %',
    createdAt: new Date(T0 - 60_000).toISOString(),
    ...extra,
  };
}

describe('Scheduler (injected clock)', () => {
  let kv: MemoryKV;
  let store: StateStore;
  let storage: MemoryStorage;
  let clock: ManualClock;
  let scheduler: Scheduler;
  let term: AbortController;

  const vsNames = (image = 't1.v') => storage.snapshotNames('rbd', image).filter((n) => n.startsWith('vs-')).sort();

  async function addVolume(r: VolumeRecord): Promise<void> {
    await storage.createImage(r.pool, r.image, { size: r.options.sizeBytes });
    expect(await store.createVolume(r)).toBe(true);
  }

  /** One tick at the current time, and wait for the jobs it started. */
  async function step(): Promise<void> {
    await scheduler.tick();
    await scheduler.idle();
  }

  /** Ticks every `tickMs` for `ms` of clock time. */
  async function runFor(ms: number, tickMs = 500): Promise<void> {
    for (let t = 0; t < ms; t += tickMs) {
      await step();
      clock.advance(tickMs);
    }
  }

  function newScheduler(): Scheduler {
    const service = new SnapshotService(storage, store, { clock, logger: log });
    const s = new Scheduler(store, service, clock, log, { tickMs: 500 });
    term = new AbortController();
    s.begin(term.signal);
    return s;
  }

  beforeEach(async () => {
    kv = new MemoryKV();
    store = new StateStore(kv, { owner: 'test' });
    storage = memoryStorage();
    clock = new ManualClock(T0 + 100);
    storage.now = () => clock.now();
    scheduler = newScheduler();
    await addVolume(record('t1', 'v', '2s', 3));
  });

  it('takes one snapshot per period and keeps exactly `keep`, the newest', async () => {
    await runFor(11_000);
    // Slots at T0, T0+2s, ..., T0+10s: six taken, the three oldest pruned.
    expect(vsNames()).toEqual([6000, 8000, 10_000].map((d) => supervisorSnapshotName(T0 + d)));
    expect((await store.getLastSnapshot('t1', 'v'))?.getTime()).toBe(T0 + 10_000);
    const created = storage.calls.filter((c) => c.startsWith('createSnapshot'));
    expect(created).toHaveLength(6);
  });

  it('never prunes snapshots it did not make', async () => {
    await storage.createSnapshot('rbd', 't1.v', 'manual-20261122T115000Z');
    await storage.createSnapshot('rbd', 't1.v', 'before-upgrade');
    await runFor(20_000);
    expect(storage.snapshotNames('rbd', 't1.v')).toEqual(expect.arrayContaining(['manual-20261122T115000Z', 'before-upgrade']));
    expect(vsNames()).toHaveLength(3);
  });

  it('keeps a snapshot that has clones beyond keep, and prunes it once they are gone', async () => {
    await runFor(500);
    const first = supervisorSnapshotName(T0);
    await storage.protectSnapshot('rbd', 't1.v', first);
    await storage.cloneSnapshot({ pool: 'rbd', image: 't1.v', snapshot: first }, 'rbd', 'x.clone');
    await runFor(10_000);
    expect(vsNames()).toEqual([first, ...[6000, 8000, 10_000].map((d) => supervisorSnapshotName(T0 + d))]);
    await storage.flattenImage('rbd', 'x.clone');
    await runFor(2000);
    expect(vsNames()).toEqual([8000, 10_000, 12_000].map((d) => supervisorSnapshotName(T0 + d)));
  });

  it('applies runtime changes without a restart', async () => {
    await runFor(5000); // T0, +2, +4; the clock is at T0+5.1s
    expect(vsNames()).toHaveLength(3);
    await store.updateRuntime('t1', 'v', { ...record('t1', 'v', '2s', 1).runtime });
    await step(); // keep changed: pruned at once, without waiting for a new slot
    expect(vsNames()).toEqual([supervisorSnapshotName(T0 + 4000)]);
    await store.updateRuntime('t1', 'v', { ...record('t1', 'v', '2s', 1).runtime, snapshots: false });
    const before = storage.calls.length;
    await runFor(10_000);
    expect(storage.calls.slice(before).filter((c) => c.startsWith('createSnapshot'))).toEqual([]);
    // Back on, every minute: the next slot boundary of the new frequency is T0+60s.
    await store.updateRuntime('t1', 'v', record('t1', 'v', '1m', 2).runtime);
    await runFor(40_000);
    expect(vsNames()).toEqual([supervisorSnapshotName(T0 + 4000)]);
    await runFor(10_000);
    expect(vsNames()).toEqual([supervisorSnapshotName(T0 + 4000), supervisorSnapshotName(T0 + 60_000)]);
  });

  it('picks up volumes created while it runs and drops removed ones', async () => {
    await runFor(1000);
    await addVolume(record('t2', 'late', '2s', 2));
    await runFor(1000);
    expect(vsNames('t2.late')).toHaveLength(1);
    await store.deleteVolume('t1', 'v');
    const before = storage.calls.length;
    await runFor(6000);
    expect(storage.calls.slice(before).filter((c) => c.includes('t1.v'))).toEqual([]);
    expect(scheduler.status().volumes.map((v) => v.volume)).toEqual(['t2/late']);
  });

  it('does not schedule volumes with invalid settings written behind its back', async () => {
    await addVolume(record('t1', 'bad', '500ms', 1));
    await runFor(4000);
    expect(vsNames('t1.bad')).toEqual([]);
    expect(scheduler.status().volumes.find((v) => v.volume === 't1/bad')?.schedule).toMatch(/^invalid/);
  });

  it('does not schedule a volume whose record breaks its schema (read back from etcd: corrupt)', async () => {
    await addVolume(record('t1', 'bad', '30m', 0)); // keep 0: the schema wants at least 1
    await runFor(4000);
    expect(vsNames('t1.bad')).toEqual([]);
    expect(scheduler.status().volumes.map((v) => v.volume)).not.toContain('t1/bad');
    await expect(store.getVolume('t1', 'bad')).rejects.toThrow(/snapshot.keep: must be at least 1, got 0/);
  });

  it('keeps snapshotting the other volumes when one volume record is corrupt', async () => {
    await kv.put(store.keys.volume('t1', 'broken'), '{not json');
    await runFor(4000);
    expect(vsNames()).toHaveLength(2);
    await expect(store.listVolumes()).rejects.toThrow(/broken/);
  });

  it('lets a new leader continue without repeating or skipping a slot', async () => {
    await runFor(3000); // T0 and T0+2s taken; clock at T0+3.1s
    expect(vsNames()).toHaveLength(2);
    term.abort();
    scheduler = newScheduler(); // a new leader, knowing nothing but etcd
    await step();
    expect(vsNames()).toHaveLength(2); // slot T0+2s was taken: nothing to do
    clock.advance(1000); // T0+4.1s
    await step();
    expect(vsNames()).toEqual([0, 2000, 4000].map((d) => supervisorSnapshotName(T0 + d)));
  });

  it('takes the current slot at once after a long gap, once', async () => {
    await runFor(500);
    term.abort();
    clock.advance(30_000); // no leader for 30 s
    scheduler = newScheduler();
    await step();
    await step();
    expect(vsNames()).toEqual([supervisorSnapshotName(T0), supervisorSnapshotName(T0 + 30_000)]);
  });

  it('records a slot whose snapshot a dead leader took but did not record', async () => {
    await storage.createSnapshot('rbd', 't1.v', supervisorSnapshotName(T0));
    await step();
    expect(vsNames()).toEqual([supervisorSnapshotName(T0)]);
    expect((await store.getLastSnapshot('t1', 'v'))?.getTime()).toBe(T0);
  });

  it('retries a failed snapshot after a backoff', async () => {
    storage.failNext('createSnapshot', 'EIO');
    await step();
    expect(vsNames()).toEqual([]);
    expect(scheduler.status().volumes[0]?.lastError).toMatch(/EIO/);
    clock.advance(500);
    await step(); // still backing off (1 s)
    expect(vsNames()).toEqual([]);
    clock.advance(600);
    await step();
    expect(vsNames()).toEqual([supervisorSnapshotName(T0)]);
    expect(scheduler.status().volumes[0]?.lastError).toBeNull();
  });

  it('stops starting jobs once its term ends', async () => {
    term.abort();
    await step();
    expect(vsNames()).toEqual([]);
  });

  it('flattens copies in the background and unprotects their snapshot', async () => {
    await runFor(500);
    const snap = supervisorSnapshotName(T0);
    await storage.protectSnapshot('rbd', 't1.v', snap);
    await storage.cloneSnapshot({ pool: 'rbd', image: 't1.v', snapshot: snap }, 'rbd', 't1.copy');
    await store.createVolume(record('t1', 'copy', '1h', 1, { runtime: { ...record('t1', 'copy', '1h', 1).runtime, snapshots: false }, source: { tenant: 't1', volume: 'v', snapshot: snap } }));
    await step();
    expect(storage.images.get('rbd/t1.copy')?.parent).toBeNull();
    expect((await storage.listSnapshots('rbd', 't1.v')).find((s) => s.name === snap)?.protected).toBe(false);
    const flattens = storage.calls.filter((c) => c.startsWith('flattenImage')).length;
    await runFor(3000);
    expect(storage.calls.filter((c) => c.startsWith('flattenImage')).length).toBe(flattens);
  });

  it('snapshots a copy only once it is flattened, so that its parent snapshot can be unprotected', async () => {
    await runFor(500);
    const snap = supervisorSnapshotName(T0);
    await storage.protectSnapshot('rbd', 't1.v', snap);
    await storage.cloneSnapshot({ pool: 'rbd', image: 't1.v', snapshot: snap }, 'rbd', 't1.copy2');
    storage.failNext('flattenImage', 'EIO');
    await store.createVolume(record('t1', 'copy2', '2s', 2, { source: { tenant: 't1', volume: 'v', snapshot: snap } }));
    await step();
    expect(storage.snapshotNames('rbd', 't1.copy2')).toEqual([]);
    expect(scheduler.status().volumes.find((v) => v.volume === 't1/copy2')?.schedule).toMatch(/waits until flattened/);
    clock.advance(1100); // past the flatten's backoff
    await step();
    expect(storage.images.get('rbd/t1.copy2')?.parent).toBeNull();
    expect((await storage.listSnapshots('rbd', 't1.v')).find((s) => s.name === snap)?.protected).toBe(false);
    await step();
    expect(storage.snapshotNames('rbd', 't1.copy2')).toHaveLength(1);
  });

  it('cannot unprotect the parent while a snapshot taken before flattening exists, and says so', async () => {
    await runFor(500);
    const snap = supervisorSnapshotName(T0);
    await storage.protectSnapshot('rbd', 't1.v', snap);
    await storage.cloneSnapshot({ pool: 'rbd', image: 't1.v', snapshot: snap }, 'rbd', 't1.copy3');
    await storage.createSnapshot('rbd', 't1.copy3', 'manual-20261122T120000Z'); // on demand, before the flatten
    await store.createVolume(record('t1', 'copy3', '2s', 2, { source: { tenant: 't1', volume: 'v', snapshot: snap } }));
    await step();
    expect(storage.images.get('rbd/t1.copy3')?.parent).toBeNull();
    expect((await storage.listSnapshots('rbd', 't1.v')).find((s) => s.name === snap)?.protected).toBe(true);
    await storage.removeSnapshot('rbd', 't1.copy3', 'manual-20261122T120000Z');
    // The parent snapshot is a supervisor snapshot beyond keep: pruned once nothing depends on it.
    await runFor(8000);
    expect(vsNames()).not.toContain(snap);
  });

  it("backs off and says so when a volume's image is missing in Ceph", async () => {
    await store.createVolume(record('t1', 'ghost', '1s', 2)); // no image
    await step();
    const status = () => scheduler.status().volumes.find((v) => v.volume === 't1/ghost');
    expect(status()?.lastError).toMatch(/does not exist in Ceph/);
    const attempts = () => storage.calls.filter((c) => c.startsWith('createSnapshot rbd t1.ghost')).length;
    await runFor(2500, 250);
    expect(attempts()).toBe(2); // the first, and one retry after 1 s; the next waits 2 s
  });
});
