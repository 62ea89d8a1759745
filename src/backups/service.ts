// Backups of a volume, on a Storage and a StateStore: what the master's API (on demand) and
// volsupervisor (on schedule) both do. A backup takes a `vb-` snapshot, writes the diff from the
// last backup's snapshot (or a full one) to the tenant's target, commits the target's manifest,
// prunes to `keep`, removes the previous base snapshot, records bytes and time in etcd, and runs
// the tenant's hook. It holds the volume's operation lock throughout, so that no remove, rollback,
// snapshot operation or second backup of the volume runs meanwhile; see target.ts for the order
// that keeps a killed process from leaving anything that passes for a backup. Restores are
// restore.ts, checks verify.ts.

import pino, { type Logger } from 'pino';
import { ApiError } from '../api/errors.js';
import { withTimeout } from '../common/timeout.js';
import { policyDefaults } from '../policy/validate.js';
import { DEFAULT_BACKUP, type BackupTarget } from '../policy/backup.js';
import { describeRetention, retentionProblem, type Retention } from '../policy/retention.js';
import { parseFrequency } from '../policy/units.js';
import type { BackupRecord, VolumeRecord } from '../state/records.js';
import type { StateStore } from '../state/store.js';
import { isRbdError } from '../storage/errors.js';
import type { Storage } from '../storage/types.js';
import { systemClock, type Clock } from '../snapshots/clock.js';
import type { BackupConfig } from './config.js';
import { runHook } from './hooks.js';
import { nextBase, planBackupPrune, type Manifest, type ManifestEntry } from './manifest.js';
import { backupName, isBackupName } from './names.js';
import { TargetConnections } from './connections.js';
import type { OnBackupProgress, TargetVolume } from './target.js';

export interface BackupServiceOptions {
  config: BackupConfig;
  clock?: Clock;
  logger?: Logger;
  /** TTL of the operation lock (volsupervisor: its election TTL). */
  lockTtlSeconds?: number;
  /** How long an on-demand operation waits for a busy volume (default 10 s). */
  lockWaitMs?: number;
  /** Bound of an ordinary Ceph call (default 30 s). */
  callTimeoutMs?: number;
  /** Bound of a whole backup, restore or verify (default 24 h). */
  longTimeoutMs?: number;
  /** Opens a Ceph target's connection (default: the daemon's backend, see connections.ts). */
  openTargetStorage?: TargetConnections['open'];
  /** Test-only: runs after a diff is written, before it is made part of the target (volsupervisor's failpoint). */
  afterExport?: () => Promise<void>;
}

/** A volume's backup settings: its schedule (runtime options) and its tenant's target and hook. */
export interface BackupSettings {
  target: BackupTarget;
  /** Restore points kept: a number or tiers (manifest.ts planBackupPrune). */
  keep: Retention;
  frequency: string;
  hook: string[] | null;
}

/** A backup as the API and volcli show it. */
export interface BackupView {
  name: string;
  parent: string | null;
  kind: 'full' | 'incremental';
  bytes: number;
  dataBytes: number;
  sizeBytes: number;
  at: string;
  ms: number;
  location: string;
}

export interface BackupListing {
  tenant: string;
  volume: string;
  target: string;
  backups: BackupView[];
  lastError?: { at: string; message: string };
  lastHook?: BackupRecord['lastHook'];
}

export type ScheduledBackup = { outcome: 'taken'; backup: BackupView } | { outcome: 'busy' | 'gone' | 'aborted' };

export class BackupService {
  readonly config: BackupConfig;
  readonly clock: Clock;
  readonly log: Logger;
  readonly connections: TargetConnections;
  private readonly lockTtlSeconds: number | undefined;
  private readonly lockWaitMs: number;
  readonly callMs: number;
  readonly longMs: number;

  constructor(
    readonly storage: Storage,
    readonly store: StateStore,
    private readonly options: BackupServiceOptions,
  ) {
    this.config = options.config;
    this.clock = options.clock ?? systemClock;
    this.log = options.logger ?? pino({ level: 'silent' });
    this.lockTtlSeconds = options.lockTtlSeconds;
    this.lockWaitMs = options.lockWaitMs ?? 10_000;
    this.callMs = options.callTimeoutMs ?? 30_000;
    this.longMs = options.longTimeoutMs ?? 24 * 3_600_000;
    this.connections = new TargetConnections(storage, this.config, options.openTargetStorage);
  }

  /** Closes the connections to Ceph targets. */
  close(): Promise<void> {
    return this.connections.close();
  }

