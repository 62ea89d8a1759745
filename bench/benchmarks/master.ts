// The master's API: volume create, get and remove requests per second through a real volmaster
// process (the bench etcd + the bench Ceph) with several clients at once, once with each storage
// backend (`volmaster --backend native|cli`). Clients are ApiClient instances, as volcli and the
// plugin use them, each doing its requests one after another.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { openEtcd } from '../../src/common/etcd.js';
import type { EtcdKV } from '../../src/state/etcd.js';
import { ApiClient } from '../../src/api/client.js';
import type { NodeBackend } from '../lib/backends.js';
import { cPhases, RBD_FEATURE, runCLoop } from '../lib/c-loop.js';
import { type BenchEtcd, benchRoot, ensureEtcd, ensureMasterTls, repoRoot, stopEtcd } from '../lib/cluster.js';
import { setEtcdPidFile, setServicePids } from '../lib/cpu.js';
import type { BenchContext, Sizes } from '../lib/context.js';
import type { Measurement } from '../lib/harness.js';
import { type Contender, measureInterleaved, progress, runPhase } from '../lib/harness.js';

/** Clients sending requests at the same time. */
export const MASTER_CLIENTS = 8;

/** A free TCP port on loopback. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (address && typeof address === 'object' ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

interface Volmaster {
  url: string;
  child: ChildProcess;
  log: string[];
}

/** How volmaster is run: the built dist/ when present (make bench builds it), else from source with tsx. */
export function volmasterCommand(): { command: string; args: string[]; from: string } {
  const dist = path.join(repoRoot, 'dist', 'master', 'main.js');
  // VOLPLUGIN_BENCH_CPU_PROF=DIR: every volmaster writes a V8 CPU profile there when it exits
  // (what docs/performance.md's profile of the API was made with).
  const prof = process.env.VOLPLUGIN_BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(process.env.VOLPLUGIN_BENCH_CPU_PROF)] : [];
  if (existsSync(dist)) return { command: process.execPath, args: [...prof, dist], from: 'dist/master/main.js' };
  return { command: process.execPath, args: [...prof, '--import', 'tsx', path.join(repoRoot, 'src', 'master', 'main.ts')], from: 'src/master/main.ts (tsx)' };
}

/** What every bench volmaster runs with: the secure etcd, HTTPS and the bootstrap token, as production does. */
export interface Security {
  etcd: BenchEtcd;
  tls: { ca: string; cert: string; key: string; tokenFile: string };
  /** The CA's PEM, for ApiClient. */
  caPem: string;
  /** The bootstrap admin token (volcli's). */
  adminToken: string;
}

/** An etcd client as volmaster has it (TLS, user volplugin), for the benchmarks' own reads and writes. */
export function benchEtcdClient(security: Security): Promise<EtcdKV> {
  const e = security.etcd;
  return openEtcd({ etcd: [e.url], etcdSecurity: { ca: e.ca, cert: e.cert, key: e.key, user: 'volplugin', passwordFile: e.passwordFile('volplugin') } });
}

export async function benchSecurity(): Promise<Security> {
  const etcd = await ensureEtcd();
  const tls = await ensureMasterTls();
  return { etcd, tls, caPem: readFileSync(tls.ca, 'utf8'), adminToken: readFileSync(tls.tokenFile, 'utf8').trim() };
}

