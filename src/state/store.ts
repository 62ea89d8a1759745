// StateStore: typed repositories over a KV and the key layout in keys.ts. Every component reads and
// writes records through this class; none builds a key or parses a record by hand.

import { hostname } from 'node:os';
import type { RuntimeOptions, TenantPolicy } from '../policy/types.js';
import { keys as makeKeys, type Keys } from './keys.js';
import type { Entry, KV, Lease, Watch } from './kv.js';
import type { HostReport, MountRecord, TenantRecord, VolumeRecord } from './records.js';

/** A stored record is not valid JSON (or not an object): someone wrote the key by hand. */
export class StateCorruptError extends Error {
  readonly code = 'STATE_CORRUPT';
  constructor(
    readonly key: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`etcd key ${key} does not hold a valid volplugin record (${detail}): fix or delete that key`, options);
    this.name = 'StateCorruptError';
  }
}

/** An operation lock on the volume is held by someone else and was not released in time. */
export class StateBusyError extends Error {
  readonly code = 'BUSY';
  constructor(
    readonly tenant: string,
    readonly volume: string,
    readonly holder: OperationLockRecord | null,
  ) {
    super(
      holder
        ? `volume ${tenant}/${volume} is busy: ${holder.reason} by ${holder.owner} since ${holder.since}; try again later`
        : `volume ${tenant}/${volume} is busy with another operation; try again later`,
    );
    this.name = 'StateBusyError';
  }
}

/** Why an operation lock is taken (shown to whoever has to wait). */
export const LockReason = {
  Create: 'create',
  Remove: 'remove',
  Copy: 'snapshot copy',
  Snapshot: 'snapshot',
  Prune: 'snapshot prune',
  Runtime: 'runtime update',
  Fence: 'fence',
} as const;

export interface OperationLockRecord {
  reason: string;
  /** Who holds it: `<host>:<pid>` unless the store was given another owner. */
  owner: string;
  since: string;
  lease: string;
}

export interface OperationLockOptions {
  /** A LockReason (or any short text). */
  reason: string;
  /** TTL of the lock's lease: how long a crashed holder blocks others (default 10 s). */
  ttlSeconds?: number;
  /** How long to wait for a busy lock before StateBusyError (default 10 s). */
  waitMs?: number;
}

export type AcquireMountResult = { ok: true; record: MountRecord } | { ok: false; holder: MountRecord };

/** A change to one volume's record (`record` is null on delete). */
export interface VolumeEvent {
  type: 'put' | 'delete';
  tenant: string;
  volume: string;
  record: VolumeRecord | null;
}

/** A change to one volume's mount lock (`record` is null on delete: released or lease gone). */
export interface MountEvent {
  type: 'put' | 'delete';
  tenant: string;
  volume: string;
  record: MountRecord | null;
}

export interface StateStoreOptions {
  /** Key prefix (default `/volplugin`). */
  prefix?: string;
  /** Names this process in operation locks (default `<hostname>:<pid>`). */
  owner?: string;
}

const CAS_ATTEMPTS = 20;

