// Restoring a backup: the streams that make it (a chain of diff files, checked against their
// checksums first, or one full stream from a replica) are applied to a fresh image, which then
// reads exactly as the volume did when the backup was taken.
//
// Into a new volume: the master's create path (an intent first, the record last), so that a
// master that dies half-way leaves nothing the janitor does not remove.
//
// Into the volume itself (refused while it is mounted or its image open, and no host can mount it
// meanwhile: StateStore.withMountsExcluded): the backup goes to `<image>:restoring` first; only a
// complete one replaces the image, by two renames (the old image to `<image>:replaced`, the new
// one to `<image>`), and the old image with its snapshots is removed. A restore that dies before
// the renames leaves the volume as it was; between them, the volume has no image (a mount fails
// rather than use half a restore) until the swap is finished or undone (recoverSwap): by the next
// restore of the volume, or by the master's janitor, which finds the restore intent written in
// etcd before the scratch image was made (recoverDeadRestores). The image's metadata (owner mark,
// QoS) is carried over.

import { ApiError } from '../api/errors.js';
import { StateBusyError, StateMountedError } from '../state/store.js';
import { StateUnavailableError } from '../state/kv.js';
import type { VolumeRecord } from '../state/records.js';
import { isRbdError } from '../storage/errors.js';
import { VOLUME_IMAGE_FEATURES } from '../storage/conventions.js';
import { pickBackup, type Manifest, type ManifestEntry } from './manifest.js';
import type { BackupService } from './service.js';
import type { OnBackupProgress, TargetVolume } from './target.js';

/** Image metadata key of a restore's new image: "applying" until it is complete. */
export const RESTORE_KEY = 'volplugin.restore';

export interface RestoreChoice {
  /** A backup's name; else the newest at or before `at`; else the newest. */
  backup?: string;
  at?: Date;
}

export interface RestoreOptions {
  signal?: AbortSignal;
  onProgress?: OnBackupProgress;
  /**
   * Runs once the volume is locked (and, into a new volume, its name found free), before the
   * target is read: from there on the restore is under way (the master records an operation there).
   */
  begin?: () => Promise<void>;
}

/** How a restore into a new volume creates it: the master's create path (as a snapshot copy does). */
export interface RestoreHooks {
  build(input: { target: { tenant: string; volume: string }; sizeBytes: number; source: VolumeRecord | null; backup: string }): Promise<VolumeRecord>;
  /** Before the image is made (the create intent). */
  prepare?(record: VolumeRecord): Promise<void>;
  /** After the backup is in the image, before the record is stored (owner mark, QoS). */
  afterRestore?(record: VolumeRecord): Promise<void>;
  /** Stores the record only if none exists (default StateStore.createVolume). */
  commit?(record: VolumeRecord): Promise<boolean>;
  /** Undoes prepare after a failure (the image is removed already). */
  abandon?(record: VolumeRecord): Promise<void>;
}

export interface RestoreResult {
  backup: string;
  tenant: string;
  volume: string;
  pool: string;
  image: string;
  sizeBytes: number;
  /** Whether a new volume was made. */
  created: boolean;
  ms: number;
}

const scratchOf = (image: string) => `${image}:restoring`;
const replacedOf = (image: string) => `${image}:replaced`;

/** Reads the manifest and picks the backup; `image` names a Ceph replica. */
async function choose(service: BackupService, tenant: string, volume: string, image: string, source: VolumeRecord | null, choice: RestoreChoice) {
  const settings = await service.settings(tenant, source, volume);
  const target = await service.openTarget(settings, tenant, volume, image);
  const manifest = await target.readManifest();
  const entry = pickBackup(manifest, { name: choice.backup, at: choice.at });
  return { target, manifest, entry };
}

/**
 * Makes `pool/image` from the backup: created empty, the streams applied in order, the snapshots
 * they made removed (but `keep`, the base of the next incremental backup). Removes the image again
 * when anything fails.
 */
