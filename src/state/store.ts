// Over 400 lines: the one door to etcd has a method per record operation; each delegates to its module.
// StateStore: the one door to everything volplugin keeps in etcd. Every component reads and writes
// records, takes locks, watches changes and joins elections through this class; none builds a key,
// parses a record or touches the KV by hand (the KV is private).
//
// This file is the table of contents: single reads and writes are here, anything with a
// transaction, a retry or a watch lives in the module of its concern (tenants, volumes, intents,
// mounts, operations, schedule, watch; election.ts for elections) and is called from here.
// (Over 400 lines because it is that table of contents: one short method per record operation.)

import { hostname } from 'node:os';
import type { RuntimeOptions, TenantPolicy } from '../policy/types.js';
import type { StateCorruptError } from './errors.js';
import * as attachments from './attachments.js';
import type { AttachRequest, AttachResult, DetachResult } from './attachments.js';
import * as audit from './audit.js';
import type { AuditQuery } from './audit.js';
import * as hostRequests from './host-requests.js';
import * as release from './release.js';
import type { ReleaseOutcome } from './release.js';
import type { HostRequestInput, PendingHostRequest } from './host-requests.js';
import * as intents from './intents.js';
import type { CreateIntent } from './intents.js';
import { keys as makeKeys, type Keys } from './keys.js';
import type { Election, KV, Lease, Watch, WatchOptions } from './kv.js';
import * as exclusion from './exclusion.js';
import type { ExclusionOptions } from './exclusion.js';
import * as hosts from './hosts.js';
import type { HostAliveClaim } from './hosts.js';
import * as mounts from './mounts.js';
import type { AcquireMountResult, RetakeMountResult } from './mounts.js';
import * as operations from './operations.js';
import * as progress from './progress.js';
import type { OperationQuery } from './progress.js';
import { pruneHistory, type HistoryBounds } from './timeline.js';
import type { HeldLock, OperationLockOptions, OperationLockRecord } from './operations.js';
import { RecordKV } from './record-kv.js';
import * as requestNames from './request-names.js';
import type { ClaimResult, RequestKind, RequestTarget } from './request-names.js';
import { limitsOf, type Quota, type TenantLimits } from '../policy/limits.js';
import type {
  AcquisitionRecord,
  AttachmentRecord,
  RequestNameRecord,
  BackupRecord,
  AuditEntry,
  OperationRecord,
  ResizeIntent,
  RestoreIntent,
  ExclusionRecord,
  HostAliveRecord,
  HostAnswer,
  HostReport,
  MountRecord,
  Role,
  TenantRecord,
  TenantUsage,
  TokenRecord,
  UsageReport,
  VolumeFormat,
  VolumeRecord,
} from './records.js';
import * as schedule from './schedule.js';
import * as tenants from './tenants.js';
import * as tokens from './tokens.js';
import * as usage from './usage.js';
import * as volumes from './volumes.js';
import { watchRecords, type MountEvent, type VolumeEvent } from './watch.js';

export { QuotaExceededError, StateBusyError, StateCorruptError, StateMountedError } from './errors.js';
export { LockReason, type HeldLock, type OperationLockRecord } from './operations.js';
export type { AcquireMountResult, MountRefusal, RetakeMountResult } from './mounts.js';
export type { MarkFormattedResult } from './volumes.js';
export type { ExclusionOptions } from './exclusion.js';
export type { HostAliveClaim } from './hosts.js';
export type { MountEvent, VolumeEvent } from './watch.js';
export type { CreateIntent } from './intents.js';
export type { AttachRequest, AttachResult, DetachResult } from './attachments.js';
export type { ClaimResult, RequestKind, RequestTarget } from './request-names.js';
export type { AuditQuery } from './audit.js';
export type { OperationQuery } from './progress.js';
export type { HistoryBounds } from './timeline.js';
export type { GrowResult } from './volumes.js';
export { timeId, timeOfId } from './timeline.js';
export { HostRequestTimeoutError, type HostRequestInput, type PendingHostRequest } from './host-requests.js';
export { RELEASE_TIMEOUT_MS, reportsIdle, type ReleaseOutcome } from './release.js';

