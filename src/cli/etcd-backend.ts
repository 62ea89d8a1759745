// RecordBackend straight on etcd (volcli --etcd): the same records and error codes as the master's
// API, through the same StateStore the master uses. Its changes go to the audit trail as the
// master's do (src/master/audit.ts): pending before, complete after, the caller named by the etcd
// user (via "etcd"), the request as the API route it stands for.

import { hostname } from 'node:os';
import { ApiError } from '../api/errors.js';
import { PolicyError } from '../policy/errors.js';
import { parsePolicy } from '../policy/validate.js';
import type { EtcdKV } from '../state/etcd.js';
import { StateStore } from '../state/store.js';
import { newToken } from '../state/tokens.js';
import type { AuditEntry, Role, TokenRecord } from '../state/records.js';
import { timeId } from '../state/timeline.js';
import type { RecordBackend } from './backend.js';

const tenantMissing = (tenant: string) =>
  new ApiError('TENANT_NOT_FOUND', `tenant ${tenant} does not exist; upload it with volcli tenant upload ${tenant} < policy.json`, { field: 'tenant' });
const summary = (t: TokenRecord) => ({ name: t.name, role: t.role, createdAt: t.createdAt, createdBy: t.createdBy });

const volumeMissing = (tenant: string, volume: string) =>
  new ApiError('VOLUME_NOT_FOUND', `volume ${tenant}/${volume} does not exist`, { field: 'volume' });

export class EtcdBackend implements RecordBackend {
  readonly where: string;
  private readonly store: StateStore;
  private readonly user: string;

  /** `kv`: opened with volcli's etcd flags (common/etcd.ts openEtcd). */
  constructor(kv: EtcdKV, prefix?: string) {
    this.store = new StateStore(kv, { prefix });
    this.where = `etcd at ${kv.endpoints.join(',')}${kv.user ? ` as ${kv.user}` : ''}`;
    this.user = kv.user ?? 'etcd';
  }

  /**
   * Runs a change as the API route `method route` (at `path`) and records it in the audit trail:
   * pending first (etcd refusing that refuses the change), then its outcome.
   */
  private async audited<T>(method: string, route: string, path: string, about: { tenant?: string; volume?: string; body?: unknown; query?: Record<string, string> }, change: () => Promise<T>): Promise<T> {
    const entry: AuditEntry = {
      id: timeId(),
      at: new Date().toISOString(),
      who: { name: this.user, role: 'admin', via: 'etcd' },
      method,
      route,
      path,
      ...about,
      outcome: 'pending',
      master: `volcli@${hostname()}`,
    };
    await this.store.writeAudit(entry);
    const started = Date.now();
    try {
      const value = await change();
      await this.store.completeAudit({ ...entry, outcome: 'ok', status: method === 'DELETE' ? 204 : 200, ms: Date.now() - started });
      return value;
    } catch (err) {
      // A policy that does not parse is refused as the API refuses it (400 with its code).
      const status = err instanceof ApiError ? err.status : err instanceof PolicyError ? 400 : 500;
      const code = err instanceof ApiError || err instanceof PolicyError ? err.code : 'INTERNAL';
      await this.store.completeAudit({ ...entry, outcome: status < 500 ? 'refused' : 'failed', status, code, message: (err as Error).message, ms: Date.now() - started }).catch(() => undefined);
      throw err;
    }
  }

