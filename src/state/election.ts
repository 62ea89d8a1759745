// Leader election built only from the KV surface (a lease, create-if-absent and a watch), so that
// EtcdKV and MemoryKV share one implementation and one behaviour.
//
// The leader is whoever created `<name>/leader`, bound to its own lease. The others watch that key
// and try again when it is deleted (resign, revoke or lease expiry). There is no queue: after a
// hand-over any waiting candidate may win, which is all volsupervisor needs (one leader at a time).

import { handleWhenResult, retry, timeout, TimeoutStrategy } from 'cockatiel';
import type { Election, KV, Lease, Watch } from './kv.js';

/** How often a waiting candidate re-checks even without a watch event (a safety net only). */
const RECHECK_MS = 2_000;

/**
 * untilElected: a candidate that did not get the leader key tries again, as often as it takes,
 * each time once recheckAfter has waited (no backoff on top: the wait is the pacing).
 */
const untilElected = retry(
  handleWhenResult((elected) => elected === false),
  {},
);

/**
 * recheckAfter: a waiting candidate waits for the leader key's deletion (the watch wakes it), but
 * never longer than RECHECK_MS; its timer does not keep the process alive.
 */
const recheckAfter = timeout(RECHECK_MS, TimeoutStrategy.Cooperative).dangerouslyUnref();

export class ElectionResignedError extends Error {
  readonly code = 'ELECTION_RESIGNED';
  constructor(name: string) {
    super(`campaign for election ${name} was cancelled by resign()`);
    this.name = 'ElectionResignedError';
  }
}

export class KVElection implements Election {
  private readonly key: string;
  private lease: Lease | null = null;
  private leading = false;
  /** Bumped by resign(): a campaign from an older generation gives up. */
  private generation = 0;
  private wake: (() => void) | null = null;
  private leaderWatch: Watch | null = null;
  private readonly lostListeners: Array<(err: Error) => void> = [];

  constructor(
    private readonly kv: KV,
    private readonly name: string,
    private readonly ttlSeconds: number,
  ) {
    this.key = `${name.replace(/\/+$/, '')}/leader`;
  }

  onLost(listener: (err: Error) => void): void {
    this.lostListeners.push(listener);
  }

  async leader(): Promise<string | null> {
    const entry = await this.kv.get(this.key);
    return entry ? entry.value : null;
  }

  async campaign(value: string): Promise<void> {
    if (this.leading) return;
    const generation = ++this.generation;
    const cancelled = () => generation !== this.generation;
    let watch: Watch | null = null;
    try {
      // Open the watch before the first attempt so that a deletion between a failed create and
      // the wait cannot be missed.
      watch = await this.kv.watch(this.key, (event) => {
        if (event.key === this.key && event.type === 'delete') this.wake?.();
      });
      await untilElected.execute(async () => {
        if (cancelled()) throw new ElectionResignedError(this.name);
        if (!this.lease || this.lease.lost) this.lease = await this.kv.lease(this.ttlSeconds);
        const lease = this.lease;
        if (cancelled()) throw new ElectionResignedError(this.name);
        if (await this.kv.create(this.key, value, { lease })) {
          if (cancelled()) {
            await lease.revoke().catch(() => undefined);
            throw new ElectionResignedError(this.name);
          }
          this.becomeLeader(lease, generation);
          return true;
        }
        await recheckAfter.execute(({ signal }) => this.leaderKeyDeleted(signal));
        return false;
      });
    } finally {
      this.wake = null;
      if (watch) await watch.close().catch(() => undefined);
    }
  }

  /** Resolves at the next deletion of the leader key, at resign(), or when `signal` aborts. */
  private leaderKeyDeleted(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        if (this.wake === done) this.wake = null;
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.wake = done;
      if (signal.aborted) done();
      else signal.addEventListener('abort', done, { once: true });
    });
  }

  private becomeLeader(lease: Lease, generation: number): void {
    this.leading = true;
    const lose = (err: Error) => {
      if (!this.leading || generation !== this.generation) return;
      this.leading = false;
      void this.leaderWatch?.close().catch(() => undefined);
      this.leaderWatch = null;
      for (const listener of this.lostListeners) listener(err);
    };
    lease.onLost((err) => lose(err));
    // Someone deleting the leader key by hand (or a revoke from elsewhere) also ends leadership.
    this.kv
      .watch(this.key, (event) => {
        if (event.key === this.key && event.type === 'delete') {
          lose(new Error(`leader key ${this.key} of election ${this.name} was deleted`));
        }
      })
      .then((w) => {
        if (this.leading && generation === this.generation) this.leaderWatch = w;
        else void w.close().catch(() => undefined);
      })
      .catch(() => undefined);
  }

  async resign(): Promise<void> {
    this.generation++;
    this.wake?.();
    this.leading = false;
    const watch = this.leaderWatch;
    this.leaderWatch = null;
    if (watch) await watch.close().catch(() => undefined);
    const lease = this.lease;
    this.lease = null;
    // Revoking the lease deletes the leader key (if we held it) in the same step.
    if (lease && !lease.lost) await lease.revoke();
  }
}
