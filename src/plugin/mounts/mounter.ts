// Making and unmaking a volume's mount on this host.
//
// The first mount is a sequence of named steps: take the volume's cross-host lock in etcd (bound
// to the host lease), fence the previous holder if it did not let go cleanly, set librbd QoS, map
// the image (refused without a Ceph client address another host could fence), note which Ceph
// client holds it (image metadata and the lock record), format it at most once in its life
// (format.ts), mount it at MOUNT-ROOT/tenant/volume (growing a filesystem smaller than its device
// first or right after: grow.ts), and remember it in the host's mount table.
// Each step that changes the host or the cluster pushes its undo: a failure anywhere reverses
// everything done so far, so nothing stays locked, mapped or mounted.
//
// The teardown goes the other way: unmount, unmap, clear the holder note, forget, release the lock.

import path from 'node:path';
import type { Fencing } from '../../fencing/index.js';
import { DeviceReadError, type DeviceContents } from '../../mapper/fs.js';
import type { GrowReport } from '../../mapper/grow.js';
import type { Mapper, Mapping } from '../../mapper/types.js';
import { UNLIMITED, type RateLimiter } from '../../ratelimit/index.js';
import { StateUnavailableError } from '../../state/kv.js';
import type { VolumeRecord } from '../../state/records.js';
import type { MountLocks, TakenLock } from '../cluster/mount-lock.js';
import { refusalError } from '../cluster/mount-lock.js';
import { PluginError, messageOf } from '../errors.js';
import { pauseAt, type PluginFailpoints } from '../failpoints.js';
import { decideFormat, unreadableMessage } from './format.js';
import { growMounted, growthPending, growToDevice } from './grow.js';
import type { HostIdentity } from './host-id.js';
import type { HostOps } from './host-ops.js';
import type { LocalState, LocalVolume } from './local-state.js';
import { volumeKey } from './local-state.js';
import { UndoStack } from './undo.js';

export interface MountLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/** A first mount in progress: what its steps share. */
interface MountJob {
  record: VolumeRecord;
  /** tenant/volume, for messages. */
  name: string;
  mountpoint: string;
  since: string;
  undo: UndoStack;
  signal: AbortSignal;
}

type HeldLock = Extract<TakenLock, { ok: true }>;
type MappedDevice = Mapping & { device: string };

export interface MounterParts {
  host: HostIdentity;
  mountRoot: string;
  locks: MountLocks;
  fencing: Fencing;
  limits: Pick<RateLimiter, 'applyQos'>;
  mapper: Mapper;
  hostOps: HostOps;
  local: LocalState;
  log: MountLog;
  /** Test-only pauses (VOLPLUGIN_FAILPOINTS). */
  failpoints?: PluginFailpoints;
}

function wrapState(err: unknown): unknown {
  if (err instanceof StateUnavailableError) {
    return new PluginError('STATE_UNAVAILABLE', `${err.message}: volplugin keeps its mount locks in etcd; check --etcd and that etcd runs`, {
      cause: err,
    });
  }
  return err;
}

export class Mounter {
  /** Mappings made by first mounts still in progress (not yet in the mount table), by volume. */
  private readonly inFlight = new Map<string, Mapping>();

  constructor(private readonly parts: MounterParts) {}

  /** The mappings of first mounts in progress: what must stop too when the host lease is lost. */
  mappingsInFlight(): Mapping[] {
    return [...this.inFlight.values()];
  }

  mountpointOf(tenant: string, volume: string): string {
    return path.join(this.parts.mountRoot, tenant, volume);
  }

