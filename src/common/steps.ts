// Where an operation's time goes, step by step: a Mount's lock, map, probe, mount and so on, each
// in milliseconds. The mount path records its steps here and puts them into the log line that ends
// the operation (and hands them to an observer: the bench, metrics); a mapper records its own
// sub-steps ("map.rbd-fuse", ...) into the same record.

import { performance } from 'node:perf_hooks';

/** What a mapper or a step records into (StepTimes; a no-op when nobody measures). */
export interface StepRecorder {
  /** Runs `fn` and adds its wall time to `step` (also when it throws). */
  time<T>(step: string, fn: () => Promise<T>): Promise<T>;
}

/** The milliseconds of each named step of one operation, in the order they first ran. */
export class StepTimes implements StepRecorder {
  readonly ms: Record<string, number> = {};
  private readonly started = performance.now();

  async time<T>(step: string, fn: () => Promise<T>): Promise<T> {
    const t = performance.now();
    try {
      return await fn();
    } finally {
      this.add(step, performance.now() - t);
    }
  }

  /** Adds `ms` to `step` (a step that runs twice counts twice). */
  add(step: string, ms: number): void {
    this.ms[step] = Math.round(((this.ms[step] ?? 0) + ms) * 100) / 100;
  }

  /** Milliseconds since this record was made. */
  elapsed(): number {
    return Math.round((performance.now() - this.started) * 100) / 100;
  }
}

/** Runs `fn` as step `step` of `steps`, or just runs it when nobody measures. */
export function timeStep<T>(steps: StepRecorder | undefined, step: string, fn: () => Promise<T>): Promise<T> {
  return steps ? steps.time(step, fn) : fn();
}
