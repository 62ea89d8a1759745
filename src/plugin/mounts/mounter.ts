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
import { StepTimes, type StepRecorder } from '../../common/steps.js';
import type { Fencing } from '../../fencing/index.js';
import { DeviceReadError, type DeviceContents } from '../../mapper/fs.js';
import type { GrowReport } from '../../mapper/grow.js';
import { mountDuration, mountFailures, mountStepDuration, timeResult, unmountDuration, unmountStepDuration } from '../../metrics/families.js';
import { MeteredSteps } from '../../metrics/steps.js';
import type { Mapper, Mapping } from '../../mapper/types.js';
import { UNLIMITED, type RateLimiter } from '../../ratelimit/index.js';
import type { QosLimits } from '../../storage/types.js';
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
  /** Where each step's time goes (the log line, the bench, and the step histograms of src/metrics). */
  steps: MeteredSteps;
}

type HeldLock = Extract<TakenLock, { ok: true }>;
type MappedDevice = Mapping & { device: string };

export interface MounterParts {
  host: HostIdentity;
  mountRoot: string;
  locks: MountLocks;
  fencing: Fencing;
  limits: Pick<RateLimiter, 'qosChanges' | 'writeQos'>;
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
  async mount(record: VolumeRecord, id: string, signal: AbortSignal, recorder: StepRecorder = new StepTimes()): Promise<LocalVolume> {
    const { tenant, volume } = record;
    const mapper = this.parts.mapper.kind;
    const steps = new MeteredSteps(recorder, mountStepDuration, mapper);
    const job: MountJob = {
      record,
      name: volumeKey(tenant, volume),
      mountpoint: this.mountpointOf(tenant, volume),
      since: new Date().toISOString(),
      undo: new UndoStack(),
      signal,
      steps,
    };
    const started = Date.now();
    try {
      const lock = await steps.time('lock', () => this.takeLock(job));
      await pauseAt(this.parts.failpoints, 'after-lock');
      // The holder note and the image's QoS are read at once; QoS is written (rarely: the master
      // sets it) only after any fencing, so that no write waits on a holder that is being fenced.
      const [, qos] = await Promise.all([steps.time('fence', () => this.fencePreviousHolder(job)), steps.time('qos', () => this.qosChanges(job))]);
      if (qos) await steps.time('qos.write', () => this.writeQos(job, qos));
      const mapping = await steps.time('map', () => this.map(job));
      await steps.time('note', () => this.noteHolder(job, lock, mapping));
      const contents = await steps.time('format', () => this.prepareFilesystem(job, lock, mapping.device));
      // A resize the filesystem has not followed yet (made while unmounted, during a takeover, or deferred) is finished here.
      const grow = growthPending(contents);
      if (grow?.when === 'before-mount') await steps.time('grow', () => growToDevice(this.parts, job.name, mapping.device, job.mountpoint, grow));
      await steps.time('mount', () => this.mountFilesystem(job, mapping.device));
      if (grow?.when === 'after-mount') await steps.time('grow', () => growToDevice(this.parts, job.name, mapping.device, job.mountpoint, grow));
      const entry = await steps.time('record', () => this.remember(job, mapping, lock, id));
      // The commit point: past it, Docker is told the mount worked. A lease lost meanwhile means the
      // lock may be gone: the mount is undone (the lease-loss handler cannot see it yet).
      signal.throwIfAborted();
      if (lock.lease.lost) throw new PluginError('LOCKED', `lost the mount lock of ${job.name} while mounting it (etcd lease not renewed in time); try again`);
      job.undo.commit();
      mountDuration.observe({ mapper, result: 'ok' }, (Date.now() - started) / 1000);
      this.parts.log.info({ volume: job.name, id, device: mapping.device, mountpoint: job.mountpoint, ms: Date.now() - started }, 'volume mounted');
      return entry;
    } catch (err) {
      const failed = await job.undo.rollback(this.parts.log);
      mountFailures.inc({ mapper, step: job.steps.failed ?? 'commit' });
      mountDuration.observe({ mapper, result: 'error' }, (Date.now() - started) / 1000);
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
    const { locks, host, log } = this.parts;
    const claim = { tenant, volume, device: '', mountpoint: job.mountpoint, mapper: this.parts.mapper.kind, clientAddress: null, since: job.since };
    let lock = await locks.take(claim);
    let asked: string | undefined;
    // Another host that only keeps the volume idle (its grace after the last Unmount) lets go of it when asked.
    if (!lock.ok && lock.reason === 'held' && lock.holder.hostId !== host.id) {
      const outcome = await job.steps.time('lock.release', () => locks.askRelease((lock as Extract<TakenLock, { reason: 'held' }>).holder));
      if (outcome.asked) log.info({ volume: job.name, holder: lock.holder.host, released: outcome.released, detail: outcome.detail }, 'asked the holder to release an idle volume');
      asked = outcome.asked ? outcome.detail : undefined;
      if (outcome.released) lock = await locks.take(claim);
    }
    if (!lock.ok) throw refusalError(job.name, lock, locks.lease.ttlSeconds, asked);
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

  /** What of the image's librbd QoS differs from the volume's limits; a failure only warns (the cgroup limits still apply). */
  private async qosChanges(job: MountJob): Promise<QosLimits | null> {
    const { pool, image } = job.record;
    return this.parts.limits.qosChanges(pool, image, job.record.runtime?.rateLimit ?? UNLIMITED).catch((err: unknown) => {
      this.parts.log.warn({ volume: job.name, err: messageOf(err) }, 'could not read librbd QoS of the image; cgroup limits still apply');
      return null;
    });
  }

  /** Sets the image's librbd QoS; a failure only warns. */
  private async writeQos(job: MountJob, changes: QosLimits): Promise<void> {
    await this.parts.limits.writeQos(job.record.pool, job.record.image, changes).catch((err: unknown) => {
      this.parts.log.warn({ volume: job.name, err: messageOf(err) }, 'could not set librbd QoS on the image; cgroup limits still apply');
    });
  }

  /** Maps the image; refused (and unmapped) when its Ceph client cannot be told, since no other host could fence it then. */
  private async map(job: MountJob): Promise<MappedDevice> {
    const { tenant, volume, pool, image } = job.record;
    const mapping = await this.parts.mapper.map({ tenant, volume, pool, image }, { steps: job.steps });
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
    // Both before anything is written to the device; independent of each other (Ceph and etcd).
    job.undo.push('clear the holder note', () => this.parts.fencing.clearHolder(pool, image, mapping.clientAddress));
    const [, updated] = await Promise.all([
      this.parts.fencing.noteHolder(pool, image, {
        hostId: this.parts.host.id,
        host: this.parts.host.label,
        mapper: mapping.kind,
        clientAddress: mapping.clientAddress,
        since: job.since,
      }),
      this.parts.locks.update({ ...lock.record, device: mapping.device, clientAddress: mapping.clientAddress }, lock.lease),
    ]);
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
    const current = await job.steps.time('format.record', () => locks.volume(tenant, volume));
    if (!current) throw new PluginError('VOLUME_NOT_FOUND', `volume ${job.name} was removed while mounting it`);
    let contents;
    try {
      contents = await job.steps.time('format.probe', () => hostOps.probeDevice(device, { expectFilesystem: !!current.formatted }));
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
        await job.steps.time('format.mkfs', () => hostOps.formatDevice(current.formatCommand, device));
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
      idleUntil: null,
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
   * Why a volume kept idle on this host (no references, still mapped and mounted) cannot be handed
   * out again as it is, or null when it can: this host must still hold its lock under the live
   * lease (as the same acquisition), and its device must still map its image.
   */
  async whyNotReusable(entry: LocalVolume): Promise<string | null> {
    if (entry.lost) return `it is lost here (${entry.lost})`;
    if (!(await this.parts.locks.heldNow(entry.tenant, entry.volume, entry.lockGeneration))) return 'this host no longer holds its mount lock under its live lease';
    if (!(await this.parts.mapper.isMapped(entry.mapping))) return `its device ${entry.mapping.device ?? '?'} no longer maps ${entry.pool}/${entry.image}`;
    return null;
  }

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
  async teardown(entry: LocalVolume, recorder: StepRecorder = new StepTimes()): Promise<void> {
    const mapper = entry.mapping.kind;
    const steps = new MeteredSteps(recorder, unmountStepDuration, mapper);
    await timeResult(unmountDuration, { mapper }, async () => {
      const name = volumeKey(entry.tenant, entry.volume);
      const log = this.parts.log;
      log.debug({ volume: name, mountpoint: entry.mountpoint, lost: entry.lost }, 'tearing down: unmounting');
      if (entry.lost) await steps.time('cut-io', () => this.parts.fencing.cutLocalIo(entry.mapping));
      await steps.time('unmount', async () => {
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
      });
      await steps.time('unmap', () => this.parts.mapper.unmap(entry.mapping, { steps }));
      // The note goes before the lock: a host that takes the lock next must not find it and fence a closed client.
      await Promise.all([
        !entry.lost &&
          steps.time('note', () =>
            this.parts.fencing.clearHolder(entry.pool, entry.image, entry.mapping.clientAddress).catch((err: unknown) => {
              log.warn({ volume: name, err: messageOf(err) }, 'could not clear the holder note: the next mount will fence a client that is already gone (harmless)');
            }),
          ),
        steps.time('record', async () => {
          this.parts.local.delete(entry.tenant, entry.volume);
          await this.parts.local.save();
        }),
      ]);
      if (!entry.lost) {
        await steps.time('release', () =>
          this.parts.locks.releaseIfOurs(entry.tenant, entry.volume).catch((err: unknown) => {
            log.warn({ volume: name, err: messageOf(err) }, 'could not release the mount lock now; the convergence loop releases it (or it expires with the lease)');
            return false;
          }),
        );
      }
      log.info({ volume: name, mountpoint: entry.mountpoint }, 'volume unmounted, unmapped and released');
    });
  }

  /** A mapping of this host that no entry references (left by a crash): unmap it. */
  async unmap(mapping: Mapping): Promise<void> {
    await this.parts.mapper.unmap(mapping);
  }
}
