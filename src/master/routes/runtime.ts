// Runtime options of a volume: snapshot schedule and rate limits, changed without remount.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { RuntimeBody, RuntimeOptionsSchema, VolumeParams, errorResponses } from '../../api/schemas.js';

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/volumes/:tenant/:volume/runtime',
    {
      schema: {
        tags: ['volumes'],
        summary: 'Get the runtime options of a volume',
        params: VolumeParams,
        response: { 200: RuntimeOptionsSchema, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => app.volumes.getRuntime(request.params.tenant, request.params.volume),
  );

  app.patch(
    '/v1/volumes/:tenant/:volume/runtime',
    {
      schema: {
        tags: ['volumes'],
        summary: 'Change runtime options (snapshots, snapshots.frequency, snapshots.keep, rate-limit.*)',
        description:
          'Keys not given keep their value; the tenant\'s limits bound them (422). Rate limits are applied to the image (librbd QoS) at once and by volplugin to ' +
          'the containers using it; the snapshot schedule is read by volsupervisor. No remount.',
        params: VolumeParams,
        body: RuntimeBody,
        response: { 200: RuntimeOptionsSchema, ...errorResponses(400, 401, 403, 404, 409, 422, 503) },
      },
    },
    async (request) => {
      const { tenant, volume } = request.params;
      const runtime = await app.volumes.setRuntime(tenant, volume, request.body.options);
      request.log.info({ tenant, volume, runtime }, 'runtime options changed');
      return runtime;
    },
  );
};

export default routes;
