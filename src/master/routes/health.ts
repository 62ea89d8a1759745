// Liveness (no auth, no dependencies), readiness (etcd and Ceph answer) and the OpenAPI document.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Health, Readiness, errorResponses } from '../../api/schemas.js';
import { messageOf } from '../../common/errors.js';
import { withTimeout } from '../../common/timeout.js';
import { VERSION } from '../version.js';

const CHECK_TIMEOUT_MS = 5_000;

async function check(fn: () => Promise<unknown>): Promise<{ ok: boolean; ms: number; error?: string }> {
  const started = performance.now();
  try {
    await withTimeout(fn(), CHECK_TIMEOUT_MS, 'the check');
    return { ok: true, ms: Math.round(performance.now() - started) };
  } catch (err) {
    return { ok: false, ms: Math.round(performance.now() - started), error: messageOf(err) };
  }
}

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/health',
    {
      schema: {
        tags: ['service'],
        summary: 'Liveness: the process answers (never needs a token)',
        security: [],
        response: { 200: Health },
      },
    },
    async () => ({ status: 'ok' as const, version: VERSION }),
  );

  app.get(
    '/v1/ready',
    {
      schema: {
        tags: ['service'],
        summary: 'Readiness: etcd and Ceph both answer (503 otherwise)',
        response: { 200: Readiness, 503: Readiness, ...errorResponses(401) },
      },
    },
    async (_request, reply) => {
      const [etcd, ceph] = await Promise.all([
        check(() => app.store.ping(CHECK_TIMEOUT_MS)),
        check(() => app.storage.clusterInfo()),
      ]);
      const ready = etcd.ok && ceph.ok;
      return reply.code(ready ? 200 : 503).send({ ready, checks: { etcd, ceph } });
    },
  );

  app.get(
    '/v1/openapi.json',
    { schema: { tags: ['service'], summary: 'This API as an OpenAPI 3 document', hide: true } },
    async () => app.swagger(),
  );
};

export default routes;
