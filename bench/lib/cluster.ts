// The throw-away clusters the benchmarks run on, started with scripts/sandbox.sh under
// .sandbox-bench/ on ports of their own, so a benchmark never disturbs `make up` (.sandbox/) or
// `make test` (.sandbox-test/). A cluster that is already running there is reused; one the run
// started is stopped at the end.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Storage } from '../../src/storage/types.js';

const execFileP = promisify(execFile);

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const benchRoot = path.join(repoRoot, '.sandbox-bench');
const sandboxScript = path.join(repoRoot, 'scripts', 'sandbox.sh');

export interface ClusterSpec {
  /** "tuned" (paxos propose interval 0.01 s, the sandbox's) or "default-paxos" (Ceph's 1 s). */
  name: string;
  /** State dir passed to sandbox.sh (its Ceph lives in DIR/ceph). */
  dir: string;
  monV2: number;
  monV1: number;
  /** The `paxos propose interval` to start the cluster with. */
  paxos: number;
}

export interface Cluster extends ClusterSpec {
  confPath: string;
  pool: string;
  /** The interval the running mon reports (admin socket), in seconds. */
  paxosInForce: number;
  /** True when this run started it (and so stops it). */
  startedHere: boolean;
}

/**
 * VOLPLUGIN_BENCH_PORT_OFFSET shifts every bench port (0 to 99), so that benchmarks of two
 * checkouts can run on one machine at once (each checkout has its own .sandbox-bench/).
 */
const offset = (() => {
  const value = Number(process.env.VOLPLUGIN_BENCH_PORT_OFFSET ?? 0);
  if (!Number.isInteger(value) || value < 0 || value > 99) {
    throw new RangeError(`VOLPLUGIN_BENCH_PORT_OFFSET must be a whole number from 0 to 99, got ${JSON.stringify(process.env.VOLPLUGIN_BENCH_PORT_OFFSET)}`);
  }
  return value;
})();

export const clusterSpecs = {
  tuned: { name: 'tuned', dir: benchRoot, monV2: 31300 + offset, monV1: 31789 + offset, paxos: 0.01 },
  defaultPaxos: { name: 'default-paxos', dir: path.join(benchRoot, 'paxos1'), monV2: 32300 + offset, monV1: 32500 + offset, paxos: 1 },
} satisfies Record<string, ClusterSpec>;

// Every port here is below Linux's ephemeral range (32768-60999), where an outgoing connection
// could hold it, and no two ranges overlap, whatever the offsets.
export const etcdPorts = { client: 31500 + offset, peer: 31600 + offset } as const;

/** Runs a command, returning stdout; the error names the command and carries its stderr. */
export async function sh(
  cmd: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<string> {
  try {
    const { stdout } = await execFileP(cmd, args, {
      cwd: repoRoot,
      env: options.env ?? process.env,
      timeout: options.timeoutMs ?? 120_000,
      maxBuffer: 64 << 20,
    });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr || e.message).trim()}`);
  }
}

async function pidAlive(pidfile: string): Promise<boolean> {
  try {
    await execFileP(sandboxScript, ['pid-alive', pidfile]);
    return true;
  } catch {
    return false;
  }
}

/** Reads `paxos_propose_interval` from the running mon through its admin socket. */
export async function paxosInForce(dir: string): Promise<number> {
  const asok = path.join(dir, 'ceph', 'run', 'mon.a.asok');
  const out = await sh('ceph', ['--admin-daemon', asok, 'config', 'get', 'paxos_propose_interval']);
  const value = Number((JSON.parse(out) as { paxos_propose_interval?: string }).paxos_propose_interval);
  if (!Number.isFinite(value)) throw new Error(`mon.a at ${asok} reported no paxos_propose_interval: ${out}`);
  return value;
}

/**
 * Starts the cluster unless it runs already. A running one with another paxos interval than the
 * spec asks for is stopped and started again (its data lived in RAM and belonged to benchmarks).
 */
export async function ensureCluster(spec: ClusterSpec): Promise<Cluster> {
  const confPath = path.join(spec.dir, 'ceph', 'ceph.conf');
  const monPid = path.join(spec.dir, 'ceph', 'run', 'mon.a.pid');
  let running = existsSync(confPath) && (await pidAlive(monPid));
  if (running && Math.abs((await paxosInForce(spec.dir).catch(() => Number.NaN)) - spec.paxos) > 1e-9) {
    await stopCluster(spec);
    running = false;
  }
  await sh(sandboxScript, ['ceph-up', spec.dir, String(spec.monV2), String(spec.monV1)], {
    // 12 GiB of memstore: the backup bench rewrites 1% of a 1 GiB image in 4 KiB pieces after each
    // snapshot, so every round clones most of its objects (4 GiB filled the OSD in round 2).
    env: { ...process.env, CEPH_PAXOS_PROPOSE_INTERVAL: String(spec.paxos), CEPH_MEMSTORE_BYTES: String(12 * 2 ** 30) },
    timeoutMs: 180_000,
  });
  return { ...spec, confPath, pool: 'rbd', paxosInForce: await paxosInForce(spec.dir), startedHere: !running };
}

/** Stops the Ceph daemons of a bench cluster (and anything else sandbox.sh started under its dir). */
export async function stopCluster(spec: Pick<ClusterSpec, 'dir'>): Promise<void> {
  await sh(sandboxScript, ['down', spec.dir], { timeoutMs: 120_000 });
}

/** The bench etcd as production runs it: TLS with client certificates, and a user per component. */
export interface BenchEtcd {
  /** https://localhost:PORT */
  url: string;
  ca: string;
  cert: string;
  key: string;
  passwordFile(user: 'root' | 'volplugin' | 'volplugin-host'): string;
  /** The daemon flags for `user`: --etcd with its TLS and user flags. */
  flags(user: 'volplugin' | 'volplugin-host'): string[];
  startedHere: boolean;
}

/**
 * Starts the bench etcd (for volmaster, volsupervisor and the simulated hosts) unless it runs:
 * with TLS and users (`sandbox.sh etcd-up --secure`), as `make up` and production run it, so that
 * what authentication costs etcd is in every number.
 */
export async function ensureEtcd(): Promise<BenchEtcd> {
  const dir = path.join(benchRoot, 'etcd');
  const running = (await pidAlive(path.join(dir, 'etcd.pid'))) && existsSync(path.join(dir, 'users.done'));
  await sh(sandboxScript, ['etcd-up', benchRoot, String(etcdPorts.client), String(etcdPorts.peer), '--secure'], { timeoutMs: 90_000 });
  const pki = path.join(dir, 'pki');
  const etcd: BenchEtcd = {
    url: `https://localhost:${etcdPorts.client}`,
    ca: path.join(pki, 'ca.pem'),
    cert: path.join(pki, 'client.pem'),
    key: path.join(pki, 'client-key.pem'),
    passwordFile: (user) => path.join(pki, `${user}.password`),
    flags: (user) => ['--etcd', etcd.url, '--etcd-ca', etcd.ca, '--etcd-cert', etcd.cert, '--etcd-key', etcd.key, '--etcd-user', user, '--etcd-password-file', etcd.passwordFile(user)],
    startedHere: !running,
  };
  return etcd;
}

