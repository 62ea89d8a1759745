// The mount manager: Docker's Mount and Unmount on this host, one at a time per volume.
//
// Reference counting is Docker's contract: every Mount carries a fresh random ID, its Unmount the
// same ID. The first Mount of a volume runs the mount's steps (mounter.ts) and then throttles the
// containers that use it; later Mounts only add a reference. The last Unmount keeps the volume
// mapped, mounted and locked for the grace (--unmount-grace, idle.ts), so that a Mount meanwhile
// takes it as it is; the grace's end, another host's `release` request or a remove tears it down
// (unmount, unmap, clear the holder note, release the lock). With no grace the last Unmount does.
//
// Every Docker request's steps are timed (lock, map, probe, ...: common/steps.ts) and logged with
// the line that ends it; `onTimed` hands them to whoever measures (the bench, metrics).

import { StepTimes } from '../../common/steps.js';
import type { RateLimit } from '../../policy/types.js';
import { sameLimits, UNLIMITED, type RateLimiter } from '../../ratelimit/index.js';
import type { GrowReport } from '../../mapper/grow.js';
import type { Mapping } from '../../mapper/types.js';
import type { MasterClient } from '../cluster/master-client.js';
import { PluginError, messageOf } from '../errors.js';
import type { HostOps } from './host-ops.js';
import { IdleTimers, graceOver, isIdle } from './idle.js';
import type { KeyedMutex } from './keyed-mutex.js';
import type { LocalState, LocalVolume } from './local-state.js';
import { addRef, dropRef, volumeKey } from './local-state.js';
import type { MountLog, Mounter } from './mounter.js';

/**
 * What a Docker request (or the grace's end, or a release) did: `mount` mapped and mounted,
 * `reuse` took an idle volume as it was, `reference` added a reference to a mounted volume,
 * `idle` kept the volume after its last Unmount, `unmount` tore it down at the last Unmount
 * (no grace), `expire` at the grace's end, `release` when asked.
 */
export type MountOp = 'mount' | 'reuse' | 'reference' | 'idle' | 'unmount' | 'expire' | 'release';

export interface MountManagerParts {
  mounter: Mounter;
  /** Volume records (volplugin reads them from etcd: cluster/volume-records.ts). */
  volumes: Pick<MasterClient, 'getVolume'>;
  local: LocalState;
  mutex: KeyedMutex;
  limits: Pick<RateLimiter, 'applyQos' | 'applyToContainers'>;
  /** The device number of a mapped device (blkio limits are per device). */
  deviceNumber: HostOps['deviceNumber'];
  /** Writes a mounted filesystem to its device (when its last container is gone, see keepIdle). */
  syncFilesystem: HostOps['syncFilesystem'];
  log: MountLog;
  /**
   * Called after a volume was mounted, kept idle or torn down, before Docker gets its answer:
   * republishes the host report (the master refuses to remove a volume a host reports as mounted;
   * other hosts ask for an idle one).
   */
  onChange?: () => Promise<void>;
  /** How long a volume stays idle after its last Unmount, in ms (--unmount-grace; 0 or absent: none). */
  graceMs?: number;
  /** Gets the steps of every operation when it is done (the bench, metrics). */
  onTimed?: (op: MountOp, steps: Readonly<Record<string, number>>, ms: number) => void;
}

export class MountManager {
  private readonly timers = new IdleTimers();

  constructor(private readonly parts: MountManagerParts) {}

