// volsupervisor: several may run for redundancy; they elect a leader in etcd and only the leader
// runs the scheduler. The leader's key is bound to a lease of `electionTtlSeconds`: when the leader
// dies, the key vanishes within that TTL and a waiting candidate takes over, reading the last slot
// of every volume from etcd (so it neither repeats a slot nor waits a whole period for a due one).
// stop() resigns at once (the others take over immediately), then waits for running jobs.

import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { ExponentialBackoff, handleAll, noJitterGenerator, retry, type RetryPolicy } from 'cockatiel';
import type { Logger } from 'pino';
import type { ScheduledVolume } from '../metrics/families.js';
import type { Election } from '../state/kv.js';
import type { StateStore } from '../state/store.js';
import { systemClock, type Clock } from '../snapshots/clock.js';
import { SnapshotService, type ProtectedSnapshots } from '../snapshots/service.js';
import type { Storage } from '../storage/types.js';
import { BackupScheduler, type BackupSchedulerOptions, type BackupSchedulerStatus } from '../backups/scheduler.js';
import { BackupService, type BackupServiceOptions } from '../backups/service.js';
import { Scheduler, type SchedulerOptions, type SchedulerStatus } from './scheduler.js';

export interface SupervisorOptions {
  store: StateStore;
  storage: Storage;
  logger: Logger;
  clock?: Clock;
  /** TTL of the leader's lease: how long a dead leader blocks the others (default 10 s). */
  electionTtlSeconds?: number;
  scheduler?: SchedulerOptions;
  /** Bound of rollback/flatten calls to Ceph (default 1 h). */
  longTimeoutMs?: number;
  /** How long stop() waits for running jobs after resigning (default 10 s). */
  stopTimeoutMs?: number;
  /** Scheduled backups (src/backups), beside the snapshot scheduler; absent: none. */
  backups?: Pick<BackupServiceOptions, 'config' | 'afterExport' | 'openTargetStorage'> & BackupSchedulerOptions;
  /**
   * Snapshots pruning must retain whatever `keep` says (the backups' chain bases). Default: none.
   * The backups wire theirs here (main.ts), one line.
   */
  protectedSnapshots?: ProtectedSnapshots;
}

export interface SupervisorIdentity {
  id: string;
  host: string;
  pid: number;
  startedAt: string;
}

export interface SupervisorStatus {
  self: SupervisorIdentity;
  role: 'leader' | 'candidate' | 'stopped';
  leader: SupervisorIdentity | string | null;
  leaderSince: string | null;
  scheduler: SchedulerStatus | null;
  backups?: BackupSchedulerStatus | null;
}

export class Supervisor {
  readonly identity: SupervisorIdentity;
  private readonly store: StateStore;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly ttl: number;
  private readonly stopTimeoutMs: number;
  private readonly scheduler: Scheduler;
  private readonly backupService: BackupService | null = null;
  private readonly backups: BackupScheduler | null = null;
  private readonly election: Election;
  private readonly campaignRetry: RetryPolicy;
  private term: AbortController | null = null;
  private leaderSince: number | null = null;
  private stopping = false;
  private running: Promise<void> | null = null;
  private readonly stopped = new AbortController();

  constructor(options: SupervisorOptions) {
    this.store = options.store;
    this.log = options.logger;
    this.clock = options.clock ?? systemClock;
    this.ttl = options.electionTtlSeconds ?? 10;
    if (!Number.isInteger(this.ttl) || this.ttl < 1) throw new RangeError(`election TTL must be a whole number of seconds >= 1, got ${this.ttl}`);
    this.stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
    this.identity = { id: randomUUID(), host: hostname(), pid: process.pid, startedAt: new Date(this.clock.now()).toISOString() };
    const service = new SnapshotService(options.storage, options.store, {
      clock: this.clock,
      logger: this.log,
      longTimeoutMs: options.longTimeoutMs,
      // A leader that dies must not block its successor through its operation locks longer than
      // through its leadership.
      lockTtlSeconds: this.ttl,
      protectedSnapshots: options.protectedSnapshots,
    });
    this.scheduler = new Scheduler(options.store, service, this.clock, this.log, options.scheduler);
    if (options.backups) {
      const { config, afterExport, openTargetStorage, ...scheduling } = options.backups;
      this.backupService = new BackupService(options.storage, options.store, { config, afterExport, openTargetStorage, clock: this.clock, logger: this.log, lockTtlSeconds: this.ttl });
      this.backups = new BackupScheduler(options.store, this.backupService, this.clock, this.log, scheduling);
    }
    this.election = this.store.supervisorElection(this.ttl);
    this.election.onLost((err) => {
      this.log.error({ err }, 'leadership lost (lease expired or leader key deleted): stopping work and campaigning again');
      this.term?.abort(err);
    });
    // campaignRetry: a campaign that fails (etcd unreachable) is tried again after 500 ms,
    // doubling up to 10 s, as long as it takes; stop() ends the wait. A won campaign starts the
    // next one from 500 ms again.
    this.campaignRetry = retry(handleAll, {
      backoff: new ExponentialBackoff({ initialDelay: 500, maxDelay: 10_000, generator: noJitterGenerator }),
    });
    this.campaignRetry.onRetry((event) => {
      const err = 'error' in event ? event.error : undefined;
      this.log.warn({ err, retryInMs: event.delay }, 'campaign failed (etcd unreachable?); trying again');
    });
  }

