// Over 400 lines: one short method per route of the API, the client's table of contents.
// ApiClient: the one HTTP client of the volmaster API, used by volcli, volplugin and volsupervisor.
// Node's global fetch, a timeout on every call, the bearer token when one is configured, and errors
// that carry the server's stable code (ApiError). Addresses may be `host:port` or a URL. With a CA
// (--tls-ca), requests go over HTTPS through undici (the library Node's fetch is made of), whose
// Agent takes a CA of its own: global fetch has no per-client CA.

import { readFile } from 'node:fs/promises';
import { Agent, fetch as undiciFetch } from 'undici';
import { readSecretFile } from '../common/secret-file.js';
import type { Static } from '@sinclair/typebox';
import type { AttachmentRecord, AuditEntry, HostReport, MountRecord, OperationRecord, TenantRecord, VolumeRecord } from '../state/records.js';
import type { RuntimeOptions } from '../policy/types.js';
import { ApiError, isErrorCode } from './errors.js';
import type { BackupEntryBody, BackupListBody, BackupRestoreBodyIn, BackupRestoreResultBody, BackupVerifyBody } from './backups.js';
import type { CallerBody, CreatedTokenBody, GroupSnapshotEntry, HealthBody, ReadinessBody, SnapshotEntry, TenantSummary, TenantUsageBody, TokenSummaryBody } from './schemas.js';
import { API_PREFIX, type TenantHistory } from './schemas.js';

export const DEFAULT_MASTER = '127.0.0.1:9005';
export const DEFAULT_TIMEOUT_MS = 30_000;
/** Creating, removing and copying wait for the volume's operation lock and for Ceph: give them longer. */
export const LONG_TIMEOUT_MS = 120_000;
/**
 * How long a client waits for a backup, restore or verify answered at its end, which read or write
 * a whole volume. volcli starts backups and restores with startBackup/startRestore and follows
 * their operation instead.
 */
export const BACKUP_TIMEOUT_MS = 3_600_000;

/**
 * `127.0.0.1:9005`, `http://host:9005/`, `[::1]:9005` -> a base URL without trailing slash; an
 * address without a scheme gets `scheme` (https when a CA is given).
 */
export function masterUrl(address: string, scheme: 'http' | 'https' = 'http'): string {
  const trimmed = address.trim();
  if (trimmed === '') throw new TypeError('the master address is empty; give it as host:port, e.g. 127.0.0.1:9005');
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `${scheme}://${trimmed}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new TypeError(`the master address ${JSON.stringify(address)} is not host:port or a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`the master address ${JSON.stringify(address)} must use http or https`);
  }
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

/**
 * Reads a bearer token file (whitespace around the token is ignored); refused when its group or
 * others can read it (the message says `chmod 600`).
 */
export async function readTokenFile(path: string, flag = '--token-file'): Promise<string> {
  const text = await readSecretFile(path, { what: 'the token file', flag });
  const token = text.trim();
  if (token === '') throw new Error(`the token file ${path} is empty; write the token into it or drop ${flag}`);
  if (/\s/.test(token)) throw new Error(`the token file ${path} holds more than one word; it must hold only the token`);
  return token;
}

export interface ApiClientOptions {
  /** host:port or URL of a volmaster (default 127.0.0.1:9005). */
  master?: string;
  /** Bearer token sent with every request. */
  token?: string | null;
  /** Per-request timeout (default 30 s; volume create/remove/copy use at least LONG_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Replaces global fetch (tests). */
  fetch?: typeof fetch;
  /** Sent as User-Agent, e.g. "volcli/0.1.0". */
  userAgent?: string;
  /** PEM of the CA that signed the master's TLS certificate (--tls-ca); the address then defaults to https. */
  ca?: string | null;
}

/** Reads the CA file a client trusts for the master's certificate (--tls-ca). */
export async function readCaFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new Error(`cannot read the CA file ${path} (${code}); check --tls-ca`, { cause: err });
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`the CA file ${path} holds no PEM certificate; give the CA that signed volmaster's --tls-cert`);
  return text;
}

export interface CreateVolumeResult {
  volume: VolumeRecord;
  /** False when the volume already existed with the same options. */
  created: boolean;
}

interface RequestOptions {
  body?: unknown;
  /** Sent as is (application/json): lets the master report JSON errors with line and column. */
  rawBody?: string;
  query?: Record<string, string>;
  timeoutMs?: number;
  /** Non-2xx statuses whose body is an answer, not an error (e.g. 503 from /v1/ready). */
  answers?: number[];
}