  async listTenants() {
    return (await this.store.listTenants()).map((t) => ({ name: t.name, revision: t.revision, uploadedAt: t.uploadedAt }));
  }
  async getTenant(tenant: string) {
    const record = await this.store.getTenant(tenant);
    if (!record) throw tenantMissing(tenant);
    return record;
  }
  async uploadTenant(tenant: string, text: string) {
    return this.audited('PUT', '/v1/tenants/:tenant', `/v1/tenants/${tenant}`, { tenant }, async () => this.store.putTenant(tenant, parsePolicy(text, 'the policy on stdin')));
  }
  async deleteTenant(tenant: string) {
    await this.audited('DELETE', '/v1/tenants/:tenant', `/v1/tenants/${tenant}`, { tenant }, async () => {
      if (!(await this.store.deleteTenant(tenant))) throw tenantMissing(tenant);
    });
  }
  async tenantHistory(tenant: string) {
    const revisions = await this.store.tenantHistory(tenant);
    if (revisions.length === 0) throw tenantMissing(tenant);
    return revisions;
  }
  async getTenantRevision(tenant: string, revision: number) {
    const record = await this.store.getTenantRevision(tenant, revision);
    if (!record) throw new ApiError('REVISION_NOT_FOUND', `tenant ${tenant} has no revision ${revision}; see volcli tenant history ${tenant}`, { field: 'revision' });
    return record;
  }
  async getVolume(tenant: string, volume: string) {
    const record = await this.store.getVolume(tenant, volume);
    if (!record) throw volumeMissing(tenant, volume);
    return record;
  }
  async listVolumes(tenant?: string) {
    const volumes = await this.store.listVolumes(tenant);
    if (tenant !== undefined && volumes.length === 0 && !(await this.store.getTenant(tenant))) {
      throw new ApiError('TENANT_NOT_FOUND', `tenant ${tenant} does not exist and has no volumes`, { field: 'tenant' });
    }
    return volumes;
  }
  async forceRemoveVolume(tenant: string, volume: string) {
    await this.audited('DELETE', '/v1/volumes/:tenant/:volume', `/v1/volumes/${tenant}/${volume}`, { tenant, volume, query: { force: 'true' } }, async () => {
      const mount = await this.store.forceRemoveMount(tenant, volume);
      const deleted = await this.store.deleteVolume(tenant, volume);
      if (!deleted && !mount) throw new ApiError('VOLUME_NOT_FOUND', `volume ${tenant}/${volume} has no records to remove`, { field: 'volume' });
    });
  }
  async getRuntime(tenant: string, volume: string) {
    return (await this.getVolume(tenant, volume)).runtime;
  }
  listMounts() {
    return this.store.listMounts();
  }
  async getMount(tenant: string, volume: string) {
    const mount = await this.store.getMount(tenant, volume);
    if (!mount) throw new ApiError('MOUNT_NOT_FOUND', `volume ${tenant}/${volume} is not mounted anywhere`, { field: 'volume' });
    return mount;
  }
  async forceRemoveMount(tenant: string, volume: string) {
    return this.audited('DELETE', '/v1/mounts/:tenant/:volume', `/v1/mounts/${tenant}/${volume}`, { tenant, volume }, async () => {
      const removed = await this.store.forceRemoveMount(tenant, volume);
      if (!removed) throw new ApiError('MOUNT_NOT_FOUND', `volume ${tenant}/${volume} has no mount record`, { field: 'volume' });
      return removed;
    });
  }
  listHosts() {
    return this.store.listHostReports();
  }
  async getHost(hostId: string) {
    const report = hostId === '' || hostId.includes('/') ? null : await this.store.getHostReport(hostId);
    if (!report) throw new ApiError('HOST_NOT_FOUND', `no volplugin with host id ${hostId} reports (not running, or its lease expired); see volcli host list`, { field: 'hostId' });
    return report;
  }
  async getUsage(tenant: string) {
    const report = await this.store.usageReport(tenant);
    if (!report) throw tenantMissing(tenant);
    return report;
  }
  async listTokens() {
    return (await this.store.listTokens()).map(summary);
  }
  /** The caller is whoever can write etcd: recorded as "etcd". */
  async createToken(name: string, role: string) {
    return this.audited('POST', '/v1/tokens', '/v1/tokens', { body: { name, role } }, async () => {
      const token = newToken();
      const record = await this.store.createToken(token, { name, role: role as Role, createdBy: 'etcd' });
      if (!record) throw new ApiError('TOKEN_EXISTS', `a token named ${name} exists; revoke it first (volcli token revoke ${name}) or choose another name`, { field: 'name' });
      return { ...summary(record), token };
    });
  }
  async revokeToken(name: string) {
    return this.audited('DELETE', '/v1/tokens/:name', `/v1/tokens/${name}`, {}, async () => {
      const removed = await this.store.revokeToken(name);
      if (!removed) throw new ApiError('TOKEN_NOT_FOUND', `no token is named ${name}; see volcli token list`, { field: 'name' });
      return summary(removed);
    });
  }
  close() {
    return this.store.close();
  }
}
