// Group snapshots: one crash-consistent snapshot of several volumes of a tenant at one instant
// (librbd's consistency groups, through Storage), so that an application's volumes match each other.
//
// A group is named TENANT/GROUP (a volume-like name); in Ceph it is the group `TENANT.GROUP` in the
// pool of its members, who must all live in one pool. It exists while it has snapshots: the first
// take makes it and adds the volumes named, a later take must name the same volumes (a volume of
// another group is refused: librbd puts an image in one group at most), and removing its last
// snapshot removes it, so that its volumes can be removed or grouped otherwise again. Its state
// lives in Ceph only (the group and its snapshots); etcd holds no record of it.
//
// Each take holds every member's operation lock (in name order, so that two takes never wait on
// each other) and freezes the members that ask for fsfreeze (freeze.ts), as a single take does.
// Whoever dies where: a group made or joined by a take that failed before its snapshot is removed
// again (a group without snapshots holds nothing worth keeping); a master that dies in between
// leaves a group without snapshots, which the next take of that name reuses or a remove clears.
//
// A rollback holds every member's operation lock and excludes mounts of all members at once (one
// etcd transaction: refused, with nothing changed, while any member is mounted), on leases, so a
// master that dies mid-way blocks them for a lease's TTL only. A copy of one member's part makes
// a new volume through the master's create path (an intent first: a master that dies mid-copy
// leaves no orphan image): a full copy, since a group-namespace snapshot cannot be cloned.

import type { Logger } from 'pino';
import { withTimeout } from '../common/timeout.js';
import { forgetHolder } from '../fencing/index.js';
import { isRbdError } from '../storage/errors.js';
import type { MemberSnapshotInfo, ProgressListener, Storage } from '../storage/types.js';
import type { StateStore } from '../state/store.js';
import { LockReason, StateMountedError } from '../state/store.js';
import type { VolumeRecord } from '../state/records.js';
import { assertName, imageName, nameProblem, parseImageName } from '../policy/names.js';
import type { Clock } from './clock.js';
import { ApiError } from './errors.js';
import { SnapshotFreezer } from './freeze.js';
import { compareSnapshotNames, manualSnapshotName, snapshotNameProblem, SUPERVISOR_PREFIX } from './names.js';
import type { CopyHooks, CopyTarget } from './types.js';

/** More volumes than this in one group snapshot is refused (each is a lock, a member, a freeze). */
export const MAX_GROUP_VOLUMES = 32;

export interface GroupSnapshotView {
  tenant: string;
  group: string;
  name: string;
  /** The volumes the group holds now (a snapshot of it covers them). */
  volumes: string[];
  /** False when its creation was interrupted: it holds no usable instant; remove it. */
  complete: boolean;
}

export interface GroupSnapshotsParts {
  storage: Storage;
  store: StateStore;
  freezer: SnapshotFreezer;
  clock: Clock;
  log: Logger;
  lockWaitMs: number;
  lockTtlSeconds?: number;
  /** Bound of a rollback or a copy (default 1 h). */
  longMs?: number;
  /** Test-only: runs once mounts are excluded and the rollback accepted, before librbd rolls back. */
  beforeRollback?: () => Promise<void>;
}

/** A member of a group snapshot: the volume and its part of the snapshot. */
export interface GroupMemberSource {
  tenant: string;
  group: string;
  snapshot: string;
  volume: string;
}

/**
 * What a group rollback or member copy tells its caller: `accept` once every check passed (the
 * point of no return: the master records its operation there) and answers with a progress
 * listener for the long step.
 */
export interface LongStep {
  accept?: (message: string) => Promise<ProgressListener | undefined>;
}

export class GroupSnapshots {
  constructor(private readonly p: GroupSnapshotsParts) {}

