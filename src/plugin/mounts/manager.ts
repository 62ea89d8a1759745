// The mount manager: Docker's Mount and Unmount on this host.
//
// Mount (first reference): take the volume's cross-host lock in etcd (bound to the host lease),
// fence the previous holder if it did not let go cleanly, set librbd QoS, map the image, record
// which Ceph client holds it (image metadata and the lock record), format it on first use (blkid
// finds no signature), mount it at MOUNT-ROOT/tenant/volume, remember the reference, then throttle
// the containers that use it. Each step pushes its undo: a failure anywhere reverses everything
// done so far, so nothing stays locked, mapped or mounted.
//
// Later Mounts only add a reference (Docker's per-Mount ID); the last Unmount unmounts, unmaps,
// clears the holder note and releases the lock.

import { rmdir } from 'node:fs/promises';
import path from 'node:path';
import { deviceNumberOf } from '../../ratelimit/index.js';
import * as fs from '../../mapper/fs.js';
import type { Mapper, Mapping } from '../../mapper/types.js';
import type { RateLimit } from '../../policy/types.js';
import type { MountRecord, VolumeRecord } from '../../state/records.js';
import type { StateStore } from '../../state/store.js';
import { StateUnavailableError } from '../../state/kv.js';
import type { Storage } from '../../storage/types.js';
import { PluginError, messageOf } from '../errors.js';
import { clearHolder, fencePreviousHolder, writeHolder } from '../../fencing/index.js';
import type { KeyedMutex } from './keyed-mutex.js';
import type { LocalState, LocalVolume } from './local-state.js';
import { addRef, dropRef, volumeKey } from './local-state.js';
import { describeHolder, takeMountLock, type HostLease } from '../cluster/lease.js';
import type { MasterClient } from '../cluster/master.js';
import type { RateLimiter } from '../../ratelimit/index.js';
import { UNLIMITED, sameLimits } from '../../ratelimit/index.js';
import { UndoStack } from './undo.js';

export type PluginStorage = Pick<
  Storage,
  'listWatchers' | 'blocklistAdd' | 'setQos' | 'getMetadata' | 'setMetadata' | 'removeMetadata'
>;

export interface ManagerLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/** The host operations the manager performs on devices and directories (fakes in unit tests). */
export interface HostOps {
  probeFilesystem(device: string): Promise<string | null>;
  formatDevice(command: string, device: string): Promise<void>;
  mountDevice(device: string, dir: string): Promise<void>;
  unmountAll(dir: string): Promise<void>;
  mountsAt(dir: string): Promise<number>;
  deviceNumber(device: string): Promise<{ major: number; minor: number }>;
  removeDir(dir: string): Promise<void>;
}

export const realHostOps: HostOps = {
  probeFilesystem: fs.probeFilesystem,
  formatDevice: (command, device) => fs.formatDevice(command, device),
  mountDevice: fs.mountDevice,
  unmountAll: fs.unmountAll,
  mountsAt: fs.mountsAt,
  deviceNumber: deviceNumberOf,
  removeDir: (dir) => rmdir(dir).catch(() => undefined),
};

export interface MountManagerOptions {
  hostId: string;
  /** --host-label */
  host: string;
  mountRoot: string;
  /** Seconds a fenced client stays blocklisted. */
  fenceSeconds: number;
  store: StateStore;
  lease: HostLease;
  storage: PluginStorage;
  mapper: Mapper;
  master: MasterClient;
  local: LocalState;
  limits: RateLimiter;
  mutex: KeyedMutex;
  log: ManagerLog;
  /** Default: the real ones. */
  hostOps?: HostOps;
  /**
   * Called after a volume was mounted or torn down, before Docker gets its answer: republishes the
   * host report (the master refuses to remove a volume a host reports as mounted).
   */
  onChange?: () => Promise<void>;
}

function wrapState(err: unknown): unknown {
  if (err instanceof StateUnavailableError) {
    return new PluginError('STATE_UNAVAILABLE', `${err.message}: volplugin keeps its mount locks in etcd; check --etcd and that etcd runs`, {
      cause: err,
    });
  }
  return err;
}

