// Long operations as something a client can poll (GET /v1/operations/:id): a resize, a remove of a
// large image, a copy that flattens, a backup taken or restored on demand. A route hands its work to OperationRunner.run: the work does
// its checks first (a refusal is an ordinary error answer and leaves no operation behind), calls
// `accept` at its point of no return, which records the operation in etcd (src/state/progress.ts,
// with a liveness mark bound to a lease of this master), and reports progress through the handle it
// gets; the runner records the end (done with a result, or failed with the error as the API would
// answer it). The client gets the operation as soon as it is accepted (?wait=false) or the usual
// answer at the end.
//
// Progress goes to etcd at most once a second per operation (and always at the end), so a call that
// reports every 100 ms costs etcd nothing much. A master that dies mid-way leaves its record
// `running` until its lease lapses (10 s), after which readers see it `interrupted`.

import type { FastifyBaseLogger } from 'fastify';
import type { Lease } from '../state/kv.js';
import type { OperationRecord } from '../state/records.js';
import { timeId, type StateStore } from '../state/store.js';
import type { ProgressListener } from '../storage/types.js';
import { toErrorBody } from './errors.js';

/** What an operation is about, given when it is accepted. */
export interface OperationSpec {
  kind: 'resize' | 'remove' | 'copy' | 'backup' | 'restore' | 'group-rollback';
  tenant: string;
  /** The volume (a group rollback: the group's name). */
  volume: string;
  /** A copy's new volume, or the new volume a backup is restored into. */
  target?: { tenant: string; volume: string };
  /** The token that asked for it. */
  by: string;
  /** Its first step, e.g. "growing the image". */
  message: string;
}

/** The handle a running operation's work reports through. */
export interface Progress {
  readonly id: string;
  /** A new step (what it does now); `total`/`unit` start its counting (default: the step counts as 0 of 1). */
  step(message: string, count?: { done?: number; total?: number; unit?: string }): void;
  /** How far the current step is: `done` of `total` (in its unit). */
  report(done: number, total: number): void;
  /** A Storage/backup progress listener that reports into this step (done/total in `unit`). */
  listener(unit: string): ProgressListener;
}

/** How many finished operations etcd keeps: the newest 1,000, none older than 7 days (the master prunes them). */
export const OPERATION_BOUNDS = { maxCount: 1_000, maxAgeMs: 7 * 86_400_000 } as const;

/** How often (at most) a running operation's progress is written to etcd. */
export const PROGRESS_WRITE_MS = 1_000;

class RunningOperation implements Progress {
  record: OperationRecord;
  private dirty = false;
  private lastWrite = 0;
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private ended = false;

  constructor(
    initial: OperationRecord,
    readonly lease: Lease,
    private readonly store: StateStore,
    private readonly log: FastifyBaseLogger,
  ) {
    this.record = initial;
  }

  get id(): string {
    return this.record.id;
  }

  step(message: string, count: { done?: number; total?: number; unit?: string } = {}): void {
    this.record = { ...this.record, message, done: count.done ?? 0, total: count.total ?? 1, unit: count.unit ?? 'steps' };
    this.changed(true);
  }

  report(done: number, total: number): void {
    if (!Number.isFinite(done) || !Number.isFinite(total) || done < 0 || total < 0) return;
    this.record = { ...this.record, done, total };
    this.changed(false);
  }

  listener(unit: string): ProgressListener {
    this.record = { ...this.record, unit };
    return (done, total) => this.report(done, total);
  }

  /** Schedules a write: at once for a new step if the last write is a second old, else when it is. */
  private changed(urgent: boolean): void {
    if (this.ended) return;
    this.dirty = true;
    if (this.timer) return;
    const wait = Math.max(0, this.lastWrite + PROGRESS_WRITE_MS - Date.now());
    if (urgent && wait === 0) {
      void this.flush();
      return;
    }
    this.timer = setTimeout(() => void this.flush(), wait);
    this.timer.unref();
  }

