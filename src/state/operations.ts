// Operation locks: so that two masters (or a master and the supervisor) never create, remove or
// copy the same volume at once. The lock is a key bound to a lease of its process (LockLeases), so
// a crashed holder blocks others for at most the lease's TTL. etcd offers only try-locks: a busy
// lock is tried again under the operationLockWait policy until the caller's `waitMs`, then
// StateBusyError names the holder. Taking it is one transaction, which can also read keys the
// operation needs (`read`); giving it back is a delete conditioned on its value, or part of the
// operation's last transaction (releaseOps).

import { ExponentialBackoff, handleWhenResult, noJitterGenerator, retry, type GeneratorFn } from 'cockatiel';
import { StateBusyError } from './errors.js';
import type { Entry, KV, Lease, TransactionOps } from './kv.js';
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
  /** Keys to read in the transaction that takes the lock (HeldLock.reads). */
  read?: string[];
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

/**
 * The leases a process binds its operation locks to: one per TTL, granted at the first lock and
 * kept alive for the life of the process (a lock is then one etcd write to take and one to give
 * back, instead of a lease grant and a revoke around them). When a lease is lost, the locks bound
 * to it are gone too: the operations holding them are told (their signal aborts) and the next lock
 * gets a new lease. A process that dies leaves its locks behind for at most the TTL, as before.
 */
export class LockLeases {
  private readonly granted = new Map<number, Promise<{ lease: Lease; lost: AbortController }>>();

  constructor(private readonly kv: KV) {}

  async get(ttlSeconds: number): Promise<{ lease: Lease; signal: AbortSignal }> {
    for (;;) {
      let pending = this.granted.get(ttlSeconds);
      if (!pending) {
        pending = this.kv.lease(ttlSeconds).then((lease) => {
          const lost = new AbortController();
          lease.onLost((err) => lost.abort(err));
          return { lease, lost };
        });
        this.granted.set(ttlSeconds, pending);
      }
      let held: { lease: Lease; lost: AbortController };
      try {
        held = await pending;
      } catch (err) {
        if (this.granted.get(ttlSeconds) === pending) this.granted.delete(ttlSeconds);
        throw err;
      }
      if (!held.lease.lost) return { lease: held.lease, signal: held.lost.signal };
      if (this.granted.get(ttlSeconds) === pending) this.granted.delete(ttlSeconds);
    }
  }

  /**
   * Gives up `lease` (a lock bound to it could not be given back, etcd unreachable?): it is no
   * longer kept alive, so that lock lapses within the TTL, as a dead process's would; the
   * operations holding other locks on it are told, and the next lock gets a new lease.
   */
  abandon(lease: Lease): void {
    for (const [ttl, pending] of this.granted) {
      void pending.then((held) => {
        if (held.lease !== lease) return;
        if (this.granted.get(ttl) === pending) this.granted.delete(ttl);
        held.lost.abort(new Error(`gave up the operation-lock lease ${lease.id}: a lock bound to it could not be released`));
      });
    }
    void lease.revoke().catch(() => undefined);
  }

  /** Revokes the leases (their locks go at once); for a clean exit, when no operation runs. */
  async revokeAll(): Promise<void> {
    const all = [...this.granted.values()];
    this.granted.clear();
    await Promise.all(all.map((p) => p.then(({ lease }) => lease.revoke()).catch(() => undefined)));
  }
}

/** An operation lock while it is held: what fn gets besides the signal. */
export interface HeldLock {
  /** Aborts when the lock's lease is lost (then the lock is gone). */
  readonly signal: AbortSignal;
  /** The keys of `OperationLockOptions.read`, as they were when the lock was taken. */
  readonly reads: ReadonlyMap<string, Entry | null>;
  /** @internal the lock's key and value, for a transaction that releases it (releaseOps). */
  readonly key: string;
  readonly value: string;
  /** @internal set by whoever released it in a transaction of its own */
  released: boolean;
}

/** The conditions and delete that release `lock` inside another transaction (only while it is still this one). */
export function releaseOps(lock: HeldLock): Required<Pick<TransactionOps, 'equal' | 'delete'>> {
  return { equal: [{ key: lock.key, value: lock.value }], delete: [lock.key] };
}

export async function withOperationLock<T>(
  db: RecordKV,
  leases: LockLeases,
  owner: string,
  tenant: string,
  volume: string,
  options: OperationLockOptions,
  fn: (signal: AbortSignal, lock: HeldLock) => Promise<T>,
): Promise<T> {
  const ttlSeconds = options.ttlSeconds ?? 10;
  const waitMs = options.waitMs ?? 10_000;
  const key = db.keys.operation(tenant, volume);
  const deadline = Date.now() + waitMs;
  let taken: { lease: Lease; value: string; signal: AbortSignal; reads: Map<string, Entry | null> } | null = null;
  let holder: Entry | null = null;
  const result = await operationLockWait(deadline).execute(async (): Promise<Attempt> => {
    const { lease, signal } = await leases.get(ttlSeconds);
    const record: OperationLockRecord = { reason: options.reason, owner, since: new Date().toISOString(), lease: lease.id };
    const value = JSON.stringify(record);
    const { succeeded, reads } = await db.kv.transact({ absent: [key], put: [{ key, value, lease }], read: [key, ...(options.read ?? [])] });
    if (succeeded) {
      taken = { lease, value, signal, reads };
      return 'locked';
    }
    holder = reads.get(key) ?? null;
    return Date.now() >= deadline ? 'gave up' : 'busy';
  });
  if (result !== 'locked' || !taken) {
    const entry = holder as Entry | null;
    throw new StateBusyError(tenant, volume, entry && db.parseOrNull<OperationLockRecord>(entry));
  }
  const { lease, value, signal, reads } = taken as { lease: Lease; value: string; signal: AbortSignal; reads: Map<string, Entry | null> };
  reads.delete(key);
  const lock: HeldLock = { signal, reads, key, value, released: false };
  try {
    return await fn(signal, lock);
  } finally {
    if (!lock.released) {
      try {
        await db.kv.transaction(releaseOps(lock));
      } catch {
        leases.abandon(lease);
      }
    }
  }
}
