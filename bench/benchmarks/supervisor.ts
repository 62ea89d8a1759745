// The supervisor's round at Ceph's default paxos interval (issue 14.3): volsupervisor's scheduler
// (src/supervisor/scheduler.ts, in this process, with the addon) snapshots every volume of a cluster
// whose monitors commit once a second, as real clusters do. The volumes are real images with volume
// records in the (secure) bench etcd, all due at once; a round is the time from the first tick until
// every volume has its snapshot and no job runs. Measured with the scheduler's concurrency at the
// daemon's default and at 8 (the default before), on fewer volumes for 8 (its rounds take minutes).
// The floor is the C program's snapshot creates per second at as many in flight (the paxos rows).

import pino from 'pino';
import { ApiClient } from '../../src/api/client.js';
import type { Clock } from '../../src/snapshots/clock.js';
import { SnapshotService } from '../../src/snapshots/service.js';
import type { VolumeRecord } from '../../src/state/records.js';
import { StateStore } from '../../src/state/store.js';
import { VOLUME_IMAGE_FEATURES } from '../../src/storage/conventions.js';
import { DEFAULT_SUPERVISOR_CONCURRENCY } from '../../src/supervisor/config.js';
import { Scheduler } from '../../src/supervisor/scheduler.js';
import type { BenchContext } from '../lib/context.js';
import { type Measurement, progress } from '../lib/harness.js';
import { eachLimited } from '../lib/limit.js';
import { benchEtcdClient, benchPolicy, benchSecurity, startVolmaster, stopVolmaster } from './master.js';

const HOUR = 3_600_000;

export async function supervisorBench(ctx: BenchContext, sizes: { volumes: number; rounds: number; oldVolumes: number }, missing: string[]): Promise<Measurement[]> {
  const storage = ctx.storage.native;
  if (!storage) {
    missing.push('supervisor round: needs the native backend');
    return [];
  }
  const security = await benchSecurity();
  const prefix = `/volplugin/bench/${ctx.prefix}supervisor`;
  const kv = await benchEtcdClient(security);
  const store = new StateStore(kv, { prefix, owner: 'bench-supervisor' });
  const master = await startVolmaster({ cephConf: ctx.cluster.confPath, backend: 'native', prefix, security });
  const api = new ApiClient({ master: master.url, timeoutMs: 120_000, ca: security.caPem, token: security.adminToken });
  const tenant = `${ctx.prefix}sup`;
  const pool = ctx.cluster.pool;
  const images: string[] = [];
  const out: Measurement[] = [];
  try {
    await api.uploadTenant(tenant, benchPolicy(pool));
    // A record as volmaster writes it, with an hourly schedule: the template of the others.
    const template = (await api.createVolume(tenant, 'template', { size: '16MB', snapshots: 'true', 'snapshots.frequency': '1h', 'snapshots.keep': '10' })).volume;
    images.push(template.image);
    const records: VolumeRecord[] = Array.from({ length: sizes.volumes - 1 }, (_, i) => ({ ...template, volume: `v${i}`, image: `${tenant}.v${i}`, createdAt: new Date().toISOString() }));
    const t0 = performance.now();
    await eachLimited(records, 32, async (r) => {
      await storage.createImage(pool, r.image, { size: 16 << 20, features: VOLUME_IMAGE_FEATURES });
      images.push(r.image);
      if (!(await store.createVolume(r))) throw new Error(`supervisor bench: ${r.tenant}/${r.volume} exists already`);
    });
    const all = [template, ...records];
    progress(`supervisor: ${all.length} volumes with images made in ${Math.round(performance.now() - t0)} ms`);

    const base = Math.ceil(Date.now() / HOUR) * HOUR;
    let slot = 0;
    const service = new SnapshotService(storage, store, { logger: pino({ level: 'silent' }) });
    /** One round: every volume of `volumes` gets the snapshot of a new hourly slot. */
    const round = async (concurrency: number, volumes: VolumeRecord[]): Promise<number> => {
      const now = base + ++slot * HOUR;
      const clock: Clock = { now: () => now, sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };
      // Only `volumes` are this round's: the others' records are hidden by giving it its own view.
      const view = volumes.length === all.length ? store : Object.assign(Object.create(store) as StateStore, { listVolumes: async () => volumes });
      const scheduler = new Scheduler(view, service, clock, pino({ level: 'silent' }), { tickMs: 100, concurrency });
      const stop = new AbortController();
      scheduler.begin(stop.signal);
      const started = performance.now();
      const deadline = started + 900_000;
      for (;;) {
        await scheduler.tick();
        const status = scheduler.status();
        const done = status.volumes.filter((v) => v.lastSnapshot !== null).length;
        if (done === volumes.length && status.running === 0) break;
        const failed = status.volumes.find((v) => v.lastError);
        if (failed) throw new Error(`supervisor bench: ${failed.volume}: ${failed.lastError}`);
        if (performance.now() > deadline) throw new Error(`supervisor bench: round at concurrency ${concurrency} not done after 900 s (${done} of ${volumes.length})`);
        await clock.sleep(100);
      }
      const ms = performance.now() - started;
      stop.abort();
      await scheduler.idle();
      progress(`supervisor: ${volumes.length} volumes at concurrency ${concurrency}: round of ${Math.round(ms)} ms (${((volumes.length * 1000) / ms).toFixed(1)} snapshots/s)`);
      return ms;
    };
    const measure = async (concurrency: number, volumes: VolumeRecord[], rounds: number) => {
      const ms: number[] = [];
      for (let r = 0; r < rounds; r++) ms.push(await round(concurrency, volumes));
      out.push({
        bench: 'supervisor',
        op: `supervisor_round_${volumes.length}`,
        backend: 'native',
        concurrency,
        cluster: ctx.cluster.name,
        rounds: ms.map((m) => ({ latMs: [m], wallMs: m })),
        notes: { volumes: volumes.length, snapshots_per_s: Math.round((volumes.length * 1000 * ms.length) / ms.reduce((a, b) => a + b, 0)), etcd: 'TLS + users' },
      });
    };
    await measure(DEFAULT_SUPERVISOR_CONCURRENCY, all, sizes.rounds);
    await measure(8, all.slice(0, sizes.oldVolumes), 1);
    return out;
  } catch (err) {
    missing.push(`supervisor round: ${(err as Error).message.split('\n')[0]}`);
    progress(`WARNING: supervisor: ${(err as Error).stack ?? String(err)}`);
    return out;
  } finally {
    // Snapshots first (each waits for a monitor commit: many in flight), then the images.
    const t0 = performance.now();
    await eachLimited(images, 256, async (image) => {
      for (const s of await storage.listSnapshots(pool, image).catch(() => [])) await storage.removeSnapshot(pool, image, s.name).catch(() => undefined);
      await storage.removeImage(pool, image).catch(() => undefined);
    });
    progress(`supervisor: ${images.length} images removed in ${Math.round(performance.now() - t0)} ms`);
    await api.close().catch(() => undefined);
    await stopVolmaster(master);
    await store.close();
  }
}
