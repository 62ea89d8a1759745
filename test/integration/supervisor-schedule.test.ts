// volsupervisor on the real cluster and etcd, in-process: a volume with frequency 2s and keep 3
// ends up with exactly 3 supervisor snapshots, the newest; runtime changes apply while it runs.
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKV } from '../../src/state/etcd.js';
import { StateStore } from '../../src/state/store.js';
import type { VolumeRecord } from '../../src/state/records.js';
import { openStorage } from '../../src/storage/index.js';
import type { Storage } from '../../src/storage/types.js';
import { parseSnapshotName } from '../../src/snapshots/names.js';
import { Supervisor } from '../../src/supervisor/supervisor.js';
import { repoRoot } from '../helpers/sandbox.js';

const backend = existsSync(path.join(repoRoot, 'build/Release/volplugin_rbd.node')) ? 'native' : 'cli';
const pool = process.env.VOLPLUGIN_TEST_POOL ?? 'rbd';
const MB = 1024 * 1024;
const log = pino({ level: process.env.VOLPLUGIN_TEST_VERBOSE ? 'debug' : 'silent' });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function volumeRecord(tenant: string, volume: string, frequency: string, keep: number): VolumeRecord {
  const runtime = { snapshots: true, snapshot: { frequency, keep }, rateLimit: { writeIops: 0, readIops: 0, writeBps: 0, readBps: 0 } };
  return {
    tenant,
    volume,
    pool,
    image: `${tenant}.${volume}`,
    options: { pool, sizeBytes: 8 * MB, filesystem: 'ext4', ephemeral: false, ...runtime },
    runtime,
    policyRevision: 1,
    formatCommand: 'mkfs.ext4 -q %',
    createdAt: new Date().toISOString(),
  };
}

describe(`volsupervisor schedule on real Ceph and etcd (${backend} backend)`, () => {
  const id = randomUUID().slice(0, 8);
  const prefix = `/it-supervisor-${id}`;
  const tenant = `sup${id}`;
  let kv: EtcdKV;
  let store: StateStore;
  let storage: Storage;
  let supervisor: Supervisor | null = null;

  beforeAll(async () => {
    kv = new EtcdKV({ endpoints: [process.env.VOLPLUGIN_TEST_ETCD!] });
    store = new StateStore(kv, { prefix, owner: `it-${id}` });
    storage = await openStorage(backend, { confPath: process.env.CEPH_CONF });
  });

  afterAll(async () => {
    await supervisor?.stop();
    for (const image of (await storage.listImages(pool)).filter((i) => i.startsWith(`${tenant}.`))) {
      for (const s of await storage.listSnapshots(pool, image)) {
        if (s.protected) await storage.unprotectSnapshot(pool, image, s.name).catch(() => undefined);
        await storage.removeSnapshot(pool, image, s.name).catch(() => undefined);
      }
      await storage.removeImage(pool, image).catch(() => undefined);
    }
    for (const entry of await kv.list(`${prefix}/`)) await kv.delete(entry.key);
    await storage.close();
    await kv.close();
  });

  async function names(image: string): Promise<string[]> {
    return (await storage.listSnapshots(pool, image)).map((s) => s.name);
  }

  it('keeps exactly `keep` supervisor snapshots, the newest, and never touches the others', async () => {
    const record = volumeRecord(tenant, 'v', '2s', 3);
    await storage.createImage(pool, record.image, { size: record.options.sizeBytes });
    await storage.createSnapshot(pool, record.image, 'manual-20260101T000000Z');
    await storage.createSnapshot(pool, record.image, 'by-hand');
    expect(await store.createVolume(record)).toBe(true);

    supervisor = new Supervisor({ store, storage, logger: log, electionTtlSeconds: 2, scheduler: { tickMs: 200 } });
    void supervisor.start();

    // Watch the snapshots for several periods, remembering every supervisor snapshot ever seen.
    const seen = new Set<string>();
    const deadline = Date.now() + 30_000;
    while (seen.size < 6 && Date.now() < deadline) {
      for (const n of await names(record.image)) if (n.startsWith('vs-')) seen.add(n);
      await sleep(250);
    }
    expect(seen.size).toBeGreaterThanOrEqual(6);

    // Stop scheduling (a runtime change, applied without restart), let the last job finish.
    await store.updateRuntime(tenant, 'v', { ...record.runtime, snapshots: false });
    await sleep(1500);
    for (const n of await names(record.image)) if (n.startsWith('vs-')) seen.add(n);

    const now = (await names(record.image)).sort();
    const ours = now.filter((n) => n.startsWith('vs-'));
    expect(ours).toHaveLength(3);
    const all = [...seen].sort();
    expect(ours).toEqual(all.slice(-3)); // the newest three
    expect(now).toEqual(expect.arrayContaining(['manual-20260101T000000Z', 'by-hand']));
    // One per 2 s slot, none twice, none skipped.
    const times = all.map((n) => parseSnapshotName(n)!.time.getTime());
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBe(2000);
    // The schedule is recorded in etcd for the next leader.
    expect((await store.getLastSnapshot(tenant, 'v'))?.getTime()).toBe(times.at(-1));
  });

  it('applies a smaller keep and picks up a new volume without a restart', async () => {
    expect(supervisor?.isLeader).toBe(true);
    const record = (await store.getVolume(tenant, 'v'))!;
    await store.updateRuntime(tenant, 'v', { ...record.runtime, snapshots: true, snapshot: { frequency: '2s', keep: 1 } });

    const late = volumeRecord(tenant, 'late', '1s', 2);
    await storage.createImage(pool, late.image, { size: late.options.sizeBytes });
    expect(await store.createVolume(late)).toBe(true);

    const deadline = Date.now() + 15_000;
    let ours: string[] = [];
    let lateOurs: string[] = [];
    while (Date.now() < deadline) {
      ours = (await names(record.image)).filter((n) => n.startsWith('vs-'));
      lateOurs = (await names(late.image)).filter((n) => n.startsWith('vs-'));
      if (ours.length === 1 && lateOurs.length === 2) break;
      await sleep(250);
    }
    expect(ours).toHaveLength(1);
    expect(lateOurs).toHaveLength(2);
  });

  it('drops a removed volume', async () => {
    const late = (await store.getVolume(tenant, 'late'))!;
    // As the master removes a volume: under its operation lock.
    await store.withOperationLock(tenant, 'late', { reason: 'remove', waitMs: 30_000 }, () => store.deleteVolume(tenant, 'late'));
    await sleep(1000);
    const before = await names(late.image);
    await sleep(2500);
    expect(await names(late.image)).toEqual(before);
    expect(await store.getLastSnapshot(tenant, 'late')).toBeNull();
  });
});
