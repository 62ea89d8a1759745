// An etcd lease as its holder sees it (EtcdKV.lease makes them). etcd3 keeps it alive in the
// background; the holder counts it from when the keep-alive request that etcd answered was SENT
// (etcd renewed it no earlier) and declares it lost `leaseMarginMs` before it can have expired at
// etcd (holderDeadlineMs), so that what the holder does with it stops in time. etcd3 alone would
// wait two TTLs.

import type { Lease as Etcd3Lease } from 'etcd3';
import { StateUnavailableError } from './kv.js';
import type { Lease } from './kv.js';

/** What a lease needs of the client that made it. */
export interface LeaseClient {
  readonly endpoints: readonly string[];
  call<T>(what: string, fn: () => Promise<T>): Promise<T>;
  forgetLease(lease: EtcdLease): void;
}

/**
 * How long before a lease can have expired at etcd its holder gives it up: a quarter of the TTL,
 * at most 5 s. It covers what the holder does when it lets go (volplugin cuts the I/O of its
 * volumes: tens of milliseconds) and a late timer on a busy host. The rest of the TTL after the
 * last keep-alive (keep-alives go out every TTL/3) is the room a slow etcd answer has before the
 * lease is given up for nothing.
 */
export function leaseMarginMs(ttlSeconds: number): number {
  return Math.min(5_000, ttlSeconds * 250);
}

/**
 * Milliseconds after sending a keep-alive request that etcd then answered (or the grant request)
 * until the holder must consider the lease lost: TTL minus the margin. etcd renewed the lease when
 * it received the request, no earlier than it was sent, so the lease lives at etcd at least a
 * whole TTL from the send: the holder lets go `leaseMarginMs` before anyone else can take its keys.
 */
export function holderDeadlineMs(ttlSeconds: number): number {
  return ttlSeconds * 1000 - leaseMarginMs(ttlSeconds);
}

export class EtcdLease implements Lease {
  private isLost = false;
  private readonly listeners: Array<(err: Error) => void> = [];
  private timer: NodeJS.Timeout | null = null;
  /** performance.now() by which the holder gives the lease up, unless etcd confirms it again. */
  private deadline = 0;
  /** When each keep-alive request of the current stream was sent, oldest first (etcd answers in order). */
  private unanswered: number[] = [];

  constructor(
    private readonly kv: LeaseClient,
    private readonly inner: Etcd3Lease,
    readonly id: string,
    readonly ttlSeconds: number,
    grantSentAt: number,
  ) {
    inner.on('lost', (err) => this.markLost(err));
    // A new stream (after a broken one): requests sent on the old one are never answered.
    inner.on('keepaliveEstablished', () => {
      this.unanswered = [];
    });
    inner.on('keepaliveFired', () => this.unanswered.push(performance.now()));
    inner.on('keepaliveSucceeded', (res: { TTL?: string }) => {
      const sentAt = this.unanswered.shift();
      if (sentAt === undefined) return;
      // etcd may grant more than asked (never less than its minimum); count only what was asked.
      const granted = Number(res.TTL);
      this.confirmed(sentAt, Number.isFinite(granted) && granted > 0 ? Math.min(granted, this.ttlSeconds) : this.ttlSeconds);
    });
    this.confirmed(grantSentAt, ttlSeconds);
  }

  get lost(): boolean {
    return this.isLost;
  }

  onLost(listener: (err: Error) => void): void {
    this.listeners.push(listener);
  }

  /** etcd renewed the lease for `ttl` seconds on a request sent at `sentAt`: move the deadline. */
  private confirmed(sentAt: number, ttl: number): void {
    if (this.isLost) return;
    this.deadline = Math.max(this.deadline, sentAt + holderDeadlineMs(ttl));
    const left = this.deadline - performance.now();
    if (left <= 0) {
      // The answer came too late (a paused process, a slow etcd): the lease may be gone already.
      this.giveUp();
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.giveUp(), left);
    this.timer.unref?.();
  }

  private giveUp(): void {
    this.markLost(
      new StateUnavailableError(
        `etcd lease ${this.id} (TTL ${this.ttlSeconds} s) was not confirmed in time (etcd at ${this.kv.endpoints.join(', ')} ` +
          `unreachable or slow?): it may expire at etcd within ${leaseMarginMs(this.ttlSeconds)} ms, so it is given up now ` +
          'and every key bound to it must be taken as gone',
      ),
    );
  }

  private stop(): void {
    this.isLost = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private markLost(err: Error): void {
    if (this.isLost) return;
    this.stop();
    this.inner.release();
    for (const listener of this.listeners) listener(err);
  }

  async revoke(): Promise<void> {
    if (this.isLost) return;
    this.stop();
    this.kv.forgetLease(this);
    await this.kv.call(`revoke lease ${this.id}`, () => this.inner.revoke());
  }

  /** Stops keep-alive without revoking: etcd lets the lease expire after its TTL. */
  release(): void {
    if (this.isLost) return;
    this.stop();
    this.inner.release();
  }
}
