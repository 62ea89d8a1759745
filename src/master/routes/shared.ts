// What several route files use. Routes import it from here, never from app.ts: app.ts imports the
// routes, and the dependency goes one way.

import type { FastifyInstance } from 'fastify';
import { limitsOf, quotaOf } from '../../policy/limits.js';
import { qosOf } from '../../ratelimit/limits.js';
import type { VolumeRecord } from '../../state/records.js';
import { IMAGE_OWNER_KEY } from '../../storage/conventions.js';

/**
 * The master's create path for a volume made from existing data (a snapshot copy, a backup
 * restore): an intent reserving the tenant's usage within its limits (409 QUOTA_EXCEEDED) before
 * the image exists, the image marked as the volume's with its QoS, the record written with the
 * intent's removal, and the intent removed again after a failure.
 */
export function createPath(app: FastifyInstance) {
  const intents = app.volumes.intents;
  return {
    prepare: async (r: VolumeRecord) => {
      const policy = (await app.store.getTenant(r.tenant))?.policy;
      const intent = { tenant: r.tenant, volume: r.volume, pool: r.pool, image: r.image, owner: app.store.owner, since: r.createdAt, sizeBytes: r.options.sizeBytes };
      await intents.put(intent, policy ? quotaOf(limitsOf(policy)) : undefined);
    },
    /** The image may carry another volume's metadata (a clone's parent's): make the owner mark and QoS this volume's. */
    mark: async (r: VolumeRecord) => {
      await app.storage.setMetadata(r.pool, r.image, IMAGE_OWNER_KEY, `${r.tenant}/${r.volume}`);
      await app.storage.setQos(r.pool, r.image, qosOf(r.runtime.rateLimit));
    },
    commit: (r: VolumeRecord) => intents.commit(r),
    abandon: (r: VolumeRecord) => intents.delete(r.tenant, r.volume),
  };
}

/** preValidation for routes whose body is optional: no body at all counts as `{}`. */
export async function emptyBodyIsObject(request: { body: unknown }): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}