function jitter(ms: number): number {
  return Math.round(ms * (0.5 + Math.random()));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class StateStore {
  readonly keys: Keys;
  readonly owner: string;

  constructor(
    readonly kv: KV,
    options: StateStoreOptions = {},
  ) {
    this.keys = makeKeys(options.prefix);
    this.owner = options.owner ?? `${hostname()}:${process.pid}`;
  }

  private parse<T>(entry: Entry): T {
    let value: unknown;
    try {
      value = JSON.parse(entry.value);
    } catch (err) {
      throw new StateCorruptError(entry.key, `invalid JSON: ${(err as Error).message}`, { cause: err });
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new StateCorruptError(entry.key, 'not a JSON object');
    }
    return value as T;
  }

  private async read<T>(key: string): Promise<T | null> {
    const entry = await this.kv.get(key);
    return entry ? this.parse<T>(entry) : null;
  }

  /** Every record under `prefix`; with `onCorrupt`, a corrupt one is reported there and skipped instead of failing the whole list. */
  private async readAll<T>(prefix: string, onCorrupt?: (err: StateCorruptError) => void): Promise<T[]> {
    const records: T[] = [];
    for (const entry of await this.kv.list(prefix)) {
      try {
        records.push(this.parse<T>(entry));
      } catch (err) {
        if (!onCorrupt || !(err instanceof StateCorruptError)) throw err;
        onCorrupt(err);
      }
    }
    return records;
  }

  private conflict(what: string): Error {
    return new Error(`${what}: gave up after ${CAS_ATTEMPTS} concurrent modifications; try again`);
  }

  // ---- tenants ------------------------------------------------------------------------------

  /**
   * Stores a new revision of a tenant's policy: revision + 1 (continuing after a delete), and a
   * copy under tenant-history, in one transaction.
   */
  async putTenant(name: string, policy: TenantPolicy): Promise<TenantRecord> {
    const key = this.keys.tenant(name);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const current = await this.kv.get(key);
      let previous: number;
      if (current) {
        previous = this.parse<TenantRecord>(current).revision;
      } else {
        const history = await this.kv.list(this.keys.tenantHistory(name));
        const last = history.at(-1);
        previous = last ? this.parse<TenantRecord>(last).revision : 0;
      }
      const record: TenantRecord = { name, policy, revision: previous + 1, uploadedAt: new Date().toISOString() };
      const value = JSON.stringify(record);
      const historyKey = this.keys.tenantRevision(name, record.revision);
      const ok = await this.kv.transaction({
        absent: current ? [historyKey] : [key, historyKey],
        unchanged: current ? [{ key, modRevision: current.modRevision }] : [],
        put: [
          { key, value },
          { key: historyKey, value },
        ],
      });
      if (ok) return record;
    }
    throw this.conflict(`upload of tenant ${name}`);
  }

  getTenant(name: string): Promise<TenantRecord | null> {
    return this.read<TenantRecord>(this.keys.tenant(name));
  }

  /** One revision from the history (kept after deleteTenant). */
  getTenantRevision(name: string, revision: number): Promise<TenantRecord | null> {
    return this.read<TenantRecord>(this.keys.tenantRevision(name, revision));
  }

  async listTenants(): Promise<TenantRecord[]> {
    return this.readAll<TenantRecord>(this.keys.tenants);
  }

  /** Every uploaded revision, oldest first. */
  tenantHistory(name: string): Promise<TenantRecord[]> {
    return this.readAll<TenantRecord>(this.keys.tenantHistory(name));
  }

  /** Removes the tenant's current policy; its volumes, mounts and history stay. */
  deleteTenant(name: string): Promise<boolean> {
    return this.kv.delete(this.keys.tenant(name));
  }

  // ---- volumes ------------------------------------------------------------------------------

  /** Stores a new volume only if none exists under that name; false when one did. */
  createVolume(record: VolumeRecord): Promise<boolean> {
    return this.kv.create(this.keys.volume(record.tenant, record.volume), JSON.stringify(record));
  }

  getVolume(tenant: string, volume: string): Promise<VolumeRecord | null> {
    return this.read<VolumeRecord>(this.keys.volume(tenant, volume));
  }

  /**
   * Every volume, or one tenant's, sorted by tenant then volume. A corrupt record fails the list,
   * unless `onCorrupt` is given: then it is reported there and skipped (a background job must not
   * stop serving every volume because of one bad record).
   */
  listVolumes(tenant?: string, options: { onCorrupt?: (err: StateCorruptError) => void } = {}): Promise<VolumeRecord[]> {
    return this.readAll<VolumeRecord>(
      tenant === undefined ? this.keys.volumes : this.keys.tenantVolumes(tenant),
      options.onCorrupt,
    );
  }

  /** Removes the volume record and its snapshot schedule; false if there was no such volume. */
  async deleteVolume(tenant: string, volume: string): Promise<boolean> {
    const key = this.keys.volume(tenant, volume);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const current = await this.kv.get(key);
      if (!current) return false;
      // Deleting an absent key in a transaction is allowed: the schedule goes too if there is one.
      const ok = await this.kv.transaction({
        unchanged: [{ key, modRevision: current.modRevision }],
        delete: [key, this.keys.snapshotSchedule(tenant, volume)],
      });
      if (ok) return true;
    }
    throw this.conflict(`removal of volume ${tenant}/${volume}`);
  }

  /**
   * Changes a volume record with compare-and-swap, retrying on concurrent writes. `change` gets
   * the current record and returns the new one. Null when the volume does not exist.
   */
  async updateVolume(
    tenant: string,
    volume: string,
    change: (current: VolumeRecord) => VolumeRecord,
  ): Promise<VolumeRecord | null> {
    const key = this.keys.volume(tenant, volume);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const current = await this.kv.get(key);
      if (!current) return null;
      const next = change(this.parse<VolumeRecord>(current));
      if (next.tenant !== tenant || next.volume !== volume) {
        throw new Error(`updateVolume may not rename ${tenant}/${volume} to ${next.tenant}/${next.volume}`);
      }
      if (await this.kv.replace(key, JSON.stringify(next), current.modRevision)) return next;
    }
    throw this.conflict(`update of volume ${tenant}/${volume}`);
  }

  /** Replaces the run-time options (snapshots, rate limits) of a volume. Null if it does not exist. */
  updateRuntime(tenant: string, volume: string, runtime: RuntimeOptions): Promise<VolumeRecord | null> {
    return this.updateVolume(tenant, volume, (current) => ({ ...current, runtime }));
  }

  // ---- mounts -------------------------------------------------------------------------------

  /**
   * Takes the cluster-wide mount lock of a volume, bound to `lease` (the host's lease), only if no
   * one holds it. Holding it already under the same lease counts as success (idempotent).
   */
  async acquireMount(record: MountRecord, lease: Lease): Promise<AcquireMountResult> {
    if (record.lease !== lease.id) {
      throw new Error(`mount record of ${record.tenant}/${record.volume} names lease ${record.lease}, not ${lease.id}`);
    }
    const key = this.keys.mount(record.tenant, record.volume);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      if (await this.kv.create(key, JSON.stringify(record), { lease })) return { ok: true, record };
      const entry = await this.kv.get(key);
      if (!entry) continue; // released meanwhile: try again
      const holder = this.parse<MountRecord>(entry);
      if (holder.hostId === record.hostId && holder.lease === record.lease) return { ok: true, record: holder };
      return { ok: false, holder };
    }
    throw this.conflict(`mount lock of ${record.tenant}/${record.volume}`);
  }

  /**
   * Takes over a mount lock that the same host (same hostId) holds under another lease, e.g. after
   * a volplugin restart: replaces it with `record`, bound to `lease`, in one transaction that
   * requires the old record to be unchanged since it was read. False when the lock is gone, is
   * held by another host, is unreadable, or changed meanwhile (the caller decides whether to retry).
   */
  async adoptMount(record: MountRecord, lease: Lease): Promise<boolean> {
    const key = this.keys.mount(record.tenant, record.volume);
    const entry = await this.kv.get(key);
    if (!entry) return false;
    let holder: MountRecord;
    try {
      holder = this.parse<MountRecord>(entry);
    } catch {
      return false;
    }
    if (holder.hostId !== record.hostId) return false;
    return this.kv.replace(key, JSON.stringify(record), entry.modRevision, { lease });
  }

  getMount(tenant: string, volume: string): Promise<MountRecord | null> {
    return this.read<MountRecord>(this.keys.mount(tenant, volume));
  }

  listMounts(): Promise<MountRecord[]> {
    return this.readAll<MountRecord>(this.keys.mounts);
  }

  /**
   * Rewrites our own mount record (e.g. to add the device or client address once mapped), keeping
   * it bound to `lease`. False if the lock is no longer ours.
   */
  async updateMount(record: MountRecord, lease: Lease): Promise<boolean> {
    const key = this.keys.mount(record.tenant, record.volume);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const entry = await this.kv.get(key);
      if (!entry) return false;
      const holder = this.parse<MountRecord>(entry);
      if (holder.hostId !== record.hostId || holder.lease !== lease.id || record.lease !== lease.id) return false;
      if (await this.kv.replace(key, JSON.stringify(record), entry.modRevision, { lease })) return true;
    }
    throw this.conflict(`mount lock of ${record.tenant}/${record.volume}`);
  }

  /** Releases the mount lock only if `owner` still holds it; false otherwise (or if absent). */
  async releaseMount(tenant: string, volume: string, owner: { hostId: string; lease: string }): Promise<boolean> {
    const key = this.keys.mount(tenant, volume);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const entry = await this.kv.get(key);
      if (!entry) return false;
      const holder = this.parse<MountRecord>(entry);
      if (holder.hostId !== owner.hostId || holder.lease !== owner.lease) return false;
      if (await this.kv.deleteIf(key, entry.modRevision)) return true;
    }
    throw this.conflict(`mount lock of ${tenant}/${volume}`);
  }

  /** Removes the mount lock whoever holds it (an operator's decision); returns what was removed. */
  async forceRemoveMount(tenant: string, volume: string): Promise<MountRecord | null> {
    const key = this.keys.mount(tenant, volume);
    const entry = await this.kv.get(key);
    if (!entry) return null;
    let holder: MountRecord | null = null;
    try {
      holder = this.parse<MountRecord>(entry);
    } catch {
      // a corrupt lock is removed all the same
    }
    await this.kv.delete(key);
    return holder;
  }

  /**
   * Calls `listener` for every change of a volume record (e.g. run-time options changed by the
   * master) until the watch is closed. A corrupt record goes to `onError` instead.
   */
  watchVolumes(listener: (event: VolumeEvent) => void, onError?: (err: StateCorruptError) => void): Promise<Watch> {
    return this.watchRecords<VolumeRecord>(this.keys.volumes, listener, onError);
  }

  /** Calls `listener` for every mount lock taken, changed or gone, until the watch is closed. */
  watchMounts(listener: (event: MountEvent) => void, onError?: (err: StateCorruptError) => void): Promise<Watch> {
    return this.watchRecords<MountRecord>(this.keys.mounts, listener, onError);
  }

  private watchRecords<T>(
    root: string,
    listener: (event: { type: 'put' | 'delete'; tenant: string; volume: string; record: T | null }) => void,
    onError?: (err: StateCorruptError) => void,
  ): Promise<Watch> {
    return this.kv.watch(root, (event) => {
      const rest = event.key.slice(root.length);
      const slash = rest.indexOf('/');
      if (slash <= 0) return; // not a <tenant>/<volume> key
      const tenant = rest.slice(0, slash);
      const volume = rest.slice(slash + 1);
      if (event.type === 'delete' || event.value === null) {
        listener({ type: 'delete', tenant, volume, record: null });
        return;
      }
      let record: T;
      try {
        record = this.parse<T>({ key: event.key, value: event.value, modRevision: '0' });
      } catch (err) {
        if (err instanceof StateCorruptError) onError?.(err);
        return;
      }
      listener({ type: 'put', tenant, volume, record });
    });
  }

  // ---- operation locks ----------------------------------------------------------------------

  /**
   * Runs `fn` while holding the volume's operation lock (so that two masters never create, remove
   * or copy the same volume at once). The lock is a key bound to a short lease of its own: a
   * crashed holder blocks others for at most its TTL. etcd offers only try-locks, so a busy lock is
   * retried with jittered backoff until `waitMs`, then StateBusyError names the holder. The lock is
   * released (lease revoked) however `fn` ends. `signal` aborts if the lock's lease is lost.
   */
  async withOperationLock<T>(
    tenant: string,
    volume: string,
    options: OperationLockOptions,
    fn: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const ttlSeconds = options.ttlSeconds ?? 10;
    const waitMs = options.waitMs ?? 10_000;
    const key = this.keys.operation(tenant, volume);
    const deadline = Date.now() + waitMs;
    const lease = await this.kv.lease(ttlSeconds);
    try {
      const record: OperationLockRecord = {
        reason: options.reason,
        owner: this.owner,
        since: new Date().toISOString(),
        lease: lease.id,
      };
      let delay = 25;
      for (;;) {
        if (await this.kv.create(key, JSON.stringify(record), { lease })) break;
        if (Date.now() + delay > deadline) {
          const entry = await this.kv.get(key);
          let holder: OperationLockRecord | null = null;
          try {
            holder = entry ? this.parse<OperationLockRecord>(entry) : null;
          } catch {
            // unreadable holder: report without it
          }
          throw new StateBusyError(tenant, volume, holder);
        }
        await sleep(jitter(delay));
        delay = Math.min(delay * 2, 500);
      }
      const controller = new AbortController();
      lease.onLost((err) => controller.abort(err));
      return await fn(controller.signal);
    } finally {
      await lease.revoke().catch(() => undefined);
    }
  }

  /** Who holds the volume's operation lock, if anyone. */
  getOperationLock(tenant: string, volume: string): Promise<OperationLockRecord | null> {
    return this.read<OperationLockRecord>(this.keys.operation(tenant, volume));
  }

  // ---- host reports -------------------------------------------------------------------------

  /** Stores a volplugin's report, bound to its lease (gone when the host is). */
  putHostReport(report: HostReport, lease: Lease): Promise<void> {
    return this.kv.put(this.keys.host(report.hostId), JSON.stringify(report), { lease });
  }

  getHostReport(hostId: string): Promise<HostReport | null> {
    return this.read<HostReport>(this.keys.host(hostId));
  }

  listHostReports(): Promise<HostReport[]> {
    return this.readAll<HostReport>(this.keys.hosts);
  }

  // ---- supervisor schedule ------------------------------------------------------------------

  /** When the supervisor last took a scheduled snapshot of the volume, or null. */
  async getLastSnapshot(tenant: string, volume: string): Promise<Date | null> {
    const key = this.keys.snapshotSchedule(tenant, volume);
    const record = await this.read<{ at: string }>(key);
    if (!record) return null;
    const at = new Date(record.at);
    if (typeof record.at !== 'string' || Number.isNaN(at.getTime())) {
      throw new StateCorruptError(key, `"at" is not a date: ${JSON.stringify(record.at)}`);
    }
    return at;
  }

  setLastSnapshot(tenant: string, volume: string, at: Date): Promise<void> {
    return this.kv.put(this.keys.snapshotSchedule(tenant, volume), JSON.stringify({ at: at.toISOString() }));
  }
}
