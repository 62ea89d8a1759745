// The small key-value surface volplugin needs from etcd: reads, atomic create/replace, leases,
// watches and an election. `EtcdKV` (etcd.ts) is the real one; `MemoryKV` (memory.ts) is its twin
// for fast unit tests of logic. One contract suite runs against both.

export interface Entry {
  key: string;
  value: string;
  /** etcd mod revision (decimal string): the token for compare-and-swap. */
  modRevision: string;
}

export interface Lease {
  /** Hex lease id. */
  readonly id: string;
  readonly ttlSeconds: number;
  /**
   * True once the lease expired, was revoked, or was not confirmed in time: its holder must act as
   * if every key bound to it were gone. EtcdKV declares it before it can have expired at etcd (see
   * holderDeadlineMs in etcd-lease.ts), so that the holder stops in time.
   */
  readonly lost: boolean;
  /** Called once when the lease becomes lost (see `lost`). */
  onLost(listener: (err: Error) => void): void;
  revoke(): Promise<void>;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  key: string;
  value: string | null;
}

export interface Watch {
  close(): Promise<void>;
}

/** What a watcher hears about its watch besides events. */
export interface WatchOptions {
  /**
   * The watch ended without close() (etcd cancelled it, e.g. because the revision it had to resume
   * from was compacted): no further event comes. The owner must watch again and re-read what it
   * watches, since events may have been missed.
   */
  onDead?: (err: Error) => void;
  /** The watch resumed after a broken connection; events of the gap are replayed when etcd still has them. */
  onResumed?: () => void;
}

export interface Election {
  /** Resolves once this candidate leads; rejects if `resign` is called first. */
  campaign(value: string): Promise<void>;
  /** Gives up leadership (or candidacy) at once. */
  resign(): Promise<void>;
  /** The current leader's value, or null. */
  leader(): Promise<string | null>;
  /** Called when leadership is lost without resign (lease lost). */
  onLost(listener: (err: Error) => void): void;
}

export interface TransactionOps {
  absent?: string[];
  /** Keys that must exist. */
  present?: string[];
  unchanged?: Array<{ key: string; modRevision: string }>;
  /** Keys that must exist with exactly this value (e.g. a lock this process wrote). */
  equal?: Array<{ key: string; value: string }>;
  /**
   * `keepLease`: the key keeps the lease it is bound to now (etcd's ignore_lease), e.g. when a host
   * answers a request bound to its requester's lease. The key must exist (else etcd refuses).
   */
  put?: Array<{ key: string; value: string; lease?: Lease; keepLease?: boolean }>;
  delete?: string[];
  /**
   * Keys read in the same transaction, whether its conditions held or not: as they are after it
   * when it applied, as they are when it did not (transact() returns them). Saves the round trip
   * of reading them before or after, and of finding out why a condition failed.
   */
  read?: string[];
}

/** What transact() did: applied or not, and the `read` keys (null: absent). */
export interface TransactionResult {
  succeeded: boolean;
  reads: Map<string, Entry | null>;
}

/** A key range [from, to) for the range calls: histories whose keys sort by time (audit, operations). */
export interface KeyRange {
  from: string;
  /** Exclusive. */
  to: string;
}

export interface KV {
  get(key: string): Promise<Entry | null>;
  /** Every key under `prefix`, sorted by key. */
  list(prefix: string): Promise<Entry[]>;
  /** At most `limit` entries of the range in key order (the last ones first with `descending`). */
  range(range: KeyRange, options: { limit: number; descending?: boolean }): Promise<Entry[]>;
  /** How many keys the range holds (etcd counts them without sending them). */
  count(range: KeyRange): Promise<number>;
  /** Deletes every key of the range; how many there were. */
  deleteRange(range: KeyRange): Promise<number>;
  put(key: string, value: string, options?: { lease?: Lease }): Promise<void>;
  /** Writes only if `key` does not exist; false when it did. */
  create(key: string, value: string, options?: { lease?: Lease }): Promise<boolean>;
  /** Writes only if `key` still has `modRevision`; false when it changed. */
  replace(key: string, value: string, modRevision: string, options?: { lease?: Lease }): Promise<boolean>;
  /** Several creates/puts/deletes at once, all or nothing, guarded by conditions (absent, present, unchanged, equal). */
  transaction(ops: TransactionOps): Promise<boolean>;
  /** transaction(), also returning the `read` keys as of that revision. */
  transact(ops: TransactionOps): Promise<TransactionResult>;
  delete(key: string): Promise<boolean>;
  deleteIf(key: string, modRevision: string): Promise<boolean>;
  /** A lease kept alive in the background until revoked or lost. */
  lease(ttlSeconds: number): Promise<Lease>;
  watch(prefix: string, listener: (event: WatchEvent) => void, options?: WatchOptions): Promise<Watch>;
  election(name: string, ttlSeconds: number): Election;
  /** Throws a StateUnavailableError when etcd does not answer within `timeoutMs`. */
  ping(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * The conditional writes every KV expresses as one transaction; implementations provide
 * `transaction` (and the rest of KV) and inherit these.
 */
export abstract class TransactionalKV {
  abstract transact(ops: TransactionOps): Promise<TransactionResult>;

  async transaction(ops: TransactionOps): Promise<boolean> {
    return (await this.transact(ops)).succeeded;
  }

  create(key: string, value: string, options?: { lease?: Lease }): Promise<boolean> {
    return this.transaction({ absent: [key], put: [{ key, value, lease: options?.lease }] });
  }

  replace(key: string, value: string, modRevision: string, options?: { lease?: Lease }): Promise<boolean> {
    return this.transaction({ unchanged: [{ key, modRevision }], put: [{ key, value, lease: options?.lease }] });
  }

  deleteIf(key: string, modRevision: string): Promise<boolean> {
    return this.transaction({ unchanged: [{ key, modRevision }], delete: [key] });
  }
}

/** etcd could not be reached: the master maps it to HTTP 503. */
export class StateUnavailableError extends Error {
  readonly code = 'STATE_UNAVAILABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StateUnavailableError';
  }
}
