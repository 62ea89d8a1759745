// Where volcli reads and writes records: through the master's REST API (default), or straight in
// etcd with --etcd (works while every master is down). Both answer with the same records and the
// same error codes. Operations that touch Ceph (create, remove, snapshots, runtime changes) always
// go through a master.

import { ApiClient } from '../api/client.js';
import { ApiError } from '../api/errors.js';
import type { TenantSummary } from '../api/schemas.js';
import type { RuntimeOptions } from '../policy/types.js';
import { parsePolicy } from '../policy/validate.js';
import { EtcdKV } from '../state/etcd.js';
import { StateStore } from '../state/store.js';
import type { MountRecord, TenantRecord, VolumeRecord } from '../state/records.js';

export interface RecordBackend {
  /** "volmaster at http://..." or "etcd at http://...": for messages. */
  readonly where: string;
  listTenants(): Promise<TenantSummary[]>;
  getTenant(tenant: string): Promise<TenantRecord>;
  /** `text` is the policy JSON as the user wrote it. */
  uploadTenant(tenant: string, text: string): Promise<TenantRecord>;
  deleteTenant(tenant: string): Promise<void>;
  tenantHistory(tenant: string): Promise<TenantRecord[]>;
  getTenantRevision(tenant: string, revision: number): Promise<TenantRecord>;
  getVolume(tenant: string, volume: string): Promise<VolumeRecord>;
  listVolumes(tenant?: string): Promise<VolumeRecord[]>;
  /** Deletes the volume and mount records only. */
  forceRemoveVolume(tenant: string, volume: string): Promise<void>;
  getRuntime(tenant: string, volume: string): Promise<RuntimeOptions>;
  listMounts(): Promise<MountRecord[]>;
  getMount(tenant: string, volume: string): Promise<MountRecord>;
  forceRemoveMount(tenant: string, volume: string): Promise<MountRecord>;
  close(): Promise<void>;
}

export class MasterBackend implements RecordBackend {
  readonly where: string;
  constructor(private readonly api: ApiClient) {
    this.where = `volmaster at ${api.baseUrl}`;
  }
  listTenants() {
    return this.api.listTenants();
  }
  getTenant(tenant: string) {
    return this.api.getTenant(tenant);
  }
  uploadTenant(tenant: string, text: string) {
    return this.api.uploadTenant(tenant, text);
  }
  deleteTenant(tenant: string) {
    return this.api.deleteTenant(tenant);
  }
  tenantHistory(tenant: string) {
    return this.api.tenantHistory(tenant);
  }
  getTenantRevision(tenant: string, revision: number) {
    return this.api.getTenantRevision(tenant, revision);
  }
  getVolume(tenant: string, volume: string) {
    return this.api.getVolume(tenant, volume);
  }
  listVolumes(tenant?: string) {
    return this.api.listVolumes(tenant);
  }
  forceRemoveVolume(tenant: string, volume: string) {
    return this.api.removeVolume(tenant, volume, { force: true });
  }
  getRuntime(tenant: string, volume: string) {
    return this.api.getRuntime(tenant, volume);
  }
  listMounts() {
    return this.api.listMounts();
  }
  getMount(tenant: string, volume: string) {
    return this.api.getMount(tenant, volume);
  }
  forceRemoveMount(tenant: string, volume: string) {
    return this.api.forceRemoveMount(tenant, volume);
  }
  async close() {}
}

const tenantMissing = (tenant: string) =>
  new ApiError('TENANT_NOT_FOUND', `tenant ${tenant} does not exist; upload it with volcli tenant upload ${tenant} < policy.json`, { field: 'tenant' });
const volumeMissing = (tenant: string, volume: string) =>
  new ApiError('VOLUME_NOT_FOUND', `volume ${tenant}/${volume} does not exist`, { field: 'volume' });

export class EtcdBackend implements RecordBackend {
  readonly where: string;
  private readonly kv: EtcdKV;
  private readonly store: StateStore;

  constructor(endpoints: string[], prefix?: string, timeoutMs?: number) {
    this.kv = new EtcdKV({ endpoints, timeoutMs });
    this.store = new StateStore(this.kv, { prefix });
    this.where = `etcd at ${endpoints.join(',')}`;
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
    return this.store.putTenant(tenant, parsePolicy(text, 'the policy on stdin'));
  }
  async deleteTenant(tenant: string) {
    if (!(await this.store.deleteTenant(tenant))) throw tenantMissing(tenant);
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
    const mount = await this.store.forceRemoveMount(tenant, volume);
    const deleted = await this.store.deleteVolume(tenant, volume);
    if (!deleted && !mount) throw new ApiError('VOLUME_NOT_FOUND', `volume ${tenant}/${volume} has no records to remove`, { field: 'volume' });
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
    const removed = await this.store.forceRemoveMount(tenant, volume);
    if (!removed) throw new ApiError('MOUNT_NOT_FOUND', `volume ${tenant}/${volume} has no mount record`, { field: 'volume' });
    return removed;
  }
  close() {
    return this.kv.close();
  }
}
