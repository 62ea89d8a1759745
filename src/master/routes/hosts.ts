// Hosts: what each volplugin reports about itself (its mounts, as it sees them, and the problems
// its convergence loop could not fix). The reports live in etcd bound to each host's lease, so a
// host that is gone drops out of the list after its lease TTL.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ApiError } from '../../api/errors.js';
import { HostList, HostParams, HostReportSchema, errorResponses } from '../../api/schemas.js';

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/hosts',
    {
      schema: {
        tags: ['hosts'],
        summary: 'List the reports of every live volplugin',
        response: { 200: HostList, ...errorResponses(401, 503) },
      },
    },
    async () => ({ hosts: await app.store.listHostReports() }),
  );

  app.get(
    '/v1/hosts/:hostId',
    {
      schema: {
        tags: ['hosts'],
        summary: "Get one volplugin's report by host id",
        params: HostParams,
        response: { 200: HostReportSchema, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => {
      const { hostId } = request.params;
      if (hostId === '' || hostId.includes('/')) {
        throw new ApiError('INVALID_REQUEST', `hostId: ${JSON.stringify(hostId)} is not a host id`, { field: 'hostId' });
      }
      const report = await app.store.getHostReport(hostId);
      if (!report) {
        throw new ApiError('HOST_NOT_FOUND', `no volplugin with host id ${hostId} reports (not running, or its lease expired); see GET /v1/hosts`, { field: 'hostId' });
      }
      return report;
    },
  );
};

export default routes;
