// The janitor: creates that died half-way. A create writes an intent before it makes the image and
// replaces it with the volume record in one transaction (create intents: src/state/intents.ts), so
// an intent that no one is working on is a create that died between the two: its image, if any,
// was made by that create and no record points to it. The janitor removes such an image (never one
// a client has open) and then the intent: at the next create of that volume (under its operation
// lock), and in a pass over every intent that the master runs periodically (app.ts).

import type { FastifyBaseLogger } from 'fastify';
import { ApiError } from '../api/errors.js';
import type { Quota } from '../policy/limits.js';
import { imageName } from '../policy/names.js';
import { StateUnavailableError } from '../state/kv.js';
import type { VolumeRecord } from '../state/records.js';
import { StateBusyError, type CreateIntent, type StateStore } from '../state/store.js';
import { isRbdError } from '../storage/errors.js';
import type { Storage } from '../storage/types.js';
import { fromStorageError } from './errors.js';

/**
 * The create intents, as the create path and the snapshot copy (routes/snapshots.ts) use them
 * around an image they make; kept by StateStore.
 */
export interface CreateIntents {
  /** Writes the intent, reserving its share of the tenant's usage within `quota` (409 QUOTA_EXCEEDED beyond it). */
  put(intent: CreateIntent, quota?: Quota): Promise<void>;
  list(): Promise<CreateIntent[]>;
  delete(tenant: string, volume: string): Promise<void>;
  /** Writes the volume record and deletes its intent in one transaction (StateStore.commitCreate). */
  commit(record: VolumeRecord): Promise<boolean>;
}

export function createIntents(store: StateStore): CreateIntents {
  return {
    put: (intent, quota) => store.putCreateIntent(intent, quota),
    list: () => store.listCreateIntents(),
    delete: (tenant, volume) => store.deleteCreateIntent(tenant, volume),
    commit: (record) => store.commitCreate(record),
  };
}

export interface JanitorOptions {
  store: StateStore;
  /** Ceph, every call already bounded in time. */
  storage: Storage;
  log: FastifyBaseLogger;
  /** TTL of the operation lock the pass takes per volume. */
  lockTtlSeconds: number;
  /** Removes an image and its snapshots; a missing image is not an error. */
  destroyImage: (pool: string, image: string) => Promise<void>;
}

export class CreateJanitor {
  private readonly store: StateStore;
  private readonly storage: Storage;
  private readonly log: FastifyBaseLogger;
  private readonly lockTtlSeconds: number;
  private readonly destroyImage: (pool: string, image: string) => Promise<void>;

  constructor(options: JanitorOptions) {
    this.store = options.store;
    this.storage = options.storage;
    this.log = options.log;
    this.lockTtlSeconds = options.lockTtlSeconds;
    this.destroyImage = options.destroyImage;
  }

  /**
   * With the volume's operation lock held: if an intent exists, its create died half-way. Removes
   * the image it may have made (never one with watchers) and the intent. True when it cleaned up.
   */
  async clearDeadCreate(tenant: string, volume: string): Promise<boolean> {
    const intent = await this.store.getCreateIntent(tenant, volume);
    if (!intent) return false;
    if (await this.store.getVolume(tenant, volume)) {
      await this.store.deleteCreateIntent(tenant, volume); // the record was written: the intent is stale
      return true;
    }
    const image = intent.image || imageName(tenant, volume);
    const pool = intent.pool;
    if (pool) {
      let exists = false;
      try {
        exists = await this.storage.imageExists(pool, image);
      } catch (err) {
        if (!isRbdError(err, 'ENOENT')) throw fromStorageError(err, `looking up ${pool}/${image}`);
      }
      if (exists) {
        const watchers = await this.storage.listWatchers(pool, image).catch((err: unknown) => {
          throw fromStorageError(err, `listing watchers of ${pool}/${image}`);
        });
        if (watchers.length > 0) {
          throw new ApiError('VOLUME_IN_USE', `image ${pool}/${image} of an unfinished create is open by ${watchers[0]!.address}; close it there first`);
        }
        await this.destroyImage(pool, image);
        this.log.warn({ tenant, volume, pool, image, owner: intent.owner }, 'removed the image of a create that died half-way');
      }
    }
    await this.store.deleteCreateIntent(tenant, volume);
    return true;
  }

  /**
   * The periodic pass: resolves every create that died half-way and whose volume nobody is
   * working on now. Returns how many it resolved.
   */
  async reconcile(): Promise<number> {
    let resolved = 0;
    for (const intent of await this.store.listCreateIntents()) {
      const { tenant, volume } = intent;
      if (!tenant || !volume) continue;
      try {
        const done = await this.store.withOperationLock(tenant, volume, { reason: 'create clean-up', ttlSeconds: this.lockTtlSeconds, waitMs: 0 }, () =>
          this.clearDeadCreate(tenant, volume),
        );
        if (done) resolved++;
      } catch (err) {
        if (err instanceof StateBusyError) continue; // a create is running: its own business
        if (err instanceof StateUnavailableError) throw err;
        this.log.warn({ err, tenant, volume }, 'could not resolve an unfinished create; will retry');
      }
    }
    return resolved;
  }
}
