// EtcdKV: the KV surface on etcd v3 through the `etcd3` client (gRPC). (Over 400 lines: the one class wrapping that client: calls, transactions, paged lists, watches.)
//
// Every unary call carries a gRPC deadline and is also raced against a timer, so that no caller
// waits longer than `timeoutMs` (the client's own retries included). Connection failures become
// StateUnavailableError naming the endpoints. Leases are kept alive in the background by etcd3 and
// given up before they can have expired at etcd (etcd-lease.ts). Transactions are plain etcd Txn
// requests: "absent" is createRevision == 0, "present" createRevision > 0, "unchanged" modRevision
// equality. With TLS files and a user (options `tls`, `auth`; src/common/etcd.ts reads them from the
// flags) etcd3 logs in with the password and again when etcd says the token expired; refused
// credentials or permissions become EtcdRefusedError, which says what to fix.

import { handleWhen, noop, retry, type IPolicy } from 'cockatiel';
import {
  CompareResult,
  CompareTarget,
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  EtcdUserNotFoundError,
  GRPCDeadlineExceededError,
  GRPCUnauthenticatedError,
  GRPCUnavailableError,
  isRecoverableError,
} from 'etcd3';
import type { ICompare, IKeyValue, IRequestOp, Watcher } from 'etcd3';
import { KVElection } from './election.js';
import { EtcdLease } from './etcd-lease.js';
import { etcdErrors, etcdRequestDuration } from '../metrics/families.js';
import { StateUnavailableError, TransactionalKV } from './kv.js';
import type { Election, Entry, KeyRange, KV, Lease, TransactionOps, TransactionResult, Watch, WatchEvent, WatchOptions } from './kv.js';
import { ReadBatcher } from './etcd-reads.js';

export interface EtcdKVOptions {
  /** etcd client URLs, e.g. `http://127.0.0.1:2379`; `https://` ones with `tls`. */
  endpoints: string[];
  /** Deadline of every call, in milliseconds (default 5000). */
  timeoutMs?: number;
  /** TLS: the CA that signed etcd's certificate (absent: the system's CAs), and a client certificate and its key. */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  /** An etcd user and its password (etcd with authentication enabled). */
  auth?: { user: string; password: string };
  /** Keys per request of list() (default LIST_PAGE_KEYS). */
  listPageKeys?: number;
}

/**
 * list() reads this many keys per request. One range of every volume record was 6.5 MB at 10,000
 * volumes, beyond gRPC's 4 MiB limit on an answer (list-all failed: docs/performance-scale.md);
 * pages keep each answer about 1 MB, and they are read at the revision of the first, so a list is
 * still one consistent view. Pages are asked for without a sort order: etcd returns keys in
 * ascending order anyway, and with a sort order it may read the whole range before applying the limit.
 */
export const LIST_PAGE_KEYS = 1000;
/** An answer may still be large (1,000 host reports of hosts with many mounts): allow up to 64 MiB. */
const MAX_ANSWER_BYTES = 64 << 20;

export const DEFAULT_TIMEOUT_MS = 5_000;

/** etcd refused our user or its role's rights: configuration, not an outage (still a StateUnavailableError: 503). */
export class EtcdRefusedError extends StateUnavailableError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EtcdRefusedError';
  }
}

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

/** The operation label of a call (its description's first word: "get /volplugin/...", "transaction on ..."). */
const OPS: Record<string, string> = { transaction: 'txn', grant: 'grant', revoke: 'revoke' };
function etcdOp(what: string): string {
  const word = what.split(' ', 1)[0]!;
  return OPS[word] ?? (['get', 'list', 'put', 'delete', 'watch', 'close', 'status'].includes(word) ? word : 'other');
}

/** Latency and failures of one etcd call, for Prometheus (src/metrics/families.ts). */
async function metered<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const op = etcdOp(what);
  const end = etcdRequestDuration.startTimer({ op });
  try {
    return await fn();
  } catch (err) {
    const reason = err instanceof EtcdRefusedError ? 'refused' : err instanceof StateUnavailableError ? 'unavailable' : 'other';
    etcdErrors.inc({ op, reason });
    throw err;
  } finally {
    end();
  }
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

/** The entries of `keys` from the range responses of a transaction, in the same order. */
function rangesOf(keys: readonly string[], responses: ReadonlyArray<{ response_range?: { kvs: IKeyValue[] } }>): Map<string, Entry | null> {
  const out = new Map<string, Entry | null>();
  keys.forEach((key, i) => {
    const kv = responses[i]?.response_range?.kvs[0];
    out.set(key, kv ? toEntry(kv) : null);
  });
  return out;
}

