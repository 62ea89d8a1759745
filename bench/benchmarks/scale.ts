// Scale (issue 14.4): how the cluster's costs grow from 100 to 1,000 to 10,000 volumes, with 100
// simulated hosts against the real (secure) bench etcd. A simulated host is what volplugin is to
// etcd: a lease kept alive, a host report bound to it, and mount locks taken through the same
// StateStore calls (acquireMount). Volume records are written through the store (the images are
// not made in Ceph: what is measured here is etcd, the master and the convergence loop, not Ceph).
// Measured at each size: list-all through volmaster's API (GET /v1/volumes), the master's RSS after
// it, etcd's database size and our keys' bytes, and the CPU of one convergence pass (observe +
// plan, volplugin's own code) of a host with 200 mounted volumes (as many as there are, below 200).

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { ApiClient } from '../../src/api/client.js';
import type { Mapping } from '../../src/mapper/types.js';
import type { MountInfo } from '../../src/mapper/mountinfo.js';
import { HostObserver } from '../../src/plugin/converge/observe.js';
import { planConvergence } from '../../src/plugin/converge/plan.js';
import { hostReport } from '../../src/plugin/converge/report.js';
import type { LocalVolume } from '../../src/plugin/mounts/local-state.js';
import type { Lease } from '../../src/state/kv.js';
import type { MountRecord, VolumeRecord } from '../../src/state/records.js';
import { StateStore } from '../../src/state/store.js';
import type { BenchContext } from '../lib/context.js';
import { type Measurement, progress } from '../lib/harness.js';
import { eachLimited } from '../lib/limit.js';
import { benchEtcdClient, benchPolicy, benchSecurity, startVolmaster, stopVolmaster } from './master.js';

const exec = promisify(execFile);

export const SCALE_HOSTS = 100;
const TENANTS = 10;
/** Mount locks held per volume: half the volumes are mounted somewhere. */
const MOUNTED_SHARE = 0.5;
/** Mounted volumes on the host whose convergence pass is measured. */
const MEASURED_HOST_MOUNTS = 200;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : Number.NaN;
}

function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return line ? Math.round(Number(line.split(/\s+/)[1]) / 102.4) / 10 : Number.NaN;
}

interface SimHost {
  id: string;
  lease: Lease;
  entries: LocalVolume[];
}

function localVolume(record: VolumeRecord, hostIndex: number, n: number, mountRoot: string): LocalVolume {
  const mapping: Mapping = { kind: 'fuse', tenant: record.tenant, volume: record.volume, pool: record.pool, image: record.image, device: `/dev/loop${n}`, clientAddress: `10.0.${hostIndex}.1:0/${n}`, fuseDir: `/run/volplugin/fuse/${record.image}` };
  return { tenant: record.tenant, volume: record.volume, pool: record.pool, image: record.image, mapping, mountpoint: `${mountRoot}/${record.tenant}/${record.volume}`, refs: ['c1'], since: new Date().toISOString(), appliedLimits: record.runtime.rateLimit, lost: null, lockGeneration: 1, idleUntil: null };
}

function mountInfoOf(e: LocalVolume, n: number): MountInfo {
  return { id: 1000 + n, parentId: 1, devNumber: `7:${n}`, major: 7, minor: n, root: '/', mountPoint: e.mountpoint, options: 'rw,relatime', fsType: 'ext4', source: e.mapping.device ?? '' } as MountInfo;
}

type Security = Awaited<ReturnType<typeof benchSecurity>>;

/** etcdctl as etcd's root user (the bench etcd's own). */
async function etcdctl(security: Security, args: string[]): Promise<string> {
  const e = security.etcd;
  const password = readFileSync(e.passwordFile('root'), 'utf8').trim();
  const { stdout } = await exec('etcdctl', ['--endpoints', e.url, '--cacert', e.ca, '--cert', e.cert, '--key', e.key, '--user', `root:${password}`, ...args], { timeout: 120_000, maxBuffer: 1 << 24 });
  return stdout;
}

