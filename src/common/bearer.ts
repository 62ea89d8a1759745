// Bearer tokens as every endpoint checks them (the API in src/master/auth.ts, the metrics endpoints
// in src/metrics/server.ts): read from the Authorization header, compared in constant time.

import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** Whether `presented` is `expected`, in constant time (both hashed to one length first, so not even the length leaks). */
export function tokenMatches(expected: string, presented: string): boolean {
  return timingSafeEqual(digest(expected), digest(presented));
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerOf(header: string | string[] | undefined): string | null {
  if (typeof header !== 'string') return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}
