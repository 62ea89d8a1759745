// Volumes: create (idempotent PUT), get, list per tenant, list all, remove, remove keeping the
// image (?keep-image=true), force-remove (?force=true), resize. A remove with data and a resize run as
// operations (src/master/operations.ts): ?wait=false answers 202 with the operation at once.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ApiError } from '../../api/errors.js';
import {
  CreateVolumeBody,
  OperationRecordSchema,
  RemoveVolumeQuery,
  ResizeBody,
  WaitQuery,
  TenantParams,
  VolumeList,
  VolumeParams,
  VolumeRecordSchema,
  errorResponses,
} from '../../api/schemas.js';
import { assertName } from '../../policy/names.js';
import { authorizeDestroy, checkRemoval, type Removal } from '../access.js';
import type { FastifyBaseLogger } from 'fastify';
import { emptyBodyIsObject } from './shared.js';

const routes: FastifyPluginAsyncTypebox = async (app) => {
  /** After a remove: the volume's request name (and, with its image gone, its snapshots') is free again. Best effort. */
  async function releaseNames(log: FastifyBaseLogger, tenant: string, volume: string, snapshotsToo: boolean): Promise<void> {
    if (snapshotsToo) {
      await app.store.releaseSnapshotNames(tenant, volume).catch((err: unknown) => log.warn({ err, tenant, volume }, 'could not release the request names of its snapshots'));
    }
    await app.store.releaseRequestName({ tenant, volume }).catch((err: unknown) => log.warn({ err, tenant, volume }, 'could not release its request name'));
  }

  app.get(
    '/v1/volumes',
    { schema: { tags: ['volumes'], summary: 'List every volume of every tenant', response: { 200: VolumeList, ...errorResponses(401, 503) } } },
    async () => ({ volumes: await app.store.listVolumes() }),
  );

  app.get(
    '/v1/volumes/:tenant',
    {
      schema: {
        tags: ['volumes'],
        summary: "List a tenant's volumes",
        params: TenantParams,
        response: { 200: VolumeList, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => {
      const { tenant } = request.params;
      assertName('tenant', tenant);
      const volumes = await app.store.listVolumes(tenant);
      if (volumes.length === 0 && !(await app.store.getTenant(tenant))) {
        throw new ApiError('TENANT_NOT_FOUND', `tenant ${tenant} does not exist and has no volumes`, { field: 'tenant' });
      }
      return { volumes };
    },
  );

  app.put(
    '/v1/volumes/:tenant/:volume',
    {
      preValidation: emptyBodyIsObject,
      schema: {
        tags: ['volumes'],
        summary: 'Create a volume (201), or return it when it exists with the same options (200)',
        description:
          "Merges the tenant's default-options with `options` (driver options, e.g. size=10GB) and creates the RBD image " +
          '`<tenant>.<volume>` in the pool. Only options given count when comparing with an existing volume.',
        params: VolumeParams,
        body: CreateVolumeBody,
        response: { 200: VolumeRecordSchema, 201: VolumeRecordSchema, ...errorResponses(400, 401, 403, 404, 409, 422, 503) },
      },
    },
    async (request, reply) => {
      const { tenant, volume } = request.params;
      const name = request.body?.requestName;
      const { record, created } = await app.volumes.create(tenant, volume, request.body?.options ?? {}, name === undefined ? undefined : { name });
      if (created) request.log.info({ tenant, volume, pool: record.pool, image: record.image, by: request.caller.name }, 'volume created');
      else request.audit.unchanged = true;
      return reply.code(created ? 201 : 200).send(record);
    },
  );

  app.get(
    '/v1/volumes/:tenant/:volume',
    {
      schema: {
        tags: ['volumes'],
        summary: 'Get a volume',
        params: VolumeParams,
        response: { 200: VolumeRecordSchema, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => app.volumes.get(request.params.tenant, request.params.volume),
  );

  app.delete(
    '/v1/volumes/:tenant/:volume',
    {
      schema: {
        tags: ['volumes'],
        summary:
          'Remove a volume: its image (with snapshots) and its record; ?keep-image=true only the record; ?force=true only the records, unchecked',
        description:
          'Refused (409) while the volume is mounted (VOLUME_MOUNTED names the host) or its image is open (VOLUME_IN_USE names ' +
          'the client address). keep-image=true makes the same checks under the same lock but deletes only the volume record: the ' +
          'image stays and a later create of the volume adopts it (what `docker volume rm` does). With force=true the volume and ' +
          'mount records are deleted and nothing else, without any check: the image stays. force and keep-image exclude each other. ' +
          'A host token may use keep-image=true, and remove only ephemeral volumes with their data; force needs an admin.',
        params: VolumeParams,
        querystring: RemoveVolumeQuery,
        response: { 202: OperationRecordSchema, 204: { type: 'null' }, ...errorResponses(400, 401, 403, 404, 409, 500, 503) },
      },
    },
    async (request, reply) => {
      const { tenant, volume } = request.params;
      const keepImage = request.query['keep-image'] === 'true';
      const force = request.query.force === 'true';
      if (force && keepImage) {
        throw new ApiError('INVALID_REQUEST', 'query: give force=true or keep-image=true, not both', { field: 'keep-image' });
      }
      const removal: Removal = force ? 'force' : keepImage ? 'keep-image' : 'destroy';
      checkRemoval(request.caller, removal);
      const by = request.caller.name;
      if (removal === 'force') {
        const removed = await app.volumes.forceRemove(tenant, volume);
        request.log.warn({ tenant, volume, mount: removed.mount?.host ?? null, by }, 'volume records force-removed; the image is left alone');
      } else if (removal === 'keep-image') {
        const record = await app.volumes.removeRecords(tenant, volume);
        request.log.info({ tenant, volume, pool: record.pool, image: record.image, by }, 'volume record removed; the image is kept');
      } else {
        const wait = request.query.wait !== 'false';
        const { operation } = await app.operations.run(
          async (accept) => {
            const record = await app.volumes.remove(
              tenant,
              volume,
              (r) => authorizeDestroy(request.caller, r),
              (r) => accept({ kind: 'remove', tenant, volume, by, message: `removing ${r.pool}/${r.image}` }),
            );
            request.log.info({ tenant, volume, pool: record.pool, image: record.image, by }, 'volume removed');
            // Its snapshots went with the image, and the volume is gone: their request names are free again.
            await releaseNames(request.log, tenant, volume, true);
            return { value: record, result: { pool: record.pool, image: record.image }, message: `removed ${tenant}/${volume} and its image ${record.pool}/${record.image}` };
          },
          { wait },
        );
        if (operation) request.audit.operation = operation.id;
        if (!wait && operation) return reply.code(202).header('location', `/v1/operations/${operation.id}`).send(operation);
        return reply.code(204).send();
      }
      await releaseNames(request.log, tenant, volume, false);
      return reply.code(204).send();
    },
  );

  app.post(
    '/v1/volumes/:tenant/:volume/resize',
    {
      schema: {
        tags: ['volumes'],
        summary: 'Grow a volume: its record, its image and, where it is mounted, its filesystem (containers keep running)',
        description:
          'Body {"size": "20GB"}. Refused: a smaller size (422 SHRINK_REFUSED), beyond limits.size (422 LIMIT_EXCEEDED) or limits.total-size ' +
          '(409 QUOTA_EXCEEDED). The host holding the volume grows the filesystem (ext4, xfs, btrfs); one that does not answer grows it ' +
          'at the next mount (result.filesystem "pending"). The same size again finishes an earlier resize. Answers 200 with the ' +
          'operation when done, or 202 at once with ?wait=false (poll GET /v1/operations/:id).',
        params: VolumeParams,
        querystring: WaitQuery,
        body: ResizeBody,
        response: { 200: OperationRecordSchema, 202: OperationRecordSchema, ...errorResponses(400, 401, 403, 404, 409, 422, 500, 503) },
      },
    },
    async (request, reply) => {
      const { tenant, volume } = request.params;
      const wait = request.query.wait !== 'false';
      const { operation } = await app.operations.run((accept) => app.resizer.resize(tenant, volume, request.body.size, request.caller.name, accept), { wait });
      if (!operation) throw new Error('a resize ended without an operation');
      request.audit.operation = operation.id;
      if (!wait) return reply.code(202).header('location', `/v1/operations/${operation.id}`).send(operation);
      return reply.code(200).send(operation);
    },
  );
};

export default routes;
