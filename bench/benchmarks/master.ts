// The master's API: volume create, get and remove requests per second through a real volmaster
// process (the bench etcd + the bench Ceph) with several clients at once, once with each storage
// backend (`volmaster --backend native|cli`). Clients are ApiClient instances, as volcli and the
// plugin use them, each doing its requests one after another.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { ApiClient } from '../../src/api/client.js';
import type { NodeBackend } from '../lib/backends.js';
import { benchRoot, ensureEtcd, repoRoot, stopEtcd } from '../lib/cluster.js';
import { setEtcdPidFile, setServicePids } from '../lib/cpu.js';
import type { BenchContext, Sizes } from '../lib/context.js';
import type { Measurement } from '../lib/harness.js';
import { type Contender, measureInterleaved, progress, runPhase } from '../lib/harness.js';

/** Clients sending requests at the same time. */
export const MASTER_CLIENTS = 8;
/** Gets per volume created: reads are what volcli and the plugin do most. */
const GETS_PER_CREATE = 4;

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
  if (existsSync(dist)) return { command: process.execPath, args: [dist], from: 'dist/master/main.js' };
  return { command: process.execPath, args: ['--import', 'tsx', path.join(repoRoot, 'src', 'master', 'main.ts')], from: 'src/master/main.ts (tsx)' };
}

async function startVolmaster(ctx: BenchContext, backend: NodeBackend, etcdUrl: string): Promise<Volmaster> {
  const port = await freePort();
  const { command, args } = volmasterCommand();
  const child = spawn(
    command,
    [
      ...args,
      '--listen',
      `127.0.0.1:${port}`,
      '--etcd',
      etcdUrl,
      '--prefix',
      `/volplugin-bench/${ctx.prefix}${backend}`,
      '--backend',
      backend,
      '--ceph-conf',
      ctx.cluster.confPath,
      '--janitor-seconds',
      '0',
      '--metrics-listen',
      'none',
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
  const url = `http://127.0.0.1:${port}`;
  const client = new ApiClient({ master: url, timeoutMs: 2_000 });
  const deadline = Date.now() + 60_000;
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
}

async function stopVolmaster(v: Volmaster): Promise<void> {
  if (v.child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => v.child.once('exit', () => resolve()));
  v.child.kill('SIGTERM');
  const timer = setTimeout(() => v.child.kill('SIGKILL'), 35_000);
  await exited;
  clearTimeout(timer);
}

/** The tenant policy of examples/tenant1.json with its pool set to the bench pool. */
function benchPolicy(pool: string): object {
  const policy = JSON.parse(readFileSync(path.join(repoRoot, 'examples', 'tenant1.json'), 'utf8')) as {
    'default-options': Record<string, unknown>;
  };
  policy['default-options'].pool = pool;
  return policy;
}

export async function masterBench(ctx: BenchContext, sizes: Sizes, missing: string[]): Promise<Measurement[]> {
  const etcd = await ensureEtcd();
  const tenant = `${ctx.prefix}t`;
  const masters: Array<{ backend: NodeBackend; master: Volmaster }> = [];
  try {
    // One volmaster per backend, both up for the whole benchmark so their rounds can alternate.
    for (const backend of ctx.backends) {
      try {
        masters.push({ backend, master: await startVolmaster(ctx, backend, etcd.url) });
      } catch (err) {
        missing.push(`master API (${backend}): ${(err as Error).message.split('\n')[0]}`);
        progress(`WARNING: master API (${backend}): ${(err as Error).message}`);
      }
    }
    setServicePids(masters.map((m) => m.master.child.pid!).filter(Boolean));
    setEtcdPidFile(path.join(benchRoot, 'etcd', 'etcd.pid'));
    const contenders: Contender[] = [];
    for (const { backend, master } of masters) {
      const clients = Array.from({ length: MASTER_CLIENTS }, () => new ApiClient({ master: master.url, timeoutMs: 120_000 }));
      await clients[0]!.uploadTenant(tenant, benchPolicy(ctx.cluster.pool));
      contenders.push({
        spec: { bench: 'master', backend, concurrency: MASTER_CLIENTS, cluster: ctx.cluster.name },
        round: async (r) => {
          // Both volmasters share the Ceph pool: their image names differ by backend.
          const volume = (w: number, i: number) => `v${backend[0]}${r}-${w}-${i}`;
          const create = await runPhase('api_volume_create', MASTER_CLIENTS, sizes.count, async (w, i) => {
            await clients[w]!.createVolume(tenant, volume(w, i));
          });
          const get = await runPhase('api_volume_get', MASTER_CLIENTS, sizes.count * GETS_PER_CREATE, async (w, i) => {
            await clients[w]!.getVolume(tenant, volume(w, i % sizes.count));
          });
          const remove = await runPhase('api_volume_remove', MASTER_CLIENTS, sizes.count, async (w, i) => {
            await clients[w]!.removeVolume(tenant, volume(w, i));
          });
          return [create, get, remove];
        },
      });
    }
    // What one etcd write costs here (a volume create makes several: intent, lock, record, unlock).
    const etcdClient = new Etcd3({ hosts: etcd.url });
    contenders.push({
      spec: { bench: 'master', backend: 'native', concurrency: 1, cluster: ctx.cluster.name, notes: { probe: 'etcd3 put' } },
      round: async (r) => [
        await runPhase('etcd_put', 1, 20, async (_w, i) => {
          await etcdClient.put(`/volplugin-bench/${ctx.prefix}probe/${r}/${i}`).value('x');
        }),
      ],
    });
    const out = await measureInterleaved(contenders, sizes.warmup, sizes.rounds).finally(() => etcdClient.close());
    for (const { master } of masters) await new ApiClient({ master: master.url }).deleteTenant(tenant).catch(() => undefined);
    return out;
  } finally {
    setServicePids([]);
    setEtcdPidFile(null);
    for (const { master } of masters) await stopVolmaster(master);
    if (etcd.startedHere && !ctx.keep) await stopEtcd();
  }
}
