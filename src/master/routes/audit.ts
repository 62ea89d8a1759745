// The audit trail (src/master/audit.ts writes it): every change made through the API, who made it
// and how it ended. Admin only (access.ts): it names every token and what it did.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AuditList, AuditQuery, errorResponses } from '../../api/schemas.js';

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/audit',
    {
      schema: {
        tags: ['audit'],
        summary: 'Entries of the audit trail, oldest first: the newest (default 100, ?limit=N), or ?since=TIME, or ?after=ID (to follow it)',
        querystring: AuditQuery,
        response: { 200: AuditList, ...errorResponses(400, 401, 403, 503) },
      },
    },
    async (request) => {
      const { since, after, tenant, limit } = request.query;
      const entries = await app.store.listAudit({
        ...(since !== undefined ? { since: new Date(since) } : {}),
        ...(after !== undefined ? { after } : {}),
        ...(tenant !== undefined ? { tenant } : {}),
        limit: limit ? Number(limit) : 100,
      });
      return { entries };
    },
  );
};

export default routes;