  /** The first mount of a volume on this host, holding reference `id`; undone entirely if any step fails. */
  async mount(record: VolumeRecord, id: string, signal: AbortSignal): Promise<LocalVolume> {
    const { tenant, volume } = record;
    const job: MountJob = {
      record,
      name: volumeKey(tenant, volume),
      mountpoint: this.mountpointOf(tenant, volume),
      since: new Date().toISOString(),
      undo: new UndoStack(),
      signal,
    };
    const started = Date.now();
    try {
      const lock = await this.takeLock(job);
      await pauseAt(this.parts.failpoints, 'after-lock');
      await this.fencePreviousHolder(job);
      await this.setQos(job);
      const mapping = await this.map(job);
      await this.noteHolder(job, lock, mapping);
      const contents = await this.prepareFilesystem(job, lock, mapping.device);
      const grow = growthPending(contents);
      if (grow?.when === 'before-mount') await growToDevice(this.parts, job.name, mapping.device, job.mountpoint, grow);
      await this.mountFilesystem(job, mapping.device);
      if (grow?.when === 'after-mount') await growToDevice(this.parts, job.name, mapping.device, job.mountpoint, grow);
      const entry = await this.remember(job, mapping, lock, id);
      // The commit point: past it, Docker is told the mount worked. A lease lost meanwhile means the
      // lock may be gone: the mount is undone (the lease-loss handler cannot see it yet).
      signal.throwIfAborted();
      if (lock.lease.lost) throw new PluginError('LOCKED', `lost the mount lock of ${job.name} while mounting it (etcd lease not renewed in time); try again`);
      job.undo.commit();
      this.parts.log.info({ volume: job.name, id, device: mapping.device, mountpoint: job.mountpoint, ms: Date.now() - started }, 'volume mounted');
      return entry;
    } catch (err) {
      const failed = await job.undo.rollback(this.parts.log);
      const wrapped = wrapState(err);
      this.parts.log.warn({ volume: job.name, err: messageOf(wrapped), leftovers: failed.map((f) => f.what) }, 'mount failed and was undone');
      throw wrapped;
    } finally {
      this.inFlight.delete(job.name);
    }
  }

  // ---- the steps of a first mount ------------------------------------------------------------

  /** The volume's cross-host lock, for this host under its live lease (LOCKED when another host holds it). */
  private async takeLock(job: MountJob): Promise<HeldLock> {
    const { tenant, volume } = job.record;
    const lock = await this.parts.locks.take({
      tenant,
      volume,
      device: '',
      mountpoint: job.mountpoint,
      mapper: this.parts.mapper.kind,
      clientAddress: null,
      since: job.since,
    });
    if (!lock.ok) throw refusalError(job.name, lock, this.parts.locks.lease.ttlSeconds);
    job.undo.push('release the mount lock', async () => {
      await this.parts.locks.release(tenant, volume, lock.lease.id);
    });
    job.signal.throwIfAborted();
    return lock;
  }

  /** Blocklists the client that held the image last if it did not unmount cleanly (never this host's own). */
  private async fencePreviousHolder(job: MountJob): Promise<void> {
    const { pool, image } = job.record;
    const live = new Set(this.parts.local.all().map((e) => e.mapping.clientAddress).filter((a): a is string => !!a));
    const fence = await this.parts.fencing.fencePreviousHolder(pool, image, live);
    if (fence.decision.fence) {
      this.parts.log.warn(
        { volume: job.name, fenced: fence.decision.address, previous: fence.note?.host, seconds: this.parts.fencing.seconds },
        `fenced the previous holder's Ceph client before taking the volume over: ${fence.decision.reason}`,
      );
    }
    job.signal.throwIfAborted();
  }

  /** librbd QoS on the image; a failure only warns (the cgroup limits still apply). */
  private async setQos(job: MountJob): Promise<void> {
    const { pool, image } = job.record;
    try {
      await this.parts.limits.applyQos(pool, image, job.record.runtime?.rateLimit ?? UNLIMITED);
    } catch (err) {
      this.parts.log.warn({ volume: job.name, err: messageOf(err) }, 'could not set librbd QoS on the image; cgroup limits still apply');
    }
  }

  /** Maps the image; refused (and unmapped) when its Ceph client cannot be told, since no other host could fence it then. */
  private async map(job: MountJob): Promise<MappedDevice> {
    const { tenant, volume, pool, image } = job.record;
    const mapping = await this.parts.mapper.map({ tenant, volume, pool, image });
    this.inFlight.set(job.name, mapping);
    job.undo.push(`unmap ${mapping.device ?? ''}`, () => this.parts.mapper.unmap(mapping));
    if (!mapping.device) throw new PluginError('INTERNAL', `mapping ${pool}/${image} gave no device`);
    if (!mapping.clientAddress) {
      throw new PluginError(
        'INTERNAL',
        `mapped ${pool}/${image} (${mapping.kind}) but could not learn its Ceph client's address, so another host could not fence ` +
          `this mount if this host stopped answering: unmapped it. Check rbd status ${pool}/${image} and try again`,
      );
    }
    this.parts.log.info({ volume: job.name, mapper: mapping.kind, device: mapping.device, client: mapping.clientAddress }, 'image mapped');
    job.signal.throwIfAborted();
    return mapping as MappedDevice;
  }

