// Growing a volume (PUT /v1/volumes/:tenant/:volume/size): the smallest version of it that the
// CSI driver's ControllerExpandVolume needs. The image grows first, then the record and the
// tenant's usage in one transaction; the filesystem grows on the host that has the volume mounted
// (the CSI node's NodeExpandVolume). A volume never shrinks: asking for less than it has returns it
// as it is. Issue 15's online resize (resize-fs requests, progress) is meant to replace this.

import type { FastifyBaseLogger } from 'fastify';
import { ApiError } from '../api/errors.js';
import { checkVolumeLimits, quotaOf } from '../policy/limits.js';
import { assertVolumeRef } from '../policy/names.js';
import { formatSize } from '../policy/units.js';
import type { VolumeRecord } from '../state/records.js';
import type { StateStore } from '../state/store.js';
import { timed } from '../storage/timed.js';
import type { Storage } from '../storage/types.js';
import { fromStorageError } from './errors.js';

export interface GrowDeps {
  store: StateStore;
  storage: Storage;
  log: FastifyBaseLogger;
  /** Bound of the Ceph call (default 30 s). */
  cephTimeoutMs?: number;
}

export async function growVolume(deps: GrowDeps, tenant: string, volume: string, sizeBytes: number): Promise<VolumeRecord> {
  assertVolumeRef(tenant, volume);
  const { store, log } = deps;
  const storage = timed(deps.storage, deps.cephTimeoutMs ?? 30_000);
  return store.withOperationLock(tenant, volume, { reason: 'grow', waitMs: 30_000 }, async () => {
    const record = await store.getVolume(tenant, volume);
    if (!record) throw new ApiError('VOLUME_NOT_FOUND', `volume ${tenant}/${volume} does not exist`, { field: 'volume' });
    const from = record.options.sizeBytes;
    if (sizeBytes <= from) return record;
    const limits = await store.volumeLimits(record);
    checkVolumeLimits({ ...record.options, sizeBytes }, limits); // 422 LIMIT_EXCEEDED naming limits.size
    // The tenant's total is checked again atomically below; checking it first keeps a refused grow
    // from leaving a larger image behind (an image is never shrunk back: that could cut data).
    const quota = quotaOf(limits);
    const usage = await store.getUsage(tenant);
    if (quota.bytes !== undefined && usage.bytes + (sizeBytes - from) > quota.bytes) {
      throw new ApiError(
        'QUOTA_EXCEEDED',
        `tenant ${tenant} uses ${formatSize(usage.bytes)} of its ${formatSize(quota.bytes)} (limits.total-size); growing ${tenant}/${volume} by ` +
          `${formatSize(sizeBytes - from)} does not fit: remove a volume or raise the limit`,
        { field: 'limits.total-size' },
      );
    }
    try {
      await storage.resizeImage(record.pool, record.image, sizeBytes);
    } catch (err) {
      throw fromStorageError(err, `growing ${record.pool}/${record.image}`);
    }
    const grown = await store.growVolume(tenant, volume, sizeBytes, quota);
    if (!grown) throw new ApiError('VOLUME_NOT_FOUND', `volume ${tenant}/${volume} was removed while growing it`, { field: 'volume' });
    log.info({ tenant, volume, from, to: sizeBytes }, 'volume grown');
    return grown;
  });
}
