// Real volmaster and volplugin processes for the plugin's integration and e2e tests: started from
// dist/ with their own etcd prefix, plugin name, socket, mount root and state dir under
// VOLPLUGIN_TEST_ROOT; spoken to over HTTP (master) and the plugin socket (Docker's protocol).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import path from 'node:path';
import { ApiClient } from '../../src/api/client.js';
import { repoRoot, testBackend as backend } from './sandbox.js';
import { freePort } from './net.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export { backend };

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run through vitest (test/helpers/global-setup.ts sets it)`);
  return value;
}

/** The daemon as users start it: bin/vol<role>.cjs (which loads dist/<role>/main.js). */
export function bin(role: 'master' | 'plugin'): string {
  const main = path.join(repoRoot, 'dist', role, 'main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: build first (pnpm build:ts)`);
  const launcher = path.join(repoRoot, 'bin', `vol${role}.cjs`);
  return existsSync(launcher) ? launcher : main;
}


export async function waitFor(what: string, check: () => Promise<boolean>, ms: number, every = 100): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(every);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/**
 * Each daemon's own cephx key, with the least caps it works with (scripts/sandbox.sh makes them):
 * the tests run volmaster and volplugin as they should run in production.
 */
export function cephArgs(component: 'volmaster' | 'volplugin' | 'volsupervisor', conf = env('CEPH_CONF')): string[] {
  return ['--ceph-conf', conf, '--ceph-id', component, '--ceph-keyring', path.join(path.dirname(conf), `ceph.client.${component}.keyring`)];
}

/** A short random id for names (tenant, plugin, prefix). */
export function uniq(): string {
  return randomBytes(4).toString('hex');
}

/**
 * Test daemons serve no metrics unless a test asks (--metrics-listen): on their default ports,
 * parallel daemons (several hosts, the chaos suite outside vitest) would compete for one port.
 */
const METRICS_OFF: Record<string, string> = { VOLMASTER_METRICS_LISTEN: 'none', VOLPLUGIN_METRICS_LISTEN: 'none', VOLSUPERVISOR_METRICS_LISTEN: 'none' };

export class Proc {
  proc: ChildProcess | null = null;
  exited: Promise<number | null> = Promise.resolve(null);
  constructor(
    readonly name: string,
    readonly logFile: string,
  ) {}

  async spawn(args: string[], env: Record<string, string> = {}): Promise<void> {
    await mkdir(path.dirname(this.logFile), { recursive: true });
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...METRICS_OFF, ...process.env, ...env } });
    this.proc = proc;
    const chunks: Buffer[] = [];
    const append = (d: Buffer) => {
      chunks.push(d);
      void writeFile(this.logFile, d, { flag: 'a' });
    };
    proc.stdout!.on('data', append);
    proc.stderr!.on('data', append);
    this.exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
  }

  get pid(): number {
    return this.proc?.pid ?? 0;
  }

  async logs(): Promise<string> {
    return readFile(this.logFile, 'utf8').catch(() => '');
  }

  signal(sig: NodeJS.Signals): void {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(sig);
  }

  async stop(timeoutMs = 15_000): Promise<void> {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.signal('SIGCONT');
    this.signal('SIGTERM');
    const done = await Promise.race([this.exited.then(() => true), sleep(timeoutMs).then(() => false)]);
    if (!done) {
      this.signal('SIGKILL');
      await this.exited;
    }
  }

  async kill9(): Promise<void> {
    this.signal('SIGKILL');
    await this.exited;
  }
}

export interface TestMaster {
  address: string;
  token: string;
  tokenFile: string;
  prefix: string;
  api: ApiClient;
  proc: Proc;
  stop(): Promise<void>;
  /** Starts it again on the same address, prefix and token (after stop). */
  restart(): Promise<void>;
}

/** Where a test daemon finds etcd and Ceph, and what else it is started with (default: the test services). */
export interface DaemonPlacement {
  /** The etcd flags (default: --etcd of the test etcd), e.g. secureEtcd().flags('volplugin-host'), or ['--etcd', proxy.url]. */
  etcd?: string[];
  /** The ceph.conf of another cluster (its per-component keyrings beside it, as scripts/sandbox.sh makes them). */
  cephConf?: string;
  /** Extra environment (test hooks such as VOLMASTER_FAILPOINTS, VOLPLUGIN_BOOT_ID_FILE). */
  env?: Record<string, string>;
  /** More flags, e.g. --metrics-listen, --tls-cert and --tls-key. */
  extraArgs?: string[];
}

