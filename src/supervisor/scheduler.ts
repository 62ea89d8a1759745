// The leader's periodic work, one tick at a time: read every volume from etcd, take the snapshots
// that are due, prune, and flatten copies made from snapshots. Reading the volumes on every tick is
// what makes runtime changes (volcli volume runtime ...) and volumes created or removed take effect
// without a restart; the tick interval (default 1 s) is the delay.
//
// Each volume has at most one snapshot job (take, then prune) and one flatten job running; the
// tick never waits for jobs, so a slow Ceph call on one volume delays no other. A job that fails is
// tried again after a backoff. Everything here is driven by an injected clock.

import type { Logger } from 'pino';
import { supervisorJobDuration, type ScheduledVolume } from '../metrics/families.js';
import type { StateCorruptError, StateStore } from '../state/store.js';
import type { VolumeRecord } from '../state/records.js';
import type { Clock } from '../snapshots/clock.js';
import { dueSlot, nextDueAt, scheduleOf, type ScheduleSettings } from '../snapshots/schedule.js';
import type { SnapshotService } from '../snapshots/service.js';
import { formatDuration } from '../policy/units.js';
import { describeRetention, sameRetention, type Retention } from '../snapshots/retention.js';

export interface SchedulerOptions {
  /** How often volumes are read and checked (default 1000 ms). */
  tickMs?: number;
  /** Snapshot and flatten jobs running at once, over all volumes (default 8). */
  concurrency?: number;
  /** Longest wait after failures before a volume's job is tried again (default 60 s). */
  maxBackoffMs?: number;
}

interface VolumeState {
  tenant: string;
  volume: string;
  /** Tells a volume from a later one of the same name. */
  createdAt: string;
  settings: ScheduleSettings | null;
  problem: string | null;
  /** The last slot taken; undefined until read from etcd in this term. */
  lastSlot: number | null | undefined;
  /** `keep` of the last successful prune; prune again when it changes. */
  prunedKeep: Retention | null;
  snapshotJob: Promise<void> | null;
  flattenJob: Promise<void> | null;
  /** True once the volume is known not to depend on a parent snapshot. */
  independent: boolean;
  failures: number;
  retryAt: number;
  flattenFailures: number;
  flattenRetryAt: number;
  lastSnapshot: string | null;
  lastError: string | null;
}

export interface VolumeStatus {
  volume: string;
  schedule: string;
  lastSlot: string | null;
  nextDue: string | null;
  running: string[];
  lastSnapshot: string | null;
  lastError: string | null;
}

export interface SchedulerStatus {
  lastTick: string | null;
  volumes: VolumeStatus[];
  running: number;
}

const keyOf = (tenant: string, volume: string) => `${tenant}/${volume}`;

export class Scheduler {
  private readonly tickMs: number;
  private readonly concurrency: number;
  private readonly maxBackoffMs: number;
  private readonly states = new Map<string, VolumeState>();
  private readonly jobs = new Set<Promise<void>>();
  /** Keys of corrupt volume records already logged, so that each is logged once, not every tick. */
  private readonly corruptKeys = new Set<string>();
  private lastTick: number | null = null;
  private signal: AbortSignal = new AbortController().signal;

  constructor(
    private readonly store: StateStore,
    private readonly service: SnapshotService,
    private readonly clock: Clock,
    private readonly log: Logger,
    options: SchedulerOptions = {},
  ) {
    this.tickMs = options.tickMs ?? 1000;
    this.concurrency = options.concurrency ?? 8;
    this.maxBackoffMs = options.maxBackoffMs ?? 60_000;
  }

  /**
   * Ticks until `signal` aborts (leadership lost or shutdown), then waits for running jobs. Starts
   * from a clean slate: what another leader did meanwhile is read again from etcd.
   */
  async run(signal: AbortSignal): Promise<void> {
    this.begin(signal);
    let failures = 0;
    while (!signal.aborted) {
      try {
        await this.tick();
        if (failures > 0) this.log.info({ failures }, 'reading volumes works again');
        failures = 0;
      } catch (err) {
        // etcd away: say so at once, then every 30 ticks, not every tick.
        if (failures++ % 30 === 0) this.log.warn({ err, failures }, 'cannot read volumes (etcd?); trying again every tick');
      }
      await this.clock.sleep(this.tickMs, signal);
    }
    await this.idle();
  }

  /** Starts a leadership term (run() does it; tests that call tick() directly call it first). */
  begin(signal: AbortSignal): void {
    this.signal = signal;
    this.states.clear();
  }

