// MemoryKV: etcd's semantics in memory (revisions, leases, watches, election) for fast unit tests of
// the master, plugin and supervisor. Not for production: nothing is persisted or shared between
// processes.
//
// Several MemoryKV clients can share one store (`kv.client()`), like several hosts talking to one
// etcd; `crash()` makes one of them die the way a host does (its leases expire, its keys vanish).

import { KVElection } from './election.js';
import { StateUnavailableError, TransactionalKV } from './kv.js';
import type { Election, Entry, KeyRange, KV, Lease, TransactionOps, TransactionResult, Watch, WatchEvent, WatchOptions } from './kv.js';

interface Stored {
  value: string;
  createRevision: number;
  modRevision: number;
  lease: string | null;
}

interface Watcher {
  prefix: string;
  listener: (event: WatchEvent) => void;
  options: WatchOptions;
}

class MemoryBackend {
  revision = 1;
  readonly data = new Map<string, Stored>();
  readonly leases = new Map<string, MemoryLease>();
  readonly watchers = new Set<Watcher>();
  nextLease = 0x694d0000;
  unavailable = false;

  /** Applies a batch of writes at one new revision and notifies the watchers. */
  apply(puts: Array<{ key: string; value: string; lease: string | null }>, deletes: string[]): void {
    const revision = ++this.revision;
    const events: WatchEvent[] = [];
    for (const key of deletes) {
      if (this.data.delete(key)) events.push({ type: 'delete', key, value: null });
    }
    for (const { key, value, lease } of puts) {
      const old = this.data.get(key);
      this.data.set(key, { value, lease, modRevision: revision, createRevision: old?.createRevision ?? revision });
      events.push({ type: 'put', key, value });
    }
    this.notify(events);
  }

  notify(events: WatchEvent[]): void {
    for (const event of events) {
      for (const watcher of this.watchers) {
        if (event.key.startsWith(watcher.prefix)) {
          // Delivered asynchronously, in order, as etcd does.
          queueMicrotask(() => {
            if (this.watchers.has(watcher)) watcher.listener(event);
          });
        }
      }
    }
  }

  /** Ends a lease: its keys are deleted; `lostError` set means it expired rather than was revoked. */
  endLease(id: string, lostError: Error | null): void {
    const lease = this.leases.get(id);
    if (!lease) return;
    this.leases.delete(id);
    const bound = [...this.data.entries()].filter(([, s]) => s.lease === id).map(([k]) => k);
    if (bound.length > 0) this.apply([], bound);
    lease.end(lostError);
  }
}

class MemoryLease implements Lease {
  private isLost = false;
  private readonly listeners: Array<(err: Error) => void> = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly backend: MemoryBackend,
    readonly id: string,
    readonly ttlSeconds: number,
    readonly owner: MemoryKV,
  ) {}

  get lost(): boolean {
    return this.isLost;
  }

  onLost(listener: (err: Error) => void): void {
    this.listeners.push(listener);
  }

  async revoke(): Promise<void> {
    if (this.isLost) return;
    if (this.backend.unavailable) throw this.owner.unavailableError();
    this.backend.endLease(this.id, null);
  }

  /** Stops the (implicit) keep-alive: the lease expires after its TTL, as when a host hangs. */
  stopKeepAlive(): void {
    if (this.isLost || this.timer) return;
    this.timer = setTimeout(() => {
      this.backend.endLease(this.id, new Error(`lease ${this.id} expired (keep-alive stopped for ${this.ttlSeconds}s)`));
    }, this.ttlSeconds * 1000);
    this.timer.unref?.();
  }

  end(lostError: Error | null): void {
    if (this.isLost) return;
    this.isLost = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (lostError) for (const listener of this.listeners) listener(lostError);
  }
}

export class MemoryKV extends TransactionalKV implements KV {
  private readonly backend: MemoryBackend;
  private closed = false;
  private readonly myWatchers = new Set<Watcher>();

  constructor(shared?: MemoryKV) {
    super();
    this.backend = shared ? shared.backend : new MemoryBackend();
  }

  // ---- test helpers -------------------------------------------------------------------------

  /** Another client on the same store (another host talking to the same etcd). */
  client(): MemoryKV {
    return new MemoryKV(this);
  }

  /** The lease expires now: its keys vanish and its onLost listeners fire. */
  expireLease(id: string): void {
    this.backend.endLease(id, new Error(`lease ${id} expired`));
  }

  /** The lease stops being kept alive and expires after its TTL (real timers or fake ones). */
  stopKeepAlive(id: string): void {
    this.backend.leases.get(id)?.stopKeepAlive();
  }

  /** This client dies like a host: every lease it granted expires at once and it is closed. */
  crash(): void {
    for (const lease of [...this.backend.leases.values()]) {
      if (lease.owner === this) this.backend.endLease(lease.id, new Error(`lease ${lease.id} expired (client crashed)`));
    }
    this.closeWatches();
    this.closed = true;
  }

  /** While true, every call on every client of this store fails with StateUnavailableError. */
  setUnavailable(unavailable: boolean): void {
    this.backend.unavailable = unavailable;
  }

  /** Every watch on the store (or those of prefixes `only` accepts) dies, as when etcd cancels them: no more events, onDead is called. */
  killWatches(only: (prefix: string) => boolean = () => true): void {
    for (const watcher of [...this.backend.watchers]) {
      if (!only(watcher.prefix)) continue;
      this.backend.watchers.delete(watcher);
      watcher.options.onDead?.(new Error(`watch of ${watcher.prefix} cancelled (test)`));
    }
  }

  /** How many watches are open on the store. */
  get watchCount(): number {
    return this.backend.watchers.size;
  }

