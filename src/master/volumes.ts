// Over 400 lines: create, remove and runtime changes share the volume's lock, its records and the mapping of Ceph's errors.
// The volume operations behind the routes: create, remove, force-remove and runtime changes (the
// clean-up of creates that died half-way is janitor.ts). HTTP-free, so that tests and other front
// ends can call it directly.
//
// Create: validate -> take the volume's operation lock in etcd -> an existing record with the same
// options is returned (different options: 409) -> clean up a create that died half-way
// (janitor.ts) -> an image of that name that volplugin did not make is refused (409), one it made for this
// volume and whose record was force-removed is adopted -> write an intent -> create the image, mark
// it, set its QoS -> write the record and delete the intent in one transaction. Any failure before
// that transaction removes the image again; a master that dies instead leaves the intent, which the
// next create of the volume or the janitor resolves.

import type { FastifyBaseLogger } from 'fastify';
import { ApiError } from '../api/errors.js';
import type { RuntimeOptions, VolumeOptions } from '../policy/types.js';
import type { Quota } from '../policy/limits.js';
import { assertName, assertVolumeRef, imageName } from '../policy/names.js';
import { applyRuntimeOptions, conflictingOptions, resolveVolumeOptions, runtimeOf } from '../policy/options.js';
import { limitsOf, quotaOf } from '../policy/limits.js';
import { formatCommandFor } from '../policy/filesystem.js';
import { formatSize } from '../policy/units.js';
import type { MountRecord, TenantRecord, VolumeRecord } from '../state/records.js';
import { claimVolumeName } from './request-names.js';
import { LockReason, type StateStore, type VolumeLock } from '../state/store.js';
import { RbdError, isRbdError } from '../storage/errors.js';
import { timed } from '../storage/timed.js';
import type { Storage } from '../storage/types.js';
import { qosMetadata } from '../storage/validate.js';
import { IMAGE_OWNER_KEY, VOLUME_IMAGE_FEATURES } from '../storage/conventions.js';
import { qosOf } from '../ratelimit/limits.js';
import { fromStorageError, toErrorBody } from './errors.js';
import { failpoint, type Failpoints } from './failpoints.js';
import type { Progress } from './operations.js';
import { CreateJanitor, createIntents, type CreateIntents } from './janitor.js';
import { VolumeRemoval } from './removal.js';

export interface VolumeServiceOptions {
  store: StateStore;
  storage: Storage;
  log: FastifyBaseLogger;
  /** TTL of the operation lock's lease: how long a dead master blocks the volume (default 10 s). */
  lockTtlSeconds?: number;
  /** How long to wait for another operation on the same volume (default 30 s). */
  lockWaitMs?: number;
  failpoints?: Failpoints;
  /** Bound of every Ceph call (default 30 s); a call that takes longer is answered 503. */
  cephTimeoutMs?: number;
  /** Bound of the long ones: removing an image (default 1 hour). */
  longCephTimeoutMs?: number;
}

/** A client's request name for a create (CSI's CreateVolume name): its idempotency key. */
export interface CreateRequest {
  name: string;
}

export interface CreateResult {
  record: VolumeRecord;
  created: boolean;
}

/** What a create under the volume's lock works with (create -> createLocked). */
interface LockedCreate {
  tenantRecord: TenantRecord;
  options: VolumeOptions;
  quota: Quota;
  formatCommand: string;
  signal: AbortSignal;
  lock: VolumeLock;
}

/** A createImage error from after rbd_create4 made the image (opening it to set its metadata). */
function afterCreate(err: unknown): boolean {
  return err instanceof RbdError && (err.op === 'rbd_open' || err.op === 'rbd_metadata_set' || err.op === 'rbd_close');
}

function hasLimits(runtime: RuntimeOptions): boolean {
  const r = runtime.rateLimit;
  return r.readIops > 0 || r.writeIops > 0 || r.readBps > 0 || r.writeBps > 0;
}