  /** Resolves once no job is running. */
  async idle(): Promise<void> {
    while (this.jobs.size > 0) await Promise.allSettled([...this.jobs]);
  }

  /** One pass over every volume: launches the jobs that are due, does not wait for them. */
  async tick(): Promise<void> {
    const volumes = await this.store.listVolumes(undefined, { onCorrupt: (err) => this.reportCorrupt(err) });
    const now = this.clock.now();
    this.lastTick = now;
    const seen = new Set<string>();
    for (const record of volumes) {
      if (this.signal.aborted) return;
      const key = keyOf(record.tenant, record.volume);
      seen.add(key);
      const state = this.stateFor(record);
      this.updateSettings(state, record);
      // A copy is snapshotted only once flattened: a snapshot of an unflattened clone would keep
      // its parent snapshot protected (without deep-flatten, flattening leaves snapshots attached).
      if (state.settings && state.independent && !state.snapshotJob && now >= state.retryAt && this.jobs.size < this.concurrency) {
        this.considerSnapshot(state, record, state.settings, now);
      }
      if (record.source && !state.independent && !state.flattenJob && now >= state.flattenRetryAt && this.jobs.size < this.concurrency) {
        this.startFlatten(state, record);
      }
    }
    for (const [key, state] of this.states) {
      if (!seen.has(key) && !state.snapshotJob && !state.flattenJob) {
        this.states.delete(key);
        this.log.info({ tenant: state.tenant, volume: state.volume }, 'volume removed: no longer scheduled');
      }
    }
  }

  private reportCorrupt(err: StateCorruptError): void {
    if (this.corruptKeys.has(err.key)) return;
    this.corruptKeys.add(err.key);
    this.log.error({ key: err.key, err }, 'corrupt volume record: skipped; fix or force-remove it');
  }

  private stateFor(record: VolumeRecord): VolumeState {
    const key = keyOf(record.tenant, record.volume);
    let state = this.states.get(key);
    if (state && state.createdAt !== record.createdAt && !state.snapshotJob && !state.flattenJob) state = undefined;
    if (!state) {
      state = {
        tenant: record.tenant,
        volume: record.volume,
        createdAt: record.createdAt,
        settings: null,
        problem: null,
        lastSlot: undefined,
        prunedKeep: null,
        snapshotJob: null,
        flattenJob: null,
        independent: !record.source,
        failures: 0,
        retryAt: 0,
        flattenFailures: 0,
        flattenRetryAt: 0,
        lastSnapshot: null,
        lastError: null,
      };
      this.states.set(key, state);
    }
    return state;
  }

  private updateSettings(state: VolumeState, record: VolumeRecord): void {
    const schedule = scheduleOf(record.runtime);
    const before = state.settings;
    const beforeProblem = state.problem;
    if (schedule.state === 'on') {
      state.settings = schedule.settings;
      state.problem = null;
    } else {
      state.settings = null;
      state.problem = schedule.state === 'invalid' ? schedule.problem : null;
    }
    const fields = { tenant: record.tenant, volume: record.volume };
    if (state.problem && state.problem !== beforeProblem) {
      this.log.error({ ...fields, problem: state.problem }, 'volume has invalid snapshot settings: not scheduled; fix them with volcli volume runtime');
    }
    const describe = (s: ScheduleSettings | null) => (s ? `every ${formatDuration(s.frequencyMs)}, ${describeRetention(s.keep)}` : 'off');
    if (describe(before) !== describe(state.settings) && !(before === null && state.settings === null)) {
      this.log.info({ ...fields, schedule: describe(state.settings), was: before ? describe(before) : undefined }, 'snapshot schedule');
    }
  }