export class MountManager {
  private readonly ops: HostOps;

  constructor(private readonly o: MountManagerOptions) {
    this.ops = o.hostOps ?? realHostOps;
  }

  mountpointOf(tenant: string, volume: string): string {
    return path.join(this.o.mountRoot, tenant, volume);
  }

  /** Docker's Mount: returns the host path to bind into the container. */
  async mount(tenant: string, volume: string, id: string, signal: AbortSignal): Promise<string> {
    return this.o.mutex.run(volumeKey(tenant, volume), async () => {
      signal.throwIfAborted();
      const existing = this.o.local.get(tenant, volume);
      if (existing) return this.addReference(existing, id);
      const record = await this.o.master.getVolume(tenant, volume, signal);
      const entry = await this.firstMount(record, id, signal);
      await this.applyLimits(entry, record.runtime.rateLimit, { duringMount: true }).catch((err: unknown) => {
        this.o.log.warn({ volume: volumeKey(tenant, volume), err: messageOf(err) }, 'rate limits not applied yet; the convergence loop retries');
      });
      return entry.mountpoint;
    });
  }

  private async addReference(entry: LocalVolume, id: string): Promise<string> {
    const name = volumeKey(entry.tenant, entry.volume);
    if (entry.lost) {
      throw new PluginError(
        'LOCKED',
        `${name} was taken over by another host (${entry.lost}); this host fenced itself and only lets go of it: ` +
          'stop the containers that use it here, then mount it again',
      );
    }
    if ((await this.ops.mountsAt(entry.mountpoint)) === 0) {
      // Someone unmounted it by hand while containers may still hold it: mount the device again.
      if (!entry.mapping.device) throw new PluginError('INTERNAL', `${name} is in volplugin's table but has no device; restart volplugin to clean up`);
      this.o.log.warn({ volume: name, mountpoint: entry.mountpoint }, 'volume was no longer mounted: mounting its device again');
      await this.ops.mountDevice(entry.mapping.device, entry.mountpoint);
    }
    if (addRef(entry, id)) await this.o.local.save();
    this.o.log.info({ volume: name, id, references: entry.refs.length }, 'volume reference added');
    if (entry.appliedLimits) {
      await this.applyLimits(entry, entry.appliedLimits, { duringMount: true }).catch((err: unknown) => {
        this.o.log.warn({ volume: name, err: messageOf(err) }, 'rate limits not applied yet; the convergence loop retries');
      });
    }
    return entry.mountpoint;
  }

