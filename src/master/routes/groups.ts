// Group snapshots (consistency groups): one crash-consistent snapshot of several volumes of a
// tenant at one instant; list and remove them. The work is src/snapshots/groups.ts.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { GroupParams, GroupSnapshotList, GroupSnapshotParams, GroupSnapshotSchema, GroupSnapshotTakeBody, errorResponses } from '../../api/schemas.js';
import { assertName } from '../../policy/names.js';

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const base = '/v1/groups/:tenant/:group/snapshots';

  app.get(
    base,
    {
      schema: {
        tags: ['snapshots'],
        summary: "List a consistency group's snapshots, with the volumes it holds",
        params: GroupParams,
        response: { 200: GroupSnapshotList, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => {
      assertName('tenant', request.params.tenant);
      return { snapshots: await app.snapshots.groups.list(request.params.tenant, request.params.group) };
    },
  );

  app.post(
    base,
    {
      schema: {
        tags: ['snapshots'],
        summary: 'Take one snapshot of several volumes at one instant (the group is made on its first snapshot)',
        params: GroupParams,
        body: GroupSnapshotTakeBody,
        response: { 201: GroupSnapshotSchema, ...errorResponses(400, 401, 403, 404, 409, 503) },
      },
    },
    async (request, reply) => {
      assertName('tenant', request.params.tenant);
      const { tenant, group } = request.params;
      const taken = await app.snapshots.groups.take(tenant, group, request.body.volumes, request.body.name);
      return reply.code(201).send(taken);
    },
  );

  app.delete(
    `${base}/:snapshot`,
    {
      schema: {
        tags: ['snapshots'],
        summary: "Remove a group snapshot (the group goes with its last one, freeing its volumes)",
        params: GroupSnapshotParams,
        response: { 204: { type: 'null' }, ...errorResponses(400, 401, 404, 409, 503) },
      },
    },
    async (request, reply) => {
      assertName('tenant', request.params.tenant);
      const { tenant, group, snapshot } = request.params;
      await app.snapshots.groups.remove(tenant, group, snapshot);
      return reply.code(204).send();
    },
  );
};

export default routes;
