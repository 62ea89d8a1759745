// Bearer-token authentication. With a token configured every request except the health check must
// carry `Authorization: Bearer <token>`; the comparison takes constant time (both sides are hashed to
// the same length first, so not even the token's length leaks).

import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../api/errors.js';

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

export function tokenMatches(expected: string, presented: string): boolean {
  return timingSafeEqual(digest(expected), digest(presented));
}

/** Paths anyone may call: liveness probes must work without a secret. */
export const PUBLIC_PATHS = new Set(['/v1/health']);

export function bearerToken(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}

/** Installs the check on `app` (an onRequest hook) when `token` is set. */
export function installAuth(app: FastifyInstance, token: string | null | undefined): void {
  if (!token) return;
  const expected = digest(token);
  app.addHook('onRequest', async (request) => {
    const path = request.url.split('?')[0]!;
    if (PUBLIC_PATHS.has(path)) return;
    const presented = bearerToken(request);
    if (presented === null) {
      throw new ApiError('UNAUTHORIZED', 'this volmaster requires a bearer token; pass --token-file with the file volmaster was started with');
    }
    if (!timingSafeEqual(expected, digest(presented))) {
      throw new ApiError('UNAUTHORIZED', 'the bearer token is wrong; use the token file volmaster was started with (--token-file)');
    }
  });
}