  /** A Ceph call of this service, bounded in time. */
  call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return withTimeout(fn(), this.callMs, what);
  }

  /** The volume's operation lock for the whole of `fn`, waiting up to `waitMs`. */
  withLock<T>(tenant: string, volume: string, reason: string, fn: (signal: AbortSignal) => Promise<T>, waitMs = this.lockWaitMs): Promise<T> {
    return this.store.withOperationLock(tenant, volume, { reason, waitMs, ttlSeconds: this.lockTtlSeconds }, fn);
  }

  /** `signal`, and also aborted once the long bound has passed. */
  bounded(...signals: (AbortSignal | undefined)[]): AbortSignal {
    return AbortSignal.any([...signals.filter((s): s is AbortSignal => s !== undefined), AbortSignal.timeout(this.longMs)]);
  }

  async volume(tenant: string, volume: string): Promise<VolumeRecord> {
    const record = await this.store.getVolume(tenant, volume);
    if (!record) throw new ApiError('VOLUME_NOT_FOUND', `volume ${tenant}/${volume} does not exist`, { field: 'volume' });
    return record;
  }

  /**
   * The backup settings of `tenant/volume`: the target and hook of its tenant's policy (the current
   * one, else the revision the volume was made from), its schedule from its runtime options.
   * BACKUPS_NOT_CONFIGURED when the policy names no target.
   */
  async settings(tenant: string, record: VolumeRecord | null, volume = record?.volume ?? ''): Promise<BackupSettings> {
    const policy = (await this.store.getTenant(tenant))?.policy ?? (record ? (await this.store.getTenantRevision(tenant, record.policyRevision))?.policy : undefined);
    const block = policy?.['default-options'].backup;
    if (!policy || !block?.target) {
      throw new ApiError(
        'BACKUPS_NOT_CONFIGURED',
        `the policy of tenant ${tenant} names no backup target, so ${tenant}/${volume} has no backups; an admin sets default-options.backup.target (docs/backups.md)`,
      );
    }
    const defaults = policyDefaults(policy).backup;
    const schedule = record?.runtime.backup ?? record?.options.backup;
    const keep = schedule?.keep ?? defaults?.keep ?? DEFAULT_BACKUP.keep;
    // A record in etcd is not trusted: tiers that keep nothing would leave no backup.
    const problem = retentionProblem(keep);
    if (problem) throw new ApiError('INVALID_OPTION', `backups.keep of ${tenant}/${volume} ${problem}; set it with volcli volume runtime set`, { field: 'backups.keep' });
    return {
      target: block.target,
      keep,
      frequency: schedule?.frequency ?? defaults?.frequency ?? DEFAULT_BACKUP.frequency,
      hook: block.hook ?? null,
    };
  }

  /** The target of one volume (its image name names a Ceph replica). */
  openTarget(settings: BackupSettings, tenant: string, volume: string, image: string): Promise<TargetVolume> {
    return this.connections.target(settings.target, tenant, volume, image);
  }

  view(entry: ManifestEntry, target: TargetVolume): BackupView {
    return {
      name: entry.name,
      parent: entry.parent,
      kind: entry.parent === null ? 'full' : 'incremental',
      bytes: entry.bytes,
      dataBytes: entry.dataBytes,
      sizeBytes: entry.sizeBytes,
      at: entry.at,
      ms: entry.ms,
      location: target.location(entry),
    };
  }

  // ---- taking backups ------------------------------------------------------------------------

  /**
   * Takes a backup now (volcli volume backup take); waits a while for a busy volume. `begin` runs
   * once the volume is locked, before the target is opened: what fails before it (no such volume,
   * no target configured, a busy volume) is a refusal; from there on the backup is under way (the
   * master records an operation there).
   */
  async take(tenant: string, volume: string, options: { signal?: AbortSignal; onProgress?: OnBackupProgress; begin?: () => Promise<void> } = {}): Promise<BackupView> {
    const record = await this.volume(tenant, volume);
    const settings = await this.settings(tenant, record);
    return this.run(record, settings, null, { ...options, waitMs: this.lockWaitMs });
  }

  /** The backup of schedule slot `slotMs` (volsupervisor); 'busy' without waiting long when another operation holds the volume. */
  async takeScheduled(record: VolumeRecord, slotMs: number, signal?: AbortSignal): Promise<ScheduledBackup> {
    if (signal?.aborted) return { outcome: 'aborted' };
    const current = await this.store.getVolume(record.tenant, record.volume);
    if (!current || current.createdAt !== record.createdAt) return { outcome: 'gone' };
    const settings = await this.settings(record.tenant, current);
    try {
      return { outcome: 'taken', backup: await this.run(current, settings, slotMs, { signal, waitMs: 1_000 }) };
    } catch (err) {
      if ((err as { code?: unknown }).code === 'BUSY') return { outcome: 'busy' };
      throw err;
    }
  }

  private async run(
    record: VolumeRecord,
    settings: BackupSettings,
    slotMs: number | null,
    options: { signal?: AbortSignal; onProgress?: OnBackupProgress; begin?: () => Promise<void>; waitMs: number },
  ): Promise<BackupView> {
    const { tenant, volume } = record;
    const { signal, onProgress, waitMs } = options;
    let done: { entry: ManifestEntry; target: TargetVolume };
    try {
      done = await this.withLock(
        tenant,
        volume,
        'backup',
        async (lockLost) => {
          await options.begin?.();
          const target = await this.openTarget(settings, tenant, volume, record.image);
          const result = await this.backupLocked(record, settings, target, this.bounded(signal, lockLost), onProgress);
          await this.record(record, target, result.manifest, { lastSlot: slotMs === null ? undefined : new Date(slotMs).toISOString() });
          return { entry: result.entry, target };
        },
        waitMs,
      );
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'BUSY') await this.recordError(record, err);
      throw err;
    }
    const view = this.view(done.entry, done.target);
    this.log.info({ tenant, volume, backup: view.name, kind: view.kind, bytes: view.bytes, ms: view.ms, target: done.target.describe }, 'backup taken');
    if (settings.hook) await this.hook(record, settings.hook, view);
    return view;
  }

  /** One backup, under the volume's lock: see the top of this file. */
  private async backupLocked(record: VolumeRecord, settings: BackupSettings, target: TargetVolume, signal: AbortSignal, onProgress?: OnBackupProgress): Promise<{ entry: ManifestEntry; manifest: Manifest }> {
    const { pool, image, tenant, volume } = record;
    const manifest = await target.readManifest();
    const tidied = await target.tidy(manifest);
    if (tidied.length > 0) this.log.warn({ tenant, volume, removed: tidied }, 'removed what an interrupted backup left in the target');
    const snaps = (await this.call(`listing snapshots of ${pool}/${image}`, () => this.storage.listSnapshots(pool, image))).map((s) => s.name);
    const base = nextBase(manifest, { pool, image, snapshots: snaps }, settings.keep, target.chained);
    const last = manifest.backups.at(-1)?.name;
    // Backup snapshots other than the last backup's are left by runs that died: the next diff never starts there.
    for (const stray of snaps.filter((s) => isBackupName(s) && s !== last)) {
      await this.call(`removing ${pool}/${image}@${stray}`, () => this.storage.removeSnapshot(pool, image, stray));
      this.log.warn({ tenant, volume, snapshot: stray }, 'removed the snapshot of an interrupted backup');
    }
    const started = this.clock.now();
    let name = backupName(started);
    for (let seq = 2; snaps.includes(name) || manifest.backups.some((b) => b.name === name); seq++) name = backupName(started, seq);
    await this.call(`snapshot ${pool}/${image}@${name}`, () => this.storage.createSnapshot(pool, image, name));
    try {
      const written = await target.write({ storage: this.storage, source: { pool, image }, from: base, to: name, signal, onProgress, afterExport: this.options.afterExport }, name);
      const finished = this.clock.now();
      const entry: ManifestEntry = { name, parent: base, ...written, source: { pool, image }, startedAt: new Date(started).toISOString(), at: new Date(finished).toISOString(), ms: Math.max(0, finished - started) };
      const plan = planBackupPrune({ ...manifest, backups: [...manifest.backups, entry] }, settings.keep, target.chained);
      const next: Manifest = { ...manifest, backups: plan.keep };
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('backup cancelled');
      try {
        await target.commit(next);
      } catch (err) {
        await target.drop([entry]).catch(() => undefined);
        throw err;
      }
      // It counts from here on; what follows only tidies up (and is retried by the next backup).
      await target.drop(plan.remove).catch((err: unknown) => this.log.warn({ err, tenant, volume }, 'could not remove pruned backups; the next backup tries again'));
      if (plan.remove.length > 0) this.log.info({ tenant, volume, removed: plan.remove.map((b) => b.name), keep: describeRetention(settings.keep) }, 'backups pruned');
      if (last && snaps.includes(last)) {
        await this.call(`removing ${pool}/${image}@${last}`, () => this.storage.removeSnapshot(pool, image, last)).catch((err: unknown) =>
          this.log.warn({ err, tenant, volume, snapshot: last }, 'could not remove the previous backup snapshot; the next backup does'),
        );
      }
      return { entry, manifest: next };
    } catch (err) {
      await this.call(`removing ${pool}/${image}@${name}`, () => this.storage.removeSnapshot(pool, image, name)).catch((cleanup: unknown) => {
        if (!isRbdError(cleanup, 'ENOENT')) this.log.warn({ err: cleanup, tenant, volume, snapshot: name }, 'could not remove the snapshot of a failed backup; the next backup does');
      });
      throw err;
    }
  }

  /** The etcd record after a backup: the kept backups with bytes and time, the slot, no error. */
  private async record(record: VolumeRecord, target: TargetVolume, manifest: Manifest, fields: { lastSlot?: string }): Promise<void> {
    const previous = await this.store.getBackupRecord(record.tenant, record.volume);
    const next: BackupRecord = {
      tenant: record.tenant,
      volume: record.volume,
      target: target.describe,
      backups: manifest.backups.map((b) => ({ name: b.name, parent: b.parent, bytes: b.bytes, dataBytes: b.dataBytes, sizeBytes: b.sizeBytes, ms: b.ms, at: b.at })),
      updatedAt: new Date(this.clock.now()).toISOString(),
    };
    const lastSlot = fields.lastSlot ?? previous?.lastSlot;
    if (lastSlot) next.lastSlot = lastSlot;
    if (previous?.lastHook) next.lastHook = previous.lastHook;
    await this.store.putBackupRecord(next);
  }

  private async recordError(record: VolumeRecord, err: unknown): Promise<void> {
    try {
      const previous = await this.store.getBackupRecord(record.tenant, record.volume);
      const at = new Date(this.clock.now()).toISOString();
      const message = err instanceof Error ? err.message : String(err);
      await this.store.putBackupRecord({ tenant: record.tenant, volume: record.volume, target: previous?.target ?? '', backups: previous?.backups ?? [], ...(previous?.lastSlot ? { lastSlot: previous.lastSlot } : {}), ...(previous?.lastHook ? { lastHook: previous.lastHook } : {}), lastError: { at, message }, updatedAt: at });
    } catch (recordErr) {
      this.log.warn({ err: recordErr }, 'could not record the backup error in etcd');
    }
  }

  private async hook(record: VolumeRecord, hook: string[], view: BackupView): Promise<void> {
    const result = await runHook(hook, { volume: `${record.tenant}/${record.volume}`, snapshot: view.name, file: view.location }, { allowed: this.config.hookAllow, timeoutMs: this.config.hookTimeoutMs });
    const fields = { tenant: record.tenant, volume: record.volume, backup: view.name, program: hook[0], ms: result.ms };
    if (result.ok) this.log.info(fields, 'backup hook ran');
    else this.log.error({ ...fields, problem: result.message }, 'backup hook failed (the backup itself is complete)');
    try {
      const previous = await this.store.getBackupRecord(record.tenant, record.volume);
      if (previous) {
        const lastHook = { at: new Date(this.clock.now()).toISOString(), backup: view.name, ok: result.ok, ...(result.message ? { message: result.message } : {}) };
        await this.store.putBackupRecord({ ...previous, lastHook });
      }
    } catch (err) {
      this.log.warn({ err }, 'could not record the hook result in etcd');
    }
  }

  // ---- reading -------------------------------------------------------------------------------

  /** The volume's backups, oldest first, as its target's manifest has them (the volume record may be gone). */
  async list(tenant: string, volume: string): Promise<BackupListing> {
    const record = await this.store.getVolume(tenant, volume);
    const settings = await this.settings(tenant, record, volume);
    const target = await this.openTarget(settings, tenant, volume, record?.image ?? `${tenant}.${volume}`);
    const manifest = await target.readManifest();
    const etcd = await this.store.getBackupRecord(tenant, volume);
    return {
      tenant,
      volume,
      target: target.describe,
      backups: manifest.backups.map((b) => this.view(b, target)),
      ...(etcd?.lastError ? { lastError: etcd.lastError } : {}),
      ...(etcd?.lastHook ? { lastHook: etcd.lastHook } : {}),
    };
  }

  /** The schedule of a volume's backups: its frequency in ms, or null when backups are off or not configured. */
  static frequencyOf(record: VolumeRecord): number | null {
    const runtime = record.runtime;
    if (runtime.backups !== true) return null;
    try {
      return parseFrequency(runtime.backup?.frequency ?? DEFAULT_BACKUP.frequency, { field: 'backups.frequency' });
    } catch {
      return null;
    }
  }
}