/** The CA, volmaster's TLS certificate and the bootstrap admin token (mode 600) of the bench, made once under .sandbox-bench/tls/. */
export async function ensureMasterTls(): Promise<{ ca: string; cert: string; key: string; tokenFile: string }> {
  const dir = path.join(benchRoot, 'tls');
  const files = { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'master.pem'), key: path.join(dir, 'master.key'), tokenFile: path.join(dir, 'token') };
  if (Object.values(files).every((f) => existsSync(f))) return files;
  await mkdir(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await sh('openssl', ['req', '-x509', ...ec, '-keyout', path.join(dir, 'ca.key'), '-out', files.ca, '-days', '3650', '-subj', '/CN=volplugin bench CA']);
  await sh('openssl', ['req', ...ec, '-keyout', files.key, '-out', path.join(dir, 'master.csr'), '-subj', '/CN=volmaster']);
  await writeFile(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await sh('openssl', ['x509', '-req', '-in', path.join(dir, 'master.csr'), '-CA', files.ca, '-CAkey', path.join(dir, 'ca.key'), '-CAcreateserial', '-out', files.cert, '-days', '3650', '-extfile', path.join(dir, 'san.ext')]);
  await chmod(files.key, 0o600);
  await writeFile(files.tokenFile, `${randomBytes(24).toString('hex')}\n`, { mode: 0o600 });
  return files;
}

export async function stopEtcd(): Promise<void> {
  await sh(sandboxScript, ['stop-pid', path.join(benchRoot, 'etcd', 'etcd.pid'), 'etcd']);
}

/** The `rbd` CLI against a cluster, for setup and cleanup outside the timed phases. */
export function rbd(cluster: Pick<Cluster, 'confPath'>, args: readonly string[]): Promise<string> {
  return sh('rbd', ['-c', cluster.confPath, ...args]);
}

/**
 * Removes every image (and its snapshots) whose name starts with `prefix`: this run's images, or
 * leftovers of a crashed run. With a storage backend (the addon) 16 at a time, else one `rbd`
 * process after another (the 256 images of the default-paxos benchmark take two minutes that way).
 */
export async function removeImagesWithPrefix(cluster: Cluster, prefix: string, storage?: Storage): Promise<number> {
  const names = storage
    ? await storage.listImages(cluster.pool)
    : (JSON.parse(await rbd(cluster, ['ls', '--format', 'json', cluster.pool])) as string[]);
  const ours = names.filter((n) => n.startsWith(prefix));
  const removeOne = async (name: string) => {
    if (!storage) {
      await rbd(cluster, ['snap', 'purge', '--no-progress', `${cluster.pool}/${name}`]).catch(() => undefined);
      await rbd(cluster, ['rm', '--no-progress', `${cluster.pool}/${name}`]);
      return;
    }
    for (const snap of await storage.listSnapshots(cluster.pool, name)) {
      if (snap.protected) await storage.unprotectSnapshot(cluster.pool, name, snap.name);
      await storage.removeSnapshot(cluster.pool, name, snap.name);
    }
    await storage.removeImage(cluster.pool, name);
  };
  const width = storage ? 16 : 1;
  for (let i = 0; i < ours.length; i += width) await Promise.all(ours.slice(i, i + width).map(removeOne));
  return ours.length;
}