  private async firstMount(record: VolumeRecord, id: string, signal: AbortSignal): Promise<LocalVolume> {
    const { tenant, volume, pool, image } = record;
    const name = volumeKey(tenant, volume);
    const log = this.o.log;
    const mountpoint = this.mountpointOf(tenant, volume);
    const undo = new UndoStack();
    const started = Date.now();
    try {
      const lease = await this.o.lease.get();
      const lockRecord: MountRecord = {
        tenant,
        volume,
        host: this.o.host,
        hostId: this.o.hostId,
        lease: lease.id,
        device: '',
        mountpoint,
        mapper: this.o.mapper.kind,
        clientAddress: null,
        since: new Date().toISOString(),
      };
      const lock = await takeMountLock(this.o.store, lockRecord, lease);
      if (!lock.ok) {
        throw new PluginError(
          'LOCKED',
          `${name} is mounted on ${describeHolder(lock.holder)}: unmount it there (stop its containers) first. ` +
            `If that host is down, its lock expires within ${this.o.lease.ttlSeconds} s and this host may mount it then`,
        );
      }
      undo.push('release the mount lock', async () => {
        await this.o.store.releaseMount(tenant, volume, { hostId: this.o.hostId, lease: lease.id });
      });
      signal.throwIfAborted();

      const live = new Set(this.o.local.all().map((e) => e.mapping.clientAddress).filter((a): a is string => !!a));
      const fence = await fencePreviousHolder(this.o.storage, pool, image, live, this.o.fenceSeconds);
      if (fence.decision.fence) {
        log.warn(
          { volume: name, fenced: fence.decision.address, previous: fence.note?.host, seconds: this.o.fenceSeconds },
          `fenced the previous holder's Ceph client before taking the volume over: ${fence.decision.reason}`,
        );
      }
      signal.throwIfAborted();

      const limits = record.runtime?.rateLimit ?? UNLIMITED;
      try {
        await this.o.limits.applyQos(pool, image, limits);
      } catch (err) {
        log.warn({ volume: name, err: messageOf(err) }, 'could not set librbd QoS on the image; cgroup limits still apply');
      }

      const mapping = await this.o.mapper.map({ tenant, volume, pool, image });
      undo.push(`unmap ${mapping.device ?? ''}`, () => this.o.mapper.unmap(mapping));
      if (!mapping.device) throw new PluginError('INTERNAL', `mapping ${pool}/${image} gave no device`);
      log.info({ volume: name, mapper: mapping.kind, device: mapping.device, client: mapping.clientAddress }, 'image mapped');
      signal.throwIfAborted();

      await writeHolder(this.o.storage, pool, image, {
        hostId: this.o.hostId,
        host: this.o.host,
        mapper: mapping.kind,
        clientAddress: mapping.clientAddress,
        since: lockRecord.since,
      });
      undo.push('clear the holder note', () => clearHolder(this.o.storage, pool, image, mapping.clientAddress));
      const updated = await this.o.store.updateMount({ ...lockRecord, device: mapping.device, clientAddress: mapping.clientAddress }, lease);
      if (!updated) throw new PluginError('LOCKED', `lost the mount lock of ${name} while mapping it (etcd lease expired?); try again`);

      const fs = await this.ops.probeFilesystem(mapping.device);
      if (fs === null) {
        log.info({ volume: name, device: mapping.device, filesystem: record.options.filesystem }, 'first use: formatting');
        await this.ops.formatDevice(record.formatCommand, mapping.device);
      } else {
        log.debug({ volume: name, device: mapping.device, filesystem: fs }, 'filesystem found');
      }
      signal.throwIfAborted();

      await this.ops.mountDevice(mapping.device, mountpoint);
      undo.push(`unmount ${mountpoint}`, async () => {
        await this.ops.unmountAll(mountpoint);
        await this.ops.removeDir(mountpoint);
      });

      const entry: LocalVolume = {
        tenant,
        volume,
        pool,
        image,
        mapping,
        mountpoint,
        refs: [id],
        since: lockRecord.since,
        appliedLimits: null,
        lost: null,
      };
      this.o.local.set(entry);
      undo.push('forget the mount', async () => {
        this.o.local.delete(tenant, volume);
        await this.o.local.save();
      });
      await this.o.local.save();
      // The commit point: past it, Docker is told the mount worked.
      signal.throwIfAborted();
      undo.commit();
      log.info({ volume: name, id, device: mapping.device, mountpoint, ms: Date.now() - started }, 'volume mounted');
      await this.changed();
      return entry;
    } catch (err) {
      const failed = await undo.rollback(log);
      const wrapped = wrapState(err);
      log.warn({ volume: name, err: messageOf(wrapped), leftovers: failed.map((f) => f.what) }, 'mount failed and was undone');
      throw wrapped;
    }
  }

  /** Applies the volume's rate limits: librbd QoS on the image, blkio in its containers' cgroups. */
  async applyLimits(entry: LocalVolume, limits: RateLimit, options: { duringMount: boolean } = { duringMount: false }): Promise<string[]> {
    const problems: string[] = [];
    if (!sameLimits(entry.appliedLimits, limits)) {
      try {
        await this.o.limits.applyQos(entry.pool, entry.image, limits);
      } catch (err) {
        problems.push(`librbd QoS of ${volumeKey(entry.tenant, entry.volume)} not set: ${messageOf(err)}`);
      }
    }
    if (entry.mapping.device) {
      const dev = await this.ops.deviceNumber(entry.mapping.device);
      const result = await this.o.limits.applyToContainers(volumeKey(entry.tenant, entry.volume), dev, limits, options);
      problems.push(...result.problems);
      if (result.containers.length > 0) {
        this.o.log.debug({ volume: volumeKey(entry.tenant, entry.volume), containers: result.containers, limits }, 'rate limits applied');
      }
    }
    if (problems.length === 0 && !sameLimits(entry.appliedLimits, limits)) {
      entry.appliedLimits = { ...limits };
      await this.o.local.save();
    }
    return problems;
  }

