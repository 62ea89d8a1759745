// Long operations (a resize, a remove of an image, a copy that flattens): what they are doing and
// how far they are (src/master/operations.ts runs them; src/state/progress.ts keeps them).

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ApiError } from '../../api/errors.js';
import { OperationList, OperationListQuery, OperationParams, OperationRecordSchema, errorResponses } from '../../api/schemas.js';

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/operations',
    {
      schema: {
        tags: ['operations'],
        summary: 'The newest operations first (default 50, ?limit=N)',
        querystring: OperationListQuery,
        response: { 200: OperationList, ...errorResponses(400, 401, 403, 503) },
      },
    },
    async (request) => ({ operations: await app.store.listOperations({ limit: request.query.limit ? Number(request.query.limit) : 50 }) }),
  );

  app.get(
    '/v1/operations/:id',
    {
      schema: {
        tags: ['operations'],
        summary: 'One operation: state (running, done, failed, interrupted), done of total, message, result or error',
        description:
          'Poll it until state is no longer running. interrupted: the volmaster running it stopped (its etcd lease lapsed, within 10 s of its death); ' +
          'what it did so far stays and the error says how to finish it.',
        params: OperationParams,
        response: { 200: OperationRecordSchema, ...errorResponses(401, 403, 404, 503) },
      },
    },
    async (request) => {
      const { id } = request.params;
      const record = /^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{8}$/.test(id) ? await app.store.getOperation(id) : null;
      if (!record) {
        throw new ApiError('OPERATION_NOT_FOUND', `no operation has the id ${JSON.stringify(id)} (the history keeps the last 1000, for 7 days); see volcli operation list`, { field: 'id' });
      }
      return record;
    },
  );
};

export default routes;
