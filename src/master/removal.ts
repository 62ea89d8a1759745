// Removing a volume safely, shared by remove and removeRecords (volumes.ts): mounts are excluded
// atomically in etcd for the whole operation (a host holding the mount lock refuses it, and no host
// can take the lock while it runs), then a host reporting the volume mounted or a client having its
// image open refuses it too; all of that before anything is deleted. Destroying an image checks
// every snapshot for clones before it removes any.

import { ApiError } from '../api/errors.js';
import type { VolumeRecord } from '../state/records.js';
import { StateMountedError, type StateStore } from '../state/store.js';
import { isRbdError } from '../storage/errors.js';
import type { Storage } from '../storage/types.js';
import { fromStorageError } from './errors.js';
import type { Progress } from './operations.js';

export interface RemovalParts {
  store: StateStore;
  /** Already time-bound (volumes.ts wraps it). */
  storage: Storage;
  /** The same with a long bound, for removing the image itself (a large one takes minutes). */
  longStorage?: Storage;
  /** TTL of the exclusion's lease: how long a dead master blocks mounts of the volume. */
  lockTtlSeconds: number;
}

export class VolumeRemoval {
  private readonly store: StateStore;
  private readonly storage: Storage;

  constructor(private readonly parts: RemovalParts) {
    this.store = parts.store;
    this.storage = parts.storage;
  }

  /**
   * Removes an image and its snapshots; a missing image is not an error. Refused (VOLUME_HAS_CLONES)
   * before anything is removed when a snapshot has clones. `progress` (an operation's) hears each
   * step: the snapshots, then librbd's objects of the image.
   */
  async destroyImage(pool: string, image: string, progress?: Progress | null): Promise<void> {
    const where = `${pool}/${image}`;
    try {
      const snapshots = await this.storage.listSnapshots(pool, image);
      // Snapshots of other namespaces are group snapshots, which librbd would refuse the removal
      // for after the user snapshots were gone (so refuse before), or snapshots in the trash
      // namespace, which a snapshot removal that died leaves and librbd removes with the image (the
      // chaos suite found a dead restore's image that its janitor refused to remove forever).
      const info = await this.storage.imageInfo(pool, image);
      const groupSnapshots = info.group ? info.snapshotCount - snapshots.length : 0;
      if (groupSnapshots > 0) throw inGroup(where, `${groupSnapshots} group snapshot(s) of it`);
      for (const snap of snapshots.filter((s) => s.protected)) {
        const children = await this.storage.listChildren({ pool, image, snapshot: snap.name });
        if (children.length > 0) {
          throw new ApiError('VOLUME_HAS_CLONES', `snapshot ${where}@${snap.name} has clones (${children.join(', ')}); remove those volumes first`);
        }
      }
      if (snapshots.length > 0) progress?.step(`removing the ${snapshots.length} snapshot(s) of ${where}`, { total: snapshots.length, unit: 'snapshots' });
      for (const [i, snap] of snapshots.entries()) {
        if (snap.protected) await this.storage.unprotectSnapshot(pool, image, snap.name);
        await this.storage.removeSnapshot(pool, image, snap.name);
        progress?.report(i + 1, snapshots.length);
      }
      progress?.step(`removing image ${where}`, { unit: 'objects' });
      await (this.parts.longStorage ?? this.storage).removeImage(pool, image, progress ? { onProgress: progress.listener('objects') } : {});
    } catch (err) {
      if (isRbdError(err, 'ENOENT')) return this.removeRest(pool, image);
      if (isRbdError(err, 'EBUSY')) {
        throw new ApiError('VOLUME_IN_USE', `image ${where} is open by a client; unmount it there first`);
      }
      if (isRbdError(err, 'EMLINK')) throw inGroup(where, 'no snapshots of it left');
      throw fromStorageError(err, `removing ${where}`);
    }
  }

  /**
   * After ENOENT: the image is gone, or half-removed by a removal that died (still listed in the
   * pool, its header gone: it cannot be opened), which rbd_remove clears (found by the chaos
   * suite's master-mid-remove: such an image outlived its volume record).
   */
  private async removeRest(pool: string, image: string): Promise<void> {
    try {
      await (this.parts.longStorage ?? this.storage).removeImage(pool, image);
    } catch (err) {
      if (isRbdError(err, 'ENOENT')) return;
      throw fromStorageError(err, `removing what is left of ${pool}/${image}`);
    }
  }

  /**
   * Runs `fn` (under the volume's operation lock) while no host may mount the volume (`fn` calls
   * `stillExcluded` before each deletion: it throws once the exclusion is lost): refused with
   * VOLUME_MOUNTED while a host holds its mount lock, atomically in etcd (see StateStore
   * withMountsExcluded); then also refused while a host reports it mounted or a client has its
   * image open. Every refusal comes before `fn` changed anything.
   */
  async withMountsExcluded<T>(record: VolumeRecord, reason: string, fn: (stillExcluded: () => void) => Promise<T>): Promise<T> {
    const { tenant, volume } = record;
    try {
      return await this.store.withMountsExcluded(tenant, volume, { reason, ttlSeconds: this.parts.lockTtlSeconds }, async (signal) => {
        await this.assertNotInUse(record);
        // Called before each step that deletes: once the exclusion's lease is lost a mount may start.
        const stillExcluded = () => {
          if (signal.aborted) {
            throw new ApiError('BUSY', `lost the mount exclusion of ${tenant}/${volume} (etcd lease not renewed in time) while removing it; try again`);
          }
        };
        return fn(stillExcluded);
      });
    } catch (err) {
      if (err instanceof StateMountedError) {
        const mount = err.holder;
        throw new ApiError(
          'VOLUME_MOUNTED',
          mount
            ? `volume ${tenant}/${volume} is mounted on host ${mount.host} at ${mount.mountpoint} since ${mount.since}; ` +
                `stop the containers using it there, or if that host is gone: volcli mount force-remove ${tenant}/${volume}`
            : `${err.message}; stop the containers using it, or if its host is gone: volcli mount force-remove ${tenant}/${volume}`,
        );
      }
      throw err;
    }
  }

  /** 409 when a host reports the volume mounted or a client has its image open (the lock is checked by the exclusion). */
  private async assertNotInUse(record: VolumeRecord): Promise<void> {
    const { tenant, volume, pool, image } = record;
    for (const report of await this.store.listHostReports()) {
      if (report.mounts.some((m) => m.tenant === tenant && m.volume === volume)) {
        throw new ApiError('VOLUME_MOUNTED', `volume ${tenant}/${volume} is still mounted on host ${report.host} (its volplugin reports it); stop the containers using it there`);
      }
    }
    let watchers: Awaited<ReturnType<Storage['listWatchers']>> = [];
    try {
      watchers = await this.storage.listWatchers(pool, image);
    } catch (err) {
      if (!isRbdError(err, 'ENOENT')) throw fromStorageError(err, `listing watchers of ${pool}/${image}`);
    }
    if (watchers.length > 0) {
      const addresses = watchers.map((w) => w.address).join(', ');
      throw new ApiError('VOLUME_IN_USE', `image ${pool}/${image} of ${tenant}/${volume} is open by ${addresses}; unmap it on that host first`);
    }
  }
}

/** A member of a consistency group (src/snapshots/groups.ts) is not removed until the group lets it go. */
function inGroup(where: string, what: string): ApiError {
  return new ApiError(
    'VOLUME_IN_GROUP',
    `image ${where} is in a consistency group with ${what}; remove the group's snapshots first (volcli volume snapshot group list/remove TENANT/GROUP): the group goes with its last one`,
  );
}
