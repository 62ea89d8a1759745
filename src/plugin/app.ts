// Over 400 lines: the host agent's assembly is one sequence (identity, lease, table, loop) best read in one place.
// volplugin assembled: host identity, etcd, Ceph, the mapper, the local mount table, the
// convergence loop (startHost, which the CSI node service uses too: src/csi/) and the Docker
// protocol server on <socket-dir>/<plugin-name>.sock (startPlugin). main.ts only parses flags and
// handles signals; tests can build the same thing in-process, and the unit tests wire a host's
// parts with assembleHost as startPlugin does.

import { readFileSync } from 'node:fs';
import { chmod, mkdir, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { ApiClient } from '../api/client.js';
import { openEtcd } from '../common/etcd.js';
import { Fencing } from '../fencing/index.js';
import { KrbdMapper } from '../mapper/krbd.js';
import type { MountInfo } from '../mapper/mountinfo.js';
import { selectMapper } from '../mapper/select.js';
import type { Mapper } from '../mapper/types.js';
import { RateLimiter } from '../ratelimit/index.js';
import type { KV } from '../state/kv.js';
import { HostRequestKind } from '../state/host-requests.js';
import { StateStore, reportsIdle } from '../state/store.js';
import { writeSysfsFile } from '../storage/index.js';
import type { Storage } from '../storage/types.js';
import { HostLease } from './cluster/lease.js';
import { HostRequestInbox } from './cluster/requests.js';
import { ApiMasterClient, type MasterClient } from './cluster/master-client.js';
import { VolumeRecords } from './cluster/volume-records.js';
import { MountLocks, describeHolder } from './cluster/mount-lock.js';
import type { HostConfig, PluginConfig } from './config.js';
import { socketPath } from './config.js';
import { HostIdentityClaim, IdentityConflictError } from './cluster/identity.js';
import { ConvergenceActions } from './converge/actions.js';
import { Convergence } from './converge/loop.js';
import { HostObserver } from './converge/observe.js';
import { HostReporter } from './converge/report.js';
import { ConvergenceTriggers } from './converge/triggers.js';
import { DockerClient } from './docker/client.js';
import { Driver } from './docker/driver.js';
import { createProtocolServer } from './docker/protocol.js';
import { PluginError, messageOf } from './errors.js';
import { hostOpsWithFailpoints, type PluginFailpoints } from './failpoints.js';
import { forgetOtherBoot, readBootId } from './mounts/boot.js';
import { handleReleaseRequests } from './mounts/idle.js';
import { HostFreezer, realFreezeOps } from './mounts/freeze.js';
import { mountsAt } from '../mapper/fs.js';
import { loadHostId, type HostIdentity } from './mounts/host-id.js';
import { realHostOps, type HostOps } from './mounts/host-ops.js';
import { KeyedMutex } from './mounts/keyed-mutex.js';
import { LocalState, type LocalVolume } from './mounts/local-state.js';
import { MountManager, type MountManagerParts } from './mounts/manager.js';
import { Mounter } from './mounts/mounter.js';

export const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
})();

/** The Storage calls volplugin makes: watchers (mappers), the blocklist (fencing), QoS and image metadata. */
export type PluginStorage = Pick<Storage, 'listWatchers' | 'blocklistAdd' | 'setQos' | 'getQos' | 'getMetadata' | 'setMetadata' | 'removeMetadata'>;

export interface PluginDeps {
  storage: Storage;
  /** Default: EtcdKV on config.etcd. */
  kv?: KV;
  /** Default: ApiMasterClient on config.master. */
  master?: MasterClient;
  /** Default: chosen by selectMapper from config.mapper. */
  mapper?: Mapper;
  log: Logger;
  /** Test-only faults (VOLPLUGIN_FAILPOINTS). */
  failpoints?: PluginFailpoints;
  /** Where to read the boot id (default /proc/sys/kernel/random/boot_id; VOLPLUGIN_BOOT_ID_FILE in tests). */
  bootIdFile?: string;
  /**
   * Called when volplugin must not go on (another live process took this host id while this one
   * had lost its lease); main.ts stops and exits. Mounts stay, as after any stop.
   */
  onFatal?: (err: Error) => void;
}