  private flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.dirty) return this.writing;
    this.dirty = false;
    this.lastWrite = Date.now();
    const { done, total, unit, message } = this.record;
    this.writing = this.writing
      .then(() => this.store.updateOperation(this.id, (current) => ({ ...current, done, total, unit, message })))
      .then(
        () => undefined,
        (err: unknown) => this.log.debug({ err, operation: this.id }, 'could not record the progress of an operation; the next report tries again'),
      );
    return this.writing;
  }

  /** Records the end and lets the liveness mark go. */
  async end(outcome: { result: Record<string, unknown>; message: string } | { error: unknown }): Promise<OperationRecord> {
    this.ended = true;
    if (this.timer) clearTimeout(this.timer);
    await this.writing;
    const at = new Date().toISOString();
    let final: OperationRecord;
    if ('error' in outcome) {
      const { body } = toErrorBody(outcome.error);
      final = { ...this.record, state: 'failed', error: body, message: `failed while ${this.record.message}`, finishedAt: at };
    } else {
      final = { ...this.record, state: 'done', done: this.record.total, result: outcome.result, message: outcome.message, finishedAt: at };
    }
    try {
      const stored = await this.store.updateOperation(this.id, () => final);
      if (!stored) this.log.warn({ operation: this.id }, 'the operation was marked interrupted meanwhile (this master lost its etcd lease); its end is not recorded');
      this.record = stored ?? final;
    } catch (err) {
      this.log.error({ err, operation: this.id }, 'could not record the end of an operation; readers will see it interrupted');
      this.record = final;
    }
    await this.lease.revoke().catch(() => undefined);
    return this.record;
  }
}

/** What the work of an operation calls at its point of no return. */
export type Accept = (spec: OperationSpec) => Promise<Progress>;

/** The work's outcome: the value for the route, the operation's result and final message. */
export interface WorkResult<T> {
  value: T;
  result: Record<string, unknown>;
  message: string;
}

export interface RunOutcome<T> {
  /** The operation as recorded (null when the work ended without accepting). */
  operation: OperationRecord | null;
  /** The work's value; absent when the run answered at acceptance (`wait: false`). */
  value?: T;
}

export interface OperationRunnerOptions {
  store: StateStore;
  log: FastifyBaseLogger;
  /** TTL of an operation's liveness lease: how long after this master dies readers still see it running (default 10 s). */
  leaseTtlSeconds?: number;
}

export class OperationRunner {
  private readonly running = new Set<Promise<unknown>>();

  constructor(private readonly options: OperationRunnerOptions) {}

  /**
   * Runs `work` as an operation. `wait`: answer with the work's value at its end (its failure is
   * thrown, after being recorded); else answer as soon as the work accepts (its failure after that
   * is only recorded). A failure before `accept` is thrown either way and records nothing.
   */
  async run<T>(work: (accept: Accept) => Promise<WorkResult<T>>, options: { wait: boolean }): Promise<RunOutcome<T>> {
    let op: RunningOperation | null = null;
    let onAccepted: (op: RunningOperation) => void = () => undefined;
    const accepted = new Promise<RunningOperation>((resolve) => (onAccepted = resolve));
    const accept: Accept = async (spec) => {
      if (op) throw new Error('an operation accepts once');
      op = await this.begin(spec);
      onAccepted(op);
      return op;
    };
    const finished = (async (): Promise<RunOutcome<T>> => {
      let outcome: WorkResult<T>;
      try {
        outcome = await work(accept);
      } catch (err) {
        if (op) await (op as RunningOperation).end({ error: err });
        throw err;
      }
      const record = op ? await (op as RunningOperation).end({ result: outcome.result, message: outcome.message }) : null;
      return { operation: record, value: outcome.value };
    })();
    const tracked = finished.catch(() => undefined);
    this.running.add(tracked);
    void tracked.finally(() => this.running.delete(tracked));
    if (options.wait) return finished;
    const first = await Promise.race([accepted.then((o) => ({ accepted: o })), finished.then((r) => ({ finished: r }))]);
    if ('finished' in first) return first.finished;
    return { operation: first.accepted.record };
  }

  private async begin(spec: OperationSpec): Promise<RunningOperation> {
    const { store, log } = this.options;
    const lease = await store.lease(this.options.leaseTtlSeconds ?? 10);
    const at = new Date().toISOString();
    const record: OperationRecord = {
      id: timeId(),
      kind: spec.kind,
      tenant: spec.tenant,
      volume: spec.volume,
      ...(spec.target ? { target: spec.target } : {}),
      state: 'running',
      done: 0,
      total: 1,
      unit: 'steps',
      message: spec.message,
      by: spec.by,
      owner: store.owner,
      startedAt: at,
      updatedAt: at,
    };
    try {
      if (!(await store.startOperation(record, lease))) throw new Error(`operation id ${record.id} is taken (a clash of random ids): try again`);
    } catch (err) {
      await lease.revoke().catch(() => undefined);
      throw err;
    }
    log.info({ operation: record.id, kind: spec.kind, volume: `${spec.tenant}/${spec.volume}`, by: spec.by }, 'operation started');
    return new RunningOperation(record, lease, store, log);
  }

  /** Waits for the operations running here (the master is closing); their records end as they end. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }
}
