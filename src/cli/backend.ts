// Where volcli reads and writes records: through the master's REST API (default), or straight in
// etcd with --etcd (works while every master is down). Both answer with the same records and the
// same error codes. Operations that touch Ceph (create, remove, snapshots, runtime changes) always
// go through a master. The etcd side (etcd-backend.ts) is loaded only when --etcd is given: the
// gRPC client takes most of a second to load.

import type { ApiClient } from '../api/client.js';
import type { CreatedTokenBody, TenantSummary, TenantUsageBody, TokenSummaryBody } from '../api/schemas.js';
import type { RuntimeOptions } from '../policy/types.js';
import type { HostReport, MountRecord, TenantRecord, VolumeRecord } from '../state/records.js';

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
  /** The reports of the live volplugins. */
  listHosts(): Promise<HostReport[]>;
  /** One volplugin's report; HOST_NOT_FOUND when none has that id. */
  getHost(hostId: string): Promise<HostReport>;
  /** A tenant's usage beside its limits. */
  getUsage(tenant: string): Promise<TenantUsageBody>;
  listTokens(): Promise<TokenSummaryBody[]>;
  createToken(name: string, role: string): Promise<CreatedTokenBody>;
  revokeToken(name: string): Promise<TokenSummaryBody>;
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
  listHosts() {
    return this.api.listHosts();
  }
  getHost(hostId: string) {
    return this.api.getHost(hostId);
  }
  getUsage(tenant: string) {
    return this.api.getUsage(tenant);
  }
  listTokens() {
    return this.api.listTokens();
  }
  createToken(name: string, role: string) {
    return this.api.createToken(name, role);
  }
  revokeToken(name: string) {
    return this.api.revokeToken(name);
  }
  close() {
    return this.api.close();
  }
}