export class VolumeService {
  readonly intents: CreateIntents;
  private readonly janitor: CreateJanitor;
  private readonly removal: VolumeRemoval;
  private readonly store: StateStore;
  private readonly storage: Storage;
  private readonly log: FastifyBaseLogger;
  private readonly lockTtlSeconds: number;
  private readonly lockWaitMs: number;
  private readonly failpoints: Failpoints | undefined;

  constructor(options: VolumeServiceOptions) {
    this.store = options.store;
    this.storage = timed(options.storage, options.cephTimeoutMs ?? 30_000);
    this.log = options.log;
    this.lockTtlSeconds = options.lockTtlSeconds ?? 10;
    this.lockWaitMs = options.lockWaitMs ?? 30_000;
    this.failpoints = options.failpoints;
    this.intents = createIntents(this.store);
    this.removal = new VolumeRemoval({
      store: this.store,
      storage: this.storage,
      longStorage: timed(options.storage, options.longCephTimeoutMs ?? 3_600_000),
      lockTtlSeconds: this.lockTtlSeconds,
    });
    this.janitor = new CreateJanitor({
      store: this.store,
      storage: this.storage,
      log: this.log,
      lockTtlSeconds: this.lockTtlSeconds,
      destroyImage: (pool, image) => this.removal.destroyImage(pool, image),
    });
  }

