// One class, over 400 lines: every operation below shares its lock, time-bound and lookup helpers.
// Snapshot operations on one volume, on a Storage and a StateStore: what the master's API (on
// demand) and volsupervisor (on schedule) both do. Every operation that changes something holds the
// volume's operation lock, so that it never races a create, remove, copy or another snapshot
// operation of any master or supervisor; every call to Ceph is bounded in time; every refusal is an
// ApiError with a code of the API's catalogue, raised before anything changed.

import pino, { type Logger } from 'pino';
import { imageName } from '../policy/names.js';
import type { Storage, SnapshotInfo, ParentRef, ProgressListener } from '../storage/types.js';
import { isRbdError } from '../storage/errors.js';
import { forgetHolder } from '../fencing/index.js';
import { countSnapshot } from '../metrics/families.js';
import { LockReason, StateMountedError, type StateStore, type VolumeLock } from '../state/store.js';
import type { VolumeFormat, VolumeRecord } from '../state/records.js';
import { systemClock, type Clock } from './clock.js';
import { withTimeout } from '../common/timeout.js';
import { ApiError } from './errors.js';
import {
  SUPERVISOR_PREFIX,
  compareSnapshotNames,
  manualSnapshotName,
  snapshotNameProblem,
  snapshotOrigin,
  supervisorSnapshotName,
} from './names.js';
import { planPrune } from './prune.js';
import { SnapshotFreezer } from './freeze.js';
import { GroupSnapshots } from './groups.js';
import type { Retention } from './retention.js';

import type {
  ProtectedSnapshots,
  CopyHooks,
  CopyTarget,
  FinishCloneResult,
  PruneResult,
  ScheduledResult,
  SnapshotServiceOptions,
  SnapshotView,
} from './types.js';

export type * from './types.js';

const MANUAL_NAME_ATTEMPTS = 50;

/**
 * A copy holds its source's filesystem when the snapshot was taken after the source was formatted:
 * then it is recorded as formatted (never formatted again). Otherwise (an older snapshot, a source
 * from before the record kept it, no snapshot time) it is left unset and its first mount decides
 * from what the device holds.
 */
function formattedCopy(source: VolumeFormat, snapshot: SnapshotInfo): string | null {
  if (!source.formatted || !snapshot.createdAt) return null;
  return snapshot.createdAt.getTime() >= Date.parse(source.formatted) ? source.formatted : null;
}

export class SnapshotService {
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly callMs: number;
  private readonly longMs: number;
  private readonly lockWaitMs: number;
  private readonly lockTtlSeconds: number | undefined;
  private readonly protectedSnapshots: ProtectedSnapshots;
  private readonly freezer: SnapshotFreezer;
  /** Group snapshots (groups.ts), with the same freezer, clock and lock settings. */
  readonly groups: GroupSnapshots;

  constructor(
    private readonly storage: Storage,
    private readonly store: StateStore,
    options: SnapshotServiceOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.log = options.logger ?? pino({ level: 'silent' });
    this.callMs = options.callTimeoutMs ?? 30_000;
    this.longMs = options.longTimeoutMs ?? 3_600_000;
    this.lockWaitMs = options.lockWaitMs ?? 10_000;
    this.lockTtlSeconds = options.lockTtlSeconds;
    this.protectedSnapshots = options.protectedSnapshots ?? (async () => []);
    this.freezer = new SnapshotFreezer(store, this.log, options.freeze);
    this.groups = new GroupSnapshots({
      storage,
      store,
      freezer: this.freezer,
      clock: this.clock,
      log: this.log,
      lockWaitMs: this.lockWaitMs,
      lockTtlSeconds: this.lockTtlSeconds,
      longMs: this.longMs,
      beforeRollback: options.beforeGroupRollback,
    });
  }

  /** The volume's operation lock with this service's TTL, waiting up to `waitMs`. */
  private withLock<T>(tenant: string, volume: string, reason: string, fn: (signal: AbortSignal) => Promise<T>, waitMs = this.lockWaitMs): Promise<T> {
    return this.store.withOperationLock(tenant, volume, { reason, waitMs, ttlSeconds: this.lockTtlSeconds }, fn);
  }