  /** Takes snapshot `name` (manual-<time> when none) of `volumes` of `tenant` as group `group`. */
  async take(tenant: string, group: string, volumes: readonly string[], name?: string): Promise<GroupSnapshotView> {
    checkGroupName(group);
    const names = [...new Set(volumes)].sort();
    if (names.length === 0) throw new ApiError('INVALID_REQUEST', 'a group snapshot needs at least one volume', { field: 'volumes' });
    if (names.length > MAX_GROUP_VOLUMES) throw new ApiError('INVALID_REQUEST', `a group snapshot takes at most ${MAX_GROUP_VOLUMES} volumes, got ${names.length}`, { field: 'volumes' });
    for (const v of names) assertName('volume', v);
    if (name !== undefined) {
      const problem = snapshotNameProblem(name) ?? (name.startsWith(SUPERVISOR_PREFIX) ? `snapshot names starting with "${SUPERVISOR_PREFIX}" are volsupervisor's; choose another name` : null);
      if (problem) throw new ApiError('INVALID_NAME', problem, { field: 'name' });
    }
    return this.withLocks(tenant, names, LockReason.Snapshot, async () => {
      const records = await Promise.all(names.map((v) => this.volume(tenant, v)));
      const pools = [...new Set(records.map((r) => r.pool))];
      if (pools.length > 1) {
        throw new ApiError('INVALID_REQUEST', `the volumes of a group snapshot must live in one pool; these are in ${pools.join(', ')}: snapshot each pool's volumes as a group of its own`, { field: 'volumes' });
      }
      const pool = pools[0]!;
      const cephGroup = imageName(tenant, group);
      try {
        await this.p.storage.createGroup(pool, cephGroup);
      } catch (err) {
        if (!isRbdError(err, 'EEXIST')) throw err;
      }
      let snapshot: string;
      try {
        await this.join(tenant, group, pool, records);
        const taken = new Set((await this.p.storage.listGroupSnapshots(pool, cephGroup)).map((s) => s.name));
        snapshot = name ?? this.freeName(taken);
        if (taken.has(snapshot)) throw new ApiError('SNAPSHOT_EXISTS', `group ${tenant}/${group} has a snapshot ${snapshot} already`, { field: 'name' });
        await this.p.freezer.around(
          records,
          () => this.p.storage.createGroupSnapshot(pool, cephGroup, snapshot),
          () => this.p.storage.removeGroupSnapshot(pool, cephGroup, snapshot),
        );
      } catch (err) {
        await this.dropIfEmpty(pool, cephGroup);
        throw err;
      }
      this.p.log.info({ tenant, group, snapshot, volumes: names }, 'group snapshot taken');
      return { tenant, group, name: snapshot, volumes: names, complete: true };
    });
  }

  /** The group's snapshots (manual-<time> ones first, by time) with its volumes; GROUP_NOT_FOUND when it has none. */
  async list(tenant: string, group: string): Promise<GroupSnapshotView[]> {
    const { pool, cephGroup } = await this.find(tenant, group);
    const volumes = await this.members(tenant, pool, cephGroup);
    const snaps = await this.p.storage.listGroupSnapshots(pool, cephGroup);
    return snaps
      .sort((a, b) => compareSnapshotNames(a.name, b.name))
      .map((s) => ({ tenant, group, name: s.name, volumes, complete: s.complete }));
  }

  /** Removes one snapshot of the group; the group itself goes with its last one. */
  async remove(tenant: string, group: string, snapshot: string): Promise<void> {
    const { pool, cephGroup } = await this.find(tenant, group);
    const volumes = await this.members(tenant, pool, cephGroup);
    await this.withLocks(tenant, volumes, LockReason.Snapshot, async () => {
      const snaps = await this.p.storage.listGroupSnapshots(pool, cephGroup).catch((err: unknown) => {
        if (isRbdError(err, 'ENOENT')) throw notFound(tenant, group);
        throw err;
      });
      if (!snaps.some((s) => s.name === snapshot)) throw new ApiError('SNAPSHOT_NOT_FOUND', `group ${tenant}/${group} has no snapshot ${snapshot}`, { field: 'snapshot' });
      await this.p.storage.removeGroupSnapshot(pool, cephGroup, snapshot);
      this.p.log.info({ tenant, group, snapshot }, 'group snapshot removed');
      await this.dropIfEmpty(pool, cephGroup);
    });
  }

