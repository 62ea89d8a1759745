// The convergence loop (the Flocker agent model): discover the host's state, report it to etcd
// under this host, plan the actions that make the host match what Docker asked for (plan.ts), and
// perform them. It runs at start, every --converge-seconds, and soon after anything relevant
// changes: an etcd event on our mount locks or volumes, the host lease being lost, or a container
// starting.

import { rmdir } from 'node:fs/promises';
import { readMountInfo, type MountInfo } from '../../mapper/mountinfo.js';
import type { Mapper } from '../../mapper/types.js';
import { unmountAll } from '../../mapper/fs.js';
import type { RateLimit } from '../../policy/types.js';
import type { Watch } from '../../state/kv.js';
import type { HostReport, MountRecord } from '../../state/records.js';
import type { StateStore } from '../../state/store.js';
import type { DockerClient } from '../docker/client.js';
import { messageOf } from '../errors.js';
import { clearHolder } from '../../fencing/index.js';
import type { KeyedMutex } from '../mounts/keyed-mutex.js';
import type { LocalState, LocalVolume } from '../mounts/local-state.js';
import { volumeKey } from '../mounts/local-state.js';
import { describeHolder, takeMountLock, type HostLease } from '../cluster/lease.js';
import type { ManagerLog, MountManager, PluginStorage } from '../mounts/manager.js';
import { planConvergence, volumeOfMountpoint, type Action, type Observation, type Plan } from './plan.js';
import type { RateLimiter } from '../../ratelimit/index.js';

export interface ConvergenceOptions {
  hostId: string;
  host: string;
  version: string;
  mountRoot: string;
  intervalMs: number;
  fenceSeconds: number;
  store: StateStore;
  lease: HostLease;
  manager: MountManager;
  mapper: Mapper;
  local: LocalState;
  mutex: KeyedMutex;
  storage: PluginStorage;
  limits: RateLimiter;
  docker: DockerClient | null;
  log: ManagerLog;
  /** What is mounted on the host (default /proc/self/mountinfo; fakes in unit tests). */
  readMounts?: () => Promise<MountInfo[]>;
}

function split(key: string): [string, string] {
  const slash = key.indexOf('/');
  return [key.slice(0, slash), key.slice(slash + 1)];
}

export class Convergence {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private watches: Watch[] = [];
  private readonly dockerAbort = new AbortController();
  private problems: string[] = [];
  private planProblems: string[] = [];
  /** The last plan (for tests and the debug log). */
  lastPlan: Plan | null = null;
  rounds = 0;

  constructor(private readonly o: ConvergenceOptions) {
    o.lease.onLost(() => this.trigger('host lease lost'));
  }

  /** Runs the first round, then keeps converging in the background. */
  async start(): Promise<void> {
    // The Mount path needs dockerd's cgroup driver and must not wait for it: learn it now.
    if (this.o.docker) await this.o.limits.dockerInfo().catch((err: unknown) => this.o.log.warn({ err: messageOf(err) }, 'Docker API not answering: rate limits wait for it'));
    await this.runNow('start');
    this.schedule();
    void this.followDockerEvents();
  }

