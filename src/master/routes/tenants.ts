// Tenants: upload (a new revision each time), get, list, delete, history.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ApiError } from '../../api/errors.js';
import {
  RevisionParams,
  TenantHistory,
  TenantList,
  TenantParams,
  TenantPolicySchema,
  TenantRecordSchema,
  TenantUsageReport,
  errorResponses,
} from '../../api/schemas.js';
import { assertName } from '../../policy/names.js';
import { validatePolicy } from '../../policy/validate.js';

const notFound = (tenant: string) =>
  new ApiError('TENANT_NOT_FOUND', `tenant ${tenant} does not exist; upload it with volcli tenant upload ${tenant} < policy.json`, { field: 'tenant' });

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/tenants',
    { schema: { tags: ['tenants'], summary: 'List tenants', response: { 200: TenantList, ...errorResponses(401, 503) } } },
    async () => {
      const tenants = await app.store.listTenants();
      return { tenants: tenants.map((t) => ({ name: t.name, revision: t.revision, uploadedAt: t.uploadedAt })) };
    },
  );

  app.put(
    '/v1/tenants/:tenant',
    {
      // The body schema checks the shape (no coercion); validatePolicy then the values (units, durations, limits).
      schema: {
        tags: ['tenants'],
        summary: 'Upload a tenant policy (a new revision; earlier ones stay in the history)',
        params: TenantParams,
        body: TenantPolicySchema,
        response: { 200: TenantRecordSchema, 201: TenantRecordSchema, ...errorResponses(400, 401, 403, 413, 415, 503) },
      },
    },
    async (request, reply) => {
      const { tenant } = request.params;
      assertName('tenant', tenant);
      const policy = validatePolicy(request.body);
      const existed = (await app.store.getTenant(tenant)) !== null;
      const record = await app.store.putTenant(tenant, policy);
      request.log.info({ tenant, revision: record.revision, by: request.caller.name }, 'tenant policy uploaded');
      return reply.code(existed ? 200 : 201).send(record);
    },
  );

  app.get(
    '/v1/tenants/:tenant',
    {
      schema: {
        tags: ['tenants'],
        summary: 'Get a tenant and its current policy',
        params: TenantParams,
        response: { 200: TenantRecordSchema, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => {
      const { tenant } = request.params;
      assertName('tenant', tenant);
      const record = await app.store.getTenant(tenant);
      if (!record) throw notFound(tenant);
      return record;
    },
  );

  app.delete(
    '/v1/tenants/:tenant',
    {
      schema: {
        tags: ['tenants'],
        summary: 'Delete a tenant (its volumes, mounts and history stay)',
        params: TenantParams,
        response: { 204: { type: 'null' }, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request, reply) => {
      const { tenant } = request.params;
      assertName('tenant', tenant);
      if (!(await app.store.deleteTenant(tenant))) throw notFound(tenant);
      request.log.info({ tenant, by: request.caller.name }, 'tenant deleted');
      return reply.code(204).send();
    },
  );

  app.get(
    '/v1/tenants/:tenant/history',
    {
      schema: {
        tags: ['tenants'],
        summary: 'Every uploaded revision of a tenant policy, oldest first',
        params: TenantParams,
        response: { 200: TenantHistory, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => {
      const { tenant } = request.params;
      assertName('tenant', tenant);
      const revisions = await app.store.tenantHistory(tenant);
      if (revisions.length === 0) throw notFound(tenant);
      return { tenant, revisions };
    },
  );

  app.get(
    '/v1/tenants/:tenant/history/:revision',
    {
      schema: {
        tags: ['tenants'],
        summary: 'One revision of a tenant policy',
        params: RevisionParams,
        response: { 200: TenantRecordSchema, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => {
      const { tenant } = request.params;
      const revision = Number(request.params.revision);
      assertName('tenant', tenant);
      const record = await app.store.getTenantRevision(tenant, revision);
      if (!record) {
        throw new ApiError('REVISION_NOT_FOUND', `tenant ${tenant} has no revision ${revision}; see volcli tenant history ${tenant}`, { field: 'revision' });
      }
      return record;
    },
  );

  app.get(
    '/v1/tenants/:tenant/usage',
    {
      schema: {
        tags: ['tenants'],
        summary: "A tenant's usage (volumes, creates in progress included, and their sizes) beside its limits",
        params: TenantParams,
        response: { 200: TenantUsageReport, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => {
      const { tenant } = request.params;
      assertName('tenant', tenant);
      const report = await app.store.usageReport(tenant);
      if (!report) throw notFound(tenant);
      return report;
    },
  );
};

export default routes;
