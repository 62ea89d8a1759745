// volplugin assembled: host identity, etcd, Ceph, the mapper, the local mount table, the
// convergence loop and the Docker protocol server on <socket-dir>/<plugin-name>.sock. main.ts
// only parses flags and handles signals; tests can build the same thing in-process.

import { readFileSync } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { ApiClient, readTokenFile } from '../api/client.js';
import { KrbdMapper } from '../mapper/krbd.js';
import { selectMapper } from '../mapper/select.js';
import type { Mapper } from '../mapper/types.js';
import { EtcdKV } from '../state/etcd.js';
import type { KV } from '../state/kv.js';
import { StateStore } from '../state/store.js';
import { writeSysfsFile } from '../storage/index.js';
import type { Storage } from '../storage/types.js';
import type { PluginConfig } from './config.js';
import { socketPath } from './config.js';
import { Convergence } from './converge/loop.js';
import { DockerClient } from './docker/client.js';
import { Driver } from './docker/driver.js';
import { messageOf } from './errors.js';
import { loadHostId } from './mounts/host-id.js';
import { KeyedMutex } from './mounts/keyed-mutex.js';
import { LocalState } from './mounts/local-state.js';
import { HostLease, describeHolder } from './cluster/lease.js';
import { ApiMasterClient, type MasterClient } from './cluster/master.js';
import { MountManager } from './mounts/manager.js';
import { createProtocolServer } from './docker/protocol.js';
import { RateLimiter } from '../ratelimit/index.js';

export const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
})();

export interface PluginDeps {
  storage: Storage;
  /** Default: EtcdKV on config.etcd. */
  kv?: KV;
  /** Default: ApiMasterClient on config.master. */
  master?: MasterClient;
  /** Default: chosen by selectMapper from config.mapper. */
  mapper?: Mapper;
  log: Logger;
}

export interface RunningPlugin {
  hostId: string;
  socket: string;
  mapper: Mapper;
  manager: MountManager;
  convergence: Convergence;
  local: LocalState;
  /** Stops serving and converging. Mounts stay (containers keep running); locks stay until the lease TTL. */
  stop(): Promise<void>;
}

/** Fails when another process serves `socket`; removes a stale socket file. */
async function claimSocket(socket: string): Promise<void> {
  const exists = await stat(socket).then(
    () => true,
    () => false,
  );
  if (!exists) return;
  const alive = await new Promise<boolean>((resolve) => {
    const c = connect(socket);
    const done = (v: boolean) => {
      c.destroy();
      resolve(v);
    };
    c.once('connect', () => done(true));
    c.once('error', () => done(false));
    setTimeout(() => done(false), 2_000).unref();
  });
  if (alive) {
    throw new Error(`${socket} is served by another process (another volplugin with the same --plugin-name?): stop it or choose another --plugin-name`);
  }
  await rm(socket, { force: true });
}

export async function startPlugin(config: PluginConfig, deps: PluginDeps): Promise<RunningPlugin> {
  const log = deps.log;
  const hostId = await loadHostId(config.stateDir);
  const socket = socketPath(config);
  await claimSocket(socket);
  await mkdir(config.mountRoot, { recursive: true });

  const kv = deps.kv ?? new EtcdKV({ endpoints: config.etcd });
  const store = new StateStore(kv, { prefix: config.prefix, owner: `volplugin@${config.hostLabel}:${process.pid}` });
  let master = deps.master;
  if (!master) {
    const token = config.tokenFile ? await readTokenFile(config.tokenFile) : null;
    master = new ApiMasterClient(new ApiClient({ master: config.master, token, timeoutMs: 10_000, userAgent: `volplugin/${VERSION}` }));
  }
  const storage = deps.storage;
  const mapperLog = log.child({ part: 'mapper' });
  const { mapper, why } = deps.mapper
    ? { mapper: deps.mapper, why: 'given' }
    : await selectMapper({
        kind: config.mapper,
        stateDir: config.stateDir,
        ceph: { confPath: config.cephConf ?? undefined, keyring: config.cephKeyring ?? undefined, clientId: config.cephId },
        watchers: storage,
        log: { warn: (o, m) => mapperLog.warn(o, m), debug: (o, m) => mapperLog.debug(o, m) },
        krbd: async (setup) =>
          new KrbdMapper({ root: path.join(setup.stateDir, 'krbd'), ceph: setup.ceph, cluster: storage, write: writeSysfsFile }),
      });
  log.info({ mapper: mapper.kind, why }, 'mapper chosen');

  const local = LocalState.inDir(config.stateDir);
  const loaded = await local.load();
  if (loaded.corrupt) log.error({ problem: loaded.corrupt }, 'local mount table was corrupt; starting from what the host shows');

  const mutex = new KeyedMutex();
  const lease = new HostLease(kv, config.lockTtl, log.child({ part: 'lease' }));
  const docker = config.docker ? new DockerClient(config.docker) : null;
  const limits = new RateLimiter({ docker, storage, log: log.child({ part: 'limits' }), aheadFile: path.join(config.stateDir, 'cgroups-ahead.json') });
  await limits.load();
  // eslint-disable-next-line prefer-const
  let convergence: Convergence;
  const manager = new MountManager({
    hostId,
    host: config.hostLabel,
    mountRoot: config.mountRoot,
    fenceSeconds: config.fenceSeconds,
    store,
    lease,
    storage,
    mapper,
    master,
    local,
    limits,
    mutex,
    log: log.child({ part: 'mounts' }),
    onChange: () => convergence.publishReport(),
  });
  convergence = new Convergence({
    hostId,
    host: config.hostLabel,
    version: VERSION,
    mountRoot: config.mountRoot,
    intervalMs: config.convergeSeconds * 1000,
    fenceSeconds: config.fenceSeconds,
    store,
    lease,
    manager,
    mapper,
    local,
    mutex,
    storage,
    limits,
    docker,
    log: log.child({ part: 'converge' }),
  });

  // Adopt what survived a restart (locks, references) before Docker can send its first request.
  await convergence.start();

  const mountedWhere = async (tenant: string, volume: string): Promise<string | null> => {
    const lock = await store.getMount(tenant, volume);
    if (lock) return describeHolder(lock);
    for (const report of await store.listHostReports()) {
      if (report.mounts.some((m) => m.tenant === tenant && m.volume === volume)) return `${report.host} (host id ${report.hostId}, as it reports)`;
    }
    return null;
  };
  const driver = new Driver({ master, manager, local, mutex, mountedWhere });
  const server: Server = createProtocolServer(driver, { log: log.child({ part: 'docker' }) });
  await mkdir(config.socketDir, { recursive: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => {
      server.off('error', reject);
      resolve();
    });
  });
  log.info(
    { socket, hostId, host: config.hostLabel, mountRoot: config.mountRoot, master: config.master, etcd: config.etcd, lockTtl: config.lockTtl },
    'volplugin serving Docker',
  );

  let stopped: Promise<void> | null = null;
  const stop = () => {
    stopped ??= (async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await rm(socket, { force: true });
      await convergence.stop();
      // With nothing mounted the locks can go now; otherwise they must outlive this process for
      // a restart (within the TTL) to find them.
      await lease.close({ revoke: local.all().length === 0 });
      if (!deps.kv) await kv.close().catch((err: unknown) => log.warn({ err: messageOf(err) }, 'closing etcd failed'));
      log.info({ mounted: local.all().length }, 'volplugin stopped');
    })();
    return stopped;
  };

  return { hostId, socket, mapper, manager, convergence, local, stop };
}