async function build(service: BackupService, at: { pool: string; image: string }, src: { target: TargetVolume; manifest: Manifest; entry: ManifestEntry }, keep: string | null, signal: AbortSignal, onProgress?: OnBackupProgress): Promise<void> {
  const { storage } = service;
  const { pool, image } = at;
  await service.call(`creating ${pool}/${image}`, () => storage.createImage(pool, image, { size: Math.max(src.entry.sizeBytes, 4096), features: VOLUME_IMAGE_FEATURES }));
  try {
    await service.call(`marking ${pool}/${image}`, () => storage.setMetadata(pool, image, RESTORE_KEY, 'applying'));
    await src.target.restoreStreams(
      src.manifest,
      src.entry,
      async (file) => {
        await storage.applyDiff(pool, image, file, { signal, onProgress: onProgress && ((done, total) => onProgress({ phase: 'apply', done, total })) });
      },
      signal,
      onProgress,
    );
    for (const snap of await service.call(`listing ${pool}/${image}`, () => storage.listSnapshots(pool, image))) {
      if (snap.name !== keep) await service.call(`removing ${pool}/${image}@${snap.name}`, () => storage.removeSnapshot(pool, image, snap.name));
    }
  } catch (err) {
    await destroy(service, pool, image).catch((cleanup: unknown) => service.log.error({ err: cleanup, image: `${pool}/${image}` }, 'could not remove the image of a failed restore'));
    throw err;
  }
}

/** Removes an image and its snapshots; a missing one is fine. */
async function destroy(service: BackupService, pool: string, image: string): Promise<void> {
  const { storage } = service;
  try {
    for (const snap of await storage.listSnapshots(pool, image)) {
      if (snap.protected) await storage.unprotectSnapshot(pool, image, snap.name);
      await storage.removeSnapshot(pool, image, snap.name);
    }
    await storage.removeImage(pool, image);
  } catch (err) {
    if (!isRbdError(err, 'ENOENT')) throw err;
  }
}

/** Restores a backup of `source` into a new volume `into` (which must not exist). */
export async function restoreIntoNew(service: BackupService, source: { tenant: string; volume: string }, choice: RestoreChoice, into: { tenant: string; volume: string }, hooks: RestoreHooks, options: RestoreOptions = {}): Promise<RestoreResult> {
  const started = service.clock.now();
  return service.withLock(into.tenant, into.volume, 'create', async (lockLost) => {
    if (await service.store.getVolume(into.tenant, into.volume)) {
      throw new ApiError('VOLUME_EXISTS', `volume ${into.tenant}/${into.volume} exists already; restore into a new name, or into the volume itself (without --into)`);
    }
    await options.begin?.();
    const sourceRecord = await service.store.getVolume(source.tenant, source.volume);
    const src = await choose(service, source.tenant, source.volume, sourceRecord?.image ?? `${source.tenant}.${source.volume}`, sourceRecord, choice);
    const record = await hooks.build({ target: into, sizeBytes: src.entry.sizeBytes, source: sourceRecord, backup: src.entry.name });
    if (await service.call(`looking for ${record.pool}/${record.image}`, () => service.storage.imageExists(record.pool, record.image))) {
      throw new ApiError('IMAGE_EXISTS', `image ${record.pool}/${record.image} exists already in Ceph though no volume ${into.tenant}/${into.volume} is recorded; remove or rename that image first`);
    }
    let prepared = false;
    try {
      await hooks.prepare?.(record);
      prepared = true;
      await build(service, record, src, null, service.bounded(options.signal, lockLost), options.onProgress);
      try {
        await service.call(`clearing the restore mark of ${record.pool}/${record.image}`, () => service.storage.removeMetadata(record.pool, record.image, RESTORE_KEY));
        await hooks.afterRestore?.(record);
        const committed = hooks.commit ? await hooks.commit(record) : await service.store.createVolume(record);
        if (!committed) throw new ApiError('VOLUME_EXISTS', `volume ${into.tenant}/${into.volume} was created meanwhile`);
      } catch (err) {
        await destroy(service, record.pool, record.image).catch(() => undefined);
        throw err;
      }
    } catch (err) {
      if (prepared) await hooks.abandon?.(record).catch((cleanup: unknown) => service.log.error({ err: cleanup }, 'could not undo the preparation of a failed restore'));
      throw err;
    }
    const ms = service.clock.now() - started;
    service.log.info({ source: `${source.tenant}/${source.volume}`, backup: src.entry.name, into: `${into.tenant}/${into.volume}`, image: `${record.pool}/${record.image}`, ms }, 'backup restored into a new volume');
    return { backup: src.entry.name, tenant: into.tenant, volume: into.volume, pool: record.pool, image: record.image, sizeBytes: src.entry.sizeBytes, created: true, ms };
  });
}

