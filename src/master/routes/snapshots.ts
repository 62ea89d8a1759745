// Snapshots of a volume, on demand: take, list, remove, copy into a new volume, roll back. The
// work is src/snapshots' SnapshotService (shared with volsupervisor); copies go through the
// master's create path (intents, so a master dying mid-copy leaves no orphan clone).

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  OperationRecordSchema,
  SnapshotCopyBody,
  SnapshotCopyQuery,
  SnapshotList,
  SnapshotParams,
  SnapshotSchema,
  SnapshotTakeBody,
  VolumeParams,
  VolumeRecordSchema,
  errorResponses,
} from '../../api/schemas.js';
import { limitsOf } from '../../policy/limits.js';
import { assertVolumeRef } from '../../policy/names.js';
import { parseDriverOptions, type OptionValues } from '../../policy/options.js';
import { policyCopyRecord } from '../../snapshots/copy-record.js';
import { ApiError, isApiError } from '../../api/errors.js';
import { toErrorBody } from '../errors.js';
import { claimSnapshotName, claimVolumeName } from '../request-names.js';
import { createPath, emptyBodyIsObject } from './shared.js';
import type { VolumeRecord } from '../../state/records.js';

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
        summary: 'Copy a snapshot into a new volume {tenant, volume}: a clone, usable at once, then flattened (an operation)',
        description:
          'Answers 201 with the new volume once it exists (the clone); the flatten goes on as an operation (its id in the ' +
          'Location header). With ?wait=false the answer is 202 with that operation. A master that stops mid-flatten leaves ' +
          'the copy usable: volsupervisor flattens it.',
        params: SnapshotParams,
        querystring: SnapshotCopyQuery,
        body: SnapshotCopyBody,
        response: { 201: VolumeRecordSchema, 202: OperationRecordSchema, ...errorResponses(400, 401, 403, 404, 409, 422, 503) },
      },
    },
    async (request, reply) => {
      names(request.params);
      const { tenant, volume, snapshot } = request.params;
      const target = { tenant: request.body.tenant, volume: request.body.volume };
      names(target);
      const options = (request.body.options ?? {}) as OptionValues;
      parseDriverOptions(options); // 400 for unknown keys before anything else
      const create = createPath(app);
      const requestName = request.body.requestName;
      const build = policyCopyRecord(app.store, options);
      const copy = async () => {
        // The request name (CSI's CreateVolume name) is claimed for the target first and recorded in it.
        const claimed = requestName === undefined ? false : await claimVolumeName(app.store, requestName, target);
        return app.snapshots
          .copy({ tenant, volume, snapshot }, target, {
            build: async (input) => ({ ...(await build(input)), ...(requestName === undefined ? {} : { requestName }) }),
            prepare: create.prepare,
            afterClone: create.mark,
            commit: create.commit,
            abandon: create.abandon,
          })
          .catch(async (err: unknown) => {
            // A refusal made nothing: the name is free again.
            if (claimed && toErrorBody(err).status < 500) await app.store.releaseRequestName(target).catch(() => undefined);
            throw err;
          });
      };
      let record: VolumeRecord | null = null;
      // The clone is the point of no return; the flatten after it goes on in the background either way.
      const { operation } = await app.operations.run(
        async (accept) => {
          record = await copy();
          request.log.info({ source: `${tenant}/${volume}@${snapshot}`, target: `${target.tenant}/${target.volume}` }, 'volume copied from snapshot');
          const op = await accept({ kind: 'copy', tenant, volume, target, by: request.caller.name, message: `flattening ${record.pool}/${record.image}` });
          const outcome = await app.snapshots.finishClone(record, undefined, op.listener('objects'));
          const name = `${target.tenant}/${target.volume}`;
          return { value: record, result: { flatten: outcome }, message: `${name} is a copy of ${tenant}/${volume}@${snapshot}${outcome === 'flattened' ? ', flattened: it no longer depends on the snapshot' : ''}` };
        },
        { wait: false },
      );
      if (operation) request.audit.operation = operation.id;
      if (request.query.wait === 'false' && operation) return reply.code(202).header('location', `/v1/operations/${operation.id}`).send(operation);
      if (operation) void reply.header('location', `/v1/operations/${operation.id}`);
      return reply.code(201).send(record!);
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
