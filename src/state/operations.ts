// Operation locks: so that two masters (or a master and the supervisor) never create, remove or
// copy the same volume at once. The lock is a key bound to a short lease of its own, so a crashed
// holder blocks others for at most its TTL. etcd offers only try-locks: a busy lock is tried again
// under the operationLockWait policy until the caller's `waitMs`, then StateBusyError names the
// holder.

import { ExponentialBackoff, handleWhenResult, noJitterGenerator, retry, type GeneratorFn } from 'cockatiel';
import { StateBusyError } from './errors.js';
import type { RecordKV } from './record-kv.js';
import type { OperationLockRecord } from './records.js';

/** Why an operation lock is taken (shown to whoever has to wait). */
export const LockReason = {
  Create: 'create',
  Remove: 'remove',
  Copy: 'snapshot copy',
  Snapshot: 'snapshot',
  Prune: 'snapshot prune',
  Runtime: 'runtime update',
  Resize: 'resize',
  Fence: 'fence',
} as const;

/** `owner`: who holds it, `<host>:<pid>` unless the store was given another owner. */
export type { OperationLockRecord } from './records.js';

export interface OperationLockOptions {
  /** A LockReason (or any short text). */
  reason: string;
  /** TTL of the lock's lease: how long a crashed holder blocks others (default 10 s). */
  ttlSeconds?: number;
  /** How long to wait for a busy lock before StateBusyError (default 10 s). */
  waitMs?: number;
}

/** What a try-lock attempt found: the lock taken, busy (try again), or busy at the deadline. */
type Attempt = 'locked' | 'busy' | 'gave up';

/**
 * operationLockWait: a busy lock is tried again after 25 ms, doubling up to 500 ms, each delay
 * spread by ±50 % so that waiting masters do not retry in step, and never sleeping past
 * `deadline`; the attempt at the deadline is the last.
 */
function operationLockWait(deadline: number) {
  const spreadUntilDeadline: GeneratorFn<number> = (state, options) => {
    const [delay, next] = noJitterGenerator(state, options);
    const spread = Math.round(delay * (0.5 + Math.random()));
    return [Math.max(0, Math.min(spread, deadline - Date.now())), next];
  };
  return retry(handleWhenResult((attempt) => attempt === 'busy'), {
    backoff: new ExponentialBackoff({ initialDelay: 25, maxDelay: 500, generator: spreadUntilDeadline }),
  });
}

export async function withOperationLock<T>(
  db: RecordKV,
  owner: string,
  tenant: string,
  volume: string,
  options: OperationLockOptions,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const ttlSeconds = options.ttlSeconds ?? 10;
  const waitMs = options.waitMs ?? 10_000;
  const key = db.keys.operation(tenant, volume);
  const deadline = Date.now() + waitMs;
  const lease = await db.kv.lease(ttlSeconds);
  try {
    const record: OperationLockRecord = { reason: options.reason, owner, since: new Date().toISOString(), lease: lease.id };
    const value = JSON.stringify(record);
    const result = await operationLockWait(deadline).execute(async (): Promise<Attempt> => {
      if (await db.kv.create(key, value, { lease })) return 'locked';
      return Date.now() >= deadline ? 'gave up' : 'busy';
    });
    if (result !== 'locked') {
      const entry = await db.kv.get(key);
      throw new StateBusyError(tenant, volume, entry && db.parseOrNull<OperationLockRecord>(entry));
    }
    const controller = new AbortController();
    lease.onLost((err) => controller.abort(err));
    return await fn(controller.signal);
  } finally {
    await lease.revoke().catch(() => undefined);
  }
}