/** Restores a backup of a volume into the volume itself; refused while it is mounted or open. */
export async function restoreInPlace(service: BackupService, tenant: string, volume: string, choice: RestoreChoice, options: RestoreOptions = {}): Promise<RestoreResult> {
  const started = service.clock.now();
  return service.withLock(tenant, volume, 'backup restore', async (lockLost) => {
    const record = await service.volume(tenant, volume);
    await options.begin?.();
    const { pool, image } = record;
    const src = await choose(service, tenant, volume, image, record, choice);
    try {
      await service.store.withMountsExcluded(tenant, volume, { reason: 'backup restore' }, async (exclusionLost) => {
        // Before any image is made or renamed: a restore that dies from here on is found by the janitor.
        await service.store.putRestoreIntent({ tenant, volume, pool, image, backup: src.entry.name, owner: service.store.owner, since: new Date(service.clock.now()).toISOString() });
        try {
          await replace(service, record, src, service.bounded(options.signal, lockLost, exclusionLost), exclusionLost, options.onProgress);
        } catch (err) {
          await recoverSwap(service, pool, image).catch((cleanup: unknown) => {
            service.log.error({ err: cleanup, image: `${pool}/${image}` }, 'could not undo a failed restore; the janitor tries again');
            throw err;
          });
          await service.store.deleteRestoreIntent(tenant, volume).catch(() => undefined);
          throw err;
        }
        await service.store.deleteRestoreIntent(tenant, volume).catch((err: unknown) => service.log.warn({ err, tenant, volume }, 'could not remove the restore intent; the janitor does'));
      });
    } catch (err) {
      if (err instanceof StateMountedError) {
        const where = err.holder ? `host ${err.holder.host} (since ${err.holder.since})` : 'a host';
        throw new ApiError('VOLUME_MOUNTED', `volume ${tenant}/${volume} is mounted on ${where}; stop its containers before a restore into it, or restore into a new volume (--into)`);
      }
      throw err;
    }
    const ms = service.clock.now() - started;
    service.log.warn({ tenant, volume, backup: src.entry.name, image: `${pool}/${image}`, ms }, 'volume restored from a backup (its previous data and snapshots are gone)');
    return { backup: src.entry.name, tenant, volume, pool, image, sizeBytes: src.entry.sizeBytes, created: false, ms };
  });
}

/** Under the lock and the mount exclusion: builds the backup into the scratch image and swaps it in. */
async function replace(service: BackupService, record: VolumeRecord, src: Awaited<ReturnType<typeof choose>>, signal: AbortSignal, exclusionLost: AbortSignal, onProgress?: OnBackupProgress): Promise<void> {
  const { pool, image, tenant, volume } = record;
  await recoverSwap(service, pool, image);
  const exists = await service.call(`looking for ${pool}/${image}`, () => service.storage.imageExists(pool, image));
  if (exists) await assertReplaceable(service, record);
  const scratch = scratchOf(image);
  // The last backup's snapshot stays in the new image: the next backup continues the chain from it.
  const keep = src.manifest.backups.at(-1)?.name === src.entry.name ? src.entry.name : null;
  await build(service, { pool, image: scratch }, src, keep, signal, onProgress);
  try {
    if (exists) {
      const meta = await service.call(`reading ${pool}/${image}`, () => service.storage.getMetadata(pool, image));
      for (const [key, value] of Object.entries(meta)) {
        if (key !== RESTORE_KEY) await service.call(`copying metadata to ${pool}/${scratch}`, () => service.storage.setMetadata(pool, scratch, key, value));
      }
    }
    await service.call(`marking ${pool}/${scratch}`, () => service.storage.setMetadata(pool, scratch, RESTORE_KEY, 'complete'));
    if (exclusionLost.aborted) throw new ApiError('BUSY', `lost the mount exclusion of ${tenant}/${volume} (etcd lease not renewed in time) during the restore; nothing was replaced, try again`);
  } catch (err) {
    await destroy(service, pool, scratch).catch(() => undefined);
    throw err;
  }
  await swap(service, pool, image, exists);
}

