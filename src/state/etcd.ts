// EtcdKV: the KV surface on etcd v3 through the `etcd3` client (gRPC).
//
// Every unary call carries a gRPC deadline and is also raced against a timer, so that no caller
// waits longer than `timeoutMs` (the client's own retries included). Connection failures become
// StateUnavailableError naming the endpoints. Leases are kept alive in the background by etcd3;
// the holder counts each lease from when the keep-alive request that etcd answered was SENT (etcd
// renewed it no earlier), and declares it lost `leaseMarginMs` before it can have expired at etcd
// (see holderDeadlineMs; etcd3 alone waits two TTLs). Transactions are plain etcd Txn requests:
// "absent" is createRevision == 0, "present" createRevision > 0, "unchanged" modRevision equality.

import { handleWhen, noop, retry, type IPolicy } from 'cockatiel';
import {
  CompareResult,
  CompareTarget,
  Etcd3,
  GRPCDeadlineExceededError,
  GRPCUnavailableError,
  isRecoverableError,
} from 'etcd3';
import type { ICompare, IKeyValue, IRequestOp, Lease as Etcd3Lease, Watcher } from 'etcd3';
import { KVElection } from './election.js';
import { StateUnavailableError, TransactionalKV } from './kv.js';
import type { Election, Entry, KV, Lease, TransactionOps, Watch, WatchEvent, WatchOptions } from './kv.js';

export interface EtcdKVOptions {
  /** etcd client URLs, e.g. `http://127.0.0.1:2379`. */
  endpoints: string[];
  /** Deadline of every call, in milliseconds (default 5000). */
  timeoutMs?: number;
}

export const DEFAULT_TIMEOUT_MS = 5_000;

/**
 * etcd3's own fault handling (cockatiel policies, the same library as ours), as decided here:
 * - noHostBreaker: by default etcd3 puts a circuit breaker in front of each endpoint that, after
 *   three failures, refuses every call for 5 s even once etcd is back. Our per-call deadline and
 *   StateUnavailableError (`call`) replace it: each call goes straight through (cockatiel's noop).
 * - endpointFailover: etcd3's default, written out: a call that fails with a recoverable
 *   (connection) error is tried again at once, on the next endpoint, up to 3 more times. All of it
 *   runs inside the call's deadline, so no caller waits longer than `timeoutMs`.
 * Watch streams reconnect with etcd3's default backoff (cockatiel's ExponentialBackoff).
 */
const noHostBreaker = (): IPolicy => noop;
const endpointFailover = retry(handleWhen(isRecoverableError), { maxAttempts: 3 });

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE']);

function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err instanceof GRPCUnavailableError || err instanceof GRPCDeadlineExceededError) return true;
  if (isRecoverableError(err)) return true;
  if (err.name === 'BrokenCircuitError' || err.name === 'TaskCancelledError') return true;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && CONNECTION_CODES.has(code)) return true;
  return /ECONNREFUSED|UNAVAILABLE|DEADLINE_EXCEEDED|No connection established/i.test(err.message);
}

/** The end of the key range that holds every key starting with `prefix`. */
function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // every key
}

function toEntry(kv: IKeyValue): Entry {
  return { key: kv.key.toString('utf8'), value: kv.value.toString('utf8'), modRevision: String(kv.mod_revision) };
}

