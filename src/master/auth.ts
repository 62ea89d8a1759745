// Who is calling: every request but the health check carries `Authorization: Bearer <token>`, and
// this module turns it into `request.caller` ({name, role}) in one onRequest hook, the one place a
// request learns its caller (what it may do is access.ts; the audit trail reads it from here).
//
// Two kinds of token:
// - the bootstrap admin token, read from --token-file at start (name "bootstrap"); compared in
//   constant time (both sides hashed to the same length first, so not even its length leaks);
// - tokens created with `volcli token create`, stored in etcd as their SHA-256 (src/state/tokens.ts)
//   and looked up by that hash.
//
// Revocation: a token looked up in etcd is trusted for at most `cacheMs` (5 s) before it is read
// again (a read-through cache with a short bound, chosen over a watch because it fails closed: a
// broken watch would keep a revoked token alive silently, an expired entry cannot). So a token
// revoked on one master is refused by every master within 5 s, and at once by the master that
// revoked it. When etcd cannot be reached, etcd tokens are refused (503); the bootstrap token still
// works, because it needs no etcd.
//
// An open API (`--insecure`, or loopback without --token-file) has no tokens: every caller is the
// admin "anonymous".

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../api/errors.js';
import { bearerOf, tokenMatches } from '../common/bearer.js';
import type { Role, TokenRecord } from '../state/records.js';
import type { StateStore } from '../state/store.js';
import { tokenHash } from '../state/tokens.js';

export interface Caller {
  /** The token's name: "bootstrap" for --token-file, "anonymous" without authentication. */
  name: string;
  role: Role;
  /** How the caller was recognised. */
  via: 'bootstrap' | 'token' | 'open' | 'public';
}

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller;
  }
}

/** Paths anyone may call: liveness probes must work without a secret. */
export const PUBLIC_PATHS = new Set(['/v1/health']);

/** How long a token read from etcd is trusted before it is read again. */
export const TOKEN_CACHE_MS = 5_000;
/** Beyond this many cached lookups the cache starts over (random tokens must not fill memory). */
const CACHE_LIMIT = 10_000;

const OPEN_CALLER: Caller = Object.freeze({ name: 'anonymous', role: 'admin', via: 'open' });
const PUBLIC_CALLER: Caller = Object.freeze({ name: 'anonymous', role: 'read-only', via: 'public' });
const BOOTSTRAP_CALLER: Caller = Object.freeze({ name: 'bootstrap', role: 'admin', via: 'bootstrap' });

export { tokenMatches };

export function bearerToken(request: Pick<FastifyRequest, 'headers'>): string | null {
  return bearerOf(request.headers.authorization);
}

/** Tokens read from etcd, each trusted for `ttlMs` (an unknown token too, so that retries cost nothing). */
export class TokenCache {
  private readonly entries = new Map<string, { record: TokenRecord | null; expires: number }>();

  constructor(
    private readonly store: StateStore,
    private readonly ttlMs: number = TOKEN_CACHE_MS,
  ) {}

  async lookup(hash: string): Promise<TokenRecord | null> {
    const now = Date.now();
    const cached = this.entries.get(hash);
    if (cached && cached.expires > now) return cached.record;
    const record = await this.store.findToken(hash);
    if (this.entries.size >= CACHE_LIMIT) this.entries.clear();
    this.entries.set(hash, { record, expires: now + this.ttlMs });
    return record;
  }

  /** Drops what is known about a token (it was revoked or created here). */
  forget(hash: string): void {
    this.entries.delete(hash);
  }
}

export interface AuthOptions {
  /** The bootstrap admin token (--token-file), or null. */
  bootstrapToken: string | null;
  /** False: the API is open and every caller is admin (--insecure, or loopback without a token). */
  required: boolean;
  /** Null when `required` is false. */
  tokens: TokenCache | null;
}

const unauthorized = (message: string) => new ApiError('UNAUTHORIZED', message);

/** Finds the caller of a request, or throws 401 (503 when etcd cannot be asked). */
async function callerOf(request: FastifyRequest, options: AuthOptions): Promise<Caller> {
  const presented = bearerToken(request);
  if (presented === null) {
    throw unauthorized(
      'this volmaster requires a bearer token: give volcli or volplugin --token-file with a token file (the bootstrap token of volmaster, or one made with volcli token create)',
    );
  }
  if (options.bootstrapToken !== null && tokenMatches(options.bootstrapToken, presented)) return BOOTSTRAP_CALLER;
  const record = options.tokens ? await options.tokens.lookup(tokenHash(presented)) : null;
  if (!record) {
    throw unauthorized('the bearer token is not known to this volmaster (wrong, or revoked); check --token-file, or ask an admin for a token (volcli token create)');
  }
  return { name: record.name, role: record.role, via: 'token' };
}

/** Installs the onRequest hook that sets `request.caller` (and refuses unknown tokens with 401). */
export function installAuth(app: FastifyInstance, options: AuthOptions): void {
  app.decorateRequest('caller', null as unknown as Caller);
  app.addHook('onRequest', async (request) => {
    if (PUBLIC_PATHS.has(request.url.split('?')[0]!)) {
      request.caller = PUBLIC_CALLER;
      return;
    }
    request.caller = options.required ? await callerOf(request, options) : OPEN_CALLER;
  });
}
