// Mounts: which host holds which volume's mount lock. volplugin takes and releases them in etcd;
// here they are listed and, when a host is gone for good, force-removed.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ApiError } from '../../api/errors.js';
import { MountList, MountRecordSchema, VolumeParams, errorResponses } from '../../api/schemas.js';
import { assertVolumeRef } from '../../policy/names.js';

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/mounts',
    { schema: { tags: ['mounts'], summary: 'List every mount', response: { 200: MountList, ...errorResponses(401, 503) } } },
    async () => ({ mounts: await app.store.listMounts() }),
  );

  app.get(
    '/v1/mounts/:tenant/:volume',
    {
      schema: {
        tags: ['mounts'],
        summary: 'Get the mount of a volume',
        params: VolumeParams,
        response: { 200: MountRecordSchema, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => {
      const { tenant, volume } = request.params;
      assertVolumeRef(tenant, volume);
      const mount = await app.store.getMount(tenant, volume);
      if (!mount) throw new ApiError('MOUNT_NOT_FOUND', `volume ${tenant}/${volume} is not mounted anywhere`, { field: 'volume' });
      return mount;
    },
  );

  app.delete(
    '/v1/mounts/:tenant/:volume',
    {
      schema: {
        tags: ['mounts'],
        summary: 'Force-remove the mount record (nothing is unmounted); returns what was removed',
        params: VolumeParams,
        response: { 200: MountRecordSchema, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => {
      const { tenant, volume } = request.params;
      assertVolumeRef(tenant, volume);
      const removed = await app.store.forceRemoveMount(tenant, volume);
      if (!removed) throw new ApiError('MOUNT_NOT_FOUND', `volume ${tenant}/${volume} has no mount record`, { field: 'volume' });
      request.log.warn({ tenant, volume, host: removed.host }, 'mount record force-removed');
      return removed;
    },
  );
};

export default routes;
