// Snapshots of a volume, on demand: take, list, remove, copy into a new volume, roll back. The
// work is src/snapshots' SnapshotService (shared with volsupervisor); copies go through the
// master's create path (intents, so a master dying mid-copy leaves no orphan clone).

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  SnapshotCopyBody,
  SnapshotList,
  SnapshotParams,
  SnapshotSchema,
  SnapshotTakeBody,
  VolumeParams,
  VolumeRecordSchema,
  errorResponses,
} from '../../api/schemas.js';
import { limitsOf, quotaOf } from '../../policy/limits.js';
import { assertVolumeRef } from '../../policy/names.js';
import { parseDriverOptions, type OptionValues } from '../../policy/options.js';
import { policyCopyRecord } from '../../snapshots/copy-record.js';
import { ApiError, isApiError } from '../../api/errors.js';
import { toErrorBody } from '../errors.js';
import { claimSnapshotName, claimVolumeName } from '../request-names.js';
import { emptyBodyIsObject } from './shared.js';
import { qosOf } from '../../ratelimit/limits.js';
import { IMAGE_OWNER_KEY } from '../../storage/conventions.js';

/** Validates a tenant/volume pair given as route parameters or in a body. */
const names = (ref: { tenant: string; volume: string }) => assertVolumeRef(ref.tenant, ref.volume);

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const base = '/v1/volumes/:tenant/:volume/snapshots';

  app.get(
    base,
    {
      schema: {
        tags: ['snapshots'],
        summary: "List a volume's snapshots, oldest first",
        params: VolumeParams,
        response: { 200: SnapshotList, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => {
      names(request.params);
      return { snapshots: await app.snapshots.list(request.params.tenant, request.params.volume) };
    },
  );

  app.post(
    base,
    {
      preValidation: emptyBodyIsObject,
      schema: {
        tags: ['snapshots'],
        summary: 'Take a snapshot now (named manual-<time> unless a name is given)',
        params: VolumeParams,
        body: SnapshotTakeBody,
        response: { 200: SnapshotSchema, 201: SnapshotSchema, ...errorResponses(400, 401, 403, 404, 409, 503) },
      },
    },
    async (request, reply) => {
      names(request.params);
      const { tenant, volume } = request.params;
      const policy = (await app.store.getTenant(tenant))?.policy;
      const limit = policy ? (limitsOf(policy).maxSnapshots ?? undefined) : undefined;
      const { name, requestName } = request.body ?? {};
      if (requestName === undefined) return reply.code(201).send(await app.snapshots.take(tenant, volume, name, limit));
      if (name === undefined) throw new ApiError('INVALID_REQUEST', 'body: requestName needs name (the snapshot it is for)', { field: 'name' });
      if (!(await app.store.getVolume(tenant, volume))) throw new ApiError('VOLUME_NOT_FOUND', `volume ${tenant}/${volume} does not exist`, { field: 'volume' });
      const claimed = await claimSnapshotName(app.store, app.storage, requestName, { tenant, volume, snapshot: name });
      try {
        return reply.code(201).send(await app.snapshots.take(tenant, volume, name, limit));
      } catch (err) {
        // Taken already for this very request (an answer that was lost): the same snapshot again.
        const existing = !claimed && isApiError(err, 'SNAPSHOT_EXISTS') ? (await app.snapshots.list(tenant, volume)).find((s) => s.name === name) : undefined;
        if (existing) return reply.code(200).send(existing);
        if (claimed && toErrorBody(err).status < 500) await app.store.releaseRequestName({ tenant, volume, snapshot: name }).catch(() => undefined);
        throw err;
      }
    },
  );

  app.delete(
    `${base}/:snapshot`,
    {
      schema: {
        tags: ['snapshots'],
        summary: 'Remove a snapshot (refused while clones depend on it)',
        params: SnapshotParams,
        response: { 204: { type: 'null' }, ...errorResponses(400, 401, 404, 409, 503) },
      },
    },
    async (request, reply) => {
      names(request.params);
      const { tenant, volume, snapshot } = request.params;
      await app.snapshots.remove(tenant, volume, snapshot);
      await app.store.releaseRequestName({ tenant, volume, snapshot }).catch((err: unknown) => request.log.warn({ err, tenant, volume, snapshot }, 'could not release its request name'));
      return reply.code(204).send();
    },
  );

  app.post(
    `${base}/:snapshot/copy`,
    {
      schema: {
        tags: ['snapshots'],
        summary: 'Copy a snapshot into a new volume {tenant, volume} (a clone, flattened later by volsupervisor)',
        params: SnapshotParams,
        body: SnapshotCopyBody,
        response: { 201: VolumeRecordSchema, ...errorResponses(400, 401, 403, 404, 409, 422, 503) },
      },
    },
    async (request, reply) => {
      names(request.params);
      const { tenant, volume, snapshot } = request.params;
      const target = { tenant: request.body.tenant, volume: request.body.volume };
      names(target);
      const options = (request.body.options ?? {}) as OptionValues;
      parseDriverOptions(options); // 400 for unknown keys before anything else
      const intents = app.volumes.intents;
      const requestName = request.body.requestName;
      const build = policyCopyRecord(app.store, options);
      const claimed = requestName === undefined ? false : await claimVolumeName(app.store, requestName, target);
      const record = await app.snapshots.copy({ tenant, volume, snapshot }, target, {
        build: async (input) => ({ ...(await build(input)), ...(requestName === undefined ? {} : { requestName }) }),
        // Reserves the copy's share of its tenant's usage, within its limits (409 QUOTA_EXCEEDED).
        prepare: async (r) => {
          const policy = (await app.store.getTenant(r.tenant))?.policy;
          const intent = { tenant: r.tenant, volume: r.volume, pool: r.pool, image: r.image, owner: app.store.owner, since: r.createdAt, sizeBytes: r.options.sizeBytes };
          await intents.put(intent, policy ? quotaOf(limitsOf(policy)) : undefined);
        },
        // A clone starts with its parent's image metadata: make the owner mark and QoS the copy's own.
        afterClone: async (r) => {
          await app.storage.setMetadata(r.pool, r.image, IMAGE_OWNER_KEY, `${r.tenant}/${r.volume}`);
          await app.storage.setQos(r.pool, r.image, qosOf(r.runtime.rateLimit));
        },
        commit: (r) => intents.commit(r),
        abandon: (r) => intents.delete(r.tenant, r.volume),
      }).catch(async (err: unknown) => {
        if (claimed && toErrorBody(err).status < 500) await app.store.releaseRequestName(target).catch(() => undefined);
        throw err;
      });
      request.log.info({ source: `${tenant}/${volume}@${snapshot}`, target: `${target.tenant}/${target.volume}` }, 'volume copied from snapshot');
      return reply.code(201).send(record);
    },
  );

  app.post(
    `${base}/:snapshot/rollback`,
    {
      schema: {
        tags: ['snapshots'],
        summary: 'Roll the volume back to a snapshot (refused while mounted or open)',
        params: SnapshotParams,
        response: { 204: { type: 'null' }, ...errorResponses(400, 401, 404, 409, 503) },
      },
    },
    async (request, reply) => {
      names(request.params);
      const { tenant, volume, snapshot } = request.params;
      await app.snapshots.rollback(tenant, volume, snapshot);
      request.log.warn({ tenant, volume, snapshot }, 'volume rolled back to a snapshot');
      return reply.code(204).send();
    },
  );
};

export default routes;