export interface StateStoreOptions {
  /** Key prefix (default `/volplugin`). */
  prefix?: string;
  /** Names this process in operation locks (default `<hostname>:<pid>`). */
  owner?: string;
}

/** How an operation lock is taken (see withOperationLock). */
export interface VolumeLockOptions extends Omit<OperationLockOptions, 'read'> {
  /** Also read the volume's record and create intent in the transaction that takes the lock (VolumeLock). */
  readVolume?: boolean;
}

/** An operation lock while held; with `readVolume`, what the volume looked like when it was taken. */
export interface VolumeLock extends HeldLock {
  /** The volume record (null: none; undefined: not read). */
  readonly volume: VolumeRecord | null | undefined;
  /** The volume's create intent (null: none; undefined: not read). */
  readonly intent: CreateIntent | null | undefined;
}

export class StateStore {
  readonly keys: Keys;
  readonly owner: string;
  private readonly db: RecordKV;
  private readonly lockLeases: operations.LockLeases;

  constructor(
    private readonly kv: KV,
    options: StateStoreOptions = {},
  ) {
    this.keys = makeKeys(options.prefix);
    this.owner = options.owner ?? `${hostname()}:${process.pid}`;
    this.db = new RecordKV(kv, this.keys);
    this.lockLeases = new operations.LockLeases(kv);
  }

  // ---- the connection -----------------------------------------------------------------------

  /** Throws a StateUnavailableError when etcd does not answer within `timeoutMs`. */
  ping(timeoutMs?: number): Promise<void> {
    return this.kv.ping(timeoutMs);
  }

  /**
   * A lease of `ttlSeconds`, kept alive in the background until revoked or lost: what a host binds
   * its mount locks and report to.
   */
  lease(ttlSeconds: number): Promise<Lease> {
    return this.kv.lease(ttlSeconds);
  }

