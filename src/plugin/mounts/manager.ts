// The mount manager: Docker's Mount and Unmount on this host, one at a time per volume.
//
// Reference counting is Docker's contract: every Mount carries a fresh random ID, its Unmount the
// same ID. The first Mount of a volume runs the mount's steps (mounter.ts) and then throttles the
// containers that use it; later Mounts only add a reference. The last Unmount tears the mount down
// (unmount, unmap, clear the holder note, release the lock).

import type { RateLimit } from '../../policy/types.js';
import { sameLimits, type RateLimiter } from '../../ratelimit/index.js';
import type { GrowReport } from '../../mapper/grow.js';
import type { Mapping } from '../../mapper/types.js';
import type { MasterClient } from '../cluster/master-client.js';
import { PluginError, messageOf } from '../errors.js';
import type { HostOps } from './host-ops.js';
import type { KeyedMutex } from './keyed-mutex.js';
import type { LocalState, LocalVolume } from './local-state.js';
import { addRef, dropRef, volumeKey } from './local-state.js';
import type { MountLog, Mounter } from './mounter.js';

export interface MountManagerParts {
  mounter: Mounter;
  master: Pick<MasterClient, 'getVolume'>;
  local: LocalState;
  mutex: KeyedMutex;
  limits: Pick<RateLimiter, 'applyQos' | 'applyToContainers'>;
  /** The device number of a mapped device (blkio limits are per device). */
  deviceNumber: HostOps['deviceNumber'];
  log: MountLog;
  /**
   * Called after a volume was mounted or torn down, before Docker gets its answer: republishes the
   * host report (the master refuses to remove a volume a host reports as mounted).
   */
  onChange?: () => Promise<void>;
}

export class MountManager {
  constructor(private readonly parts: MountManagerParts) {}

  /** Docker's Mount: returns the host path to bind into the container. */
  async mount(tenant: string, volume: string, id: string, signal: AbortSignal): Promise<string> {
    return this.parts.mutex.run(volumeKey(tenant, volume), async () => {
      signal.throwIfAborted();
      const existing = this.parts.local.get(tenant, volume);
      if (existing) return this.addReference(existing, id);
      const record = await this.parts.master.getVolume(tenant, volume, signal);
      const entry = await this.parts.mounter.mount(record, id, signal);
      await this.changed();
      await this.applyLimitsDuringMount(entry, record.runtime.rateLimit);
      return entry.mountpoint;
    });
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
  private async applyLimitsDuringMount(entry: LocalVolume, limits: RateLimit): Promise<void> {
    await this.applyLimits(entry, limits, { duringMount: true }).catch((err: unknown) => {
      this.parts.log.warn({ volume: volumeKey(entry.tenant, entry.volume), err: messageOf(err) }, 'rate limits not applied yet; the convergence loop retries');
    });
  }

  /** Applies the volume's rate limits: librbd QoS on the image, blkio in its containers' cgroups. */
  async applyLimits(entry: LocalVolume, limits: RateLimit, options: { duringMount: boolean } = { duringMount: false }): Promise<string[]> {
    const problems: string[] = [];
    const name = volumeKey(entry.tenant, entry.volume);
    if (!sameLimits(entry.appliedLimits, limits)) {
      try {
        await this.parts.limits.applyQos(entry.pool, entry.image, limits);
      } catch (err) {
        problems.push(`librbd QoS of ${name} not set: ${messageOf(err)}`);
      }
    }
    if (entry.mapping.device) {
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

  /** Docker's Unmount: drops the reference; the last one tears the mount down. */
  async unmount(tenant: string, volume: string, id: string, signal: AbortSignal): Promise<void> {
    await this.parts.mutex.run(volumeKey(tenant, volume), async () => {
      signal.throwIfAborted();
      const name = volumeKey(tenant, volume);
      const entry = this.parts.local.get(tenant, volume);
      if (!entry) {
        this.parts.log.warn({ volume: name, id }, 'Unmount of a volume that is not mounted here: nothing to do');
        return;
      }
      if (!dropRef(entry, id)) {
        this.parts.log.warn({ volume: name, id, references: entry.refs.length }, 'Unmount with an ID that holds no reference');
        if (entry.refs.length > 0) return;
      } else {
        await this.parts.local.save();
      }
      if (entry.refs.length > 0) {
        this.parts.log.info({ volume: name, id, references: entry.refs.length }, 'volume reference dropped');
        return;
      }
      await this.teardown(entry);
    });
  }

  /** Tears down a volume with no references (see Mounter.teardown). Call with the volume's mutex held. */
  async teardown(entry: LocalVolume): Promise<void> {
    await this.parts.mounter.teardown(entry);
    await this.changed();
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

  private async changed(): Promise<void> {
    await this.parts.onChange?.().catch((err: unknown) => this.parts.log.warn({ err: messageOf(err) }, 'could not publish the host report'));
  }
}