  /** Runs a Ceph call; its RbdError becomes an ApiError (503 when the cluster is unreachable). */
  private async ceph<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw fromStorageError(err, what);
    }
  }

  private lock<T>(tenant: string, volume: string, reason: string, fn: (signal: AbortSignal, lock: VolumeLock) => Promise<T>, options: { readVolume?: boolean } = {}): Promise<T> {
    return this.store.withOperationLock(tenant, volume, { reason, ttlSeconds: this.lockTtlSeconds, waitMs: this.lockWaitMs, ...options }, fn);
  }

  async requireTenant(tenant: string): Promise<TenantRecord> {
    assertName('tenant', tenant);
    const record = await this.store.getTenant(tenant);
    if (!record) {
      throw new ApiError('TENANT_NOT_FOUND', `tenant ${tenant} does not exist; upload its policy first: volcli tenant upload ${tenant} < policy.json`, { field: 'tenant' });
    }
    return record;
  }

  async get(tenant: string, volume: string): Promise<VolumeRecord> {
    assertVolumeRef(tenant, volume);
    const record = await this.store.getVolume(tenant, volume);
    if (!record) throw new ApiError('VOLUME_NOT_FOUND', `volume ${tenant}/${volume} does not exist`, { field: 'volume' });
    return record;
  }

  /** The record, or 409 when `values` (or the request name) asks for something else than what the volume has. */
  private same(existing: VolumeRecord, values: Record<string, unknown> | null | undefined, request?: CreateRequest): CreateResult {
    if (request && existing.requestName !== request.name) {
      throw new ApiError(
        'VOLUME_EXISTS',
        `volume ${existing.tenant}/${existing.volume} exists but was not created for request name ${JSON.stringify(request.name)}` +
          `${existing.requestName === undefined ? '' : ` (it was for ${JSON.stringify(existing.requestName)})`}; pick another name`,
        { field: 'requestName' },
      );
    }
    const differ = conflictingOptions(existing.options, values);
    if (differ.length > 0) {
      const key = differ[0]!;
      throw new ApiError(
        'VOLUME_EXISTS',
        `volume ${existing.tenant}/${existing.volume} exists with other options (${differ.join(', ')}); ` +
          `use it as it is (see volcli volume get ${existing.tenant}/${existing.volume}) or pick another name`,
        { field: key },
      );
    }
    return { record: existing, created: false };
  }

  /**
   * Creates the volume, or returns it when it exists with the options given. With `request` (a
   * client's request name, e.g. CSI's CreateVolume name), the name is claimed for this volume first
   * (NAME_TAKEN when it names another volume that exists) and recorded in the volume record; an
   * existing volume made for another name, or none, is a conflict.
   */
  async create(tenant: string, volume: string, values: Record<string, unknown> | null | undefined, request?: CreateRequest): Promise<CreateResult> {
    assertVolumeRef(tenant, volume);
    // Both in one etcd request (concurrent reads are coalesced: src/state/etcd-reads.ts).
    const [tenantRecord, known] = await Promise.all([this.requireTenant(tenant), this.store.getVolume(tenant, volume)]);
    const options = resolveVolumeOptions(tenantRecord.policy, values); // within the tenant's limits, or 422
    const quota = quotaOf(limitsOf(tenantRecord.policy));
    const formatCommand = formatCommandFor(tenantRecord.policy, options.filesystem);

    // Docker asks to create a volume on every host that uses it: answer those without the lock.
    if (known) return this.same(known, values, request);

    // The lock's transaction also reads the record and the intent, as they are now that we hold it.
    return this.lock(
      tenant,
      volume,
      LockReason.Create,
      async (signal, lock) => {
        if (lock.volume) return this.same(lock.volume, values, request);
        if (lock.intent) await this.janitor.clearDeadCreate(tenant, volume);
        const create = { tenantRecord, options, quota, formatCommand, signal, lock };
        if (!request) return this.createLocked(tenant, volume, create);
        const claimed = await claimVolumeName(this.store, request.name, { tenant, volume });
        try {
          return await this.createLocked(tenant, volume, create, request);
        } catch (err) {
          // A refusal made nothing: the name is free again. Other failures keep it (the janitor
          // resolves the create; a claim whose volume never appears is replaced by the next one).
          if (claimed && toErrorBody(err).status < 500) await this.store.releaseRequestName({ tenant, volume }).catch(() => undefined);
          throw err;
        }
      },
      { readVolume: true },
    );
  }

  /** The create itself, under the volume's operation lock, once no record exists. */
  private async createLocked(tenant: string, volume: string, create: LockedCreate, request?: CreateRequest): Promise<CreateResult> {
    const { tenantRecord, options, quota, formatCommand, signal, lock } = create;
    const image = imageName(tenant, volume);
    const record: VolumeRecord = {
      tenant,
      volume,
      pool: options.pool,
      image,
      options,
      runtime: runtimeOf(options),
      policyRevision: tenantRecord.revision,
      formatCommand,
      ...(request ? { requestName: request.name } : {}),
      createdAt: new Date().toISOString(),
    };

    const exists = await this.imageExistsInPool(options.pool, image);
    if (exists) {
      await this.checkAdoptable(record);
      if (hasLimits(record.runtime)) {
        await this.ceph(`setting QoS on ${options.pool}/${image}`, () => this.storage.setQos(options.pool, image, qosOf(record.runtime.rateLimit)));
      }
      if (!(await this.store.createVolume(record, quota))) {
        throw new ApiError('BUSY', `volume ${tenant}/${volume} was created by someone else at the same moment; try again`);
      }
      this.log.warn({ tenant, volume, pool: options.pool, image }, 'adopted an existing volplugin image with no record');
      return { record, created: true };
    }

    // Reserves the volume's share of the tenant's usage, atomically within its limits (409 QUOTA_EXCEEDED).
    const intent = { tenant, volume, pool: options.pool, image, owner: this.store.owner, since: record.createdAt, sizeBytes: options.sizeBytes };
    await this.store.putCreateIntent(intent, quota);
    await failpoint(this.failpoints, 'after-intent');
    let imageCreated = false;
    try {
      // The owner mark and the QoS limits go on with the create: one open of the new image.
      await this.createImage(options, image, { [IMAGE_OWNER_KEY]: `${tenant}/${volume}`, ...qosMetadata(qosOf(record.runtime.rateLimit)) });
      imageCreated = true;
      await failpoint(this.failpoints, 'after-image-create');
      if (signal.aborted) {
        throw new ApiError('BUSY', `lost the operation lock of ${tenant}/${volume} (etcd lease expired) while creating it; try again`);
      }
    } catch (err) {
      // The image was made when what failed came after rbd_create4 (setting its metadata): ours to remove.
      imageCreated ||= err instanceof ApiError && afterCreate(err.cause);
      if (err instanceof ApiError && err.code === 'STORAGE_UNAVAILABLE') {
        // Ceph may still finish what timed out: leave the intent, the janitor resolves it later.
        this.log.warn({ err, tenant, volume }, 'create stopped by an unreachable Ceph; the janitor will resolve it');
        throw err;
      }
      await this.undoCreate(tenant, volume, options.pool, image, imageCreated);
      throw err;
    }

    let committed: boolean;
    try {
      // The record replaces the intent and the lock is given back, in one transaction.
      committed = await this.store.commitCreate(record, { intent, lock });
    } catch (err) {
      // The transaction may or may not have happened. Leave image and intent: if the record is
      // there the intent is stale, if not the image is an orphan; the janitor decides once etcd
      // answers again.
      this.log.error({ err, tenant, volume }, 'writing the volume record failed; the janitor will resolve the create');
      throw err;
    }
    if (!committed) {
      await this.undoCreate(tenant, volume, options.pool, image, true);
      throw new ApiError('BUSY', `volume ${tenant}/${volume} was created by someone else at the same moment, or its lock was lost; try again`);
    }
    return { record, created: true };
  }

  private async imageExistsInPool(pool: string, image: string): Promise<boolean> {
    try {
      return await this.storage.imageExists(pool, image);
    } catch (err) {
      if (isRbdError(err, 'ENOENT')) throw this.noPool(pool);
      throw fromStorageError(err, `looking up ${pool}/${image}`);
    }
  }

  private noPool(pool: string): ApiError {
    return new ApiError('POOL_NOT_FOUND', `pool: Ceph has no pool ${JSON.stringify(pool)}; create it (ceph osd pool create ${pool}) or choose another with --opt pool=NAME`, { field: 'pool' });
  }

  private async createImage(options: VolumeOptions, image: string, metadata: Record<string, string>): Promise<void> {
    try {
      await this.storage.createImage(options.pool, image, { size: options.sizeBytes, features: VOLUME_IMAGE_FEATURES, metadata });
    } catch (err) {
      if (!afterCreate(err) && isRbdError(err, 'ENOENT')) throw this.noPool(options.pool);
      if (!afterCreate(err) && isRbdError(err, 'EEXIST')) {
        throw new ApiError('IMAGE_EXISTS', `image ${options.pool}/${image} appeared while creating it (not made by volplugin); remove or rename it, then try again`);
      }
      throw fromStorageError(err, `creating ${options.pool}/${image}`);
    }
  }

  /** Refuses an existing image unless volplugin made it for this very volume with this size. */
  private async checkAdoptable(record: VolumeRecord): Promise<void> {
    const { pool, image, tenant, volume } = record;
    const where = `${pool}/${image}`;
    const metadata = await this.ceph(`reading metadata of ${where}`, () => this.storage.getMetadata(pool, image));
    if (metadata[IMAGE_OWNER_KEY] !== `${tenant}/${volume}`) {
      throw new ApiError(
        'IMAGE_EXISTS',
        `image ${where} exists but was not created by volplugin for ${tenant}/${volume}; rename or remove it (rbd rm ${where}), or choose another volume name`,
        { field: 'volume' },
      );
    }
    const info = await this.ceph(`reading ${where}`, () => this.storage.imageInfo(pool, image));
    if (info.size !== record.options.sizeBytes) {
      throw new ApiError(
        'IMAGE_EXISTS',
        `image ${where} of a former ${tenant}/${volume} (force-removed?) exists with size ${formatSize(info.size)}; ` +
          `create with --opt size=${formatSize(info.size)} to take it over, or remove it (rbd rm ${where})`,
        { field: 'size' },
      );
    }
  }

  /** After a failed create: remove the image we made and the intent (best effort; the janitor retries). */
  private async undoCreate(tenant: string, volume: string, pool: string, image: string, imageCreated: boolean): Promise<void> {
    if (imageCreated) {
      try {
        await this.storage.removeImage(pool, image);
      } catch (err) {
        if (!isRbdError(err, 'ENOENT')) {
          this.log.error({ err, pool, image }, 'could not remove the image of a failed create; the janitor will retry');
          return; // keep the intent so that the janitor finds the image
        }
      }
    }
    try {
      await this.store.deleteCreateIntent(tenant, volume);
    } catch (err) {
      this.log.warn({ err, tenant, volume }, 'could not delete the intent of a failed create; the janitor will');
    }
  }

  /**
   * Removes the image (and its snapshots) and then the record. Refused, with nothing changed, while
   * mounted or open, and when `authorize` (given the record, under the lock) throws: the caller's
   * role may not. No host can mount it meanwhile. `accept` (an operation's, operations.ts) is called
   * once every check passed, before anything is deleted; its progress hears the removal.
   */
  async remove(
    tenant: string,
    volume: string,
    authorize?: (record: VolumeRecord) => void,
    accept?: (record: VolumeRecord) => Promise<Progress>,
  ): Promise<VolumeRecord> {
    await this.get(tenant, volume);
    return this.lock(tenant, volume, LockReason.Remove, async () => {
      const record = await this.get(tenant, volume);
      authorize?.(record);
      return this.removal.withMountsExcluded(record, LockReason.Remove, async (stillExcluded) => {
        stillExcluded();
        const progress = accept ? await accept(record) : null;
        await this.removal.destroyImage(record.pool, record.image, progress);
        stillExcluded();
        await this.store.deleteVolume(tenant, volume);
        return record;
      });
    });
  }

  /**
   * Deletes the volume record and leaves the image (with its data and snapshots), so that creating
   * the volume again adopts it. The same checks as remove(), with mounts excluded the same way.
   */
  async removeRecords(tenant: string, volume: string): Promise<VolumeRecord> {
    await this.get(tenant, volume);
    return this.lock(tenant, volume, LockReason.Remove, async () => {
      const record = await this.get(tenant, volume);
      return this.removal.withMountsExcluded(record, LockReason.Remove, async (stillExcluded) => {
        stillExcluded();
        await this.store.deleteVolume(tenant, volume);
        return record;
      });
    });
  }

  /** Deletes the volume's records (volume and mount) and nothing else, with no checks; the image stays. */
  async forceRemove(tenant: string, volume: string): Promise<{ volume: VolumeRecord | null; mount: MountRecord | null }> {
    assertVolumeRef(tenant, volume);
    const record = await this.store.getVolume(tenant, volume);
    const mount = await this.store.forceRemoveMount(tenant, volume);
    const deleted = await this.store.deleteVolume(tenant, volume);
    if (!deleted && !mount) throw new ApiError('VOLUME_NOT_FOUND', `volume ${tenant}/${volume} has no records to remove`, { field: 'volume' });
    return { volume: record, mount };
  }

  async getRuntime(tenant: string, volume: string): Promise<RuntimeOptions> {
    return (await this.get(tenant, volume)).runtime;
  }

  /** Changes snapshot and rate-limit settings, within the tenant's limits; QoS is applied to the image at once. */
  async setRuntime(tenant: string, volume: string, values: Record<string, unknown>): Promise<RuntimeOptions> {
    const current = await this.get(tenant, volume);
    const limits = await this.store.volumeLimits(current);
    applyRuntimeOptions(current.runtime, values, limits); // 400 or 422 before taking any lock
    return this.lock(tenant, volume, LockReason.Runtime, async () => {
      const record = await this.get(tenant, volume);
      const runtime = applyRuntimeOptions(record.runtime, values, limits);
      const limitsChanged = JSON.stringify(runtime.rateLimit) !== JSON.stringify(record.runtime.rateLimit);
      if (limitsChanged) {
        await this.ceph(`setting QoS on ${record.pool}/${record.image}`, () => this.storage.setQos(record.pool, record.image, qosOf(runtime.rateLimit)));
      }
      const updated = await this.store.updateRuntime(tenant, volume, runtime);
      if (!updated) throw new ApiError('VOLUME_NOT_FOUND', `volume ${tenant}/${volume} was removed meanwhile`, { field: 'volume' });
      return updated.runtime;
    });
  }

  /** The janitor's pass over every create that died half-way (janitor.ts); how many it resolved. */
  reconcile(): Promise<number> {
    return this.janitor.reconcile();
  }
}