  /** Docker's Mount: returns the host path to bind into the container. */
  async mount(tenant: string, volume: string, id: string, signal: AbortSignal): Promise<string> {
    const name = volumeKey(tenant, volume);
    return this.parts.mutex.run(name, async () => {
      signal.throwIfAborted();
      const steps = new StepTimes();
      const existing = this.parts.local.get(tenant, volume);
      if (existing && isIdle(existing)) {
        const mountpoint = await this.reuse(existing, id, steps);
        if (mountpoint) return this.done('reuse', name, id, steps, mountpoint);
      } else if (existing && existing.refs.length === 0 && existing.lost) {
        // Lost and waiting for its teardown: finish it, then mount it anew (if no other host holds it).
        await this.letGo(existing, steps);
      } else if (existing) {
        return this.done('reference', name, id, steps, await steps.time('reference', () => this.addReference(existing, id)));
      }
      const record = await steps.time('record', () => this.parts.volumes.getVolume(tenant, volume, signal));
      const entry = await this.parts.mounter.mount(record, id, signal, steps);
      await steps.time('report', () => this.changed());
      await steps.time('limits', () => this.applyLimitsDuringMount(entry, record.runtime.rateLimit, { qosApplied: true }));
      return this.done('mount', name, id, steps, entry.mountpoint);
    });
  }

  /**
   * Takes an idle volume as it is, or returns null after tearing it down when it cannot be (see
   * Mounter.whyNotReusable): the caller then mounts it anew.
   */
  private async reuse(entry: LocalVolume, id: string, steps: StepTimes): Promise<string | null> {
    const name = volumeKey(entry.tenant, entry.volume);
    const why = await steps.time('check', () => this.parts.mounter.whyNotReusable(entry));
    if (why) {
      this.parts.log.warn({ volume: name, why }, 'an idle volume cannot be used as it is: tearing it down and mounting it anew');
      await this.letGo(entry, steps);
      return null;
    }
    await steps.time('remount', () => this.parts.mounter.remountIfGone(entry));
    this.timers.cancel(name);
    entry.idleUntil = null;
    addRef(entry, id);
    await steps.time('record', () => this.parts.local.save());
    await steps.time('report', () => this.changed());
    const limits = entry.appliedLimits;
    if (limits) await steps.time('limits', () => this.applyLimitsDuringMount(entry, limits));
    return entry.mountpoint;
  }

  private async addReference(entry: LocalVolume, id: string): Promise<string> {
    const name = volumeKey(entry.tenant, entry.volume);
    if (entry.lost) {
      throw new PluginError(
        'LOST',
        `${name} is lost to this host (${entry.lost}): its I/O was stopped here and this host only lets go of it. ` +
          'Stop the containers that use it here, then mount it again (here or on another host)',
      );
    }
    await this.parts.mounter.remountIfGone(entry);
    if (addRef(entry, id)) await this.parts.local.save();
    this.parts.log.info({ volume: name, id, references: entry.refs.length }, 'volume reference added');
    if (entry.appliedLimits) await this.applyLimitsDuringMount(entry, entry.appliedLimits);
    return entry.mountpoint;
  }

  /** Throttles the volume's containers now; what fails is only logged (the convergence loop retries). */
  private async applyLimitsDuringMount(entry: LocalVolume, limits: RateLimit, options: { qosApplied?: boolean } = {}): Promise<void> {
    await this.applyLimits(entry, limits, { duringMount: true, ...options }).catch((err: unknown) => {
      this.parts.log.warn({ volume: volumeKey(entry.tenant, entry.volume), err: messageOf(err) }, 'rate limits not applied yet; the convergence loop retries');
    });
  }

  /**
   * Applies the volume's rate limits: librbd QoS on the image (unless `qosApplied`: the mount just
   * set it), blkio in its containers' cgroups. During a Mount, a volume without limits needs
   * nothing in the starting container's cgroup (a new cgroup has none), so Docker is not asked.
   */
  async applyLimits(
    entry: LocalVolume,
    limits: RateLimit,
    options: { duringMount: boolean; qosApplied?: boolean } = { duringMount: false },
  ): Promise<string[]> {
    const problems: string[] = [];
    const name = volumeKey(entry.tenant, entry.volume);
    if (!sameLimits(entry.appliedLimits, limits) && !options.qosApplied) {
      try {
        await this.parts.limits.applyQos(entry.pool, entry.image, limits);
      } catch (err) {
        problems.push(`librbd QoS of ${name} not set: ${messageOf(err)}`);
      }
    }
    if (entry.mapping.device && !(options.duringMount && sameLimits(limits, UNLIMITED))) {
      const dev = await this.parts.deviceNumber(entry.mapping.device);
      const result = await this.parts.limits.applyToContainers(name, dev, limits, options);
      problems.push(...result.problems);
      if (result.containers.length > 0) {
        this.parts.log.debug({ volume: name, containers: result.containers, limits }, 'rate limits applied');
      }
    }
    if (problems.length === 0 && !sameLimits(entry.appliedLimits, limits)) {
      entry.appliedLimits = { ...limits };
      await this.parts.local.save();
    }
    return problems;
  }