/** The flags every volplugin host agent takes, the Docker plugin's and `volplugin csi`'s alike. */
export function hostAgentArgs(o: DaemonPlacement & { master: TestMaster; tokenFile?: string; label: string; mountRoot: string; stateDir: string }): string[] {
  return [
    '--master', o.master.address,
    '--token-file', o.tokenFile ?? o.master.tokenFile,
    ...(o.etcd ?? ['--etcd', env('VOLPLUGIN_TEST_ETCD')]),
    '--prefix', o.master.prefix,
    '--backend', backend,
    ...cephArgs('volplugin', o.cephConf),
    '--host-label', o.label,
    '--mount-root', o.mountRoot,
    '--state-dir', o.stateDir,
    '--mapper', 'fuse',
  ];
}

/**
 * Waits until `ready` holds for a daemon just spawned, failing at once when it exits first (it
 * will not start serving); either error carries the tail of its log.
 */
export async function untilServing(proc: Proc, name: string, what: string, ready: () => Promise<boolean>, ms: number): Promise<void> {
  const exitedEarly = proc.exited.then((code) => {
    throw new Error(`${name} exited with code ${code} while starting`);
  });
  exitedEarly.catch(() => undefined);
  await Promise.race([waitFor(`${name} to ${what}`, ready, ms), exitedEarly]).catch(async (err: Error) => {
    throw new Error(`${err.message}; log:\n${(await proc.logs()).slice(-2000)}`);
  });
}

export interface MasterOptions extends DaemonPlacement {
  /** The CA of the master's certificate when `extraArgs` give it one: the client then speaks https. */
  tlsCa?: string;
}

/** A volmaster on a free port with its own etcd prefix and token. */
export async function startMaster(root: string, prefix: string, placement: MasterOptions = {}): Promise<TestMaster> {
  const port = await freePort();
  const token = randomBytes(16).toString('hex');
  const tokenFile = path.join(root, 'token');
  await mkdir(root, { recursive: true });
  await writeFile(tokenFile, token, { mode: 0o600 });
  const address = `127.0.0.1:${port}`;
  const api = new ApiClient({ master: address, token, timeoutMs: 60_000, ca: placement.tlsCa ? await readFile(placement.tlsCa, 'utf8') : null });
  let starts = 0;
  const master: TestMaster = {
    address,
    token,
    tokenFile,
    prefix,
    api,
    proc: new Proc('volmaster', path.join(root, 'volmaster.log')),
    stop: () => master.proc.stop(),
    restart: async () => {
      const proc = new Proc('volmaster', path.join(root, `volmaster.${starts++}.log`));
      master.proc = proc;
      await proc.spawn(
        [
          bin('master'),
          '--listen', address,
          ...(placement.etcd ?? ['--etcd', env('VOLPLUGIN_TEST_ETCD')]),
          '--prefix', prefix,
          '--backend', backend,
          ...cephArgs('volmaster', placement.cephConf),
          '--token-file', tokenFile,
          ...(placement.extraArgs ?? []),
        ],
        placement.env,
      );
      await waitFor('volmaster to answer', async () => (await api.health()).status === 'ok', 20_000).catch(async (err: Error) => {
        throw new Error(`${err.message}; log:\n${(await proc.logs()).slice(-1500)}`);
      });
    },
  };
  await master.restart();
  return master;
}

export interface PluginOptions extends DaemonPlacement {
  /** Host label, also names the instance's directories. */
  label: string;
  root: string;
  master: TestMaster;
  lockTtl?: number;
  fenceSeconds?: number;
  convergeSeconds?: number;
  /**
   * --unmount-grace in seconds. Tests default to 0 (the last Unmount tears down at once, as the
   * tests of other concerns expect); the grace's own tests set it.
   */
  unmountGrace?: number;
  /** Docker API for rate limits (default none). */
  docker?: string;
}

export interface DockerAnswer {
  Err?: string;
  Mountpoint?: string;
  [key: string]: unknown;
}

/** One volplugin instance: its own plugin name, socket, mount root and state dir. */
export class TestPlugin {
  readonly pluginName: string;
  readonly socket: string;
  readonly mountRoot: string;
  readonly stateDir: string;
  proc: Proc;
  private starts = 0;

