// API tokens (admin only, see access.ts): create one per host or monitoring system, list them, revoke
// them; and whoami, which tells any caller who the master takes it for.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ApiError } from '../../api/errors.js';
import { Caller, CreateTokenBody, CreatedToken, TokenList, TokenParams, TokenSummary, errorResponses } from '../../api/schemas.js';
import type { TokenRecord } from '../../state/records.js';
import { newToken } from '../../state/tokens.js';

const summary = (t: TokenRecord) => ({ name: t.name, role: t.role, createdAt: t.createdAt, createdBy: t.createdBy });

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/whoami',
    { schema: { tags: ['tokens'], summary: 'The caller as this master sees it: token name and role', response: { 200: Caller, ...errorResponses(401) } } },
    async (request) => ({ name: request.caller.name, role: request.caller.role }),
  );

  app.get(
    '/v1/tokens',
    { schema: { tags: ['tokens'], summary: 'List the tokens (names and roles; never the secrets)', response: { 200: TokenList, ...errorResponses(401, 403, 503) } } },
    async () => ({ tokens: (await app.store.listTokens()).map(summary) }),
  );

  app.post(
    '/v1/tokens',
    {
      schema: {
        tags: ['tokens'],
        summary: 'Create a token {name, role}; the answer holds the token, shown this once (only its SHA-256 is stored)',
        body: CreateTokenBody,
        response: { 201: CreatedToken, ...errorResponses(400, 401, 403, 409, 503) },
      },
    },
    async (request, reply) => {
      const { name, role } = request.body;
      if (name === 'bootstrap' || name === 'anonymous') {
        throw new ApiError('INVALID_NAME', `name: "${name}" names the bootstrap token or an open API's caller; choose another`, { field: 'name' });
      }
      const token = newToken();
      const record = await app.store.createToken(token, { name, role, createdBy: request.caller.name });
      if (!record) throw new ApiError('TOKEN_EXISTS', `a token named ${name} exists; revoke it first (volcli token revoke ${name}) or choose another name`, { field: 'name' });
      request.log.warn({ token: name, role, by: request.caller.name }, 'token created');
      return reply.code(201).send({ ...summary(record), token });
    },
  );

  app.delete(
    '/v1/tokens/:name',
    {
      schema: {
        tags: ['tokens'],
        summary: 'Revoke a token: refused at once here, and by every master within 5 s',
        params: TokenParams,
        response: { 200: TokenSummary, ...errorResponses(401, 403, 404, 503) },
      },
    },
    async (request) => {
      const removed = await app.store.revokeToken(request.params.name);
      if (!removed) throw new ApiError('TOKEN_NOT_FOUND', `no token is named ${request.params.name}; see volcli token list`, { field: 'name' });
      app.tokens?.forget(removed.hash);
      request.log.warn({ token: removed.name, role: removed.role, by: request.caller.name }, 'token revoked');
      return summary(removed);
    },
  );
};

export default routes;