  /** Asks for a round soon (coalesced: many triggers make one round). */
  trigger(reason: string): void {
    if (this.stopped) return;
    this.o.log.debug({ reason }, 'convergence triggered');
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.runNow(reason), 100);
  }

  /** Runs one round now (or waits for the one that is running and runs another). */
  async runNow(reason: string): Promise<void> {
    if (this.running) {
      this.again = true;
      await this.running;
      return;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.round(reason).catch((err: unknown) => this.o.log.error({ err: messageOf(err) }, 'convergence round failed'));
        } while (this.again && !this.stopped);
      } finally {
        this.running = null;
        this.schedule();
      }
    })();
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.runNow('interval'), this.o.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.dockerAbort.abort();
    await this.running?.catch(() => undefined);
    for (const w of this.watches) await w.close().catch(() => undefined);
    this.watches = [];
  }

  // ---- one round -------------------------------------------------------------------------------

  private async round(reason: string): Promise<void> {
    const started = Date.now();
    this.rounds++;
    const observation = await this.observe();
    const plan = planConvergence(observation);
    this.lastPlan = plan;
    await this.report(observation, plan);
    const failures: string[] = [];
    for (const action of plan.actions) {
      try {
        await this.act(action);
      } catch (err) {
        failures.push(`${action.kind} ${action.volume}: ${messageOf(err)}`);
        this.o.log.warn({ action: action.kind, volume: action.volume, err: messageOf(err) }, 'convergence action failed; retried next round');
      }
    }
    await this.o.limits.sweepAhead().catch(() => undefined);
    this.problems = failures;
    await this.ensureWatches();
    const acted = plan.actions.filter((a) => a.kind !== 'apply-limits' || a.changed);
    const level = acted.length > 0 || failures.length > 0 ? 'info' : 'debug';
    this.o.log[level](
      { reason, ms: Date.now() - started, actions: acted.map((a) => `${a.kind} ${a.volume}`), problems: [...plan.problems, ...failures] },
      'convergence round done',
    );
  }

  private async observe(): Promise<Observation> {
    const entries = this.o.local.all();
    let leaseId: string | null = null;
    try {
      leaseId = (await this.o.lease.get()).id;
    } catch (err) {
      this.o.log.warn({ err: messageOf(err) }, 'no etcd lease (etcd unreachable?): lock actions wait');
    }
    const mounts = (await (this.o.readMounts ?? readMountInfo)()).filter((m) => volumeOfMountpoint(this.o.mountRoot, m.mountPoint) !== null);
    const mappings = await this.o.mapper.discover();
    let locks: MountRecord[] = [];
    let locksKnown = false;
    const limits = new Map<string, RateLimit>();
    try {
      const ours = new Set(entries.map((e) => volumeKey(e.tenant, e.volume)));
      locks = (await this.o.store.listMounts()).filter((l) => l.hostId === this.o.hostId || ours.has(volumeKey(l.tenant, l.volume)));
      locksKnown = true;
      for (const e of entries) {
        const record = await this.o.store.getVolume(e.tenant, e.volume);
        if (record) limits.set(volumeKey(e.tenant, e.volume), record.runtime.rateLimit);
      }
    } catch (err) {
      this.o.log.warn({ err: messageOf(err) }, 'cannot read mount locks from etcd this round');
    }
    return {
      hostId: this.o.hostId,
      leaseId,
      locksKnown,
      entries,
      mounts,
      mappings,
      locks,
      limits,
      busy: new Set(this.o.mutex.keys()),
      mountRoot: this.o.mountRoot,
    };
  }

  /** The host report as `volcli mount list` shows it. */
  hostReport(entries: LocalVolume[], problems: string[]): HostReport {
    return {
      hostId: this.o.hostId,
      host: this.o.host,
      pid: process.pid,
      version: this.o.version,
      reportedAt: new Date().toISOString(),
      mounts: entries.map((e) => ({
        tenant: e.tenant,
        volume: e.volume,
        device: e.mapping.device ?? '',
        mountpoint: e.mountpoint,
        mapper: e.mapping.kind,
        references: e.refs.length,
      })),
      problems,
    };
  }

  private async report(o: Observation, plan: Plan): Promise<void> {
    if (!o.leaseId) return;
    this.planProblems = plan.problems;
    try {
      await this.publishReport();
    } catch (err) {
      this.o.log.warn({ err: messageOf(err) }, 'could not report to etcd this round');
    }
  }

  /** Writes the host report now (after a mount or unmount, and every round). */
  async publishReport(): Promise<void> {
    const lease = await this.o.lease.get();
    await this.o.store.putHostReport(this.hostReport(this.o.local.all(), [...this.planProblems, ...this.problems]), lease);
  }

  // ---- actions -----------------------------------------------------------------------------------

  private async act(action: Action): Promise<void> {
    const [tenant, volume] = split(action.volume);
    await this.o.mutex.run(action.volume, async () => {
      const entry = this.o.local.get(tenant, volume);
      switch (action.kind) {
        case 'take-lock':
        case 'adopt-lock': {
          if (!entry || entry.lost || entry.refs.length === 0) return;
          const lease = await this.o.lease.get();
          const record: MountRecord = {
            tenant,
            volume,
            host: this.o.host,
            hostId: this.o.hostId,
            lease: lease.id,
            device: entry.mapping.device ?? '',
            mountpoint: entry.mountpoint,
            mapper: entry.mapping.kind,
            clientAddress: entry.mapping.clientAddress,
            since: entry.since,
          };
          const result = await takeMountLock(this.o.store, record, lease);
          if (result.ok) {
            this.o.log.info({ volume: action.volume, lease: lease.id }, action.kind === 'take-lock' ? 'mount lock taken back' : 'mount lock adopted');
            return;
          }
          await this.fenceSelf(entry, result.holder);
          return;
        }
        case 'lost-lock':
          if (!entry || entry.lost) return;
          await this.fenceSelf(entry, action.holder);
          return;
        case 'teardown':
          if (!entry || entry.refs.length > 0) return;
          await this.o.manager.teardown(entry);
          return;
        case 'release-lock': {
          if (entry) return;
          const released = await this.o.store.releaseMount(tenant, volume, { hostId: this.o.hostId, lease: action.lease });
          if (released) this.o.log.info({ volume: action.volume }, 'released a mount lock this host no longer uses');
          return;
        }
        case 'cleanup-mount':
          if (entry) return;
          await unmountAll(action.mountpoint);
          await rmdir(action.mountpoint).catch(() => undefined);
          this.o.log.info({ volume: action.volume, mountpoint: action.mountpoint }, 'unmounted a leftover mount');
          return;
        case 'cleanup-mapping': {
          if (entry && (entry.mapping.device === action.mapping.device || entry.mapping.fuseDir === action.mapping.fuseDir)) return;
          await this.o.manager.cleanupMapping(action.mapping);
          if (action.mapping.pool && action.mapping.image && !entry) {
            await clearHolder(this.o.storage, action.mapping.pool, action.mapping.image, action.mapping.clientAddress).catch(() => undefined);
          }
          this.o.log.info({ volume: action.volume, device: action.mapping.device, kind: action.mapping.kind }, 'removed a leftover mapping');
          return;
        }
        case 'apply-limits': {
          if (!entry || entry.lost || entry.refs.length === 0) return;
          const problems = await this.o.manager.applyLimits(entry, action.limits);
          if (problems.length > 0) throw new Error(problems.join('; '));
          if (action.changed) this.o.log.info({ volume: action.volume, limits: action.limits }, 'rate limits applied');
          return;
        }
      }
    });
  }

  /**
   * Another host holds the lock of a volume this host still has mounted: it may be writing there
   * now. Make sure this host's client can no longer write (blocklist it; the new holder did so too
   * if it took the volume over properly) and keep the mount only until Docker unmounts it.
   */
  private async fenceSelf(entry: LocalVolume, holder: MountRecord): Promise<void> {
    const name = volumeKey(entry.tenant, entry.volume);
    const address = entry.mapping.clientAddress;
    if (address) {
      try {
        await this.o.storage.blocklistAdd(address, this.o.fenceSeconds);
      } catch (err) {
        this.o.log.error({ volume: name, address, err: messageOf(err) }, 'could not fence this host\'s own client of a volume it lost');
      }
    }
    // The blocklist can leave this host's requests hanging rather than failing: also cut the
    // local I/O path, so that writes fail at once (and the later teardown cannot hang).
    await this.o.mapper.stopIo?.(entry.mapping).catch((err: unknown) =>
      this.o.log.error({ volume: name, err: messageOf(err) }, 'could not cut the local I/O path of a volume this host lost'),
    );
    entry.lost = `${describeHolder(holder)}; noticed ${new Date().toISOString()}`;
    await this.o.local.save();
    this.o.log.error(
      { volume: name, holder: holder.host, holderId: holder.hostId, address },
      'another host took this volume over: this host stopped writing to it (fenced) and keeps it only until its containers stop',
    );
  }

  // ---- triggers ----------------------------------------------------------------------------------

  private async ensureWatches(): Promise<void> {
    if (this.watches.length > 0 || this.stopped) return;
    try {
      const mounts = this.o.store.keys.mounts;
      const volumes = this.o.store.keys.volumes;
      this.watches.push(
        await this.o.store.kv.watch(mounts, (ev) => {
          const [tenant, volume] = split(ev.key.slice(mounts.length));
          if (this.o.local.get(tenant, volume)) this.trigger(`mount lock ${ev.type}`);
        }),
      );
      this.watches.push(
        await this.o.store.kv.watch(volumes, (ev) => {
          const [tenant, volume] = split(ev.key.slice(volumes.length));
          if (this.o.local.get(tenant, volume)) this.trigger(`volume ${ev.type}`);
        }),
      );
    } catch (err) {
      this.o.log.debug({ err: messageOf(err) }, 'etcd watches not set up yet; retried next round');
      for (const w of this.watches) await w.close().catch(() => undefined);
      this.watches = [];
    }
  }

  private async followDockerEvents(): Promise<void> {
    const docker = this.o.docker;
    if (!docker) return;
    let delay = 1_000;
    while (!this.stopped) {
      try {
        await docker.streamEvents((ev) => {
          const id = ev.Actor?.ID ?? ev.id;
          if (ev.Action === 'create' && id) {
            this.o.limits.learnContainer(id).catch(() => undefined);
          } else if (ev.Action === 'destroy' && id) {
            this.o.limits.forgetContainer(id);
          } else if (ev.Action === 'start') {
            this.trigger('container start');
          }
        }, this.dockerAbort.signal);
        delay = 1_000;
      } catch (err) {
        this.o.log.debug({ err: messageOf(err) }, 'Docker event stream failed; reconnecting');
      }
      if (this.stopped) return;
      await new Promise((resolve) => setTimeout(resolve, delay).unref());
      delay = Math.min(delay * 2, 30_000);
    }
  }
}