  /** Docker's Unmount: drops the reference; the last one tears the mount down. */
  async unmount(tenant: string, volume: string, id: string, signal: AbortSignal): Promise<void> {
    await this.o.mutex.run(volumeKey(tenant, volume), async () => {
      signal.throwIfAborted();
      const name = volumeKey(tenant, volume);
      const entry = this.o.local.get(tenant, volume);
      if (!entry) {
        this.o.log.warn({ volume: name, id }, 'Unmount of a volume that is not mounted here: nothing to do');
        return;
      }
      if (!dropRef(entry, id)) {
        this.o.log.warn({ volume: name, id, references: entry.refs.length }, 'Unmount with an ID that holds no reference');
        if (entry.refs.length > 0) return;
      } else {
        await this.o.local.save();
      }
      if (entry.refs.length > 0) {
        this.o.log.info({ volume: name, id, references: entry.refs.length }, 'volume reference dropped');
        return;
      }
      await this.teardown(entry);
    });
  }

  /**
   * Unmounts, unmaps, clears the holder note and releases the lock of a volume with no references.
   * Call with the volume's mutex held. The local part must succeed (else the entry stays and the
   * convergence loop retries); etcd and Ceph bookkeeping that fails is left to the loop.
   */
  async teardown(entry: LocalVolume): Promise<void> {
    const name = volumeKey(entry.tenant, entry.volume);
    const log = this.o.log;
    log.debug({ volume: name, mountpoint: entry.mountpoint, lost: entry.lost }, 'tearing down: unmounting');
    if (entry.lost) await this.o.mapper.stopIo?.(entry.mapping).catch(() => undefined);
    try {
      await this.ops.unmountAll(entry.mountpoint);
    } catch (err) {
      throw new PluginError(
        'INTERNAL',
        `cannot unmount ${entry.mountpoint} (${messageOf(err)}): a process still uses it? volplugin retries in the background`,
        { cause: err },
      );
    }
    await this.ops.removeDir(entry.mountpoint);
    await this.ops.removeDir(path.dirname(entry.mountpoint));
    await this.o.mapper.unmap(entry.mapping);
    if (!entry.lost) {
      await clearHolder(this.o.storage, entry.pool, entry.image, entry.mapping.clientAddress).catch((err: unknown) => {
        log.warn({ volume: name, err: messageOf(err) }, 'could not clear the holder note: the next mount will fence a client that is already gone (harmless)');
      });
    }
    this.o.local.delete(entry.tenant, entry.volume);
    await this.o.local.save();
    if (!entry.lost) {
      await this.releaseLock(entry.tenant, entry.volume).catch((err: unknown) => {
        log.warn({ volume: name, err: messageOf(err) }, 'could not release the mount lock now; the convergence loop releases it (or it expires with the lease)');
      });
    }
    log.info({ volume: name, mountpoint: entry.mountpoint }, 'volume unmounted, unmapped and released');
    await this.changed();
  }

  private async changed(): Promise<void> {
    await this.o.onChange?.().catch((err: unknown) => this.o.log.warn({ err: messageOf(err) }, 'could not publish the host report'));
  }

  /** Releases the volume's lock if this host holds it (under any of its leases). */
  async releaseLock(tenant: string, volume: string): Promise<boolean> {
    const holder = await this.o.store.getMount(tenant, volume);
    if (!holder || holder.hostId !== this.o.hostId) return false;
    return this.o.store.releaseMount(tenant, volume, { hostId: holder.hostId, lease: holder.lease });
  }

  /** A mapping of this host that no entry references (left by a crash): unmap it. */
  async cleanupMapping(mapping: Mapping): Promise<void> {
    await this.o.mapper.unmap(mapping);
  }
}