  /**
   * Rolls every member back to the group snapshot, all at once (librbd's group rollback). Refused
   * with nothing changed while any member is mounted (VOLUME_MOUNTED) or open (VOLUME_IN_USE): no
   * host can mount a member while it runs.
   */
  async rollback(tenant: string, group: string, snapshot: string, step: LongStep = {}): Promise<{ volumes: string[] }> {
    const { pool, cephGroup } = await this.find(tenant, group);
    const volumes = await this.members(tenant, pool, cephGroup, true);
    return this.withLocks(tenant, volumes, 'group snapshot rollback', async () => {
      await this.snapshotOf(tenant, group, pool, cephGroup, snapshot);
      const records = await Promise.all(volumes.map((v) => this.memberRecord(tenant, group, v)));
      await this.excludingMounts(tenant, volumes, async (signal) => {
        // Before librbd starts: once the exclusion's lease is lost a host may mount a member.
        const stillExcluded = () => {
          if (signal.aborted) throw new ApiError('BUSY', `lost the mount exclusion of group ${tenant}/${group} (etcd lease not renewed in time) before its rollback; nothing was changed, try again`);
        };
        for (const r of records) {
          const watchers = await this.p.storage.listWatchers(r.pool, r.image);
          if (watchers.length > 0) {
            throw new ApiError('VOLUME_IN_USE', `image ${r.pool}/${r.image} of ${tenant}/${r.volume} is open by ${watchers.map((w) => w.address).join(', ')}; unmap it before a rollback of group ${tenant}/${group}`);
          }
        }
        stillExcluded();
        const onProgress = await step.accept?.(`rolling ${volumes.length} volumes back to ${group}@${snapshot}`);
        await this.p.beforeRollback?.();
        stillExcluded();
        await withTimeout(this.p.storage.rollbackGroupSnapshot(pool, cephGroup, snapshot, { onProgress }), this.p.longMs ?? 3_600_000, `rolling group ${pool}/${cephGroup} back to ${snapshot}`);
      });
      this.p.log.warn({ tenant, group, snapshot, volumes }, 'group rolled back to a group snapshot');
      return { volumes };
    });
  }

  /**
   * Makes the new volume `target` from one member's part of a group snapshot: a full copy (the
   * part is a group-namespace snapshot, which librbd cannot clone), recorded through `hooks` as a
   * snapshot copy is, with `source` {tenant, volume, snapshot: "GROUP@SNAPSHOT"}. On any failure
   * the new image and the intent are removed again.
   */
  async copy(source: GroupMemberSource, target: CopyTarget, hooks: CopyHooks, step: LongStep = {}): Promise<VolumeRecord> {
    const { tenant, group, snapshot, volume } = source;
    checkGroupName(group);
    assertName('volume', volume);
    if (tenant === target.tenant && volume === target.volume) throw new ApiError('VOLUME_EXISTS', `cannot copy ${tenant}/${volume} onto itself; name a new volume`);
    return this.p.store.withOperationLock(target.tenant, target.volume, this.lockOptions(LockReason.Create), async () => {
      if (await this.p.store.getVolume(target.tenant, target.volume)) {
        throw new ApiError('VOLUME_EXISTS', `volume ${target.tenant}/${target.volume} exists already; a copy needs a new name`, { field: 'volume' });
      }
      const { pool, cephGroup } = await this.find(tenant, group);
      return this.p.store.withOperationLock(tenant, volume, this.lockOptions(LockReason.Copy), async () => {
        await this.snapshotOf(tenant, group, pool, cephGroup, snapshot);
        const sourceRecord = await this.volume(tenant, volume);
        const part = await this.partOf(sourceRecord, pool, cephGroup, snapshot, group);
        const built = await hooks.build({ target, sizeBytes: part.size, sourceRecord, snapshot });
        const record: VolumeRecord = { ...built, tenant: target.tenant, volume: target.volume, image: built.image || imageName(target.tenant, target.volume), source: { tenant, volume, snapshot: `${group}@${snapshot}` } };
        if (await this.p.storage.imageExists(record.pool, record.image)) {
          throw new ApiError('IMAGE_EXISTS', `image ${record.pool}/${record.image} exists already in Ceph though no volume ${target.tenant}/${target.volume} is recorded; remove or rename that image first`);
        }
        let prepared = false;
        let made = false;
        try {
          if (hooks.prepare) {
            await hooks.prepare(record);
            prepared = true;
          }
          const onProgress = await step.accept?.(`copying ${tenant}/${volume} as of ${group}@${snapshot} to ${record.pool}/${record.image}`);
          made = true; // from here a failure may leave a partial image: remove it
          const from = { pool: sourceRecord.pool, image: sourceRecord.image, snapshotId: part.id };
          await withTimeout(this.p.storage.copySnapshot(from, record.pool, record.image, { onProgress }), this.p.longMs ?? 3_600_000, `copying ${from.pool}/${from.image}@${part.id} to ${record.pool}/${record.image}`);
          // librbd copies the source's metadata: a holder note of its host would get that host fenced.
          await forgetHolder(this.p.storage, record.pool, record.image);
          if (hooks.afterClone) await hooks.afterClone(record);
          const committed = hooks.commit ? await hooks.commit(record) : await this.p.store.createVolume(record);
          if (!committed) throw new ApiError('VOLUME_EXISTS', `volume ${target.tenant}/${target.volume} was created meanwhile`);
        } catch (err) {
          if (made && !isRbdError(err, 'EEXIST')) {
            await this.p.storage.removeImage(record.pool, record.image).catch((cleanup: unknown) => {
              if (!isRbdError(cleanup, 'ENOENT')) this.p.log.error({ err: cleanup, image: `${record.pool}/${record.image}` }, 'could not remove the image of a failed group member copy');
            });
          }
          if (prepared && hooks.abandon) await hooks.abandon(record).catch((cleanup: unknown) => this.p.log.error({ err: cleanup }, 'could not undo the preparation of a failed copy'));
          throw err;
        }
        this.p.log.info({ source: `${tenant}/${volume}@${group}@${snapshot}`, target: `${target.tenant}/${target.volume}` }, 'volume copied from a group snapshot');
        return record;
      });
    });
  }

