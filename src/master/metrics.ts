// volmaster's metrics: every API request observed once, in an onResponse hook, by method, route
// pattern and status (never the raw URL: /v1/volumes/t1/foo is /v1/volumes/:tenant/:volume); and
// who may scrape its endpoint. The families are in src/metrics/families.ts.
//
// Scraping: when the API needs tokens (--token-file), so does /metrics, and any API token will do
// (a read-only one is what a Prometheus server should get), as does the bootstrap token or the
// scrape token of --metrics-token-file. An open API (loopback without tokens, or --insecure) has
// an open endpoint unless --metrics-token-file is given.

import type { FastifyInstance } from 'fastify';
import { tokenMatches } from '../common/bearer.js';
import { apiRequestDuration } from '../metrics/families.js';
import type { Authorize } from '../metrics/server.js';
import { tokenHash } from '../state/tokens.js';
import type { TokenCache } from './auth.js';

/** Installs the hook that observes every request (404s as route "unmatched"). */
export function installApiMetrics(app: FastifyInstance): void {
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    apiRequestDuration.observe({ method: request.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
}

export interface MetricsAccess {
  /** The bootstrap admin token (--token-file), or null. */
  bootstrapToken: string | null;
  /** The scrape token of --metrics-token-file, as an Authorize, or null. */
  scrapeToken: Authorize | null;
  /** The API's token cache once the app runs (null while it starts, or when the API is open). */
  tokens: () => TokenCache | null;
}

/** Who may scrape (null: anyone, for an open API without a scrape token). */
export function metricsAuthorizer(access: MetricsAccess): Authorize | null {
  const { bootstrapToken, scrapeToken } = access;
  if (!bootstrapToken && !scrapeToken) return null;
  return async (token) => {
    if (token === null) return false;
    if (scrapeToken && (await scrapeToken(token))) return true;
    if (!bootstrapToken) return false;
    if (tokenMatches(bootstrapToken, token)) return true;
    const tokens = access.tokens();
    if (!tokens) throw new Error('volmaster is starting');
    return (await tokens.lookup(tokenHash(token))) !== null; // every role may read (read-only is the least)
  };
}