const seg = encodeURIComponent;

function isLoopbackUrl(url: string): boolean {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '[::1]' || /^127\./.test(host);
}

export class ApiClient {
  readonly baseUrl: string;
  private readonly token: string | null;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly userAgent: string | undefined;
  private readonly agent: Agent | null = null;

  constructor(options: ApiClientOptions = {}) {
    this.baseUrl = masterUrl(options.master ?? DEFAULT_MASTER, options.ca ? 'https' : 'http');
    this.token = options.token ?? null;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.userAgent = options.userAgent;
    if (options.ca && !options.fetch) {
      const agent = new Agent({ connect: { ca: options.ca } });
      this.agent = agent;
      this.fetchImpl = ((url: URL, init: RequestInit) => undiciFetch(url, { ...(init as object), dispatcher: agent })) as unknown as typeof fetch;
    } else {
      this.fetchImpl = options.fetch ?? fetch;
    }
    if (this.token && this.baseUrl.startsWith('http://') && !isLoopbackUrl(this.baseUrl)) {
      process.emitWarning(`the token for ${this.baseUrl} goes over plain HTTP; use https (volmaster --tls-cert, clients --tls-ca)`, { code: 'VOLPLUGIN_CLEARTEXT_TOKEN' });
    }
  }

  /** An ApiClient whose token is read from `tokenFile` and CA from `caFile` (when given). */
  static async fromOptions(options: ApiClientOptions & { tokenFile?: string | null; caFile?: string | null }): Promise<ApiClient> {
    const token = options.tokenFile ? await readTokenFile(options.tokenFile) : options.token;
    const ca = options.caFile ? await readCaFile(options.caFile) : options.ca;
    return new ApiClient({ ...options, token, ca });
  }

  /** Closes the TLS connections kept open (nothing to do without a CA). */
  async close(): Promise<void> {
    await this.agent?.close();
  }

  /** Sends one request; returns the status and parsed JSON body (null for 204). */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<{ status: number; body: T; location?: string }> {
    const url = new URL(`${this.baseUrl}${path}`);
    for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, v);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (this.userAgent) headers['user-agent'] = this.userAgent;
    let body: string | undefined;
    if (options.rawBody !== undefined) body = options.rawBody;
    else if (options.body !== undefined) body = JSON.stringify(options.body);
    if (body !== undefined) headers['content-type'] = 'application/json';
    const timeoutMs = Math.max(options.timeoutMs ?? 0, this.timeoutMs);
    const where = `${method} ${url.pathname}`;