  /** A member's volume record; a member whose record is gone (force-removed) stops a rollback of the group. */
  private async memberRecord(tenant: string, group: string, volume: string): Promise<VolumeRecord> {
    const record = await this.p.store.getVolume(tenant, volume);
    if (record) return record;
    throw new ApiError(
      'VOLUME_NOT_FOUND',
      `group ${tenant}/${group} holds volume ${tenant}/${volume}, which has no record any more (force-removed?); volplugin rolls back only volumes it manages: create ${tenant}/${volume} again, or remove the group's snapshots`,
      { field: 'volume' },
    );
  }

  /** The group snapshot, refused when missing or incomplete. */
  private async snapshotOf(tenant: string, group: string, pool: string, cephGroup: string, snapshot: string): Promise<void> {
    const problem = snapshotNameProblem(snapshot);
    if (problem) throw new ApiError('INVALID_NAME', problem, { field: 'snapshot' });
    const found = (await this.p.storage.listGroupSnapshots(pool, cephGroup)).find((s) => s.name === snapshot);
    if (!found) throw new ApiError('SNAPSHOT_NOT_FOUND', `group ${tenant}/${group} has no snapshot ${snapshot}; see volcli volume snapshot group list ${tenant}/${group}`, { field: 'snapshot' });
    if (!found.complete) throw new ApiError('INVALID_REQUEST', `group snapshot ${tenant}/${group}@${snapshot} is incomplete (its creation was interrupted) and holds no usable instant; remove it`, { field: 'snapshot' });
  }

  /** The volume's part of the group snapshot; SNAPSHOT_NOT_FOUND naming the members when it has none. */
  private async partOf(record: VolumeRecord, pool: string, cephGroup: string, snapshot: string, group: string): Promise<MemberSnapshotInfo> {
    const parts = await this.p.storage.listMemberSnapshots(record.pool, record.image);
    const part = parts.find((p) => p.group.pool === pool && p.group.group === cephGroup && p.group.snapshot === snapshot);
    if (part) return part;
    const members = await this.members(record.tenant, pool, cephGroup);
    throw new ApiError('SNAPSHOT_NOT_FOUND', `volume ${record.tenant}/${record.volume} is not in group snapshot ${record.tenant}/${group}@${snapshot}; its volumes are ${members.join(', ')}`, { field: 'volume' });
  }

  /** Runs `fn` while no host may mount any of `volumes`; VOLUME_MOUNTED (nothing done) while one is. */
  private async excludingMounts(tenant: string, volumes: readonly string[], fn: (signal: AbortSignal) => Promise<void>): Promise<void> {
    try {
      await this.p.store.withMountsExcludedAll(tenant, volumes, { reason: 'group snapshot rollback', ttlSeconds: this.p.lockTtlSeconds }, fn);
    } catch (err) {
      if (!(err instanceof StateMountedError)) throw err;
      const where = err.holder ? `${err.holder.host} (since ${err.holder.since})` : 'a host';
      throw new ApiError('VOLUME_MOUNTED', `volume ${tenant}/${err.volume} of the group is mounted on ${where}; stop its containers before a group rollback (no volume was changed)`);
    }
  }

  private lockOptions(reason: string) {
    return { reason, waitMs: this.p.lockWaitMs, ttlSeconds: this.p.lockTtlSeconds };
  }