  private considerSnapshot(state: VolumeState, record: VolumeRecord, settings: ScheduleSettings, now: number): void {
    // Decide inside the job: the last slot may have to be read from etcd first.
    const needsPrune = state.prunedKeep === null || !sameRetention(state.prunedKeep, settings.keep);
    if (state.lastSlot !== undefined && dueSlot(now, settings.frequencyMs, state.lastSlot) === null && !needsPrune) return;
    this.launch(state, 'snapshotJob', async () => {
      if (state.lastSlot === undefined) state.lastSlot = (await this.store.getLastSnapshot(record.tenant, record.volume))?.getTime() ?? null;
      const slot = dueSlot(this.clock.now(), settings.frequencyMs, state.lastSlot);
      const fields = { tenant: record.tenant, volume: record.volume };
      if (this.signal.aborted || (slot === null && !needsPrune)) return;
      // The snapshot and the prune after it go under one operation lock (runScheduled).
      const run = await this.service.runScheduled(record, { slotMs: slot, keep: slot !== null || needsPrune ? settings.keep : null }, this.signal);
      if ('outcome' in run) {
        if (run.outcome === 'busy') this.log.debug(fields, 'volume busy with another operation: snapshot on the next tick');
        return;
      }
      const result = run.taken;
      if (result && (result.outcome === 'taken' || result.outcome === 'existed')) {
        state.lastSlot = slot;
        state.lastSnapshot = result.name;
        this.log.info({ ...fields, snapshot: result.name, existed: result.outcome === 'existed' || undefined }, result.outcome === 'taken' ? 'scheduled snapshot taken' : 'scheduled snapshot existed already: recorded');
      }
      const pruned = run.pruned;
      if (!pruned || 'outcome' in pruned) return;
      if (pruned.failed.length === 0) state.prunedKeep = settings.keep;
      if (pruned.removed.length > 0 || pruned.retained.length > 0) {
        this.log.info({ ...fields, keep: settings.keep, removed: pruned.removed, retained: pruned.retained.length > 0 ? pruned.retained : undefined }, 'snapshots pruned');
      }
    });
  }

  private startFlatten(state: VolumeState, record: VolumeRecord): void {
    this.launch(state, 'flattenJob', async () => {
      const result = await this.service.finishClone(record, this.signal);
      if (result === 'flattened' || result === 'not-a-clone') state.independent = true;
    });
  }

  private launch(state: VolumeState, slot: 'snapshotJob' | 'flattenJob', fn: () => Promise<void>): void {
    const fields = { tenant: state.tenant, volume: state.volume };
    const run = async () => {
      const end = supervisorJobDuration.startTimer({ job: slot === 'snapshotJob' ? 'snapshot' : 'flatten' });
      try {
        await fn();
        end({ result: 'ok' });
        if (slot === 'snapshotJob') {
          state.failures = 0;
          state.lastError = null;
        } else state.flattenFailures = 0;
      } catch (err) {
        end({ result: 'error' });
        const failures = slot === 'snapshotJob' ? ++state.failures : ++state.flattenFailures;
        const backoff = Math.min(this.maxBackoffMs, 1000 * 2 ** Math.min(failures - 1, 16));
        if (slot === 'snapshotJob') state.retryAt = this.clock.now() + backoff;
        else state.flattenRetryAt = this.clock.now() + backoff;
        state.lastError = (err as Error).message;
        this.log.warn({ ...fields, err, job: slot === 'snapshotJob' ? 'snapshot' : 'flatten', retryInMs: backoff }, 'supervisor job failed');
      }
    };
    const job: Promise<void> = run().finally(() => {
      state[slot] = null;
      this.jobs.delete(job);
    });
    state[slot] = job;
    this.jobs.add(job);
  }

  /** The volumes with a schedule, and when each one's last good snapshot's slot began (its creation before the first). */
  scheduled(): ScheduledVolume[] {
    return [...this.states.values()]
      .filter((s) => s.settings !== null)
      .map((s) => ({
        tenant: s.tenant,
        volume: s.volume,
        frequencyMs: s.settings!.frequencyMs,
        lastGoodMs: s.lastSlot === undefined ? null : (s.lastSlot ?? Date.parse(s.createdAt)),
      }));
  }

  status(): SchedulerStatus {
    const now = this.clock.now();
    const iso = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : new Date(ms).toISOString());
    return {
      lastTick: iso(this.lastTick),
      running: this.jobs.size,
      volumes: [...this.states.values()].map((s) => ({
        volume: keyOf(s.tenant, s.volume),
        schedule:
          (s.settings ? `every ${formatDuration(s.settings.frequencyMs)}, ${describeRetention(s.settings.keep)}` : s.problem ? `invalid: ${s.problem}` : 'off') +
          (s.independent ? '' : ' (a copy: waits until flattened)'),
        lastSlot: iso(s.lastSlot),
        nextDue: s.settings && s.lastSlot !== undefined ? iso(Math.max(nextDueAt(now, s.settings.frequencyMs, s.lastSlot), s.retryAt)) : null,
        running: [s.snapshotJob ? 'snapshot' : null, s.flattenJob ? 'flatten' : null].filter((x): x is string => x !== null),
        lastSnapshot: s.lastSnapshot,
        lastError: s.lastError,
      })),
    };
  }
}