  /** Ids of the live leases this client granted. */
  leaseIds(): string[] {
    return [...this.backend.leases.values()].filter((l) => l.owner === this).map((l) => l.id);
  }

  /** The current store revision. */
  get revision(): number {
    return this.backend.revision;
  }

  unavailableError(): StateUnavailableError {
    return new StateUnavailableError('etcd (memory) is unavailable: check etcd');
  }

  // ---- KV ------------------------------------------------------------------------------------

  private check(): void {
    if (this.closed) throw new Error('MemoryKV client is closed');
    if (this.backend.unavailable) throw this.unavailableError();
  }

  private leaseId(lease: Lease | undefined): string | null {
    if (!lease) return null;
    if (!this.backend.leases.has(lease.id)) {
      throw new Error(`etcd lease ${lease.id} not found (expired or revoked)`);
    }
    return lease.id;
  }

  private entry(key: string, stored: Stored): Entry {
    return { key, value: stored.value, modRevision: String(stored.modRevision) };
  }

  async get(key: string): Promise<Entry | null> {
    this.check();
    const stored = this.backend.data.get(key);
    return stored ? this.entry(key, stored) : null;
  }

  async list(prefix: string): Promise<Entry[]> {
    this.check();
    return [...this.backend.data.entries()]
      .filter(([key]) => key.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, stored]) => this.entry(key, stored));
  }

  private keysIn(range: KeyRange): string[] {
    return [...this.backend.data.keys()].filter((key) => key >= range.from && key < range.to).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  async range(range: KeyRange, options: { limit: number; descending?: boolean }): Promise<Entry[]> {
    this.check();
    const keys = this.keysIn(range);
    if (options.descending) keys.reverse();
    return keys.slice(0, options.limit > 0 ? options.limit : undefined).map((key) => this.entry(key, this.backend.data.get(key)!));
  }

  async count(range: KeyRange): Promise<number> {
    this.check();
    return this.keysIn(range).length;
  }

  async deleteRange(range: KeyRange): Promise<number> {
    this.check();
    const keys = this.keysIn(range);
    if (keys.length > 0) this.backend.apply([], keys);
    return keys.length;
  }

  async put(key: string, value: string, options?: { lease?: Lease }): Promise<void> {
    this.check();
    this.backend.apply([{ key, value, lease: this.leaseId(options?.lease) }], []);
  }

  async transact(ops: TransactionOps): Promise<TransactionResult> {
    this.check();
    const written = [...(ops.put ?? []).map((p) => p.key), ...(ops.delete ?? [])];
    if (new Set(written).size !== written.length) {
      // etcd refuses it too ("duplicate key given in txn request").
      throw new Error(`a transaction may write each key once: ${written.join(', ')}`);
    }
    const data = this.backend.data;
    const reads = () => new Map((ops.read ?? []).map((key) => [key, data.has(key) ? this.entry(key, data.get(key)!) : null]));
    const failed = () => ({ succeeded: false, reads: reads() });
    for (const key of ops.absent ?? []) if (data.has(key)) return failed();
    for (const key of ops.present ?? []) if (!data.has(key)) return failed();
    for (const { key, modRevision } of ops.unchanged ?? []) {
      if (String(data.get(key)?.modRevision ?? 0) !== modRevision) return failed();
    }
    for (const { key, value } of ops.equal ?? []) {
      if (data.get(key)?.value !== value) return failed();
    }
    for (const p of ops.put ?? []) {
      // etcd: "etcdserver: key not found" for ignore_lease on a missing key.
      if (p.keepLease && !data.has(p.key)) throw new Error(`etcdserver: key not found (${p.key}: keepLease on a key that does not exist)`);
    }
    const puts = (ops.put ?? []).map((p) => ({
      key: p.key,
      value: p.value,
      lease: p.keepLease ? (data.get(p.key)?.lease ?? null) : this.leaseId(p.lease),
    }));
    this.backend.apply(puts, ops.delete ?? []);
    return { succeeded: true, reads: reads() };
  }

  async delete(key: string): Promise<boolean> {
    this.check();
    if (!this.backend.data.has(key)) return false;
    this.backend.apply([], [key]);
    return true;
  }

  async lease(ttlSeconds: number): Promise<Lease> {
    this.check();
    if (!(ttlSeconds >= 1)) throw new RangeError(`a lease TTL must be at least 1 second, got ${ttlSeconds}`);
    const id = (this.backend.nextLease++).toString(16);
    const lease = new MemoryLease(this.backend, id, ttlSeconds, this);
    this.backend.leases.set(id, lease);
    return lease;
  }

  async watch(prefix: string, listener: (event: WatchEvent) => void, options: WatchOptions = {}): Promise<Watch> {
    this.check();
    const watcher: Watcher = { prefix, listener, options };
    this.backend.watchers.add(watcher);
    this.myWatchers.add(watcher);
    return {
      close: async () => {
        this.backend.watchers.delete(watcher);
        this.myWatchers.delete(watcher);
      },
    };
  }

  election(name: string, ttlSeconds: number): Election {
    return new KVElection(this, name, ttlSeconds);
  }

  async ping(_timeoutMs?: number): Promise<void> {
    this.check();
  }

  /** Closes this client. Like EtcdKV.close(), leases are not revoked: they expire after their TTL. */
  async close(): Promise<void> {
    for (const lease of this.backend.leases.values()) if (lease.owner === this) lease.stopKeepAlive();
    this.closeWatches();
    this.closed = true;
  }

  private closeWatches(): void {
    for (const watcher of this.myWatchers) this.backend.watchers.delete(watcher);
    this.myWatchers.clear();
  }
}