export async function startVolmaster(options: { cephConf: string; backend: NodeBackend; prefix: string; security: Security; extraArgs?: string[] }): Promise<Volmaster> {
  const port = await freePort();
  const { command, args } = volmasterCommand();
  const { security } = options;
  const child = spawn(
    command,
    [
      ...args,
      '--listen',
      `127.0.0.1:${port}`,
      ...security.etcd.flags('volplugin'),
      '--prefix',
      options.prefix,
      '--backend',
      options.backend,
      '--ceph-conf',
      options.cephConf,
      '--janitor-seconds',
      '0',
      '--metrics-listen',
      'none',
      '--tls-cert',
      security.tls.cert,
      '--tls-key',
      security.tls.key,
      '--token-file',
      security.tls.tokenFile,
      ...(options.extraArgs ?? []),
    ],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const log: string[] = [];
  const keep = (chunk: Buffer) => {
    log.push(...chunk.toString().split('\n').filter(Boolean));
    if (log.length > 50) log.splice(0, log.length - 50);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const url = `https://127.0.0.1:${port}`;
  const client = new ApiClient({ master: url, timeoutMs: 2_000, ca: security.caPem });
  const deadline = Date.now() + 60_000;
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`volmaster exited with status ${child.exitCode}:\n${log.slice(-10).join('\n')}`);
      try {
        await client.health();
        return { url, child, log };
      } catch {
        if (Date.now() > deadline) {
          child.kill('SIGKILL');
          throw new Error(`volmaster did not answer /v1/health within 60 s:\n${log.slice(-10).join('\n')}`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } finally {
    await client.close();
  }
}

export async function stopVolmaster(v: Volmaster): Promise<void> {
  if (v.child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => v.child.once('exit', () => resolve()));
  v.child.kill('SIGTERM');
  const timer = setTimeout(() => v.child.kill('SIGKILL'), 35_000);
  await exited;
  clearTimeout(timer);
}

/** The tenant policy of examples/tenant1.json with its pool set to the bench pool. */
export function benchPolicy(pool: string): object {
  const policy = JSON.parse(readFileSync(path.join(repoRoot, 'examples', 'tenant1.json'), 'utf8')) as {
    'default-options': Record<string, unknown>;
  };
  policy['default-options'].pool = pool;
  return policy;
}

/** Per client and round: this many creates (and removes), GETS_PER_CREATE times as many gets, and read-after-write pairs. */
const GETS_PER_CREATE = 20;
const PAIRS_PER_CREATE = 2;

export async function masterBench(ctx: BenchContext, sizes: Sizes, missing: string[]): Promise<Measurement[]> {
  const security = await benchSecurity();
  const tenant = `${ctx.prefix}t`;
  const masters: Array<{ backend: NodeBackend; master: Volmaster; second?: Volmaster }> = [];
  const clients: ApiClient[] = [];
  const newClient = (url: string, token: string) => {
    const c = new ApiClient({ master: url, timeoutMs: 120_000, ca: security.caPem, token });
    clients.push(c);
    return c;
  };
  try {
    // One volmaster per backend, both up for the whole benchmark so their rounds can alternate; the
    // native one has a second master on the same prefix, for reads that follow a write made through
    // the other one.
    for (const backend of ctx.backends) {
      try {
        const prefix = `/volplugin/bench/${ctx.prefix}${backend}`;
        const start = () => startVolmaster({ cephConf: ctx.cluster.confPath, backend, prefix, security });
        const master = await start();
        masters.push({ backend, master, ...(backend === 'native' ? { second: await start() } : {}) });
      } catch (err) {
        missing.push(`master API (${backend}): ${(err as Error).message.split('\n')[0]}`);
        progress(`WARNING: master API (${backend}): ${(err as Error).message}`);
      }
    }
    setServicePids(masters.flatMap((m) => [m.master.child.pid, m.second?.child.pid]).filter((p): p is number => p !== undefined));
    setEtcdPidFile(path.join(benchRoot, 'etcd', 'etcd.pid'));
    const contenders: Contender[] = [];
    for (const { backend, master, second } of masters) {
      const admin = newClient(master.url, security.adminToken);
      await admin.uploadTenant(tenant, benchPolicy(ctx.cluster.pool));
      // The clients are what volplugin is: a host token each (role host), as production runs.
      const hostToken = (await admin.createToken(`bench-host-${backend}-${ctx.prefix.slice(6, -1)}`, 'host')).token;
      const hosts = Array.from({ length: MASTER_CLIENTS }, () => newClient(master.url, hostToken));
      const admins = Array.from({ length: MASTER_CLIENTS }, () => newClient(master.url, security.adminToken));
      const readers = second ? Array.from({ length: MASTER_CLIENTS }, () => newClient(second.url, hostToken)) : [];
      const stale = { reads: 0, checked: 0 };
      const notes: Record<string, string | number | boolean> = { tls: true, tokens: 'host', etcd: 'TLS + users' };
      contenders.push({
        spec: { bench: 'master', backend, concurrency: MASTER_CLIENTS, cluster: ctx.cluster.name, notes },
        round: async (r) => {
          // The CLI backend creates about a tenth as fast: fewer of its creates keep the rounds short.
          const count = backend === 'cli' ? Math.max(1, Math.ceil(sizes.count / 4)) : sizes.count;
          // Both volmasters share the Ceph pool: their image names differ by backend.
          const volume = (w: number, i: number) => `v${backend[0]}${r}-${w}-${i}`;
          const create = await runPhase('api_volume_create', MASTER_CLIENTS, count, async (w, i) => {
            await hosts[w]!.createVolume(tenant, volume(w, i));
          });
          const get = await runPhase('api_volume_get', MASTER_CLIENTS, count * GETS_PER_CREATE, async (w, i) => {
            await hosts[w]!.getVolume(tenant, volume(w, i % count));
          });
          const phases = [create, get];
          if (second) {
            // A write through one master, then a read through the other: the read must see it.
            phases.push(
              await runPhase('api_read_after_write', MASTER_CLIENTS, count * PAIRS_PER_CREATE, async (w, i) => {
                const keep = ((r * 997 + w * 31 + i) % 50) + 1;
                await admins[w]!.setRuntime(tenant, volume(w, i % count), { 'snapshots.keep': keep });
                const seen = await readers[w]!.getVolume(tenant, volume(w, i % count));
                stale.checked++;
                if (seen.runtime.snapshot.keep !== keep) stale.reads++;
              }),
            );
          }
          phases.push(
            await runPhase('api_volume_remove', MASTER_CLIENTS, count, async (w, i) => {
              // Removing data takes an admin (volcli volume remove); a host may only forget records.
              await admins[w]!.removeVolume(tenant, volume(w, i));
            }),
          );
          if (second) Object.assign(notes, { read_after_write_checked: stale.checked, stale_reads: stale.reads });
          return phases;
        },
      });
    }
    // Creates alone, for their CPU by party (the round's CPU divided by its creates; the volumes are
    // removed after the measurement, outside every round): what a create costs the machine.
    const native = masters.find((m) => m.backend === 'native');
    const createdAlone: string[] = [];
    let createsAlone: { hosts: ApiClient[]; admin: ApiClient } | null = null;
    if (native) {
      const hostToken = (await newClient(native.master.url, security.adminToken).createToken(`bench-alone-${ctx.prefix.slice(6, -1)}`, 'host')).token;
      createsAlone = { hosts: Array.from({ length: MASTER_CLIENTS }, () => newClient(native.master.url, hostToken)), admin: newClient(native.master.url, security.adminToken) };
      const alone = createsAlone;
      contenders.push({
        spec: { bench: 'master', backend: 'native', concurrency: MASTER_CLIENTS, cluster: ctx.cluster.name, notes: { probe: 'creates alone (CPU per create by party)', tls: true, etcd: 'TLS + users' } },
        round: async (r) => [
          await runPhase('api_volume_create_alone', MASTER_CLIENTS, sizes.count, async (w, i) => {
            const name = `va${r}-${w}-${i}`;
            await alone.hosts[w]!.createVolume(tenant, name);
            createdAlone.push(name);
          }),
        ],
      });
    }
    // What one etcd write costs here (a volume create makes several), through the same TLS and user.
    const etcdClient = await benchEtcdClient(security);
    contenders.push({
      spec: { bench: 'master', backend: 'native', concurrency: 1, cluster: ctx.cluster.name, notes: { probe: 'etcd3 put', etcd: 'TLS + users' } },
      round: async (r) => [
        await runPhase('etcd_put', 1, 20, async (_w, i) => {
          await etcdClient.put(`/volplugin/bench/${ctx.prefix}probe/${r}/${i}`, 'x');
        }),
      ],
    });
    // The floors of a GET: the master answering without etcd (GET /v1/health: HTTPS, routing, no
    // token check), and etcd answering the same reads without the master (8 clients' gets of one
    // record each, through the same client code volmaster uses, whose concurrent gets go together).
    if (native) {
      const probes = Array.from({ length: MASTER_CLIENTS }, () => newClient(native.master.url, security.adminToken));
      const key = `/volplugin/bench/${ctx.prefix}probe/get`;
      await etcdClient.put(key, JSON.stringify({ a: 'record of about the size of a volume', pad: 'x'.repeat(600) }));
      contenders.push({
        spec: { bench: 'master', backend: 'native', concurrency: MASTER_CLIENTS, cluster: ctx.cluster.name, notes: { probe: 'floors of a GET', etcd: 'TLS + users' } },
        round: async () => [
          await runPhase('api_health', MASTER_CLIENTS, sizes.count * GETS_PER_CREATE, async (w) => {
            await probes[w]!.health();
          }),
          await runPhase('etcd_get', MASTER_CLIENTS, sizes.count * GETS_PER_CREATE, async () => {
            await etcdClient.get(key);
          }),
        ],
      });
    }
    // The Ceph floor of a create: the C program creating (and removing) images with the features
    // volmaster gives a volume, 8 at once like the API clients, with no etcd, HTTP or metadata.
    if (ctx.storage.native) {
      contenders.push({
        spec: { bench: 'master', backend: 'c', concurrency: MASTER_CLIENTS, cluster: ctx.cluster.name, notes: { probe: 'Ceph floor of a create', features: 'layering,exclusive-lock,object-map,fast-diff' } },
        round: async (r) =>
          cPhases(
            await runCLoop(ctx.cluster, {
              mode: 'image',
              prefix: `${ctx.prefix}mc${r}`,
              workers: MASTER_CLIENTS,
              count: sizes.count,
              size: 2 ** 30,
              features: RBD_FEATURE.layering | RBD_FEATURE.exclusiveLock | RBD_FEATURE.objectMap | RBD_FEATURE.fastDiff,
            }),
            { image_create: 'c_image_create_8', image_remove: 'c_image_remove_8' },
          ),
      });
    }
    const out = await measureInterleaved(contenders, sizes.warmup, sizes.rounds).finally(() => etcdClient.close());
    if (createsAlone) {
      const { admin } = createsAlone;
      for (const name of createdAlone) await admin.removeVolume(tenant, name).catch((err: Error) => progress(`cleanup: ${name}: ${err.message}`));
    }
    for (const { master } of masters) await newClient(master.url, security.adminToken).deleteTenant(tenant).catch(() => undefined);
    return out;
  } finally {
    setServicePids([]);
    setEtcdPidFile(null);
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    for (const { master, second } of masters) {
      await stopVolmaster(master);
      if (second) await stopVolmaster(second);
    }
    if (security.etcd.startedHere && !ctx.keep) await stopEtcd();
  }
}
