// The record of a volume copied from a snapshot, under the target tenant's policy: pool, snapshot
// schedule, rate limits and ephemerality come from the policy's default-options (and the driver
// options given with the copy); the size is the snapshot's and the filesystem the source volume's,
// because the copy already holds that filesystem at that size.

import { resolveVolumeOptions, runtimeOf, imageName, formatSize, type OptionValues } from '../policy/index.js';
import { checkVolumeLimits, limitsOf } from '../policy/limits.js';
import type { StateStore } from '../state/store.js';
import type { VolumeRecord } from '../state/records.js';
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import { ApiError } from './errors.js';
import type { BuildCopyRecord } from './service.js';

/** Driver options that make no sense for a copy: its size and filesystem are the snapshot's. */
const FIXED_FOR_COPY = ['size', 'filesystem'];

export function policyCopyRecord(store: StateStore, options: OptionValues = {}, clock: Clock = systemClock): BuildCopyRecord {
  return async ({ target, sizeBytes, sourceRecord }) => {
    const tenant = await store.getTenant(target.tenant);
    if (!tenant) {
      throw new ApiError('TENANT_NOT_FOUND', `tenant ${target.tenant} has no policy; upload one with volcli tenant upload ${target.tenant} FILE`, { field: 'tenant' });
    }
    const given: OptionValues = { ...options };
    for (const key of FIXED_FOR_COPY) {
      if (key in given) {
        throw new ApiError('INVALID_OPTION', `option ${key} cannot be set for a copy: it has the snapshot's ${key}`, { field: key });
      }
    }
    // The tenant may not define the source's filesystem, and may set no size: resolve with the
    // tenant's defaults and the snapshot's size, then record what the copy really holds.
    const sizeText = formatSize(sizeBytes);
    const resolved = resolveVolumeOptions(tenant.policy, { ...given, size: /[KMGT]B$/.test(sizeText) ? sizeText : '1MB' });
    const record: VolumeRecord = {
      tenant: target.tenant,
      volume: target.volume,
      pool: resolved.pool,
      image: imageName(target.tenant, target.volume),
      options: { ...resolved, sizeBytes, filesystem: sourceRecord.options.filesystem },
      runtime: runtimeOf(resolved),
      policyRevision: tenant.revision,
      formatCommand: sourceRecord.formatCommand,
      createdAt: new Date(clock.now()).toISOString(),
    };
    checkVolumeLimits(record.options, limitsOf(tenant.policy)); // the snapshot's size too (422)
    return record;
  };
}