  /** Records the Ceph client that holds the image: the holder note on the image, and device and client in the lock. */
  private async noteHolder(job: MountJob, lock: HeldLock, mapping: MappedDevice): Promise<void> {
    const { pool, image } = job.record;
    await this.parts.fencing.noteHolder(pool, image, {
      hostId: this.parts.host.id,
      host: this.parts.host.label,
      mapper: mapping.kind,
      clientAddress: mapping.clientAddress,
      since: job.since,
    });
    job.undo.push('clear the holder note', () => this.parts.fencing.clearHolder(pool, image, mapping.clientAddress));
    const updated = await this.parts.locks.update({ ...lock.record, device: mapping.device, clientAddress: mapping.clientAddress }, lock.lease);
    if (!updated) throw new PluginError('LOCKED', `lost the mount lock of ${job.name} while mapping it (etcd lease expired?); try again`);
  }

  /**
   * Formats the device if this is the volume's first use, at most once in its life (format.ts): the
   * decision is made under the lock, from the record as etcd has it now and what the device holds;
   * formatStarted is recorded before mkfs runs and formatted after it succeeded, both only while
   * this host holds the lock.
   */
  private async prepareFilesystem(job: MountJob, lock: HeldLock, device: string): Promise<DeviceContents> {
    const { tenant, volume } = job.record;
    const { locks, hostOps, log } = this.parts;
    const current = await locks.volume(tenant, volume);
    if (!current) throw new PluginError('VOLUME_NOT_FOUND', `volume ${job.name} was removed while mounting it`);
    let contents;
    try {
      contents = await hostOps.probeDevice(device);
    } catch (err) {
      if (!(err instanceof DeviceReadError)) throw err;
      throw new PluginError('UNSAFE_DEVICE', unreadableMessage(job.name, !!current.formatted, err.message), { cause: err });
    }
    const decision = decideFormat(job.name, device, current, contents);
    switch (decision.action) {
      case 'refuse':
        throw new PluginError('UNSAFE_DEVICE', decision.message);
      case 'mount':
        if (decision.record) {
          log.info({ volume: job.name, device, found: contents }, 'filesystem found on a volume not yet recorded as formatted: recording it');
          await locks.markFormat(tenant, volume, lock.lease, 'done');
        }
        break;
      case 'format':
        await locks.markFormat(tenant, volume, lock.lease, 'started');
        if (decision.again) {
          log.warn({ volume: job.name, device, began: current.formatStarted }, 'the first format of this volume did not finish: formatting it again');
          await hostOps.wipeSignatures(device);
        } else {
          log.info({ volume: job.name, device, filesystem: job.record.options.filesystem }, 'first use: formatting');
        }
        await hostOps.formatDevice(current.formatCommand, device);
        await pauseAt(this.parts.failpoints, 'after-format');
        await locks.markFormat(tenant, volume, lock.lease, 'done');
        break;
    }
    job.signal.throwIfAborted();
    return contents;
  }


  private async mountFilesystem(job: MountJob, device: string): Promise<void> {
    await this.parts.hostOps.mountDevice(device, job.mountpoint);
    job.undo.push(`unmount ${job.mountpoint}`, async () => {
      await this.parts.hostOps.unmountAll(job.mountpoint);
      await this.parts.hostOps.removeDir(job.mountpoint);
    });
  }

  /** A resize's `resize-fs` request (manager.ts): see grow.ts growMounted. */
  growMounted(entry: LocalVolume, sizeBytes: number): Promise<GrowReport> {
    return growMounted(this.parts, entry, sizeBytes);
  }