/** etcd's database size (bytes) as `etcdctl endpoint status` reports it. */
async function etcdDbSize(security: Security): Promise<{ dbSize: number; dbSizeInUse: number } | null> {
  try {
    const stdout = await etcdctl(security, ['endpoint', 'status', '-w', 'json']);
    const status = (JSON.parse(stdout) as Array<{ Status: { dbSize: number; dbSizeInUse?: number } }>)[0]!.Status;
    return { dbSize: status.dbSize, dbSizeInUse: status.dbSizeInUse ?? status.dbSize };
  } catch (err) {
    progress(`scale: etcd status: ${(err as Error).message.split('\n')[0]}`);
    return null;
  }
}

export async function scaleBench(ctx: BenchContext, sizes: { volumes: number[]; rounds: number }, missing: string[]): Promise<Measurement[]> {
  const security = await benchSecurity();
  const prefix = `/volplugin/bench/${ctx.prefix}scale`;
  const kv = await benchEtcdClient(security);
  const store = new StateStore(kv, { prefix, owner: 'bench-scale' });
  const master = await startVolmaster({ cephConf: ctx.cluster.confPath, backend: 'native', prefix, security });
  const api = new ApiClient({ master: master.url, timeoutMs: 300_000, ca: security.caPem, token: security.adminToken });
  const hosts: SimHost[] = [];
  const out: Measurement[] = [];
  const tenants = Array.from({ length: TENANTS }, (_, i) => `${ctx.prefix}s${i}`);
  try {
    for (const t of tenants) await api.uploadTenant(t, benchPolicy(ctx.cluster.pool));
    // A record as volmaster writes it: the template of the simulated volumes.
    const template = (await api.createVolume(tenants[0]!, 'template')).volume;
    await api.removeVolume(tenants[0]!, 'template');
    for (let h = 0; h < SCALE_HOSTS; h++) {
      hosts.push({ id: `00000000-0000-4000-8000-${String(h).padStart(12, '0')}`, lease: await store.lease(60), entries: [] });
    }
    const records: VolumeRecord[] = [];
    let mounted = 0;
    for (const target of sizes.volumes) {
      const started = performance.now();
      const fresh: VolumeRecord[] = [];
      for (let i = records.length; i < target; i++) {
        const tenant = tenants[i % TENANTS]!;
        const volume = `v${i}`;
        fresh.push({ ...template, tenant, volume, image: `${tenant}.${volume}`, createdAt: new Date().toISOString() });
      }
      await eachLimited(fresh, 32, async (r) => {
        if (!(await store.createVolume(r))) throw new Error(`scale: ${r.tenant}/${r.volume} exists already`);
      });
      records.push(...fresh);
      // Mount locks: the measured host (0) first up to its 200, then the others in turn.
      const wantMounted = Math.floor(records.length * MOUNTED_SHARE);
      const toMount = records.slice(mounted, Math.max(mounted, wantMounted));
      await eachLimited(toMount, 32, async (r, i) => {
        const n = mounted + i;
        const h = n < MEASURED_HOST_MOUNTS ? 0 : 1 + ((n - MEASURED_HOST_MOUNTS) % (SCALE_HOSTS - 1));
        const host = hosts[h]!;
        const e = localVolume(r, h, n, '/var/lib/volplugin/mounts');
        const lock: MountRecord = { tenant: r.tenant, volume: r.volume, host: `sim-${h}`, hostId: host.id, lease: host.lease.id, device: e.mapping.device!, mountpoint: e.mountpoint, mapper: 'fuse', clientAddress: e.mapping.clientAddress, since: e.since };
        const result = await store.acquireMount(lock, host.lease);
        if (!result.ok) throw new Error(`scale: mount lock of ${r.tenant}/${r.volume} refused: ${JSON.stringify(result)}`);
        host.entries.push(e);
      });
      mounted += toMount.length;
      await eachLimited(hosts, 16, async (host, h) => {
        await store.putHostReport(hostReport({ id: host.id, label: `sim-${h}` }, 'bench', host.entries, []), host.lease);
      });
      progress(`scale: ${records.length} volumes, ${mounted} mount locks on ${SCALE_HOSTS} hosts written in ${Math.round(performance.now() - started)} ms`);

      // list-all through the API, as `volcli volume list` does.
      const listMs: number[] = [];
      for (let r = 0; r < sizes.rounds; r++) {
        const t0 = performance.now();
        const listed = await api.listVolumes();
        listMs.push(performance.now() - t0);
        if (listed.length < records.length) throw new Error(`scale: list-all returned ${listed.length} of ${records.length} volumes`);
      }
      const masterRss = rssMiB(master.child.pid!);

      // One convergence pass of host 0 (observe + plan, no actions): CPU of this process.
      const host = hosts[0]!;
      const observer = new HostObserver({
        hostId: host.id,
        mountRoot: '/var/lib/volplugin/mounts',
        local: { all: () => host.entries } as never,
        lease: { get: async () => host.lease } as never,
        mapper: { discover: async () => host.entries.map((e) => e.mapping), isMapped: async () => true },
        store,
        mutex: { keys: () => [] } as never,
        log: { warn: (obj, msg) => progress(`scale: observer: ${msg} ${JSON.stringify(obj)}`) },
        readMounts: async () => host.entries.map((e, n) => mountInfoOf(e, n)),
      });
      // The first pass after a start lists every lock of the cluster once (observe.ts); it is
      // measured apart, the passes after it read the host's own locks through its index.
      const f0 = process.cpuUsage();
      await observer.observe();
      const f = process.cpuUsage(f0);
      const firstPassCpuMs = Math.round((f.user + f.system) / 100) / 10;
      const cpuMs: number[] = [];
      const wallMs: number[] = [];
      let actions = 0;
      for (let r = 0; r < Math.max(3, sizes.rounds); r++) {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const plan = planConvergence(await observer.observe());
        wallMs.push(performance.now() - t0);
        const c = process.cpuUsage(c0);
        cpuMs.push((c.user + c.system) / 1000);
        actions = plan.actions.length;
      }

      // etcd: the database as a whole, and what our keys hold.
      const db = await etcdDbSize(security);
      const ours = await kv.list(`${prefix}/`);
      const ourBytes = ours.reduce((sum, e) => sum + e.key.length + e.value.length, 0);

      const n = records.length;
      const listMedian = median(listMs);
      const common = { volumes: n, hosts: SCALE_HOSTS, mount_locks: mounted, etcd: 'TLS + users' };
      out.push({
        bench: 'scale',
        op: `scale_list_all_${n}`,
        backend: 'native',
        concurrency: 1,
        cluster: ctx.cluster.name,
        rounds: listMs.map((ms) => ({ latMs: [ms], wallMs: ms })),
        notes: { ...common, us_per_volume: Math.round((listMedian * 1000) / n), volmaster_rss_mib: masterRss, our_keys: ours.length, our_bytes: ourBytes, bytes_per_volume: Math.round(ourBytes / n), ...(db ? { etcd_db_bytes: db.dbSize, etcd_db_in_use_bytes: db.dbSizeInUse } : {}) },
      });
      out.push({
        bench: 'scale',
        op: `scale_converge_pass_${n}`,
        backend: 'native',
        concurrency: 1,
        cluster: ctx.cluster.name,
        rounds: wallMs.map((ms) => ({ latMs: [ms], wallMs: ms })),
        notes: { ...common, host_mounts: host.entries.length, cpu_ms_median: Math.round(median(cpuMs) * 10) / 10, cpu_ms_all: cpuMs.map((v) => Math.round(v * 10) / 10).join(' '), first_pass_cpu_ms: firstPassCpuMs, planned_actions: actions },
      });
      progress(`scale: ${n} volumes: list-all ${listMedian.toFixed(0)} ms, volmaster RSS ${masterRss} MiB, convergence pass ${median(cpuMs).toFixed(1)} ms CPU (${host.entries.length} mounts), our keys ${ourBytes} bytes`);
    }
    missing.push('scale: the supervisor round at 100/1,000/10,000 volumes (the simulated volumes have no images) and a real host with 200 mounted volumes are not measured');
    return out;
  } catch (err) {
    missing.push(`scale: ${(err as Error).message.split('\n')[0]}`);
    progress(`WARNING: scale: ${(err as Error).stack ?? String(err)}`);
    return out;
  } finally {
    for (const h of hosts) await h.lease.revoke().catch(() => undefined);
    // The simulated records: everything under the run's prefix goes.
    await etcdctl(security, ['del', '--prefix', `${prefix}/`]).catch(() => undefined);
    await api.close().catch(() => undefined);
    await stopVolmaster(master);
    await store.close();
  }
}
