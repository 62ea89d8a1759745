// Waiting with deadlines: nothing in a chaos run waits for a daemon without a bound, because the
// daemons are exactly what it breaks.

import { readFile } from 'node:fs/promises';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it is true; throws after `ms` naming what it waited for. */
export async function waitUntil(what: string, check: () => Promise<boolean> | boolean, ms: number, everyMs = 100): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await Promise.resolve(check()).catch(() => false)) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Like waitUntil, but false instead of an error when the time is up. */
export async function eventually(check: () => Promise<boolean> | boolean, ms: number, everyMs = 200): Promise<boolean> {
  return waitUntil('', check, ms, everyMs).then(
    () => true,
    () => false,
  );
}

/** True while the process exists and is not a zombie (PID 1 reaps late here). */
export async function pidAlive(pid: number): Promise<boolean> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => null);
  return status !== null && !/^State:\s*Z/m.test(status);
}

export class DeadlineError extends Error {
  constructor(readonly what: string, readonly ms: number) {
    super(`${what}: no result within ${ms} ms`);
  }
}

/** The work's result, or DeadlineError after `ms` (the work itself goes on: it cannot be cancelled). */
export async function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  work.catch(() => undefined);
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DeadlineError(what, ms)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Like Promise.all, but waits for every step to finish before it throws the first failure: a step
 * still running after the round ended would register its clean-up too late.
 */
export async function settleAll<T>(steps: Array<Promise<T>>): Promise<T[]> {
  const results = await Promise.allSettled(steps);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}