/** Refuses (before anything changes) an image that is open, or whose snapshots have clones. */
async function assertReplaceable(service: BackupService, record: VolumeRecord): Promise<void> {
  const { storage } = service;
  const { pool, image, tenant, volume } = record;
  const watchers = await service.call(`listing watchers of ${pool}/${image}`, () => storage.listWatchers(pool, image));
  if (watchers.length > 0) {
    throw new ApiError('VOLUME_IN_USE', `image ${pool}/${image} of ${tenant}/${volume} is open by ${watchers.map((w) => w.address).join(', ')}; unmap it before a restore into it`);
  }
  for (const snap of await service.call(`listing snapshots of ${pool}/${image}`, () => storage.listSnapshots(pool, image))) {
    const clones = await service.call(`listing clones of ${pool}/${image}@${snap.name}`, () => storage.listChildren({ pool, image, snapshot: snap.name }));
    if (clones.length > 0) {
      throw new ApiError('VOLUME_HAS_CLONES', `snapshot ${snap.name} of ${tenant}/${volume} has clones (${clones.join(', ')}), which a restore into the volume would orphan; restore into a new volume (--into), or wait until volsupervisor has flattened them`);
    }
  }
}

/** The two renames, then the old image goes. A failure between them puts the old image back. */
async function swap(service: BackupService, pool: string, image: string, exists: boolean): Promise<void> {
  const { storage } = service;
  const scratch = scratchOf(image);
  const replaced = replacedOf(image);
  if (exists) await service.call(`renaming ${pool}/${image}`, () => storage.renameImage(pool, image, replaced));
  try {
    await service.call(`renaming ${pool}/${scratch}`, () => storage.renameImage(pool, scratch, image));
  } catch (err) {
    if (exists) await service.call(`renaming ${pool}/${replaced} back`, () => storage.renameImage(pool, replaced, image)).catch(() => undefined);
    throw err;
  }
  await service.call(`clearing the restore mark of ${pool}/${image}`, () => storage.removeMetadata(pool, image, RESTORE_KEY)).catch(() => undefined);
  if (exists) await destroy(service, pool, replaced).catch((err: unknown) => service.log.warn({ err, image: `${pool}/${replaced}` }, 'could not remove the replaced image; the next restore of the volume does'));
}

/**
 * Finishes or undoes what a restore that died left: with no image but a replaced one, the new one
 * goes in place when it was complete, else the old one comes back; then leftovers are removed.
 */
export async function recoverSwap(service: BackupService, pool: string, image: string): Promise<void> {
  const { storage } = service;
  const exists = (name: string) => service.call(`looking for ${pool}/${name}`, () => storage.imageExists(pool, name));
  const scratch = scratchOf(image);
  const replaced = replacedOf(image);
  if (!(await exists(image)) && (await exists(replaced))) {
    const complete = (await exists(scratch)) && (await storage.getMetadata(pool, scratch))[RESTORE_KEY] === 'complete';
    await storage.renameImage(pool, complete ? scratch : replaced, image);
    service.log.warn({ image: `${pool}/${image}`, kept: complete ? 'the restored image' : 'the previous image' }, 'finished a restore that was interrupted between its renames');
  }
  if (await exists(replaced)) await destroy(service, pool, replaced);
  if (await exists(scratch)) await destroy(service, pool, scratch);
  if (await exists(image)) {
    const meta = await storage.getMetadata(pool, image);
    if (meta[RESTORE_KEY] !== undefined) await storage.removeMetadata(pool, image, RESTORE_KEY);
  }
}

/**
 * The janitor's pass over restores into a volume that died (their intent is left, their lock is
 * not held): finishes or undoes each one's swap and removes its scratch image, then the intent.
 * A running restore holds the volume's lock and is left alone. How many it resolved.
 */
export async function recoverDeadRestores(service: BackupService, lockTtlSeconds: number): Promise<number> {
  let resolved = 0;
  for (const intent of await service.store.listRestoreIntents()) {
    const { tenant, volume, pool, image } = intent;
    try {
      await service.store.withOperationLock(tenant, volume, { reason: 'restore clean-up', ttlSeconds: lockTtlSeconds, waitMs: 0 }, async () => {
        if (!(await service.store.getRestoreIntent(tenant, volume))) return; // finished meanwhile
        await recoverSwap(service, pool, image);
        await service.store.deleteRestoreIntent(tenant, volume);
        service.log.warn({ tenant, volume, image: `${pool}/${image}`, backup: intent.backup, owner: intent.owner }, 'resolved a restore into the volume that died half-way');
        resolved++;
      });
    } catch (err) {
      if (err instanceof StateBusyError) continue; // a restore or another operation is running
      if (err instanceof StateUnavailableError) throw err;
      service.log.warn({ err, tenant, volume }, 'could not resolve a restore that died half-way (a dead client may still have its image open); will retry');
    }
  }
  return resolved;
}
