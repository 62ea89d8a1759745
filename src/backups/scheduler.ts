// The leading volsupervisor's backups, beside its snapshot scheduler (which it does not touch): every
// tick, read the volumes, and for each whose runtime options turn backups on, take the backup of
// the current slot of its frequency unless one was taken for it (the last slot is kept in the
// volume's backup record in etcd, so that a new leader neither repeats nor skips a slot). A few
// backups at a time over all volumes (they read whole images); a failed one is tried again after a
// backoff, and its error is in the backup record (volcli volume backup list shows it).

import type { Logger } from 'pino';
import type { VolumeRecord } from '../state/records.js';
import type { StateStore } from '../state/store.js';
import type { Clock } from '../snapshots/clock.js';
import { dueSlot } from '../snapshots/schedule.js';
import { BackupService } from './service.js';

export interface BackupSchedulerOptions {
  /** How often volumes are read and checked (default 5000 ms). */
  tickMs?: number;
  /** Backups running at once, over all volumes (default 2). */
  concurrency?: number;
  /** Longest wait after failures before a volume's backup is tried again (default 5 min). */
  maxBackoffMs?: number;
}

interface VolumeState {
  createdAt: string;
  /** The last slot backed up; undefined until read from etcd in this term. */
  lastSlot: number | null | undefined;
  job: Promise<void> | null;
  failures: number;
  retryAt: number;
}

export interface BackupSchedulerStatus {
  running: string[];
  failing: Array<{ volume: string; failures: number; retryAt: string }>;
}

export class BackupScheduler {
  private readonly tickMs: number;
  private readonly concurrency: number;
  private readonly maxBackoffMs: number;
  private readonly states = new Map<string, VolumeState>();
  private readonly jobs = new Set<Promise<void>>();
  private signal: AbortSignal = new AbortController().signal;

  constructor(
    private readonly store: StateStore,
    private readonly service: BackupService,
    private readonly clock: Clock,
    private readonly log: Logger,
    options: BackupSchedulerOptions = {},
  ) {
    this.tickMs = options.tickMs ?? 5000;
    this.concurrency = options.concurrency ?? 2;
    this.maxBackoffMs = options.maxBackoffMs ?? 300_000;
  }

  /** Ticks until `signal` aborts (leadership lost, shutdown), then waits for running backups (they are cancelled by it). */
  async run(signal: AbortSignal): Promise<void> {
    this.signal = signal;
    this.states.clear();
    let failures = 0;
    while (!signal.aborted) {
      try {
        await this.tick();
        failures = 0;
      } catch (err) {
        if (failures++ % 30 === 0) this.log.warn({ err, failures }, 'backups: cannot read volumes (etcd?); trying again every tick');
      }
      await this.clock.sleep(this.tickMs, signal);
    }
    await this.idle();
  }

  async idle(): Promise<void> {
    while (this.jobs.size > 0) await Promise.allSettled([...this.jobs]);
  }

  /** One pass: launches the backups that are due, does not wait for them. */
  async tick(): Promise<void> {
    const volumes = await this.store.listVolumes(undefined, { onCorrupt: () => undefined });
    const now = this.clock.now();
    for (const record of volumes) {
      if (this.signal.aborted || this.jobs.size >= this.concurrency) return;
      const frequencyMs = BackupService.frequencyOf(record);
      if (frequencyMs === null) continue;
      const key = `${record.tenant}/${record.volume}`;
      let state = this.states.get(key);
      if (!state || (state.createdAt !== record.createdAt && !state.job)) {
        state = { createdAt: record.createdAt, lastSlot: undefined, job: null, failures: 0, retryAt: 0 };
        this.states.set(key, state);
      }
      if (state.job || now < state.retryAt) continue;
      if (state.lastSlot !== undefined && dueSlot(now, frequencyMs, state.lastSlot) === null) continue;
      this.launch(state, record, frequencyMs);
    }
  }

  private launch(state: VolumeState, record: VolumeRecord, frequencyMs: number): void {
    const fields = { tenant: record.tenant, volume: record.volume };
    const run = async () => {
      try {
        if (state.lastSlot === undefined) {
          const lastSlot = (await this.store.getBackupRecord(record.tenant, record.volume))?.lastSlot;
          state.lastSlot = lastSlot ? Date.parse(lastSlot) : null;
        }
        const slot = dueSlot(this.clock.now(), frequencyMs, state.lastSlot);
        if (slot === null || this.signal.aborted) return;
        const result = await this.service.takeScheduled(record, slot, this.signal);
        if (result.outcome === 'taken') state.lastSlot = slot;
        if (result.outcome === 'busy') this.log.debug(fields, 'volume busy with another operation: backup on the next tick');
        state.failures = 0;
      } catch (err) {
        state.failures++;
        const backoff = Math.min(this.maxBackoffMs, 1000 * 2 ** Math.min(state.failures - 1, 16));
        state.retryAt = this.clock.now() + backoff;
        if (!this.signal.aborted) this.log.warn({ ...fields, err, failures: state.failures, retryInMs: backoff }, 'scheduled backup failed');
      }
    };
    const job: Promise<void> = run().finally(() => {
      state.job = null;
      this.jobs.delete(job);
    });
    state.job = job;
    this.jobs.add(job);
  }

  status(): BackupSchedulerStatus {
    const running: string[] = [];
    const failing: BackupSchedulerStatus['failing'] = [];
    for (const [key, s] of this.states) {
      if (s.job) running.push(key);
      if (s.failures > 0) failing.push({ volume: key, failures: s.failures, retryAt: new Date(s.retryAt).toISOString() });
    }
    return { running, failing };
  }
}