/** Hex lease id (our form) to etcd's decimal form, and back. */
function leaseToDecimal(hexId: string): string {
  return BigInt(`0x${hexId}`).toString(10);
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

class EtcdLease implements Lease {
  private isLost = false;
  private readonly listeners: Array<(err: Error) => void> = [];
  private timer: NodeJS.Timeout | null = null;
  /** performance.now() by which the holder gives the lease up, unless etcd confirms it again. */
  private deadline = 0;
  /** When each keep-alive request of the current stream was sent, oldest first (etcd answers in order). */
  private unanswered: number[] = [];

  constructor(
    private readonly kv: EtcdKV,
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

export class EtcdKV extends TransactionalKV implements KV {
  readonly endpoints: readonly string[];
  readonly timeoutMs: number;
  private readonly client: Etcd3;
  private readonly leases = new Set<EtcdLease>();
  private readonly watchers = new Set<Watcher>();
  private closed = false;

  constructor(options: EtcdKVOptions) {
    super();
    if (!Array.isArray(options.endpoints) || options.endpoints.length === 0) {
      throw new TypeError('EtcdKV needs at least one etcd endpoint (e.g. http://127.0.0.1:2379)');
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new RangeError(`EtcdKV timeoutMs must be a positive number of milliseconds, got ${timeoutMs}`);
    }
    this.endpoints = [...options.endpoints];
    this.timeoutMs = timeoutMs;
    this.client = new Etcd3({
      hosts: [...options.endpoints],
      // Streams (watch, keep-alive) live long; every unary call gets a deadline.
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + this.timeoutMs }),
      faultHandling: { host: noHostBreaker, global: endpointFailover },
    });
  }

  private unavailable(what: string, detail: string, cause?: unknown): StateUnavailableError {
    return new StateUnavailableError(
      `etcd at ${this.endpoints.join(', ')} ${detail} (${what}): check that etcd is running and reachable`,
      { cause },
    );
  }

  /** Runs one etcd call with the deadline and error mapping every call gets. */
  async call<T>(what: string, fn: () => Promise<T>, timeoutMs: number = this.timeoutMs): Promise<T> {
    if (this.closed) throw new Error(`EtcdKV is closed (${what})`);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.unavailable(what, `did not answer within ${timeoutMs} ms`)), timeoutMs);
    });
    const work = fn();
    work.catch(() => undefined); // a late failure after the deadline is not unhandled
    try {
      return await Promise.race([work, deadline]);
    } catch (err) {
      if (err instanceof StateUnavailableError) throw err;
      if (isConnectionError(err)) {
        throw this.unavailable(what, `is unavailable: ${(err as Error).message}`, err);
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  async get(key: string): Promise<Entry | null> {
    const res = await this.call(`get ${key}`, () => this.client.kv.range({ key: Buffer.from(key) }));
    const kv = res.kvs[0];
    return kv ? toEntry(kv) : null;
  }

  async list(prefix: string): Promise<Entry[]> {
    const res = await this.call(`list ${prefix}`, () =>
      this.client.kv.range({
        key: Buffer.from(prefix.length > 0 ? prefix : '\0'),
        range_end: prefixEnd(prefix),
        sort_target: 'Key',
        sort_order: 'Ascend',
      }),
    );
    return res.kvs.map(toEntry);
  }

  private leaseField(lease: Lease | undefined): { lease?: string } {
    if (!lease) return {};
    if (lease.lost) throw new Error(`etcd lease ${lease.id} is lost (expired or revoked): grant a new one`);
    return { lease: leaseToDecimal(lease.id) };
  }

  async put(key: string, value: string, options?: { lease?: Lease }): Promise<void> {
    const leaseField = this.leaseField(options?.lease);
    await this.call(`put ${key}`, () =>
      this.client.kv.put({ key: Buffer.from(key), value: Buffer.from(value), ...leaseField }),
    );
  }

  async transaction(ops: TransactionOps): Promise<boolean> {
    const compare: ICompare[] = [
      ...(ops.absent ?? []).map((key) => ({
        key: Buffer.from(key),
        target: CompareTarget.Create,
        result: CompareResult.Equal,
        create_revision: 0,
      })),
      ...(ops.present ?? []).map((key) => ({
        key: Buffer.from(key),
        target: CompareTarget.Create,
        result: CompareResult.Greater,
        create_revision: 0,
      })),
      ...(ops.unchanged ?? []).map(({ key, modRevision }) => ({
        key: Buffer.from(key),
        target: CompareTarget.Mod,
        result: CompareResult.Equal,
        mod_revision: modRevision,
      })),
    ];
    const success: IRequestOp[] = [
      ...(ops.delete ?? []).map((key) => ({ request_delete_range: { key: Buffer.from(key) } })),
      ...(ops.put ?? []).map(({ key, value, lease }) => ({
        request_put: { key: Buffer.from(key), value: Buffer.from(value), ...this.leaseField(lease) },
      })),
    ];
    const what = `transaction on ${[...(ops.put ?? []).map((p) => p.key), ...(ops.delete ?? [])].join(', ')}`;
    const res = await this.call(what, () => this.client.kv.txn({ compare, success, failure: [] }));
    return res.succeeded;
  }

  async delete(key: string): Promise<boolean> {
    const res = await this.call(`delete ${key}`, () => this.client.kv.deleteRange({ key: Buffer.from(key) }));
    return String(res.deleted) !== '0';
  }

  async lease(ttlSeconds: number): Promise<Lease> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
      throw new RangeError(`an etcd lease TTL must be a whole number of seconds >= 1, got ${ttlSeconds}`);
    }
    if (this.closed) throw new Error('EtcdKV is closed (grant lease)');
    // etcd starts the lease when it receives the grant, no earlier than now.
    const grantSentAt = performance.now();
    const inner = this.client.lease(ttlSeconds);
    let decimalId: string;
    try {
      decimalId = await this.call(`grant lease (ttl ${ttlSeconds}s)`, () => inner.grant());
    } catch (err) {
      inner.release();
      throw err;
    }
    const lease = new EtcdLease(this, inner, BigInt(decimalId).toString(16), ttlSeconds, grantSentAt);
    this.leases.add(lease);
    lease.onLost(() => this.leases.delete(lease));
    return lease;
  }

  /** Ids of the leases this client keeps alive. */
  leaseIds(): string[] {
    return [...this.leases].map((l) => l.id);
  }

  /** @internal */
  forgetLease(lease: EtcdLease): void {
    this.leases.delete(lease);
  }

  async watch(prefix: string, listener: (event: WatchEvent) => void, options: WatchOptions = {}): Promise<Watch> {
    if (this.closed) throw new Error(`EtcdKV is closed (watch ${prefix})`);
    const watcher = this.client.watch().prefix(prefix).watcher();
    watcher.on('put', (kv) => listener({ type: 'put', key: kv.key.toString('utf8'), value: kv.value.toString('utf8') }));
    watcher.on('delete', (kv) => listener({ type: 'delete', key: kv.key.toString('utf8'), value: null }));
    // etcd3 reconnects a watch whose stream broke by itself ('disconnected', then 'connected' from
    // the next revision). One that etcd cancels ('error', e.g. its revision was compacted meanwhile)
    // or that ends without close() is dead: its owner hears it (onDead) and must watch again.
    // Only a watch in this.watchers can die: one not yet established, or closed (by close() or
    // EtcdKV.close()), is not reported.
    let gap = false;
    const die = (err: Error) => {
      if (!this.watchers.delete(watcher)) return;
      void watcher.cancel().catch(() => undefined);
      options.onDead?.(err);
    };
    watcher.on('error', (err: Error) => die(err));
    watcher.on('end', () => die(new Error(`the etcd watch of ${prefix} ended`)));
    watcher.on('disconnected', () => {
      gap = true;
    });
    watcher.on('connected', () => {
      if (!gap) return;
      gap = false;
      options.onResumed?.();
    });
    try {
      await this.call(
        `watch ${prefix}`,
        () =>
          new Promise<void>((resolve, reject) => {
            watcher.once('connected', () => resolve());
            watcher.once('error', (err) => reject(err));
          }),
      );
    } catch (err) {
      void watcher.cancel().catch(() => undefined);
      throw err;
    }
    this.watchers.add(watcher);
    return {
      close: async () => {
        if (!this.watchers.delete(watcher)) return;
        await this.call(`close watch ${prefix}`, () => watcher.cancel()).catch(() => undefined);
      },
    };
  }

  election(name: string, ttlSeconds: number): Election {
    return new KVElection(this, name, ttlSeconds);
  }

  async ping(timeoutMs: number = this.timeoutMs): Promise<void> {
    await this.call(
      'status',
      () => this.client.maintenance.status({ deadline: Date.now() + timeoutMs }),
      timeoutMs,
    );
  }

  /**
   * Closes the connection. Leases are not revoked, only no longer kept alive: etcd drops them (and
   * their keys) after their TTL, exactly as if this process had died. Revoke first for a clean exit.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    for (const lease of this.leases) lease.release();
    this.leases.clear();
    const watchers = [...this.watchers];
    this.watchers.clear();
    await Promise.all(
      watchers.map((w) => this.call('close watch', () => w.cancel(), 1_000).catch(() => undefined)),
    );
    this.closed = true;
    this.client.close();
  }
}