  /** Docker's Unmount: drops the reference; the last one keeps the volume idle for the grace, or tears it down. */
  async unmount(tenant: string, volume: string, id: string, signal: AbortSignal): Promise<void> {
    const name = volumeKey(tenant, volume);
    await this.parts.mutex.run(name, async () => {
      signal.throwIfAborted();
      const entry = this.parts.local.get(tenant, volume);
      if (!entry) {
        this.parts.log.warn({ volume: name, id }, 'Unmount of a volume that is not mounted here: nothing to do');
        return;
      }
      const steps = new StepTimes();
      const dropped = dropRef(entry, id);
      if (!dropped) {
        this.parts.log.warn({ volume: name, id, references: entry.refs.length }, 'Unmount with an ID that holds no reference');
        if (entry.refs.length > 0 || isIdle(entry)) return;
      }
      if (entry.refs.length > 0) {
        await this.parts.local.save();
        this.parts.log.info({ volume: name, id, references: entry.refs.length }, 'volume reference dropped');
        return;
      }
      const graceMs = this.parts.graceMs ?? 0;
      if (dropped && graceMs > 0 && !entry.lost) {
        // What the last container wrote goes to the device now, as an unmount would do: without
        // it a snapshot or backup taken during the grace could miss it (ext4 commits every 5 s).
        const synced = await steps.time('sync', () => this.parts.syncFilesystem(entry.mountpoint)).then(
          () => true,
          (err: unknown) => {
            this.parts.log.warn({ volume: name, err: messageOf(err) }, 'could not write the idle volume to its device: tearing it down instead of keeping it');
            return false;
          },
        );
        if (synced) {
          await this.keepIdle(entry, graceMs, steps);
          this.done('idle', name, id, steps);
          return;
        }
      }
      if (dropped) await this.parts.local.save();
      await this.letGo(entry, steps);
      this.done('unmount', name, id, steps);
    });
  }

  /** Keeps a volume whose last reference went mapped, mounted and locked until the grace ends. */
  private async keepIdle(entry: LocalVolume, graceMs: number, steps: StepTimes): Promise<void> {
    const until = Date.now() + graceMs;
    entry.idleUntil = new Date(until).toISOString();
    await steps.time('record', () => this.parts.local.save());
    await steps.time('report', () => this.changed());
    this.timers.arm(volumeKey(entry.tenant, entry.volume), until, () => void this.expire(entry.tenant, entry.volume));
  }

  /** The grace of an idle volume ended: tear it down (if it is still idle; failures are left to the loop). */
  private async expire(tenant: string, volume: string): Promise<void> {
    const name = volumeKey(tenant, volume);
    await this.parts.mutex
      .run(name, async () => {
        const entry = this.parts.local.get(tenant, volume);
        if (!entry || !isIdle(entry)) return;
        if (!graceOver(entry, Date.now())) {
          this.timers.arm(name, Date.parse(entry.idleUntil!), () => void this.expire(tenant, volume));
          return;
        }
        const steps = new StepTimes();
        await this.letGo(entry, steps);
        this.done('expire', name, null, steps);
      })
      .catch((err: unknown) => this.parts.log.warn({ volume: name, err: messageOf(err) }, 'could not let go of an idle volume; the convergence loop retries'));
  }