  /** Adds the records to the group; refuses a group that holds other volumes and a volume of another group. */
  private async join(tenant: string, group: string, pool: string, records: readonly VolumeRecord[]): Promise<void> {
    const cephGroup = imageName(tenant, group);
    const members = await this.p.storage.listGroupImages(pool, cephGroup);
    const wanted = new Set(records.map((r) => r.image));
    const others = members.filter((m) => m.pool !== pool || !wanted.has(m.image)).map((m) => parseImageName(m.image)?.volume ?? `${m.pool}/${m.image}`);
    if (others.length > 0) {
      throw new ApiError('BUSY', `group ${tenant}/${group} also holds ${others.join(', ')}: name all of its volumes, or use another group name`, { field: 'volumes' });
    }
    for (const r of records) {
      try {
        await this.p.storage.addGroupImage(pool, cephGroup, { pool: r.pool, image: r.image });
      } catch (err) {
        if (!isRbdError(err, 'EEXIST')) throw err;
        throw new ApiError('BUSY', `volume ${r.tenant}/${r.volume} is in another consistency group (a volume can be in one only): take that group's snapshots, or remove them all to free it`, { field: 'volumes' });
      }
    }
  }

  /** Removes the group when it has no snapshot (it holds its members for nothing); never throws. */
  private async dropIfEmpty(pool: string, cephGroup: string): Promise<void> {
    try {
      if ((await this.p.storage.listGroupSnapshots(pool, cephGroup)).length === 0) await this.p.storage.removeGroup(pool, cephGroup);
    } catch (err) {
      if (!isRbdError(err, 'ENOENT')) this.p.log.warn({ err, group: `${pool}/${cephGroup}` }, 'could not remove a consistency group left without snapshots; the next take or remove of it tries again');
    }
  }

  /** The pool holding the group: one of the pools the tenant's volumes are in. */
  private async find(tenant: string, group: string): Promise<{ pool: string; cephGroup: string }> {
    checkGroupName(group);
    const cephGroup = imageName(tenant, group);
    const pools = [...new Set((await this.p.store.listVolumes(tenant)).map((r) => r.pool))].sort();
    for (const pool of pools) {
      try {
        await this.p.storage.listGroupSnapshots(pool, cephGroup);
        return { pool, cephGroup };
      } catch (err) {
        if (!isRbdError(err, 'ENOENT')) throw err;
      }
    }
    throw notFound(tenant, group);
  }

  /** The volume names of the group's members; images that are no volume of the tenant are skipped, or with `strict` refused. */
  private async members(tenant: string, pool: string, cephGroup: string, strict = false): Promise<string[]> {
    const members = await this.p.storage.listGroupImages(pool, cephGroup);
    const volumes: string[] = [];
    for (const m of members) {
      const ref = parseImageName(m.image);
      if (ref !== null && ref.tenant === tenant && (m.pool === pool || !strict)) volumes.push(ref.volume);
      else if (strict) {
        // A rollback must exclude the mounts of everything it rolls back: an image that is no volume of the tenant cannot be.
        throw new ApiError('VOLUME_NOT_FOUND', `group ${pool}/${cephGroup} holds image ${m.pool}/${m.image}, which is no volume of ${tenant}; volplugin rolls back only volumes it manages: take it out of the group (rbd group image remove) or remove the group's snapshots`, { field: 'volume' });
      }
    }
    return volumes.sort();
  }

  private freeName(taken: ReadonlySet<string>): string {
    const at = this.p.clock.now();
    for (let i = 1; i <= 50; i++) {
      const candidate = manualSnapshotName(at, i);
      if (!taken.has(candidate)) return candidate;
    }
    throw new ApiError('BUSY', 'no free manual-<time> snapshot name for this second; try again');
  }

  private async volume(tenant: string, volume: string): Promise<VolumeRecord> {
    const record = await this.p.store.getVolume(tenant, volume);
    if (!record) throw new ApiError('VOLUME_NOT_FOUND', `volume ${tenant}/${volume} does not exist`, { field: 'volumes' });
    return record;
  }

  /** Runs `fn` holding the operation locks of `volumes` (sorted: never two takes waiting on each other). */
  private withLocks<T>(tenant: string, volumes: readonly string[], reason: string, fn: () => Promise<T>): Promise<T> {
    const [first, ...rest] = volumes;
    if (first === undefined) return fn();
    return this.p.store.withOperationLock(tenant, first, this.lockOptions(reason), () => this.withLocks(tenant, rest, reason, fn));
  }
}

/** A group name follows the rules of a volume name (it names a Ceph group as a volume names an image). */
function checkGroupName(group: string): void {
  const problem = nameProblem('volume', group);
  if (problem) throw new ApiError('INVALID_NAME', problem.replace(/^volume name/, 'group name').replace(/; write TENANT\/VOLUME.*$/, ''), { field: 'group' });
}

function notFound(tenant: string, group: string): ApiError {
  return new ApiError('GROUP_NOT_FOUND', `group ${tenant}/${group} has no snapshots (a group exists while it has some): take one with volcli volume snapshot take ${tenant}/VOLUME ... --group ${group}`);
}