    let response: Response;
    let text: string;
    try {
      response = await this.fetchImpl(url, { method, headers, body, signal: AbortSignal.timeout(timeoutMs) });
      text = await response.text();
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      if (e.name === 'TimeoutError' || e.name === 'AbortError') {
        throw new ApiError('MASTER_TIMEOUT', `volmaster at ${this.baseUrl} did not answer ${where} within ${timeoutMs / 1000} s; check that it is running and can reach etcd and Ceph`, { cause: err });
      }
      const reason = e.cause?.code ?? e.cause?.message ?? e.message;
      if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|SSL/i.test(String(reason))) {
        throw new ApiError('MASTER_UNREACHABLE', `cannot trust volmaster at ${this.baseUrl} (${reason}): give the CA that signed its certificate with --tls-ca (env VOLPLUGIN_TLS_CA)`, { cause: err });
      }
      if (reason === 'ECONNRESET' && this.baseUrl.startsWith('http://')) {
        throw new ApiError('MASTER_UNREACHABLE', `volmaster at ${this.baseUrl} closed the connection (ECONNRESET); if it serves TLS, use https:// and --tls-ca`, { cause: err });
      }
      throw new ApiError('MASTER_UNREACHABLE', `cannot reach volmaster at ${this.baseUrl} (${reason}); is it running? (set the address with --master)`, { cause: err });
    }

    let parsed: unknown = null;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new ApiError('BAD_RESPONSE', `volmaster at ${this.baseUrl} answered ${where} with ${response.status} and a body that is not JSON; is that address a volmaster?`, { status: response.status });
      }
    }
    if (response.ok || options.answers?.includes(response.status)) {
      const location = response.headers.get('location');
      return { status: response.status, body: parsed as T, ...(location ? { location } : {}) };
    }

    const error = parsed as { code?: unknown; message?: unknown; field?: unknown } | null;
    if (error && isErrorCode(error.code) && typeof error.message === 'string') {
      throw new ApiError(error.code, error.message, {
        status: response.status,
        field: typeof error.field === 'string' ? error.field : undefined,
      });
    }
    throw new ApiError('BAD_RESPONSE', `volmaster at ${this.baseUrl} answered ${where} with ${response.status} and no error code; is that address a volmaster?`, { status: response.status });
  }

  private async get<T>(path: string): Promise<T> {
    return (await this.request<T>('GET', path)).body;
  }

  // ---- service --------------------------------------------------------------------------------

  health(): Promise<HealthBody> {
    return this.get(`${API_PREFIX}/health`);
  }

  /** Readiness; a 503 answer (not ready) is returned, not thrown. */
  async ready(): Promise<ReadinessBody> {
    return (await this.request<ReadinessBody>('GET', `${API_PREFIX}/ready`, { answers: [503] })).body;
  }

  openapi(): Promise<Record<string, unknown>> {
    return this.get(`${API_PREFIX}/openapi.json`);
  }

  // ---- tenants --------------------------------------------------------------------------------

  async listTenants(): Promise<TenantSummary[]> {
    return (await this.get<{ tenants: TenantSummary[] }>(`${API_PREFIX}/tenants`)).tenants;
  }

  getTenant(tenant: string): Promise<TenantRecord> {
    return this.get(`${API_PREFIX}/tenants/${seg(tenant)}`);
  }

  /** Uploads a policy: JSON text (sent as is, so errors name line and column) or a value. */
  async uploadTenant(tenant: string, policy: string | object): Promise<TenantRecord> {
    const options = typeof policy === 'string' ? { rawBody: policy } : { body: policy };
    return (await this.request<TenantRecord>('PUT', `${API_PREFIX}/tenants/${seg(tenant)}`, options)).body;
  }

  async deleteTenant(tenant: string): Promise<void> {
    await this.request('DELETE', `${API_PREFIX}/tenants/${seg(tenant)}`);
  }

  async tenantHistory(tenant: string): Promise<TenantRecord[]> {
    return (await this.get<Static<typeof TenantHistory>>(`${API_PREFIX}/tenants/${seg(tenant)}/history`)).revisions as TenantRecord[];
  }

  getTenantRevision(tenant: string, revision: number): Promise<TenantRecord> {
    return this.get(`${API_PREFIX}/tenants/${seg(tenant)}/history/${revision}`);
  }

  /** A tenant's usage (volumes, bytes) beside its counting limits. */
  getUsage(tenant: string): Promise<TenantUsageBody> {
    return this.get(`${API_PREFIX}/tenants/${seg(tenant)}/usage`);
  }

  // ---- tokens ---------------------------------------------------------------------------------

  /** Who the master takes this client for. */
  whoami(): Promise<CallerBody> {
    return this.get(`${API_PREFIX}/whoami`);
  }

  async listTokens(): Promise<TokenSummaryBody[]> {
    return (await this.get<{ tokens: TokenSummaryBody[] }>(`${API_PREFIX}/tokens`)).tokens;
  }

  /** Creates a token; the answer holds the secret, which is never shown again. */
  async createToken(name: string, role: string): Promise<CreatedTokenBody> {
    return (await this.request<CreatedTokenBody>('POST', `${API_PREFIX}/tokens`, { body: { name, role } })).body;
  }

  async revokeToken(name: string): Promise<TokenSummaryBody> {
    return (await this.request<TokenSummaryBody>('DELETE', `${API_PREFIX}/tokens/${seg(name)}`)).body;
  }

  // ---- volumes --------------------------------------------------------------------------------

  /**
   * Creates a volume, or returns it when it exists with the same options (409 VOLUME_EXISTS
   * otherwise). With `requestName` (a client's idempotency key, e.g. a CSI CreateVolume name) the
   * name is claimed for this volume (409 NAME_TAKEN when it was given for another).
   */
  async createVolume(
    tenant: string,
    volume: string,
    options: Record<string, string | number | boolean> = {},
    extra: { requestName?: string } = {},
  ): Promise<CreateVolumeResult> {
    const { status, body } = await this.request<VolumeRecord>('PUT', `${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}`, {
      body: { options, ...(extra.requestName === undefined ? {} : { requestName: extra.requestName }) },
      timeoutMs: LONG_TIMEOUT_MS,
    });
    return { volume: body, created: status === 201 };
  }

  getVolume(tenant: string, volume: string): Promise<VolumeRecord> {
    return this.get(`${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}`);
  }

  /** One tenant's volumes, or every volume when `tenant` is omitted. */
  async listVolumes(tenant?: string): Promise<VolumeRecord[]> {
    const path = tenant === undefined ? `${API_PREFIX}/volumes` : `${API_PREFIX}/volumes/${seg(tenant)}`;
    return (await this.get<{ volumes: VolumeRecord[] }>(path)).volumes;
  }

  /**
   * Removes a volume: its image (with its snapshots) and its record. Refused while mounted or open.
   * With `keepImage`, deletes only the volume record after the same checks (the image stays, and a
   * later create adopts it). With `force`, deletes only the records (volume and mount) without any
   * check and leaves the image alone.
   */
  async removeVolume(tenant: string, volume: string, options: { force?: boolean; keepImage?: boolean } = {}): Promise<void> {
    if (options.force && options.keepImage) throw new TypeError('removeVolume: force and keepImage exclude each other');
    const query: Record<string, string> = options.force ? { force: 'true' } : options.keepImage ? { 'keep-image': 'true' } : {};
    await this.request('DELETE', `${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}`, { query, timeoutMs: LONG_TIMEOUT_MS });
  }

  /**
   * Starts removing a volume with its data (the checks of removeVolume first: a refusal throws) and
   * answers as soon as the removal is under way: the operation to poll (getOperation).
   */
  async startRemoveVolume(tenant: string, volume: string): Promise<OperationRecord> {
    return (await this.request<OperationRecord>('DELETE', `${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}`, { query: { wait: 'false' }, timeoutMs: LONG_TIMEOUT_MS })).body;
  }

  /**
   * Grows a volume to `size` ("20GB", or a number of MB): the record, the image and the filesystem
   * where it is mounted. `wait: false` answers once it is accepted (poll getOperation); otherwise the
   * finished operation (result.filesystem says whether the filesystem grew).
   */
  async resizeVolume(tenant: string, volume: string, size: string, options: { wait?: boolean } = {}): Promise<OperationRecord> {
    const query: Record<string, string> = options.wait === false ? { wait: 'false' } : {};
    return (await this.request<OperationRecord>('POST', `${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}/resize`, { body: { size }, query, timeoutMs: LONG_TIMEOUT_MS })).body;
  }

  getRuntime(tenant: string, volume: string): Promise<RuntimeOptions> {
    return this.get(`${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}/runtime`);
  }

  async setRuntime(tenant: string, volume: string, options: Record<string, string | number | boolean>): Promise<RuntimeOptions> {
    return (await this.request<RuntimeOptions>('PATCH', `${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}/runtime`, { body: { options } })).body;
  }

  // ---- operations and the audit trail ------------------------------------------------------------

  /** A long operation (resize, remove, copy): its state and progress; OPERATION_NOT_FOUND for an unknown id. */
  getOperation(id: string): Promise<OperationRecord> {
    return this.get(`${API_PREFIX}/operations/${seg(id)}`);
  }

  /** The newest operations first (default 50). */
  async listOperations(limit?: number): Promise<OperationRecord[]> {
    const query: Record<string, string> = limit ? { limit: String(limit) } : {};
    return (await this.request<{ operations: OperationRecord[] }>('GET', `${API_PREFIX}/operations`, { query })).body.operations;
  }

  /** Entries of the audit trail, oldest first: the newest `limit`, or those after an id (to follow it) or since a time. */
  async listAudit(filter: { since?: string; after?: string; tenant?: string; limit?: number } = {}): Promise<AuditEntry[]> {
    const query: Record<string, string> = {};
    if (filter.since) query.since = filter.since;
    if (filter.after) query.after = filter.after;
    if (filter.tenant) query.tenant = filter.tenant;
    if (filter.limit) query.limit = String(filter.limit);
    return (await this.request<{ entries: AuditEntry[] }>('GET', `${API_PREFIX}/audit`, { query })).body.entries;
  }

  // ---- mounts ---------------------------------------------------------------------------------

  async listMounts(): Promise<MountRecord[]> {
    return (await this.get<{ mounts: MountRecord[] }>(`${API_PREFIX}/mounts`)).mounts;
  }

  getMount(tenant: string, volume: string): Promise<MountRecord> {
    return this.get(`${API_PREFIX}/mounts/${seg(tenant)}/${seg(volume)}`);
  }

  /** Deletes the mount record whoever holds it (no unmount happens); returns what was removed. */
  async forceRemoveMount(tenant: string, volume: string): Promise<MountRecord> {
    return (await this.request<MountRecord>('DELETE', `${API_PREFIX}/mounts/${seg(tenant)}/${seg(volume)}`)).body;
  }

  // ---- hosts ----------------------------------------------------------------------------------

  /** The report of every live volplugin (what it has mounted, its problems). */
  async listHosts(): Promise<HostReport[]> {
    return (await this.get<{ hosts: HostReport[] }>(`${API_PREFIX}/hosts`)).hosts;
  }

  /** One volplugin's report; HOST_NOT_FOUND when no live volplugin has that id. */
  getHost(hostId: string): Promise<HostReport> {
    return this.get(`${API_PREFIX}/hosts/${seg(hostId)}`);
  }

  // ---- snapshots ------------------------------------------------------------------------------

  async listSnapshots(tenant: string, volume: string): Promise<SnapshotEntry[]> {
    return (await this.get<{ snapshots: SnapshotEntry[] }>(`${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}/snapshots`)).snapshots;
  }

  /** Takes a snapshot; with `requestName` (and `name`), taking it again for the same request returns it. */
  async takeSnapshot(tenant: string, volume: string, name?: string, extra: { requestName?: string } = {}): Promise<SnapshotEntry> {
    const body = { ...(name === undefined ? {} : { name }), ...(extra.requestName === undefined ? {} : { requestName: extra.requestName }) };
    return (await this.request<SnapshotEntry>('POST', `${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}/snapshots`, { body, timeoutMs: LONG_TIMEOUT_MS })).body;
  }

  async removeSnapshot(tenant: string, volume: string, snapshot: string): Promise<void> {
    await this.request('DELETE', `${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}/snapshots/${seg(snapshot)}`, { timeoutMs: LONG_TIMEOUT_MS });
  }

  /** Clones a snapshot into a new volume `to` (same pool). */
  async copySnapshot(
    tenant: string,
    volume: string,
    snapshot: string,
    to: { tenant: string; volume: string; options?: Record<string, string | number | boolean>; requestName?: string },
  ): Promise<VolumeRecord> {
    return (await this.startCopySnapshot(tenant, volume, snapshot, to)).volume;
  }

  /** copySnapshot, with the id of the operation that flattens the copy (poll getOperation) when one runs. */
  async startCopySnapshot(
    tenant: string,
    volume: string,
    snapshot: string,
    to: { tenant: string; volume: string; options?: Record<string, string | number | boolean> },
  ): Promise<{ volume: VolumeRecord; operation?: string }> {
    const { body, location } = await this.request<VolumeRecord>('POST', `${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}/snapshots/${seg(snapshot)}/copy`, {
      body: to,
      timeoutMs: LONG_TIMEOUT_MS,
    });
    const operation = location?.split('/').pop();
    return { volume: body, ...(operation ? { operation } : {}) };
  }

  // ---- attachments (CSI ControllerPublishVolume) ---------------------------------------------

  async listAttachments(): Promise<AttachmentRecord[]> {
    return (await this.get<{ attachments: AttachmentRecord[] }>(`${API_PREFIX}/attachments`)).attachments;
  }

  /** The host the volume is attached to; ATTACHMENT_NOT_FOUND when none. */
  getAttachment(tenant: string, volume: string): Promise<AttachmentRecord> {
    return this.get(`${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}/attachment`);
  }

  /** Attaches the volume to a host (idempotent for the same host and readonly flag). */
  async attachVolume(tenant: string, volume: string, hostId: string, readonly = false): Promise<{ attachment: AttachmentRecord; created: boolean }> {
    const { status, body } = await this.request<AttachmentRecord>('PUT', `${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}/attachment`, { body: { hostId, readonly } });
    return { attachment: body, created: status === 201 };
  }

  /** Detaches the volume (from `hostId` only, when given); nothing attached is success. */
  async detachVolume(tenant: string, volume: string, hostId?: string): Promise<void> {
    await this.request('DELETE', `${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}/attachment`, { query: hostId === undefined ? {} : { 'host-id': hostId } });
  }

  async rollbackSnapshot(tenant: string, volume: string, snapshot: string): Promise<void> {
    await this.request('POST', `${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}/snapshots/${seg(snapshot)}/rollback`, {
      timeoutMs: LONG_TIMEOUT_MS,
    });
  }

  // ---- backups --------------------------------------------------------------------------------

  listBackups(tenant: string, volume: string): Promise<BackupListBody> {
    return this.get(`${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}/backups`);
  }

  async takeBackup(tenant: string, volume: string): Promise<BackupEntryBody> {
    return (await this.request<BackupEntryBody>('POST', `${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}/backups`, { timeoutMs: BACKUP_TIMEOUT_MS })).body;
  }

  /** Starts a backup and answers once it is under way: the operation to poll (getOperation), its `result` the backup. */
  async startBackup(tenant: string, volume: string): Promise<OperationRecord> {
    return (await this.request<OperationRecord>('POST', `${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}/backups`, { query: { wait: 'false' }, timeoutMs: LONG_TIMEOUT_MS })).body;
  }

  /** Starts a restore (as restoreBackup) and answers once it is under way: the operation to poll, its `result` the restore. */
  async startRestore(tenant: string, volume: string, body: BackupRestoreBodyIn = {}): Promise<OperationRecord> {
    return (await this.request<OperationRecord>('POST', `${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}/backups/restore`, { body, query: { wait: 'false' }, timeoutMs: LONG_TIMEOUT_MS })).body;
  }

  /** Restores a backup into the volume, or with `into` into a new volume. */
  async restoreBackup(tenant: string, volume: string, body: BackupRestoreBodyIn = {}): Promise<BackupRestoreResultBody> {
    return (await this.request<BackupRestoreResultBody>('POST', `${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}/backups/restore`, { body, timeoutMs: BACKUP_TIMEOUT_MS })).body;
  }

  async verifyBackups(tenant: string, volume: string): Promise<BackupVerifyBody> {
    return (await this.request<BackupVerifyBody>('POST', `${API_PREFIX}/volumes/${seg(tenant)}/${seg(volume)}/backups/verify`, { timeoutMs: BACKUP_TIMEOUT_MS })).body;
  }

  // ---- group snapshots ------------------------------------------------------------------------

  /** One snapshot of `volumes` (of `tenant`, one pool) at one instant, as consistency group `group`. */
  async takeGroupSnapshot(tenant: string, group: string, volumes: string[], name?: string): Promise<GroupSnapshotEntry> {
    const body = name === undefined ? { volumes } : { volumes, name };
    return (await this.request<GroupSnapshotEntry>('POST', `${API_PREFIX}/groups/${seg(tenant)}/${seg(group)}/snapshots`, { body, timeoutMs: LONG_TIMEOUT_MS })).body;
  }

  async listGroupSnapshots(tenant: string, group: string): Promise<GroupSnapshotEntry[]> {
    return (await this.get<{ snapshots: GroupSnapshotEntry[] }>(`${API_PREFIX}/groups/${seg(tenant)}/${seg(group)}/snapshots`)).snapshots;
  }

  async removeGroupSnapshot(tenant: string, group: string, snapshot: string): Promise<void> {
    await this.request('DELETE', `${API_PREFIX}/groups/${seg(tenant)}/${seg(group)}/snapshots/${seg(snapshot)}`, { timeoutMs: LONG_TIMEOUT_MS });
  }

  /** Rolls every volume of the group back to the group snapshot; answers at once with the operation (poll getOperation). */
  async startGroupRollback(tenant: string, group: string, snapshot: string): Promise<OperationRecord> {
    return (await this.request<OperationRecord>('POST', `${API_PREFIX}/groups/${seg(tenant)}/${seg(group)}/snapshots/${seg(snapshot)}/rollback`, { query: { wait: 'false' } })).body;
  }

  /** Copies `member`'s part of the group snapshot into the new volume `to`; answers at once with the operation (poll getOperation). */
  async startGroupMemberCopy(
    tenant: string,
    group: string,
    snapshot: string,
    member: string,
    to: { tenant: string; volume: string; options?: Record<string, string | number | boolean> },
  ): Promise<OperationRecord> {
    return (await this.request<OperationRecord>('POST', `${API_PREFIX}/groups/${seg(tenant)}/${seg(group)}/snapshots/${seg(snapshot)}/copy`, { body: { member, ...to }, query: { wait: 'false' } })).body;
  }
}