  /**
   * Closes the connection. Leases are not revoked, only no longer kept alive: etcd drops them (and
   * their keys) after their TTL, as if this process had died. Revoke first for a clean exit.
   */
  async close(): Promise<void> {
    // The operation locks' lease: no lock is held any more, so its revoke costs nothing to others.
    await Promise.race([this.lockLeases.revokeAll(), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
    return this.kv.close();
  }

  /** volsupervisor's leader election; the leader's key is bound to a lease of `ttlSeconds`. */
  supervisorElection(ttlSeconds: number): Election {
    return this.kv.election(this.keys.supervisorElection, ttlSeconds);
  }

  // ---- tenants ------------------------------------------------------------------------------

  /**
   * Stores a new revision of a tenant's policy: revision + 1 (continuing after a delete), and a
   * copy under tenant-history, in one transaction.
   */
  putTenant(name: string, policy: TenantPolicy): Promise<TenantRecord> {
    return tenants.putTenant(this.db, name, policy);
  }

  getTenant(name: string): Promise<TenantRecord | null> {
    return this.db.read<TenantRecord>(this.keys.tenant(name));
  }

  /** One revision from the history (kept after deleteTenant). */
  getTenantRevision(name: string, revision: number): Promise<TenantRecord | null> {
    return this.db.read<TenantRecord>(this.keys.tenantRevision(name, revision));
  }

  listTenants(): Promise<TenantRecord[]> {
    return this.db.readAll<TenantRecord>(this.keys.tenants);
  }

  /** Every uploaded revision, oldest first. */
  tenantHistory(name: string): Promise<TenantRecord[]> {
    return this.db.readAll<TenantRecord>(this.keys.tenantHistory(name));
  }

  /** Removes the tenant's current policy; its volumes, mounts and history stay. */
  deleteTenant(name: string): Promise<boolean> {
    return this.kv.delete(this.keys.tenant(name));
  }

  // ---- volumes ------------------------------------------------------------------------------

  /**
   * Stores a new volume only if none exists under that name; false when one did. It counts in the
   * tenant's usage, within `quota` (QuotaExceededError beyond it).
   */
  createVolume(record: VolumeRecord, quota?: Quota): Promise<boolean> {
    return volumes.createVolume(this.db, record, undefined, quota);
  }

  getVolume(tenant: string, volume: string): Promise<VolumeRecord | null> {
    return this.db.read<VolumeRecord>(this.keys.volume(tenant, volume));
  }

  /**
   * Every volume, or one tenant's, sorted by tenant then volume. A corrupt record fails the list,
   * unless `onCorrupt` is given: then it is reported there and skipped (a background job must not
   * stop serving every volume because of one bad record).
   */
  listVolumes(tenant?: string, options: { onCorrupt?: (err: StateCorruptError) => void } = {}): Promise<VolumeRecord[]> {
    return this.db.readAll<VolumeRecord>(
      tenant === undefined ? this.keys.volumes : this.keys.tenantVolumes(tenant),
      options.onCorrupt,
    );
  }

  /** Removes the volume record and its snapshot schedule (and its share of the tenant's usage); false if there was no such volume. */
  deleteVolume(tenant: string, volume: string): Promise<boolean> {
    return volumes.deleteVolume(this.db, tenant, volume);
  }

  /**
   * Changes a volume record with compare-and-swap, retrying on concurrent writes. `change` gets
   * the current record and returns the new one. Null when the volume does not exist.
   */
  updateVolume(tenant: string, volume: string, change: (current: VolumeRecord) => VolumeRecord): Promise<VolumeRecord | null> {
    return volumes.updateVolume(this.db, tenant, volume, change);
  }

  /** Replaces the run-time options (snapshots, rate limits) of a volume. Null if it does not exist. */
  updateRuntime(tenant: string, volume: string, runtime: RuntimeOptions): Promise<VolumeRecord | null> {
    return this.updateVolume(tenant, volume, (current) => ({ ...current, runtime }));
  }

  /**
   * Records that the volume's first format begins now (formatStarted) or succeeded (formatted),
   * only if `holder` still holds its mount lock under that lease, in one transaction (see
   * volumes.ts markFormat). The only writer of the format marks besides a copy's creation; never
   * cleared while the volume exists.
   */
  markFormat(tenant: string, volume: string, holder: { hostId: string; lease: Lease }, stage: 'started' | 'done', at: string = new Date().toISOString()): Promise<volumes.MarkFormattedResult> {
    return volumes.markFormat(this.db, tenant, volume, holder, stage, at);
  }

  /** The volume's format marks; {} when it has none. */
  getVolumeFormat(tenant: string, volume: string): Promise<VolumeFormat> {
    return volumes.getFormat(this.db, tenant, volume);
  }

  /** Records a new copy of a snapshot as formatted (its source's filesystem); false when it has marks already or is gone. */
  markCopyFormatted(tenant: string, volume: string, formatted: string): Promise<boolean> {
    return volumes.markCopyFormatted(this.db, tenant, volume, formatted);
  }

  // ---- resizes (see volumes.ts growVolume) --------------------------------------------------

  /**
   * Sets the volume's size to `intent.toBytes` (never smaller), counting the growth in its tenant's
   * usage within `quota`, and records the resize intent, in one transaction.
   */
  growVolume(intent: ResizeIntent, quota?: Quota): Promise<volumes.GrowResult> {
    return volumes.growVolume(this.db, intent, quota);
  }

  /** Undoes growVolume (record, usage, intent) while the record still has the new size; false otherwise. */
  revertGrow(intent: ResizeIntent): Promise<boolean> {
    return volumes.revertGrow(this.db, intent);
  }

  getResize(tenant: string, volume: string): Promise<ResizeIntent | null> {
    return this.db.read<ResizeIntent>(this.keys.resize(tenant, volume));
  }

  /** Resizes whose image may still be smaller than the record (running, or died half-way). */
  listResizes(): Promise<ResizeIntent[]> {
    return volumes.listResizes(this.db);
  }

  /** The image has the record's size now: the resize intent goes. */
  finishResize(tenant: string, volume: string): Promise<void> {
    return volumes.finishResize(this.db, tenant, volume);
  }

  // ---- restores into a volume (see src/backups/restore.ts) -----------------------------------

  /** Written before a restore into a volume makes its scratch image: a janitor finds a restore that died. */
  putRestoreIntent(intent: RestoreIntent): Promise<void> {
    return this.kv.put(this.keys.restore(intent.tenant, intent.volume), JSON.stringify(intent));
  }

  getRestoreIntent(tenant: string, volume: string): Promise<RestoreIntent | null> {
    return this.db.read<RestoreIntent>(this.keys.restore(tenant, volume));
  }

  listRestoreIntents(): Promise<RestoreIntent[]> {
    return this.db.readAll<RestoreIntent>(this.keys.restores, () => undefined);
  }

  deleteRestoreIntent(tenant: string, volume: string): Promise<boolean> {
    return this.kv.delete(this.keys.restore(tenant, volume));
  }

  // ---- long operations (see progress.ts) ----------------------------------------------------

  /** Records a new running operation, alive while `lease` is; false if its id was taken. */
  startOperation(record: OperationRecord, lease: Lease): Promise<boolean> {
    return progress.startOperation(this.db, record, lease);
  }

  /** Changes a running operation of this store's owner; null once it is no longer running or ours. */
  updateOperation(id: string, change: (current: OperationRecord) => OperationRecord): Promise<OperationRecord | null> {
    return progress.updateOperation(this.db, id, this.owner, change);
  }

  /** The operation (one whose master stopped comes back interrupted), or null. */
  getOperation(id: string): Promise<OperationRecord | null> {
    return progress.getOperation(this.db, id);
  }

  listOperations(query?: OperationQuery): Promise<OperationRecord[]> {
    return progress.listOperations(this.db, query);
  }

  /** Bounds the operations' history (count and age); how many records it deleted. */
  pruneOperations(bounds: HistoryBounds): Promise<number> {
    return pruneHistory(this.db, this.keys.progress, bounds);
  }

  // ---- the audit trail (see audit.ts) -------------------------------------------------------

  /** Writes a new audit entry (pending or complete); false if its id was taken. */
  writeAudit(entry: AuditEntry): Promise<boolean> {
    return audit.writeAudit(this.db, entry);
  }

  completeAudit(entry: AuditEntry): Promise<void> {
    return audit.completeAudit(this.db, entry);
  }

  dropAudit(id: string): Promise<void> {
    return audit.dropAudit(this.db, id);
  }

  listAudit(query?: AuditQuery): Promise<AuditEntry[]> {
    return audit.listAudit(this.db, query);
  }

  /** Bounds the audit trail (count and age); how many entries it deleted. */
  pruneAudit(bounds: HistoryBounds): Promise<number> {
    return pruneHistory(this.db, this.keys.audit, bounds);
  }

  // ---- create intents (see intents.ts) ------------------------------------------------------

  /**
   * Records that a create of `intent.tenant/intent.volume` is about to make `intent.pool/intent.image`,
   * reserving one volume and `intent.sizeBytes` of the tenant's usage within `quota`
   * (QuotaExceededError, and nothing written, beyond it).
   */
  putCreateIntent(intent: CreateIntent, quota?: Quota): Promise<void> {
    return intents.putCreateIntent(this.db, intent, quota);
  }

  /** The volume's intent, or null; an unreadable one comes back with empty pool and image. */
  getCreateIntent(tenant: string, volume: string): Promise<CreateIntent | null> {
    return intents.getCreateIntent(this.db, tenant, volume);
  }

  /** Every intent (creates in progress, or dead half-way), sorted by tenant then volume. */
  listCreateIntents(): Promise<CreateIntent[]> {
    return intents.listCreateIntents(this.db);
  }

  /** Deletes the intent and gives its reservation back to the tenant's usage. */
  deleteCreateIntent(tenant: string, volume: string): Promise<void> {
    return intents.deleteCreateIntent(this.db, tenant, volume);
  }

  /** The tenant's volumes (creates in progress included) and their sizes added up. */
  async getUsage(tenant: string): Promise<TenantUsage> {
    return (await usage.readUsage(this.db, tenant)).usage;
  }

  /** The limits a volume lives under: its tenant's current policy, else the revision it was made from. */
  async volumeLimits(record: VolumeRecord): Promise<TenantLimits> {
    const tenant = (await this.getTenant(record.tenant)) ?? (await this.getTenantRevision(record.tenant, record.policyRevision));
    return limitsOf(tenant?.policy ?? { 'default-options': { pool: record.pool }, filesystems: {} });
  }

  /** The tenant's usage beside its limits (null: none); null when the tenant neither exists nor has volumes. */
  async usageReport(tenant: string): Promise<UsageReport | null> {
    const [record, current] = await Promise.all([this.getTenant(tenant), this.getUsage(tenant)]);
    if (!record && current.volumes === 0) return null;
    const limits = record ? limitsOf(record.policy) : null;
    return {
      ...current,
      limits: {
        volumes: limits?.maxVolumes ?? null,
        bytes: limits?.maxTotalBytes ?? null,
        sizeBytes: limits?.maxSizeBytes ?? null,
        snapshots: limits?.maxSnapshots ?? null,
        pools: limits?.pools ?? null,
      },
    };
  }

  /**
   * Ends a create: writes the volume record (only if none exists) and deletes its intent, in one
   * transaction; with `written` (the intent as this create wrote it, and the operation lock it
   * holds), only while both are still as written, giving the lock back in the same transaction.
   * False when it did not happen (a record existed, or the intent or lock changed): nothing was
   * written or deleted.
   */
  commitCreate(record: VolumeRecord, written?: { intent: CreateIntent; lock: HeldLock }): Promise<boolean> {
    if (written) return volumes.commitCreate(this.db, record, written.intent, written.lock);
    return volumes.createVolume(this.db, record, record);
  }

  // ---- mounts -------------------------------------------------------------------------------

  /**
   * Takes the cluster-wide mount lock of a volume, bound to `lease` (the host's lease), only if no
   * one holds it, no remove or rollback excludes mounts and the volume record exists; records the
   * acquisition (next generation) in the same transaction. Holding it already under the same lease
   * counts as success (idempotent).
   */
  acquireMount(record: MountRecord, lease: Lease): Promise<AcquireMountResult> {
    return mounts.acquireMount(this.db, record, lease);
  }

  /**
   * Takes back a lock this host lost (lease expired, or removed by an operator) only if nobody
   * acquired it since this host's acquisition `expected` (host id and generation), atomically.
   */
  retakeMount(record: MountRecord, lease: Lease, expected: { hostId: string; generation: number }): Promise<RetakeMountResult> {
    return mounts.retakeMount(this.db, record, lease, expected);
  }

  /**
   * Takes over a mount lock that the same host (same hostId) holds under another lease, e.g. after
   * a volplugin restart: replaces it with `record`, bound to `lease`, as a new acquisition, in one
   * transaction that requires the old record to be unchanged since it was read (and, with
   * `expectedGeneration`, to be that acquisition). The stored record, or null when the lock is
   * gone, is another host's or acquisition's, or is unreadable.
   */
  adoptMount(record: MountRecord, lease: Lease, expectedGeneration?: number): Promise<MountRecord | null> {
    return mounts.adoptMount(this.db, record, lease, expectedGeneration);
  }

  /** The last acquisition of the volume's mount lock (kept after the lock is gone), or null. */
  getAcquisition(tenant: string, volume: string): Promise<AcquisitionRecord | null> {
    return this.db.read<AcquisitionRecord>(this.keys.acquired(tenant, volume));
  }

  getMount(tenant: string, volume: string): Promise<MountRecord | null> {
    return this.db.read<MountRecord>(this.keys.mount(tenant, volume));
  }

  listMounts(): Promise<MountRecord[]> {
    return this.db.readAll<MountRecord>(this.keys.mounts);
  }

  /** The locks `hostId` holds and those of `volumes` (whoever holds them), without listing the cluster's. */
  listHostMounts(hostId: string, volumes: ReadonlyArray<{ tenant: string; volume: string }>): Promise<MountRecord[]> {
    return mounts.listHostMounts(this.db, hostId, volumes);
  }

  /**
   * Rewrites our own mount record (e.g. to add the device or client address once mapped), keeping
   * it bound to `lease`. False if the lock is no longer ours.
   */
  updateMount(record: MountRecord, lease: Lease): Promise<boolean> {
    return mounts.updateMount(this.db, record, lease);
  }

  /** Releases the mount lock only if `owner` still holds it; false otherwise (or if absent). */
  releaseMount(tenant: string, volume: string, owner: { hostId: string; lease: string }): Promise<boolean> {
    return mounts.releaseMount(this.db, tenant, volume, owner);
  }

  /** Removes the mount lock whoever holds it (an operator's decision); returns what was removed. */
  forceRemoveMount(tenant: string, volume: string): Promise<MountRecord | null> {
    return mounts.forceRemoveMount(this.db, tenant, volume);
  }

  /**
   * Runs `fn` while no host may take the volume's mount lock (a remove or rollback): created only
   * if no host holds the lock now (else StateMountedError, nothing done), and released however
   * `fn` ends. See exclusion.ts. A holder that only keeps the volume idle (its grace after the
   * last Unmount) is asked to release it first, and the exclusion is tried once more (release.ts).
   */
  withMountsExcluded<T>(tenant: string, volume: string, options: ExclusionOptions, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return exclusion.withMountsExcluded(this.db, this.owner, tenant, volume, options, fn, (holder) => this.askRelease(holder));
  }

  /** withMountsExcluded for several volumes of a tenant, all or nothing in one transaction (exclusion.ts). */
  withMountsExcludedAll<T>(tenant: string, volumes: readonly string[], options: ExclusionOptions, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return exclusion.withMountsExcludedAll(this.db, this.owner, tenant, volumes, options, fn, (holder) => this.askRelease(holder));
  }

  /** The remove or rollback that excludes mounts of the volume now, if any. */
  getExclusion(tenant: string, volume: string): Promise<ExclusionRecord | null> {
    return this.db.read<ExclusionRecord>(this.keys.exclusive(tenant, volume));
  }

  // ---- CSI attachments (see attachments.ts) -------------------------------------------------

  /**
   * Publishes the volume to one host, in one transaction: only while the host's volplugin is alive,
   * no other host holds the mount lock, and the volume is attached to nobody, to this host, or to a
   * host whose volplugin is gone (a takeover).
   */
  attachVolume(request: AttachRequest): Promise<AttachResult> {
    return attachments.attach(this.db, request);
  }

  /** Removes the volume's attachment (to `hostId` only, when given); refused while that host holds the mount lock. */
  detachVolume(tenant: string, volume: string, hostId: string | null): Promise<DetachResult> {
    return attachments.detach(this.db, tenant, volume, hostId);
  }

  /** The volume's attachment, or null (also for one left behind by an earlier volume of the same name). */
  getAttachment(tenant: string, volume: string): Promise<AttachmentRecord | null> {
    return attachments.getAttachment(this.db, tenant, volume);
  }

  /** Every attachment record as stored (including ones of removed volumes). */
  listAttachments(): Promise<AttachmentRecord[]> {
    return this.db.readAll<AttachmentRecord>(this.keys.attachments);
  }

  // ---- request names (see request-names.ts) -------------------------------------------------

  /** Claims a client's request name for `target`; refused with the holder when it names another target that still exists. */
  claimRequestName(kind: RequestKind, name: string, target: RequestTarget, isGone: (holder: RequestNameRecord) => Promise<boolean>): Promise<ClaimResult> {
    return requestNames.claimRequestName(this.db, kind, name, target, isGone);
  }

  getRequestName(kind: RequestKind, name: string): Promise<RequestNameRecord | null> {
    return requestNames.getRequestName(this.db, kind, name);
  }

  /** Releases the request name of a removed volume or snapshot; false when it had none. */
  releaseRequestName(target: RequestTarget): Promise<boolean> {
    return requestNames.releaseRequestName(this.db, target);
  }

  /** Releases the request names of every snapshot of a removed volume. */
  releaseSnapshotNames(tenant: string, volume: string): Promise<number> {
    return requestNames.releaseSnapshotNames(this.db, tenant, volume);
  }

  // ---- watches ------------------------------------------------------------------------------

  /**
   * Calls `listener` for every change of a volume record (e.g. run-time options changed by the
   * master) until the watch is closed. A corrupt record goes to `onError` instead; a watch that
   * dies or resumes after a gap is told through `options` (see WatchOptions).
   */
  watchVolumes(listener: (event: VolumeEvent) => void, onError?: (err: StateCorruptError) => void, options?: WatchOptions): Promise<Watch> {
    return watchRecords<VolumeRecord>(this.db, this.keys.volumes, listener, onError, options);
  }

  /** Calls `listener` for every mount lock taken, changed or gone, until the watch is closed. */
  watchMounts(listener: (event: MountEvent) => void, onError?: (err: StateCorruptError) => void, options?: WatchOptions): Promise<Watch> {
    return watchRecords<MountRecord>(this.db, this.keys.mounts, listener, onError, options);
  }

  // ---- operation locks (see operations.ts) --------------------------------------------------

  /**
   * Runs `fn` while holding the volume's operation lock. A busy lock is waited for (jittered
   * backoff) until `waitMs`, then StateBusyError names the holder. The lock is released however
   * `fn` ends (unless fn's last transaction did: commitCreate); `signal` aborts if the lock's lease
   * is lost. The lock is bound to a lease this process keeps for its locks (operations.ts).
   */
  withOperationLock<T>(tenant: string, volume: string, options: VolumeLockOptions, fn: (signal: AbortSignal, lock: VolumeLock) => Promise<T>): Promise<T> {
    const { readVolume, ...rest } = options;
    const volumeKey = this.keys.volume(tenant, volume);
    const intentKey = this.keys.intent(tenant, volume);
    const read = readVolume ? [volumeKey, intentKey] : [];
    return operations.withOperationLock(this.db, this.lockLeases, this.owner, tenant, volume, { ...rest, read }, (signal, held) => {
      const entry = (key: string) => held.reads.get(key) ?? null;
      const lock = held as VolumeLock & { volume?: VolumeRecord | null; intent?: CreateIntent | null };
      if (readVolume) {
        const v = entry(volumeKey);
        lock.volume = v ? this.db.parse<VolumeRecord>(v) : null;
        const i = entry(intentKey);
        lock.intent = i ? intents.intentOf(this.db, i) : null;
      }
      return fn(signal, lock);
    });
  }

  /** Who holds the volume's operation lock, if anyone. */
  getOperationLock(tenant: string, volume: string): Promise<OperationLockRecord | null> {
    return this.db.read<OperationLockRecord>(this.keys.operation(tenant, volume));
  }

  // ---- host reports -------------------------------------------------------------------------

  /** Stores a volplugin's report, bound to its lease (gone when the host is). */
  putHostReport(report: HostReport, lease: Lease): Promise<void> {
    return this.kv.put(this.keys.host(report.hostId), JSON.stringify(report), { lease });
  }

  /**
   * Claims the host id for this process (create-if-absent, bound to `lease`): held by another
   * process, the answer names it. See hosts.ts.
   */
  claimHostAlive(record: HostAliveRecord, lease: Lease): Promise<HostAliveClaim> {
    return hosts.claimHostAlive(this.db, record, lease);
  }

  /** Replaces a dead predecessor's host-alive record (found at `modRevision`) with ours; false if it changed. */
  takeOverHostAlive(record: HostAliveRecord, lease: Lease, modRevision: string): Promise<boolean> {
    return hosts.takeOverHostAlive(this.db, record, lease, modRevision);
  }

  getHostReport(hostId: string): Promise<HostReport | null> {
    return this.db.read<HostReport>(this.keys.host(hostId));
  }

  listHostReports(): Promise<HostReport[]> {
    return this.db.readAll<HostReport>(this.keys.hosts);
  }

  // ---- API tokens (see tokens.ts) -----------------------------------------------------------

  /** Stores `token` (its hash) under `name`; null when that name is taken. */
  createToken(token: string, fields: { name: string; role: Role; createdBy: string }): Promise<TokenRecord | null> {
    return tokens.createToken(this.db, token, fields);
  }

  /** The token whose SHA-256 is `hash`, or null. */
  findToken(hash: string): Promise<TokenRecord | null> {
    return tokens.findToken(this.db, hash);
  }

  listTokens(): Promise<TokenRecord[]> {
    return tokens.listTokens(this.db);
  }

  /** Deletes the token named `name`; what was deleted, or null. */
  revokeToken(name: string): Promise<TokenRecord | null> {
    return tokens.revokeToken(this.db, name);
  }

  // ---- supervisor schedule ------------------------------------------------------------------

  /** When the supervisor last took a scheduled snapshot of the volume, or null. */
  getLastSnapshot(tenant: string, volume: string): Promise<Date | null> {
    return schedule.getLastSnapshot(this.db, tenant, volume);
  }

  setLastSnapshot(tenant: string, volume: string, at: Date, lock?: HeldLock): Promise<void> {
    return schedule.setLastSnapshot(this.db, tenant, volume, at, lock);
  }

  // ---- backups (src/backups) ----------------------------------------------------------------

  /** A volume's backup record, or null (none taken yet). */
  getBackupRecord(tenant: string, volume: string): Promise<BackupRecord | null> {
    return this.db.read<BackupRecord>(this.keys.backup(tenant, volume));
  }

  /** Replaces it: written only under the volume's operation lock, so one writer at a time. */
  putBackupRecord(record: BackupRecord): Promise<void> {
    return this.kv.put(this.keys.backup(record.tenant, record.volume), JSON.stringify(record));
  }

  // ---- requests to a host -------------------------------------------------------------------

  /**
   * Asks host `hostId` to do something only it can (see host-requests.ts) and waits up to
   * `timeoutMs` for its answer; HostRequestTimeoutError when none came. The request is withdrawn
   * however this ends.
   */
  askHost(hostId: string, request: HostRequestInput, timeoutMs: number): Promise<HostAnswer> {
    return hostRequests.ask(this.db, this.keys, this.owner, hostId, request, timeoutMs);
  }

  /**
   * Asks the holder of a volume's mount lock to let go of it if it only keeps it idle (its grace
   * after the last Unmount): see release.ts. Never throws for the holder's sake: the outcome says
   * whether the lock is gone.
   */
  askRelease(holder: MountRecord, timeoutMs?: number): Promise<ReleaseOutcome> {
    return release.askRelease(
      { getHostReport: (id) => this.getHostReport(id), askHost: (id, request, ms) => this.askHost(id, request, ms) },
      holder,
      timeoutMs,
    );
  }

  /** The requests to `hostId` not answered yet, oldest first. */
  pendingHostRequests(hostId: string): Promise<PendingHostRequest[]> {
    return hostRequests.pending(this.db, this.keys, hostId);
  }

  /** Calls `onRequest` when a request to `hostId` arrives. */
  watchHostRequests(hostId: string, onRequest: () => void): Promise<Watch> {
    return hostRequests.watchRequests(this.db, this.keys, hostId, onRequest);
  }

  /** The host's answer to a pending request; false when the requester withdrew it meanwhile. */
  answerHostRequest(request: PendingHostRequest, result: Omit<HostAnswer, 'at'>): Promise<boolean> {
    return hostRequests.answer(this.db, this.keys, request, result);
  }
}