/** Hex lease id (our form) to etcd's decimal form, and back. */
function leaseToDecimal(hexId: string): string {
  return BigInt(`0x${hexId}`).toString(10);
}

export class EtcdKV extends TransactionalKV implements KV {
  readonly endpoints: readonly string[];
  readonly timeoutMs: number;
  /** The etcd user, or null without authentication (for messages). */
  readonly user: string | null;
  private readonly tls: boolean;
  private readonly client: Etcd3;
  private readonly leases = new Set<EtcdLease>();
  private readonly reads: ReadBatcher;
  private readonly listPageKeys: number;
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
    const { tls, auth } = options;
    this.user = auth?.user ?? null;
    this.tls = tls !== undefined || this.endpoints.some((url) => url.startsWith('https://'));
    this.client = new Etcd3({
      hosts: [...options.endpoints],
      // grpc-js takes a missing CA (null) for the system's CAs; etcd3's type insists on a Buffer.
      ...(tls ? { credentials: { rootCertificate: (tls.ca ?? null) as Buffer, certChain: tls.cert, privateKey: tls.key } } : {}),
      // The password is traded for a token on first use, and again when etcd says the token expired.
      ...(auth ? { auth: { username: auth.user, password: auth.password } } : {}),
      // Streams (watch, keep-alive) live long; every unary call gets a deadline.
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + this.timeoutMs }),
      faultHandling: { host: noHostBreaker, global: endpointFailover },
      grpcOptions: { 'grpc.max_receive_message_length': MAX_ANSWER_BYTES },
    });
    this.listPageKeys = options.listPageKeys ?? LIST_PAGE_KEYS;
    this.reads = new ReadBatcher({
      readOne: (key) => this.getOne(key),
      readMany: (keys) => this.getMany(keys),
      retryAlone: (err) => err instanceof EtcdRefusedError,
    });
  }

  /** How many read batches went to etcd and how many keys they held. */
  readStats(): { batches: number; keys: number } {
    return { ...this.reads.stats };
  }

  private unavailable(what: string, detail: string, cause?: unknown): StateUnavailableError {
    // A TLS mismatch looks like an unreachable etcd from here (gRPC says only UNAVAILABLE).
    const hint = this.tls
      ? ', and that --etcd-ca, --etcd-cert and --etcd-key match its certificates'
      : '; if etcd serves TLS, use https:// URLs with --etcd-ca';
    return new StateUnavailableError(
      `etcd at ${this.endpoints.join(', ')} ${detail} (${what}): check that etcd is running and reachable${hint}`,
      { cause },
    );
  }

  /** An authentication or permission error as what to do about it. */
  private refused(what: string, err: unknown): EtcdRefusedError | null {
    const where = `etcd at ${this.endpoints.join(', ')}`;
    if (err instanceof EtcdAuthenticationFailedError || err instanceof EtcdUserNotFoundError) {
      const fix = 'check --etcd-user and --etcd-password-file';
      return new EtcdRefusedError(`${where} refused the user ${this.user ?? '(none)'}: wrong user name or password (${what}); ${fix}`, { cause: err });
    }
    if (err instanceof EtcdPermissionDeniedError || err instanceof GRPCUnauthenticatedError) {
      const fix = this.user
        ? `the user ${this.user} may not do this: its role lacks the key (docs/security.md lists what each component's user needs)`
        : 'etcd has authentication enabled: give --etcd-user and --etcd-password-file';
      return new EtcdRefusedError(`${where} denied ${what}: ${fix}`, { cause: err });
    }
    return null;
  }

  /** Runs one etcd call with the deadline, error mapping and metrics every call gets. */
  async call<T>(what: string, fn: () => Promise<T>, timeoutMs: number = this.timeoutMs): Promise<T> {
    return metered(what, () => this.bounded(what, fn, timeoutMs));
  }

  private async bounded<T>(what: string, fn: () => Promise<T>, timeoutMs: number): Promise<T> {
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
      const refused = this.refused(what, err);
      if (refused) throw refused;
      if (isConnectionError(err)) {
        throw this.unavailable(what, `is unavailable: ${(err as Error).message}`, err);
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Concurrent gets go to etcd together, still linearizable (etcd-reads.ts). */
  get(key: string): Promise<Entry | null> {
    return this.reads.get(key);
  }

  private async getOne(key: string): Promise<Entry | null> {
    const res = await this.call(`get ${key}`, () => this.client.kv.range({ key: Buffer.from(key) }));
    const kv = res.kvs[0];
    return kv ? toEntry(kv) : null;
  }

  private async getMany(keys: string[]): Promise<Map<string, Entry | null>> {
    const res = await this.call(`get ${keys.length} keys (${keys[0]}, ...)`, () =>
      this.client.kv.txn({ compare: [], success: keys.map((key) => ({ request_range: { key: Buffer.from(key) } })), failure: [] }),
    );
    return rangesOf(keys, res.responses);
  }

  async list(prefix: string): Promise<Entry[]> {
    const end = prefixEnd(prefix);
    const out: Entry[] = [];
    let from = Buffer.from(prefix.length > 0 ? prefix : '\0');
    let revision: string | undefined;
    for (;;) {
      const res = await this.call(`list ${prefix}`, () =>
        this.client.kv.range({ key: from, range_end: end, limit: this.listPageKeys, ...(revision ? { revision } : {}) }),
      );
      revision ??= res.header.revision;
      out.push(...res.kvs.map(toEntry));
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || !last) return out;
      from = Buffer.concat([last.key, Buffer.from([0])]); // the next key after the last one read
    }
  }

  async range(range: KeyRange, options: { limit: number; descending?: boolean }): Promise<Entry[]> {
    const res = await this.call(`range ${range.from}`, () =>
      this.client.kv.range({
        key: Buffer.from(range.from),
        range_end: Buffer.from(range.to),
        limit: options.limit,
        sort_target: 'Key',
        sort_order: options.descending ? 'Descend' : 'Ascend',
      }),
    );
    return res.kvs.map(toEntry);
  }

  async count(range: KeyRange): Promise<number> {
    const res = await this.call(`count ${range.from}`, () =>
      this.client.kv.range({ key: Buffer.from(range.from), range_end: Buffer.from(range.to), count_only: true }),
    );
    return Number(res.count);
  }

  async deleteRange(range: KeyRange): Promise<number> {
    const res = await this.call(`delete range ${range.from}`, () =>
      this.client.kv.deleteRange({ key: Buffer.from(range.from), range_end: Buffer.from(range.to) }),
    );
    return Number(res.deleted);
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

  async transact(ops: TransactionOps): Promise<TransactionResult> {
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
      ...(ops.equal ?? []).map(({ key, value }) => ({
        key: Buffer.from(key),
        target: CompareTarget.Value,
        result: CompareResult.Equal,
        value: Buffer.from(value),
      })),
    ];
    const reads = ops.read ?? [];
    const ranges: IRequestOp[] = reads.map((key) => ({ request_range: { key: Buffer.from(key) } }));
    const success: IRequestOp[] = [
      ...(ops.delete ?? []).map((key) => ({ request_delete_range: { key: Buffer.from(key) } })),
      ...(ops.put ?? []).map(({ key, value, lease, keepLease }) => ({
        request_put: { key: Buffer.from(key), value: Buffer.from(value), ...(keepLease ? { ignore_lease: true } : this.leaseField(lease)) },
      })),
    ];
    const what = `transaction on ${[...(ops.put ?? []).map((p) => p.key), ...(ops.delete ?? []), ...reads].join(', ')}`;
    const res = await this.call(what, () => this.client.kv.txn({ compare, success: [...success, ...ranges], failure: ranges }));
    // The ranges come after the writes in `success`, alone in `failure`.
    return { succeeded: res.succeeded, reads: rangesOf(reads, res.responses.slice(res.succeeded ? success.length : 0)) };
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

  /** @internal (etcd-lease.ts) */
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
    // A dead watch is not cancelled: etcd3 has already dropped it (both events come after it took
    // the watcher off its list), and cancelling it would ask etcd to cancel a watch id etcd still
    // knows (a compacted watch stays in its stream until then), whose answer etcd3 cannot match
    // to a watcher and throws from the stream ("Failed to find watcher for IWatchResponse"),
    // killing the process.
    let gap = false;
    let cancelledByEtcd = false;
    const die = (err: Error) => {
      cancelledByEtcd = true;
      if (!this.watchers.delete(watcher)) return;
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
      if (!cancelledByEtcd) void watcher.cancel().catch(() => undefined);
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