  /**
   * Another host or a remove asks for the volume (host request `release`, state/release.ts): an
   * idle volume (or one without references) is torn down now; one that containers use is refused.
   */
  async release(tenant: string, volume: string): Promise<{ released: boolean; was: string }> {
    const name = volumeKey(tenant, volume);
    return this.parts.mutex.run(name, async () => {
      const entry = this.parts.local.get(tenant, volume);
      if (!entry) return { released: false, was: 'not mounted here' };
      if (entry.refs.length > 0) {
        throw new PluginError(
          'IN_USE',
          `${name} is used by ${entry.refs.length} container mount${entry.refs.length === 1 ? '' : 's'} on this host; it is let go of when they stop`,
        );
      }
      const was = entry.lost ? 'lost' : isIdle(entry) ? 'idle' : 'unreferenced';
      const steps = new StepTimes();
      await this.letGo(entry, steps);
      this.done('release', name, null, steps);
      return { released: true, was };
    });
  }

  /** Tears down a volume without references now (its grace, if any, is cut short). Call with the volume's mutex held. */
  async letGo(entry: LocalVolume, steps = new StepTimes()): Promise<void> {
    this.timers.cancel(volumeKey(entry.tenant, entry.volume));
    await this.teardown(entry, steps);
  }

  /** Tears down a volume with no references (see Mounter.teardown). Call with the volume's mutex held. */
  async teardown(entry: LocalVolume, steps = new StepTimes()): Promise<void> {
    await this.parts.mounter.teardown(entry, steps);
    await steps.time('report', () => this.changed());
  }

  /**
   * The `resize-fs` host request of a resize (src/master/resize.ts): grows the filesystem of a
   * volume mounted here, one step with its mounts and unmounts. NOT_MOUNTED or LOST tell the master
   * this host did not act (the next host to mount the volume grows it).
   */
  async growFilesystem(tenant: string, volume: string, sizeBytes: number): Promise<GrowReport> {
    const name = volumeKey(tenant, volume);
    return this.parts.mutex.run(name, async () => {
      const entry = this.parts.local.get(tenant, volume);
      if (!entry) throw new PluginError('NOT_MOUNTED', `${name} is not mounted on this host`);
      if (entry.lost) throw new PluginError('LOST', `${name} is lost to this host (${entry.lost})`);
      return this.parts.mounter.growMounted(entry, sizeBytes);
    });
  }

  /** A mapping of this host that no entry references (left by a crash): unmap it. */
  async cleanupMapping(mapping: Mapping): Promise<void> {
    await this.parts.mounter.unmap(mapping);
  }

  /**
   * volplugin is stopping: the grace timers stop and idle volumes are let go of now (no container
   * uses them, and a stopped host could not answer another host's `release`: that host would wait
   * for the lock to expire). Volumes in use stay for the containers. What fails is left to the
   * next start's loop.
   */
  async stop(): Promise<void> {
    this.timers.stop();
    for (const { tenant, volume } of this.parts.local.all().filter(isIdle)) {
      const name = volumeKey(tenant, volume);
      await this.parts.mutex
        .run(name, async () => {
          const entry = this.parts.local.get(tenant, volume);
          if (entry && isIdle(entry)) await this.letGo(entry);
        })
        .catch((err: unknown) => this.parts.log.warn({ volume: name, err: messageOf(err) }, 'could not let go of an idle volume while stopping; the next start does'));
    }
  }

  /** Logs the line that ends an operation, with its steps, and tells `onTimed`; returns `value`. */
  private done<T>(op: MountOp, volume: string, id: string | null, steps: StepTimes, value?: T): T {
    const ms = steps.elapsed();
    this.parts.log.info({ volume, ...(id ? { id } : {}), op, ms, steps: steps.ms }, op === 'expire' || op === 'release' ? 'idle volume let go' : 'Docker request done');
    this.parts.onTimed?.(op, steps.ms, ms);
    return value as T;
  }

  private async changed(): Promise<void> {
    await this.parts.onChange?.().catch((err: unknown) => this.parts.log.warn({ err: messageOf(err) }, 'could not publish the host report'));
  }
}
