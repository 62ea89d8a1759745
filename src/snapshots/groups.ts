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

import type { Logger } from 'pino';
import { isRbdError } from '../storage/errors.js';
import type { Storage } from '../storage/types.js';
import type { StateStore } from '../state/store.js';
import { LockReason } from '../state/store.js';
import type { VolumeRecord } from '../state/records.js';
import { assertName, imageName, nameProblem, parseImageName } from '../policy/names.js';
import type { Clock } from './clock.js';
import { ApiError } from './errors.js';
import { SnapshotFreezer } from './freeze.js';
import { compareSnapshotNames, manualSnapshotName, snapshotNameProblem, SUPERVISOR_PREFIX } from './names.js';

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
    return this.withLocks(tenant, names, async () => {
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
    await this.withLocks(tenant, volumes, async () => {
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

  /** The volume names of the group's members (images of other tenants are not expected, and skipped). */
  private async members(tenant: string, pool: string, cephGroup: string): Promise<string[]> {
    const members = await this.p.storage.listGroupImages(pool, cephGroup);
    return members
      .map((m) => parseImageName(m.image))
      .filter((ref): ref is { tenant: string; volume: string } => ref !== null && ref.tenant === tenant)
      .map((ref) => ref.volume)
      .sort();
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
  private withLocks<T>(tenant: string, volumes: readonly string[], fn: () => Promise<T>): Promise<T> {
    const [first, ...rest] = volumes;
    if (first === undefined) return fn();
    return this.p.store.withOperationLock(tenant, first, { reason: LockReason.Snapshot, waitMs: this.p.lockWaitMs, ttlSeconds: this.p.lockTtlSeconds }, () =>
      this.withLocks(tenant, rest, fn),
    );
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