export interface RunningPlugin {
  hostId: string;
  socket: string;
  /** Requests from masters and the supervisor to this host (a handler per kind). */
  requests: HostRequestInbox;
  mapper: Mapper;
  manager: MountManager;
  convergence: Convergence;
  local: LocalState;
  /** Stops serving and converging. Mounts stay (containers keep running); locks stay until the lease TTL. */
  stop(): Promise<void>;
}

/** What one host's mount manager and convergence loop are made of. */
export interface HostSetup {
  host: HostIdentity;
  mountRoot: string;
  /** Seconds a fenced client stays blocklisted (--fence-seconds). */
  fenceSeconds: number;
  store: StateStore;
  lease: HostLease;
  storage: PluginStorage;
  mapper: Mapper;
  /** Where volume records are read (default: etcd, cluster/volume-records.ts). */
  volumes?: Pick<MasterClient, 'getVolume'>;
  local: LocalState;
  limits: RateLimiter;
  docker: DockerClient | null;
  log: Logger;
  /** The loop's version string (host report) and period. */
  convergence: { version: string; intervalMs: number };
  /** Default: the real ones (unit tests give fakes). */
  hostOps?: HostOps;
  /** The programs a filesystem command may run on the real host (--mkfs-allow; default DEFAULT_MKFS_ALLOW). */
  mkfsAllow?: readonly string[];
  /** What is mounted on the host (default /proc/self/mountinfo). */
  readMounts?: () => Promise<MountInfo[]>;
  /** Test-only pauses of the mount (VOLPLUGIN_FAILPOINTS). */
  failpoints?: PluginFailpoints;
  /** How long a volume stays mapped after its last Unmount, in ms (--unmount-grace; default none). */
  graceMs?: number;
  /** Gets the steps of every Mount, Unmount and release when it is done (the bench, metrics). */
  onTimed?: MountManagerParts['onTimed'];
}

export interface AssembledHost {
  manager: MountManager;
  convergence: Convergence;
  mutex: KeyedMutex;
}

/** Wires a host's parts: each gets what it needs and nothing more. */
export function assembleHost(setup: HostSetup): AssembledHost {
  const { host, store, lease, mapper, local, limits, log } = setup;
  const mutex = new KeyedMutex();
  const locks = new MountLocks(store, lease, host);
  const hostOps = setup.hostOps ?? realHostOps({ mkfsAllow: setup.mkfsAllow });
  const convergeLog = log.child({ part: 'converge' });
  const mountsLog = log.child({ part: 'mounts' });
  const fencing = new Fencing(setup.storage, mapper, setup.fenceSeconds, convergeLog);
  const mounter = new Mounter({ host, mountRoot: setup.mountRoot, locks, fencing, limits, mapper, hostOps, local, log: mountsLog, failpoints: setup.failpoints });
  // The manager republishes the host report after each change; the loop is made right after it.
  let convergence: Convergence | null = null;
  const manager = new MountManager({
    mounter,
    volumes: setup.volumes ?? new VolumeRecords(store),
    local,
    mutex,
    limits,
    deviceNumber: hostOps.deviceNumber,
    syncFilesystem: (dir) => hostOps.syncFilesystem(dir),
    log: mountsLog,
    onChange: async () => convergence?.publishReport(),
    graceMs: setup.graceMs,
    onTimed: setup.onTimed,
  });
  const actions = new ConvergenceActions({ locks, manager, fencing, local, mutex, inFlight: () => mounter.mappingsInFlight(), log: convergeLog });
  // A lost lease stops every volume's I/O at once (rule: stop writing before the lease can have expired at etcd).
  lease.onLost((err) => {
    actions.leaseLost(err).catch((e: unknown) => convergeLog.error({ err: messageOf(e) }, 'stopping I/O after the lease was lost failed'));
  });
  convergence = new Convergence({
    observer: new HostObserver({ hostId: host.id, mountRoot: setup.mountRoot, local, lease, mapper, store, mutex, log: convergeLog, readMounts: setup.readMounts }),
    actions,
    reporter: new HostReporter({ host, version: setup.convergence.version, store, lease, local }),
    triggers: new ConvergenceTriggers({ store, local, lease, docker: setup.docker, limits, log: convergeLog }),
    limits,
    intervalMs: setup.convergence.intervalMs,
    log: convergeLog,
  });
  return { manager, convergence, mutex };
}