  get isLeader(): boolean {
    return this.term !== null && !this.term.signal.aborted;
  }

  /** Campaigns, leads while elected, campaigns again after a loss; resolves after stop(). */
  start(): Promise<void> {
    this.running ??= this.loop();
    return this.running;
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      try {
        await this.campaign();
      } catch {
        break; // only stop() ends a campaign without leadership
      }
      if (this.stopping) break;
      const term = new AbortController();
      this.term = term;
      this.leaderSince = this.clock.now();
      this.log.info({ id: this.identity.id }, 'leading: taking scheduled snapshots');
      try {
        await Promise.all([this.scheduler.run(term.signal), this.backups?.run(term.signal)]);
      } finally {
        this.term = null;
        this.leaderSince = null;
      }
      if (!this.stopping) this.log.info('no longer leading');
    }
  }

  /** Campaigns until elected, under campaignRetry; rejects once stop() is called. */
  private campaign(): Promise<void> {
    const stopped = this.stopped.signal;
    const elected = this.campaignRetry.execute(async () => {
      if (stopped.aborted) throw new Error('stopping');
      this.log.info({ ttlSeconds: this.ttl }, 'campaigning for leadership');
      await this.election.campaign(JSON.stringify(this.identity));
    }, stopped);
    elected.catch(() => undefined); // what settles after stop() is of no interest
    // cockatiel's wait between attempts cannot be cut short: stop() must not wait for it.
    return new Promise<void>((resolve, reject) => {
      const onStop = () => reject(new Error('stopping'));
      if (stopped.aborted) return onStop();
      stopped.addEventListener('abort', onStop, { once: true });
      void elected.then(resolve, reject).finally(() => stopped.removeEventListener('abort', onStop));
    });
  }

  /** Resigns at once, then waits (bounded) for running jobs and the loop to end. Idempotent. */
  async stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.stopped.abort();
      this.term?.abort(new Error('stopping'));
      const started = this.clock.now();
      try {
        await this.election.resign();
        this.log.info({ ms: this.clock.now() - started }, 'leadership released');
      } catch (err) {
        this.log.warn({ err }, 'could not resign (etcd unreachable?): the leader key expires after its TTL');
      }
    }
    if (this.running) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), this.stopTimeoutMs);
      });
      const result = await Promise.race([this.running.then(() => 'done' as const), timeout]);
      clearTimeout(timer);
      if (result === 'timeout') this.log.warn({ ms: this.stopTimeoutMs }, 'jobs still running at shutdown: not waiting longer');
    }
    await this.backupService?.close();
  }

  /** The volumes the scheduler takes snapshots of, while this process leads (for the metrics: src/metrics). */
  scheduled(): ScheduledVolume[] {
    return this.isLeader ? this.scheduler.scheduled() : [];
  }

  /** What it is doing (SIGUSR1 logs this). */
  async status(): Promise<SupervisorStatus> {
    let leader: SupervisorIdentity | string | null = null;
    try {
      const value = await this.election.leader();
      leader = value === null ? null : (JSON.parse(value) as SupervisorIdentity);
    } catch (err) {
      leader = `unknown: ${(err as Error).message}`;
    }
    return {
      self: this.identity,
      role: this.stopping ? 'stopped' : this.isLeader ? 'leader' : 'candidate',
      leader,
      leaderSince: this.leaderSince === null ? null : new Date(this.leaderSince).toISOString(),
      scheduler: this.isLeader ? this.scheduler.status() : null,
      ...(this.backups ? { backups: this.isLeader ? this.backups.status() : null } : {}),
    };
  }
}