  constructor(readonly options: PluginOptions) {
    this.pluginName = `volplugin-test-${options.label}-${uniq()}`;
    this.socket = `/run/docker/plugins/${this.pluginName}.sock`;
    this.mountRoot = path.join(options.root, options.label, 'mnt');
    this.stateDir = path.join(options.root, options.label, 'state');
    this.proc = new Proc(this.pluginName, path.join(options.root, options.label, 'volplugin.log'));
  }

  static async start(options: PluginOptions): Promise<TestPlugin> {
    const plugin = new TestPlugin(options);
    await plugin.start();
    return plugin;
  }

  /** Starts (or starts again, after a stop or kill) with the same name, dirs and identity. */
  async start(): Promise<void> {
    const o = this.options;
    this.proc = new Proc(this.pluginName, path.join(o.root, o.label, `volplugin.${this.starts++}.log`));
    await this.proc.spawn([
      bin('plugin'),
      ...hostAgentArgs({ ...o, mountRoot: this.mountRoot, stateDir: this.stateDir }),
      '--plugin-name', this.pluginName,
      '--lock-ttl', String(o.lockTtl ?? 30),
      '--fence-seconds', String(o.fenceSeconds ?? 300),
      '--converge-seconds', String(o.convergeSeconds ?? 2),
      '--unmount-grace', String(o.unmountGrace ?? 0),
      '--docker', o.docker ?? 'none',
      '--debug',
      ...(o.extraArgs ?? []),
    ], o.env);
    await untilServing(this.proc, `volplugin ${this.pluginName}`, `serve ${this.socket}`, async () => (await this.call('Plugin.Activate', {})).Implements !== undefined, 30_000);
  }

  /** One protocol call, as dockerd makes it. */
  call(method: string, body: unknown, timeoutMs = 130_000): Promise<DockerAnswer> {
    return new Promise((resolve, reject) => {
      const req = request(
        { socketPath: this.socket, path: `/${method}`, method: 'POST', headers: { 'content-type': 'application/vnd.docker.plugins.v1.2+json' }, timeout: timeoutMs },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            try {
              resolve(JSON.parse(text) as DockerAnswer);
            } catch {
              reject(new Error(`${method}: answer is not JSON: ${text.slice(0, 200)}`));
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method}: no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
  }

  mount(name: string, id: string): Promise<DockerAnswer> {
    return this.call('VolumeDriver.Mount', { Name: name, ID: id });
  }

  unmount(name: string, id: string): Promise<DockerAnswer> {
    return this.call('VolumeDriver.Unmount', { Name: name, ID: id });
  }

  mountpointOf(name: string): string {
    return path.join(this.mountRoot, name);
  }

  async hostId(): Promise<string> {
    return (await readFile(path.join(this.stateDir, 'host-id'), 'utf8')).trim();
  }

  stop(): Promise<void> {
    return this.proc.stop();
  }

  kill9(): Promise<void> {
    return this.proc.kill9();
  }

  logs(): Promise<string> {
    return this.proc.logs();
  }
}

/** A tenant policy for tests: ext4, small volumes, no snapshots, the given rate limits. */
export function testPolicy(options: { size?: string; writeIops?: number; filesystems?: Record<string, string> } = {}) {
  return {
    'default-options': {
      pool: process.env.VOLPLUGIN_TEST_POOL ?? 'rbd',
      size: options.size ?? '32MB',
      snapshots: false,
      filesystem: 'ext4',
      ephemeral: false,
      'rate-limit': { 'write-iops': options.writeIops ?? 0, 'read-iops': 0, 'write-bps': 0, 'read-bps': 0 },
    },
    filesystems: options.filesystems ?? { ext4: 'mkfs.ext4 -q -m0 -E lazy_journal_init=1 %' },
  };
}

/** Makes a volume through the plugin (as `docker volume create` does). */
export async function createVolume(plugin: TestPlugin, name: string, opts: Record<string, string> | null = null): Promise<void> {
  const answer = await plugin.call('VolumeDriver.Create', { Name: name, Opts: opts });
  if (answer.Err) throw new Error(`Create ${name}: ${answer.Err}`);
}

/** The names a plugin test file works under: a random run id, its tenant (`<prefix><run>`), its directory and the pool. */
export function testRun(prefix: string, file: string): { run: string; tenant: string; root: string; pool: string } {
  const run = uniq();
  return {
    run,
    tenant: `${prefix}${run}`,
    root: path.join(process.env.VOLPLUGIN_TEST_ROOT ?? '/tmp', `${file}-${run}`),
    pool: process.env.VOLPLUGIN_TEST_POOL ?? 'rbd',
  };
}