  /** Adds the volume to the host's mount table (on disk before Docker gets its answer). */
  private async remember(job: MountJob, mapping: Mapping, lock: HeldLock, id: string): Promise<LocalVolume> {
    const { tenant, volume, pool, image } = job.record;
    const entry: LocalVolume = {
      tenant,
      volume,
      pool,
      image,
      mapping,
      mountpoint: job.mountpoint,
      refs: [id],
      since: job.since,
      appliedLimits: null,
      lost: null,
      lockGeneration: lock.record.generation ?? null,
    };
    this.parts.local.set(entry);
    job.undo.push('forget the mount', async () => {
      this.parts.local.delete(tenant, volume);
      await this.parts.local.save();
    });
    await this.parts.local.save();
    return entry;
  }

  // ---- later mounts and the teardown ---------------------------------------------------------

  /**
   * Mounts the device again when someone unmounted it by hand while containers may still hold it,
   * after checking that the device still maps the volume's image (a device number can have been
   * given to another image meanwhile).
   */
  async remountIfGone(entry: LocalVolume): Promise<void> {
    if ((await this.parts.hostOps.mountsAt(entry.mountpoint)) > 0) return;
    const name = volumeKey(entry.tenant, entry.volume);
    if (!entry.mapping.device) throw new PluginError('INTERNAL', `${name} is in volplugin's table but has no device; restart volplugin to clean up`);
    if (!(await this.parts.mapper.isMapped(entry.mapping))) {
      throw new PluginError(
        'INTERNAL',
        `${name} is no longer mounted and its device ${entry.mapping.device} no longer maps ${entry.pool}/${entry.image} ` +
          '(unmapped by hand?): stop the containers that use it here so that volplugin can clean up, then mount it again',
      );
    }
    this.parts.log.warn({ volume: name, mountpoint: entry.mountpoint }, 'volume was no longer mounted: mounting its device again');
    await this.parts.hostOps.mountDevice(entry.mapping.device, entry.mountpoint);
  }

  /**
   * Unmounts, unmaps, clears the holder note and releases the lock of a volume with no references.
   * Call with the volume's mutex held. The local part must succeed (else the entry stays and the
   * convergence loop retries); etcd and Ceph bookkeeping that fails is left to the loop.
   */
  async teardown(entry: LocalVolume): Promise<void> {
    const name = volumeKey(entry.tenant, entry.volume);
    const log = this.parts.log;
    log.debug({ volume: name, mountpoint: entry.mountpoint, lost: entry.lost }, 'tearing down: unmounting');
    if (entry.lost) await this.parts.fencing.cutLocalIo(entry.mapping);
    try {
      await this.parts.hostOps.unmountAll(entry.mountpoint);
    } catch (err) {
      throw new PluginError(
        'INTERNAL',
        `cannot unmount ${entry.mountpoint} (${messageOf(err)}): a process still uses it? volplugin retries in the background`,
        { cause: err },
      );
    }
    await this.parts.hostOps.removeDir(entry.mountpoint);
    await this.parts.hostOps.removeDir(path.dirname(entry.mountpoint));
    await this.parts.mapper.unmap(entry.mapping);
    if (!entry.lost) {
      await this.parts.fencing.clearHolder(entry.pool, entry.image, entry.mapping.clientAddress).catch((err: unknown) => {
        log.warn({ volume: name, err: messageOf(err) }, 'could not clear the holder note: the next mount will fence a client that is already gone (harmless)');
      });
    }
    this.parts.local.delete(entry.tenant, entry.volume);
    await this.parts.local.save();
    if (!entry.lost) {
      await this.parts.locks.releaseIfOurs(entry.tenant, entry.volume).catch((err: unknown) => {
        log.warn({ volume: name, err: messageOf(err) }, 'could not release the mount lock now; the convergence loop releases it (or it expires with the lease)');
      });
    }
    log.info({ volume: name, mountpoint: entry.mountpoint }, 'volume unmounted, unmapped and released');
  }

  /** A mapping of this host that no entry references (left by a crash): unmap it. */
  async unmap(mapping: Mapping): Promise<void> {
    await this.parts.mapper.unmap(mapping);
  }
}