  private call<T>(what: string, fn: () => Promise<T>, ms = this.callMs): Promise<T> {
    return withTimeout(fn(), ms, what);
  }

  // ---- lookups ----------------------------------------------------------------------------

  private async volume(tenant: string, volume: string): Promise<VolumeRecord> {
    const record = await this.store.getVolume(tenant, volume);
    if (!record) throw new ApiError('VOLUME_NOT_FOUND', `volume ${tenant}/${volume} does not exist`);
    return record;
  }

  private async rawSnapshots(record: VolumeRecord): Promise<SnapshotInfo[]> {
    try {
      return await this.call(`listing snapshots of ${record.pool}/${record.image}`, () =>
        this.storage.listSnapshots(record.pool, record.image),
      );
    } catch (err) {
      if (isRbdError(err, 'ENOENT')) {
        throw new ApiError(
          'STORAGE_ERROR',
          `volume ${record.tenant}/${record.volume} names image ${record.pool}/${record.image}, which does not exist in Ceph`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  private async findSnapshot(record: VolumeRecord, snapshot: string): Promise<SnapshotInfo> {
    const problem = snapshotNameProblem(snapshot);
    if (problem) throw new ApiError('INVALID_NAME', problem, { field: 'snapshot' });
    const found = (await this.rawSnapshots(record)).find((s) => s.name === snapshot);
    if (!found) {
      throw new ApiError(
        'SNAPSHOT_NOT_FOUND',
        `volume ${record.tenant}/${record.volume} has no snapshot ${JSON.stringify(snapshot)}; see volcli volume snapshot list ${record.tenant}/${record.volume}`,
      );
    }
    return found;
  }

  private children(record: VolumeRecord, snapshot: string): Promise<string[]> {
    const parent: ParentRef = { pool: record.pool, image: record.image, snapshot };
    return this.call(`listing clones of ${record.pool}/${record.image}@${snapshot}`, () => this.storage.listChildren(parent));
  }

  private async view(record: VolumeRecord, info: SnapshotInfo): Promise<SnapshotView> {
    return {
      name: info.name,
      id: info.id,
      origin: snapshotOrigin(info.name),
      createdAt: info.createdAt ? info.createdAt.toISOString() : null,
      sizeBytes: info.size,
      protected: info.protected,
      clones: await this.children(record, info.name),
    };
  }

  /** The volume's snapshots, oldest first. */
  async list(tenant: string, volume: string): Promise<SnapshotView[]> {
    const record = await this.volume(tenant, volume);
    const infos = (await this.rawSnapshots(record)).sort((a, b) => compareSnapshotNames(a.name, b.name));
    const out: SnapshotView[] = [];
    // A few at a time: the CLI backend runs a process per call.
    for (let i = 0; i < infos.length; i += 4) {
      out.push(...(await Promise.all(infos.slice(i, i + 4).map((info) => this.view(record, info)))));
    }
    return out;
  }

  // ---- on demand --------------------------------------------------------------------------

  /**
   * Takes an on-demand snapshot now, named `manual-<time>` unless `name` is given. Names starting
   * with "vs-" are volsupervisor's (it prunes them) and refused here.
   */
  /** Takes a snapshot now; with `limit`, refused (409 SNAPSHOT_LIMIT) when the volume already has that many. */
  async take(tenant: string, volume: string, name?: string, limit?: number): Promise<SnapshotView> {
    if (name !== undefined) {
      const problem = snapshotNameProblem(name);
      if (problem) throw new ApiError('INVALID_NAME', problem, { field: 'snapshot' });
      if (name.startsWith(SUPERVISOR_PREFIX)) {
        throw new ApiError('INVALID_NAME', `snapshot names starting with "${SUPERVISOR_PREFIX}" are volsupervisor's (it prunes them); choose another name`, {
          field: 'snapshot',
        });
      }
    }
    return this.withLock(tenant, volume, LockReason.Snapshot, async () => {
      const record = await this.volume(tenant, volume);
      const existing = new Set((await this.rawSnapshots(record)).map((s) => s.name));
      if (limit !== undefined && existing.size >= limit) {
        throw new ApiError('SNAPSHOT_LIMIT', `volume ${tenant}/${volume} has ${existing.size} snapshots, its tenant's limit (limits.snapshots); remove one first`, { field: 'limits.snapshots' });
      }
      const candidate = await this.freezer.around(
        [record],
        () => this.createFirstFree(record, existing, name),
        (taken) => this.discard(record, taken),
      );
      this.log.info({ tenant, volume, snapshot: candidate, origin: snapshotOrigin(candidate) }, 'snapshot taken');
      const info = (await this.rawSnapshots(record)).find((s) => s.name === candidate);
      if (info) return this.view(record, info);
      throw new Error(`snapshot ${record.pool}/${record.image}@${candidate} was created but is not listed`);
    });
  }

  /** Creates `name`, or the first free manual-<time> name when none is given; returns the name. */
  private async createFirstFree(record: VolumeRecord, existing: ReadonlySet<string>, name: string | undefined): Promise<string> {
    const { tenant, volume } = record;
    const at = this.clock.now();
    const candidates = name !== undefined ? [name] : Array.from({ length: MANUAL_NAME_ATTEMPTS }, (_, i) => manualSnapshotName(at, i + 1));
    for (const candidate of candidates) {
      if (existing.has(candidate) && name === undefined) continue;
      try {
        if (existing.has(candidate)) throw new ApiError('SNAPSHOT_EXISTS', `volume ${tenant}/${volume} has a snapshot ${candidate} already`, { field: 'snapshot' });
        await countSnapshot('manual', this.call(`snapshot ${record.pool}/${record.image}@${candidate}`, () => this.storage.createSnapshot(record.pool, record.image, candidate)));
        return candidate;
      } catch (err) {
        if (!isRbdError(err, 'EEXIST')) throw err;
        if (name !== undefined) throw new ApiError('SNAPSHOT_EXISTS', `volume ${tenant}/${volume} has a snapshot ${candidate} already`, { field: 'snapshot' });
      }
    }
    throw new Error(`could not find a free snapshot name for ${tenant}/${volume} after ${MANUAL_NAME_ATTEMPTS} attempts`);
  }

  /** Removes a snapshot just taken that must not be kept (its freeze did not hold). */
  private async discard(record: VolumeRecord, snapshot: string): Promise<void> {
    await this.call(`removing ${record.pool}/${record.image}@${snapshot}`, () => this.storage.removeSnapshot(record.pool, record.image, snapshot));
    this.log.warn({ tenant: record.tenant, volume: record.volume, snapshot }, 'snapshot removed again: its freeze did not hold');
  }

  /** Removes a snapshot, whoever made it; refused while clones depend on it. */
  async remove(tenant: string, volume: string, snapshot: string): Promise<void> {
    await this.withLock(tenant, volume, LockReason.Snapshot, async () => {
      const record = await this.volume(tenant, volume);
      const info = await this.findSnapshot(record, snapshot);
      const clones = await this.children(record, snapshot);
      if (clones.length > 0) {
        throw new ApiError(
          'VOLUME_HAS_CLONES',
          `snapshot ${snapshot} of ${tenant}/${volume} has clones (${clones.join(', ')}); they are being flattened by volsupervisor, or remove them first`,
        );
      }
      await this.removeUnused(record, info);
      this.log.info({ tenant, volume, snapshot }, 'snapshot removed');
    });
  }

  private async removeUnused(record: VolumeRecord, info: SnapshotInfo): Promise<void> {
    const where = `${record.pool}/${record.image}@${info.name}`;
    if (info.protected) {
      await this.call(`unprotecting ${where}`, () => this.storage.unprotectSnapshot(record.pool, record.image, info.name));
    }
    await this.call(`removing ${where}`, () => this.storage.removeSnapshot(record.pool, record.image, info.name));
  }

  /**
   * Rolls the volume's image back to a snapshot; refused, with nothing changed, while the volume is
   * mounted or open. No host can take the mount lock while it runs (StateStore.withMountsExcluded).
   */
  async rollback(tenant: string, volume: string, snapshot: string): Promise<void> {
    await this.withLock(tenant, volume, 'snapshot rollback', async () => {
      const record = await this.volume(tenant, volume);
      await this.findSnapshot(record, snapshot);
      await this.excludingMounts(record, 'snapshot rollback', async (signal) => {
        const watchers = await this.call(`listing watchers of ${record.pool}/${record.image}`, () =>
          this.storage.listWatchers(record.pool, record.image),
        );
        if (watchers.length > 0) {
          throw new ApiError(
            'VOLUME_IN_USE',
            `image ${record.pool}/${record.image} of ${tenant}/${volume} is open by ${watchers.map((w) => w.address).join(', ')}; unmap it before a rollback`,
          );
        }
        if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('mount exclusion lost');
        await this.call(
          `rolling ${record.pool}/${record.image} back to ${snapshot}`,
          () => this.storage.rollbackSnapshot(record.pool, record.image, snapshot),
          this.longMs,
        );
      });
      this.log.info({ tenant, volume, snapshot }, 'volume rolled back');
    });
  }

  /** Runs `fn` while no host may mount the volume; VOLUME_MOUNTED (nothing done) while one has it mounted. */
  private async excludingMounts(record: VolumeRecord, reason: string, fn: (signal: AbortSignal) => Promise<void>): Promise<void> {
    const { tenant, volume } = record;
    try {
      await this.store.withMountsExcluded(tenant, volume, { reason, ttlSeconds: this.lockTtlSeconds }, fn);
    } catch (err) {
      if (!(err instanceof StateMountedError)) throw err;
      const where = err.holder ? `${err.holder.host} (since ${err.holder.since})` : 'a host';
      throw new ApiError('VOLUME_MOUNTED', `volume ${tenant}/${volume} is mounted on ${where}; stop its containers before a rollback`);
    }
  }

  /**
   * Makes a new volume from a snapshot: protects the snapshot, clones it into the target's image
   * and stores the target's record (with `source`) built by `build`. The copy is usable at once;
   * volsupervisor flattens it in the background (finishClone) so that the snapshot and its volume
   * stay removable. On any failure the clone is removed again and the snapshot left as it was.
   */
  async copy(source: { tenant: string; volume: string; snapshot: string }, target: CopyTarget, hooks: CopyHooks): Promise<VolumeRecord> {
    const { tenant, volume, snapshot } = source;
    if (tenant === target.tenant && volume === target.volume) {
      throw new ApiError('VOLUME_EXISTS', `cannot copy ${tenant}/${volume} onto itself; name a new volume`);
    }
    return this.withLock(target.tenant, target.volume, LockReason.Create, async () => {
      if (await this.store.getVolume(target.tenant, target.volume)) {
        throw new ApiError('VOLUME_EXISTS', `volume ${target.tenant}/${target.volume} exists already; a copy needs a new name`);
      }
      return this.withLock(tenant, volume, LockReason.Copy, async () => {
        const sourceRecord = await this.volume(tenant, volume);
        const info = await this.findSnapshot(sourceRecord, snapshot);
        const built = await hooks.build({ target, sizeBytes: info.size, sourceRecord, snapshot });
        const record: VolumeRecord = {
          ...built,
          tenant: target.tenant,
          volume: target.volume,
          image: built.image || imageName(target.tenant, target.volume),
          source: { tenant, volume, snapshot },
        };
        const formatted = formattedCopy(await this.store.getVolumeFormat(tenant, volume), info);
        const exists = await this.call(`checking for image ${record.pool}/${record.image}`, () =>
          this.storage.imageExists(record.pool, record.image),
        );
        if (exists) {
          throw new ApiError(
            'IMAGE_EXISTS',
            `image ${record.pool}/${record.image} exists already in Ceph though no volume ${target.tenant}/${target.volume} is recorded; remove or rename that image first`,
          );
        }
        const parent: ParentRef = { pool: sourceRecord.pool, image: sourceRecord.image, snapshot };
        const where = `${parent.pool}/${parent.image}@${snapshot}`;
        const protectedHere = !info.protected;
        if (protectedHere) {
          try {
            await this.call(`protecting ${where}`, () => this.storage.protectSnapshot(parent.pool, parent.image, snapshot));
          } catch (err) {
            if (!isRbdError(err, 'EBUSY')) throw err; // EBUSY: protected meanwhile, which is what we want
          }
        }
        let cloned = false;
        let prepared = false;
        try {
          if (hooks.prepare) {
            await hooks.prepare(record);
            prepared = true;
          }
          await this.call(`cloning ${where} to ${record.pool}/${record.image}`, () =>
            this.storage.cloneSnapshot(parent, record.pool, record.image),
          );
          cloned = true;
          // librbd copies the parent's metadata into the clone: a holder note of the source's host there
          // would get that host fenced by the copy's first mount.
          await this.call(`clearing the holder note copied to ${record.pool}/${record.image}`, () => forgetHolder(this.storage, record.pool, record.image));
          if (hooks.afterClone) await hooks.afterClone(record);
          const committed = hooks.commit ? await hooks.commit(record) : await this.store.createVolume(record);
          if (!committed) {
            throw new ApiError('VOLUME_EXISTS', `volume ${target.tenant}/${target.volume} was created meanwhile`);
          }
        } catch (err) {
          if (cloned) {
            await this.call(`removing clone ${record.pool}/${record.image}`, () => this.storage.removeImage(record.pool, record.image)).catch(
              (cleanup: unknown) => this.log.error({ err: cleanup, image: `${record.pool}/${record.image}` }, 'could not remove the clone of a failed copy'),
            );
          }
          if (prepared && hooks.abandon) {
            await hooks.abandon(record).catch((cleanup: unknown) => this.log.error({ err: cleanup }, 'could not undo the preparation of a failed copy'));
          }
          if (protectedHere) await this.unprotectIfUnused(parent).catch(() => undefined);
          throw err;
        }
        if (formatted) {
          // Best effort: without the mark the copy's first mount finds the filesystem and records it.
          await this.store.markCopyFormatted(record.tenant, record.volume, formatted).catch((err: unknown) =>
            this.log.warn({ err, volume: `${record.tenant}/${record.volume}` }, 'could not record the copy as formatted; its first mount will'),
          );
        }
        this.log.info({ source: where, target: `${target.tenant}/${target.volume}`, image: `${record.pool}/${record.image}` }, 'volume copied from snapshot');
        return record;
      });
    });
  }

  private async unprotectIfUnused(parent: ParentRef): Promise<boolean> {
    const where = `${parent.pool}/${parent.image}@${parent.snapshot}`;
    const clones = await this.call(`listing clones of ${where}`, () => this.storage.listChildren(parent));
    if (clones.length > 0) return false;
    const snaps = await this.call(`listing snapshots of ${parent.pool}/${parent.image}`, () =>
      this.storage.listSnapshots(parent.pool, parent.image),
    );
    if (!snaps.find((s) => s.name === parent.snapshot)?.protected) return false;
    await this.call(`unprotecting ${where}`, () => this.storage.unprotectSnapshot(parent.pool, parent.image, parent.snapshot));
    return true;
  }

  // ---- on schedule (volsupervisor) --------------------------------------------------------

  /**
   * Takes the scheduled snapshot of `slotMs` and records the slot as taken. Idempotent: if the
   * slot's snapshot exists already (a previous leader took it and died before recording it), it is
   * only recorded. Returns 'busy' without waiting long when another operation holds the volume.
   */
  async takeScheduled(record: VolumeRecord, slotMs: number, signal?: AbortSignal): Promise<ScheduledResult> {
    const run = await this.runScheduled(record, { slotMs, keep: null }, signal);
    return 'outcome' in run ? run : run.taken!;
  }

  /**
   * One volume's turn on the schedule under ONE operation lock: the slot's snapshot (when `slotMs`
   * is given; 'aborted' when `signal` aborts before it), then pruning to `keep` (when given). The
   * transaction that takes the lock reads the record, and the one that gives it back records the
   * slot: three etcd round trips per volume instead of eight for a snapshot and a prune apart,
   * which is what a round over thousands of volumes waits on besides the monitors. A slot whose
   * recording failed (the lock was lost) is taken again by the next leader and found to exist.
   */
  async runScheduled(
    record: VolumeRecord,
    job: { slotMs: number | null; keep: Retention | null },
    signal?: AbortSignal,
  ): Promise<{ outcome: 'busy' | 'gone' | 'aborted' } | { taken: ScheduledResult | null; pruned: PruneResult | { outcome: 'gone' } | null }> {
    const { tenant, volume } = record;
    const reason = job.slotMs !== null ? LockReason.Snapshot : LockReason.Prune;
    return this.locked(record, reason, async (lock) => {
      const current = lock.volume;
      if (!current || current.createdAt !== record.createdAt) return { outcome: 'gone' as const };
      let taken: ScheduledResult | null = null;
      if (job.slotMs !== null) {
        if (signal?.aborted) return { outcome: 'aborted' as const };
        const name = supervisorSnapshotName(job.slotMs);
        const outcome = await this.freezer.around(
          [current],
          () => this.createScheduled(current, name),
          // Only a snapshot taken here goes: one that existed was taken (and frozen) by an earlier leader.
          (made) => (made === 'taken' ? this.discard(current, name) : Promise.resolve()),
        );
        taken = { outcome, name };
      }
      let pruned: PruneResult | { outcome: 'gone' } | null = null;
      let pruneFailed: { err: unknown } | null = null;
      if (job.keep !== null) {
        // (pruneHeld stops between removals once `signal` aborts, and says what it did)
        try {
          pruned = await this.pruneHeld(current, job.keep, signal);
        } catch (err) {
          pruneFailed = { err }; // the snapshot taken is recorded all the same
        }
      }
      if (job.slotMs !== null) await this.store.setLastSnapshot(tenant, volume, new Date(job.slotMs), lock);
      if (pruneFailed) throw pruneFailed.err;
      return { taken, pruned };
    });
  }

  /** Creates the slot's snapshot: 'existed' when an earlier leader took it already. */
  private async createScheduled(current: VolumeRecord, name: string): Promise<'taken' | 'existed'> {
    try {
      await countSnapshot('scheduled', this.call(`snapshot ${current.pool}/${current.image}@${name}`, () => this.storage.createSnapshot(current.pool, current.image, name)));
      return 'taken';
    } catch (err) {
      if (isRbdError(err, 'ENOENT')) {
        // The record is there (checked under the lock) but the image is not: report it, so that
        // the scheduler backs off and says so, instead of retrying silently on every tick.
        throw new ApiError('STORAGE_ERROR', `volume ${current.tenant}/${current.volume} names image ${current.pool}/${current.image}, which does not exist in Ceph`, {
          cause: err,
        });
      }
      if (!isRbdError(err, 'EEXIST')) throw err;
      return 'existed';
    }
  }

  /**
   * Removes the supervisor snapshots `keep` lets go (a number or tiers: retention.ts), never others,
   * never one with clones and never one the protectedSnapshots provider names (a backup chain's
   * base): those are retained. A provider that fails prunes nothing (fail closed).
   */
  async prune(record: VolumeRecord, keep: Retention, signal?: AbortSignal): Promise<PruneResult | { outcome: 'busy' | 'gone' }> {
    const run = await this.runScheduled(record, { slotMs: null, keep }, signal);
    return 'outcome' in run ? (run as { outcome: 'busy' | 'gone' }) : run.pruned!;
  }

  /** Prunes `current` to `keep` under the operation lock its caller holds (see prune). */
  private async pruneHeld(current: VolumeRecord, keep: Retention, signal?: AbortSignal): Promise<PruneResult | { outcome: 'gone' }> {
    let infos: SnapshotInfo[];
    try {
      infos = await this.rawSnapshots(current);
    } catch (err) {
      if (isRbdError(err, 'ENOENT') || isRbdError((err as Error).cause, 'ENOENT')) return { outcome: 'gone' } as const;
      throw err;
    }
    const needed = new Set(await this.protectedSnapshots(current, signal));
    const plan = planPrune(infos.map((s) => ({ name: s.name, protected: s.protected, needed: needed.has(s.name) })), keep);
    const result: PruneResult = { ...plan, remove: [], removed: [], failed: [] };
    for (const name of plan.remove) {
      if (signal?.aborted) break;
      try {
        const clones = await this.children(current, name);
        if (clones.length > 0) {
          result.retained.push(name);
          continue;
        }
        result.remove.push(name);
        await this.removeUnused(current, infos.find((s) => s.name === name)!);
        result.removed.push(name);
      } catch (err) {
        if (isRbdError(err, 'ENOENT')) continue; // removed meanwhile
        result.failed.push(name);
        this.log.warn({ err, tenant: current.tenant, volume: current.volume, snapshot: name }, 'could not prune snapshot');
      }
    }
    return result;
  }

  /**
   * Flattens a volume copied from a snapshot (so that it no longer depends on its parent), then
   * unprotects the parent snapshot once no clone depends on it. Does nothing for a volume that is
   * not (or no longer) a clone. `onProgress` hears the flatten (librbd's objects done of the total).
   */
  async finishClone(record: VolumeRecord, signal?: AbortSignal, onProgress?: ProgressListener): Promise<FinishCloneResult> {
    let parent: ParentRef | null;
    try {
      parent = (await this.call(`info of ${record.pool}/${record.image}`, () => this.storage.imageInfo(record.pool, record.image))).parent;
    } catch (err) {
      if (isRbdError(err, 'ENOENT')) return 'gone';
      throw err;
    }
    if (!parent) return 'not-a-clone';
    if (signal?.aborted) return 'aborted';
    const started = this.clock.now();
    try {
      await this.call(`flattening ${record.pool}/${record.image}`, () => this.storage.flattenImage(record.pool, record.image, { onProgress }), this.longMs);
    } catch (err) {
      if (isRbdError(err, 'ENOENT')) return 'gone';
      // EINVAL: not a clone any more (flattened by someone else meanwhile).
      if (!isRbdError(err, 'EINVAL')) throw err;
    }
    this.log.info(
      { tenant: record.tenant, volume: record.volume, parent: `${parent.pool}/${parent.image}@${parent.snapshot}`, ms: this.clock.now() - started },
      'copy flattened',
    );
    const owner = record.source;
    const unprotect = () => this.unprotectIfUnused(parent);
    try {
      const done = owner ? await this.withLock(owner.tenant, owner.volume, LockReason.Copy, unprotect) : await unprotect();
      if (!done) {
        const clones = await this.call(`listing clones of ${parent.pool}/${parent.image}@${parent.snapshot}`, () => this.storage.listChildren(parent));
        if (clones.includes(`${record.pool}/${record.image}`)) {
          this.log.warn(
            { tenant: record.tenant, volume: record.volume, parent: `${parent.pool}/${parent.image}@${parent.snapshot}` },
            'the copy has snapshots taken before it was flattened; they keep the parent snapshot protected until they are removed',
          );
        }
      }
    } catch (err) {
      // The copy is independent now; a snapshot left protected only blocks its own removal.
      this.log.warn({ err, parent }, 'could not unprotect the parent snapshot of a flattened copy');
    }
    return 'flattened';
  }

  /**
   * Runs `fn` under the volume's operation lock, taken with the volume's record read in the same
   * transaction (`lock.volume`), or returns 'busy' when someone else holds it (a scheduled job
   * does not wait: the next tick tries again).
   */
  private async locked<T>(record: VolumeRecord, reason: string, fn: (lock: VolumeLock) => Promise<T>): Promise<T | { outcome: 'busy' }> {
    try {
      return await this.store.withOperationLock(record.tenant, record.volume, { reason, waitMs: 1_000, ttlSeconds: this.lockTtlSeconds, readVolume: true }, (_signal, lock) => fn(lock));
    } catch (err) {
      if ((err as { code?: unknown }).code === 'BUSY') return { outcome: 'busy' };
      throw err;
    }
  }
}