/** Fails when another process serves `socket`; removes a stale socket file. */
export async function claimSocket(socket: string): Promise<void> {
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

async function connectMaster(config: HostConfig): Promise<MasterClient> {
  const api = await ApiClient.fromOptions({ master: config.master, tokenFile: config.tokenFile, caFile: config.tlsCa, timeoutMs: 10_000, userAgent: `volplugin/${VERSION}` });
  return new ApiMasterClient(api);
}

/** The mapper given (tests) or the one --mapper picks on this host. */
async function chooseMapper(config: HostConfig, deps: PluginDeps): Promise<Mapper> {
  const { storage, log } = deps;
  const mapperLog = log.child({ part: 'mapper' });
  const { mapper, why } = deps.mapper ? { mapper: deps.mapper, why: 'given' } : await selectMapper({
    kind: config.mapper,
    stateDir: config.stateDir,
    ceph: { confPath: config.cephConf ?? undefined, keyring: config.cephKeyring ?? undefined, clientId: config.cephId },
    watchers: storage,
    log: { warn: (o, m) => mapperLog.warn(o, m), debug: (o, m) => mapperLog.debug(o, m) },
    krbd: async (setup) => new KrbdMapper({ root: path.join(setup.stateDir, 'krbd'), ceph: setup.ceph, cluster: storage, write: writeSysfsFile }),
  });
  log.info({ mapper: mapper.kind, why }, 'mapper chosen');
  return mapper;
}

/**
 * The host's mount table, forgotten if it describes another boot (what a reboot destroyed); the
 * forgotten entries come back too, so that their locks can be released.
 */
async function loadMountTable(stateDir: string, bootId: string, log: Logger): Promise<{ local: LocalState; forgotten: LocalVolume[] }> {
  const local = LocalState.inDir(stateDir);
  const loaded = await local.load();
  if (loaded.corrupt) log.error({ problem: loaded.corrupt }, 'local mount table was corrupt; starting from what the host shows');
  const previousBoot = local.bootId;
  const forgotten = await forgetOtherBoot(local, bootId);
  if (forgotten.length > 0) {
    log.warn(
      { previousBoot, bootId, volumes: forgotten.map((e) => `${e.tenant}/${e.volume}`) },
      'the host was rebooted: its mounts, mappings and references are gone; forgot them (their locks are released, never adopted)',
    );
  }
  return { local, forgotten };
}

/** The locks the entries of a previous boot held, released where this host still holds them (best effort: the loop releases the rest). */
async function releaseForgotten(locks: MountLocks, forgotten: LocalVolume[], log: Logger): Promise<void> {
  for (const e of forgotten) {
    await locks.releaseIfOurs(e.tenant, e.volume).catch((err: unknown) => log.warn({ volume: `${e.tenant}/${e.volume}`, err: messageOf(err) }, 'could not release a lock of the previous boot yet'));
  }
}

/** The rate limiter, with the cgroups it made ahead before a restart, and dockerd's cgroup driver learnt (the Mount path must not wait for it). */
async function startRateLimiter(config: HostConfig, docker: DockerClient | null, storage: Storage, log: Logger): Promise<RateLimiter> {
  const limits = new RateLimiter({ docker, storage, log: log.child({ part: 'limits' }), aheadFile: path.join(config.stateDir, 'cgroups-ahead.json') });
  await limits.load();
  if (docker) {
    await limits.dockerInfo().catch((err: unknown) => log.child({ part: 'converge' }).warn({ err: messageOf(err) }, 'Docker API not answering: rate limits wait for it'));
  }
  return limits;
}

/**
 * Who has the volume mounted, for a refused Remove: the lock holder, else a host that reports it.
 * A holder that only keeps it idle is not (the master asks it to let go: state/release.ts).
 */
function mountedWhereIn(store: StateStore): (tenant: string, volume: string) => Promise<string | null> {
  return async (tenant, volume) => {
    const lock = await store.getMount(tenant, volume);
    if (lock && reportsIdle(await store.getHostReport(lock.hostId), tenant, volume)) return null;
    if (lock) return describeHolder(lock);
    for (const report of await store.listHostReports()) {
      if (report.mounts.some((m) => m.tenant === tenant && m.volume === volume)) return `${report.host} (host id ${report.hostId}, as it reports)`;
    }
    return null;
  };
}

/**
 * Who may connect to the plugin socket: whoever can reach it can mount, format and remove any
 * volume, so only its owner (root, as dockerd runs) may.
 */
export const SOCKET_MODE = 0o600;

/**
 * The host lease, each of whose leases first claims the host id (cluster/identity.ts): the first
 * waits up to one TTL for another holder to lapse; a later one (after a lost lease) that finds
 * another live process holding the id ends this one (deps.onFatal).
 */
function hostLease(config: HostConfig, store: StateStore, host: HostIdentity, bootId: string, deps: PluginDeps): HostLease {
  const log = deps.log.child({ part: 'lease' });
  const identity = new HostIdentityClaim({ store, host, bootId, stateDir: config.stateDir, log });
  return new HostLease(store, config.lockTtl, log, async (lease, first) => {
    try {
      await identity.claim(lease, first ? (config.lockTtl + 1) * 1000 : 0);
    } catch (err) {
      if (!first && err instanceof IdentityConflictError) {
        log.fatal({ err: err.message }, 'another process took this host id while this one had lost its lease: stopping');
        deps.onFatal?.(err);
      }
      throw err;
    }
  });
}

async function listen(server: Server, socket: string): Promise<void> {
  await mkdir(path.dirname(socket), { recursive: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // bind() gives the new socket file the mode the umask leaves: narrowed for that call, the
    // socket is never open to others, not even for a moment; chmod below makes it exact.
    const umask = process.umask(0o777 & ~SOCKET_MODE);
    try {
      server.listen(socket, () => {
        server.off('error', reject);
        resolve();
      });
    } finally {
      process.umask(umask);
    }
  });
  await chmod(socket, SOCKET_MODE);
}

/**
 * The host's request inbox with the handlers every volplugin has; the others are registered where
 * their concern lives (`concerns`), before it starts, so that no request finds its kind unknown.
 */
function startRequestInbox(store: StateStore, host: HostIdentity, local: LocalState, manager: MountManager, log: Logger, concerns: Array<{ register(inbox: HostRequestInbox): void }>): HostRequestInbox {
  const inbox = new HostRequestInbox({ store, hostId: host.id, log: log.child({ part: 'requests' }) });
  // ping: is this host's volplugin there and answering (volcli host ping, and the tests)?
  inbox.handle(HostRequestKind.Ping, async () => ({ hostId: host.id, host: host.label, pid: process.pid, version: VERSION, mounts: local.all().length }));
  // release: another host's Mount, a remove or a rollback asks for a volume this host keeps idle.
  handleReleaseRequests(inbox, manager);
  // resize-fs: a resize grew the image of a volume mounted here: grow its filesystem (src/master/resize.ts).
  inbox.handle(HostRequestKind.ResizeFs, async (request) => {
    const sizeBytes = Number(request.params?.sizeBytes);
    if (!request.tenant || !request.volume || !Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) {
      throw new PluginError('BAD_REQUEST', 'a resize-fs request names a tenant, a volume and params.sizeBytes');
    }
    return { ...(await manager.growFilesystem(request.tenant, request.volume, sizeBytes)) };
  });
  for (const concern of concerns) concern.register(inbox);
  void inbox.start();
  return inbox;
}

/** A host agent running: identity, lease, mount table, mount manager, convergence and request inbox. */
export interface RunningHost {
  host: HostIdentity;
  store: StateStore;
  master: MasterClient;
  mapper: Mapper;
  manager: MountManager;
  convergence: Convergence;
  local: LocalState;
  /** Serialises the mount work of one volume (the manager takes it per volume). */
  mutex: KeyedMutex;
  lease: HostLease;
  requests: HostRequestInbox;
  /** Who has a volume mounted (lock holder or a host's report), for refusals. */
  mountedWhere: (tenant: string, volume: string) => Promise<string | null>;
  /** Stops answering requests (thawing what it froze), lets go of idle volumes and stops converging. Mounts in use stay; their locks until the lease TTL. */
  stop(): Promise<void>;
}

/**
 * Starts what every host agent has, whatever it serves (Docker's protocol here, CSI's Node service
 * in src/csi/): its identity (one process per host id), etcd, the master, the mapper, the mount
 * table (forgotten after a reboot), the host lease, the mount manager and convergence loop (which
 * adopt what survived a restart before this returns) and the request inbox.
 */
export async function startHost(config: HostConfig, deps: PluginDeps): Promise<RunningHost> {
  const { log, storage } = deps;
  const host: HostIdentity = { id: await loadHostId(config.stateDir), label: config.hostLabel };
  const bootId = await readBootId(deps.bootIdFile);
  await mkdir(config.mountRoot, { recursive: true });

  const kv = deps.kv ?? (await openEtcd(config));
  const store = new StateStore(kv, { prefix: config.prefix, owner: `volplugin@${config.hostLabel}:${process.pid}` });
  const master = deps.master ?? (await connectMaster(config));
  const mapper = await chooseMapper(config, deps);
  const { local, forgotten } = await loadMountTable(config.stateDir, bootId, log);
  const lease = hostLease(config, store, host, bootId, deps);
  // One live process per host id: the first lease claims it (waiting one TTL for another holder to lapse).
  await lease.get();
  const docker = config.docker ? new DockerClient(config.docker) : null;
  const limits = await startRateLimiter(config, docker, storage, log);
  const { manager, convergence, mutex } = assembleHost({
    host,
    mountRoot: config.mountRoot,
    fenceSeconds: config.fenceSeconds,
    store,
    lease,
    storage,
    mapper,
    local,
    limits,
    docker,
    log,
    convergence: { version: VERSION, intervalMs: config.convergeSeconds * 1000 },
    graceMs: config.unmountGrace * 1000,
    hostOps: hostOpsWithFailpoints(realHostOps({ mkfsAllow: config.mkfsAllow }), deps.failpoints),
    failpoints: deps.failpoints,
  });

  // Adopt what survived a restart (locks, references) before the first request can come;
  // release what a reboot destroyed.
  await releaseForgotten(new MountLocks(store, lease, host), forgotten, log);
  await convergence.start();
  // freeze/thaw: a snapshotter's request to hold a volume still for a consistent snapshot.
  const freezer = new HostFreezer({ local, mutex, ops: realFreezeOps(mountsAt), log: log.child({ part: 'freeze' }) });
  const requests = startRequestInbox(store, host, local, manager, log, [freezer]);

  let stopped: Promise<void> | null = null;
  const stop = () => {
    stopped ??= (async () => {
      await requests.stop();
      await freezer.thawAll();
      await manager.stop();
      await convergence.stop();
      // With nothing mounted the locks can go now; otherwise they must outlive this process for
      // a restart (within the TTL) to find them.
      await lease.close({ revoke: local.all().length === 0 });
      if (!deps.kv) await store.close().catch((err: unknown) => log.warn({ err: messageOf(err) }, 'closing etcd failed'));
    })();
    return stopped;
  };
  return { host, store, master, mapper, manager, convergence, local, mutex, lease, requests, mountedWhere: mountedWhereIn(store), stop };
}

export async function startPlugin(config: PluginConfig, deps: PluginDeps): Promise<RunningPlugin> {
  const { log } = deps;
  const socket = socketPath(config);
  await claimSocket(socket);
  const agent = await startHost(config, deps);
  const { host, master, manager, local, mutex } = agent;

  const driver = new Driver({ master, volumes: new VolumeRecords(agent.store), manager, local, mutex, mountedWhere: agent.mountedWhere });
  const server = createProtocolServer(driver, { log: log.child({ part: 'docker' }) });
  await listen(server, socket);
  log.info(
    { socket, hostId: host.id, host: config.hostLabel, mountRoot: config.mountRoot, master: config.master, etcd: config.etcd, lockTtl: config.lockTtl },
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
      await agent.stop();
      log.info({ mounted: local.all().length }, 'volplugin stopped');
    })();
    return stopped;
  };

  return { hostId: host.id, socket, mapper: agent.mapper, manager, convergence: agent.convergence, local, requests: agent.requests, stop };
}
